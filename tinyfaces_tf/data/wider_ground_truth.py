"""The evaluation ground truth of the official WIDER FACE eval_tools: ``wider_face_val.mat`` and
``wider_{easy,medium,hard}_val.mat``, MATLAB (num_events x 1) cell arrays ``event_list``,
``file_list``, ``face_bbx_list`` (x, y, w, h per face), the per-face attribute lists, and per
setting ``gt_list`` (1-based indices of the faces that count in that setting; every other face is
"don't care"). Result files (what a detector writes) are ``data/result_files.py``.
"""
import dataclasses
import os
from typing import Optional

import numpy as np
import scipy.io

from tinyfaces_tf.data.result_files import split_image_name

SETTINGS = ("easy", "medium", "hard")
# Per-face attribute lists of wider_face_val.mat, as ``<name>_label_list``.
ATTRIBUTES = ("blur", "expression", "illumination", "invalid", "occlusion", "pose")

_VAL_MAT = "wider_face_val.mat"


def setting_mat_name(setting):
  """File name of one setting's ground truth, e.g. ``wider_easy_val.mat``."""
  return f"wider_{setting}_val.mat"


@dataclasses.dataclass
class EvalGroundTruth:
  """The eval_tools ground truth, nested per event then per image like the .mat cell arrays.

  Attributes:
    event_list: event folder names, e.g. "0--Parade".
    file_list: per event, the image stems (no ".jpg").
    face_bbx_list: per event, per image, float [K, 4] x, y, w, h boxes.
    gt_lists: "easy"/"medium"/"hard" -> per event, per image, int [M] 1-based indices into that
      image's faces (the faces that count in the setting).
    blur ... pose: optional per event, per image, int [K] attribute labels (wider_face_val.mat's
      ``<name>_label_list``); None when absent.
  """
  event_list: list
  file_list: list
  face_bbx_list: list
  gt_lists: dict
  blur: Optional[list] = None
  expression: Optional[list] = None
  illumination: Optional[list] = None
  invalid: Optional[list] = None
  occlusion: Optional[list] = None
  pose: Optional[list] = None

  def __post_init__(self):
    # Normalise shapes and dtypes so every consumer sees [K, 4] float and [M] int arrays.
    self.event_list = [str(e) for e in self.event_list]
    self.file_list = [[str(s) for s in stems] for stems in self.file_list]
    self.face_bbx_list = [[np.asarray(b, np.float64).reshape(-1, 4) for b in boxes]
                          for boxes in self.face_bbx_list]
    self.gt_lists = {s: [[np.asarray(g).reshape(-1).astype(np.int64) for g in per_event]
                         for per_event in lists] for s, lists in self.gt_lists.items()}
    for name in ATTRIBUTES:
      value = getattr(self, name)
      if value is not None:
        setattr(self, name, [[np.asarray(a).reshape(-1).astype(np.int64) for a in per_event]
                             for per_event in value])
    self.validate()

  def validate(self):
    """Raises ValueError when the nested lists disagree in length or indices leave range."""
    n = len(self.event_list)
    if len(self.file_list) != n or len(self.face_bbx_list) != n:
      raise ValueError(f"EvalGroundTruth: {n} events but {len(self.file_list)} file lists and "
                       f"{len(self.face_bbx_list)} box lists")
    for i, event in enumerate(self.event_list):
      if len(self.face_bbx_list[i]) != len(self.file_list[i]):
        raise ValueError(f"EvalGroundTruth: event {event}: {len(self.file_list[i])} files but "
                         f"{len(self.face_bbx_list[i])} box arrays")
    lists = dict(self.gt_lists)
    lists.update({a: getattr(self, a) for a in ATTRIBUTES if getattr(self, a) is not None})
    for key, per_events in lists.items():
      if len(per_events) != n:
        raise ValueError(f"EvalGroundTruth: {key} has {len(per_events)} events, expected {n}")
      for i, event in enumerate(self.event_list):
        if len(per_events[i]) != len(self.file_list[i]):
          raise ValueError(f"EvalGroundTruth: {key}, event {event}: {len(per_events[i])} "
                           f"entries for {len(self.file_list[i])} files")
        for j, values in enumerate(per_events[i]):
          num_faces = len(self.face_bbx_list[i][j])
          if key in self.gt_lists:
            if values.size and (values.min() < 1 or values.max() > num_faces):
              raise ValueError(f"EvalGroundTruth: {key} indices {values.tolist()} of "
                               f"{event}/{self.file_list[i][j]} outside 1..{num_faces}")
          elif values.size != num_faces:
            raise ValueError(f"EvalGroundTruth: {key} of {event}/{self.file_list[i][j]} has "
                             f"{values.size} labels for {num_faces} faces")

  @property
  def num_images(self):
    return sum(len(stems) for stems in self.file_list)

  def image_names(self):
    """"event/stem" of every image, in file order (the keys of ``read_result_dir``)."""
    return [f"{e}/{s}" for e, stems in zip(self.event_list, self.file_list) for s in stems]

  @classmethod
  def from_images(cls, image_names, boxes_xywh, gt_lists, attributes=None):
    """Groups flat per-image lists into events (in order of first appearance).

    Args:
      image_names: "event/stem" or "event/stem.jpg" per image.
      boxes_xywh: per image, [K, 4] x, y, w, h.
      gt_lists: setting -> per image, 1-based face indices.
      attributes: optional attribute name (see ATTRIBUTES) -> per image, [K] labels.
    """
    attributes = attributes or {}
    unknown = set(attributes) - set(ATTRIBUTES)
    if unknown:
      raise ValueError(f"unknown attributes {sorted(unknown)}; expected some of {ATTRIBUTES}")
    events, order = {}, []
    for k, name in enumerate(image_names):
      event, stem = split_image_name(name)
      if event not in events:
        events[event] = []
        order.append(event)
      events[event].append((stem, k))

    def nest(per_image):
      return [[per_image[k] for _, k in events[e]] for e in order]

    return cls(event_list=order,
               file_list=[[stem for stem, _ in events[e]] for e in order],
               face_bbx_list=nest(list(boxes_xywh)),
               gt_lists={s: nest(list(v)) for s, v in gt_lists.items()},
               **{a: nest(list(v)) for a, v in attributes.items()})


def _load_mat(path, keys):
  if not os.path.isfile(path):
    raise FileNotFoundError(f"eval_tools ground truth file not found: {path}")
  try:
    mat = scipy.io.loadmat(path)
  except NotImplementedError as e:  # MATLAB v7.3 (HDF5) files.
    raise ValueError(f"{path}: unsupported .mat version ({e})") from e
  missing = [k for k in keys if k not in mat]
  if missing:
    raise ValueError(f"{path}: missing variable(s) {missing}")
  return mat


def _cells(mat, key, path, num_events):
  """The per-event inner cells of a (num_events x 1) cell array."""
  outer = mat[key]
  if outer.dtype != object or outer.shape[0] != num_events:
    raise ValueError(f"{path}: {key} is not a ({num_events} x 1) cell array "
                     f"(shape {outer.shape}, dtype {outer.dtype})")
  return [outer[i][0] for i in range(num_events)]


def read_eval_ground_truth(gt_dir):
  """Reads wider_face_val.mat and wider_{easy,medium,hard}_val.mat from ``gt_dir``.

  Indexing follows the official python port: ``event_list[i][0][0]`` is the event,
  ``file_list[i][0][j][0][0]`` the stem, ``face_bbx_list[i][0][j][0]`` the [K, 4] boxes and
  ``gt_list[i][0][j][0]`` the [M, 1] 1-based indices.
  """
  gt_dir = os.fspath(gt_dir)
  path = os.path.join(gt_dir, _VAL_MAT)
  mat = _load_mat(path, ("event_list", "file_list", "face_bbx_list"))
  num_events = mat["event_list"].shape[0]
  event_list = [str(e[0]) for e in _cells(mat, "event_list", path, num_events)]
  file_list = [[str(f[0][0]) for f in files]
               for files in _cells(mat, "file_list", path, num_events)]
  face_bbx_list = [[b[0] for b in boxes]
                   for boxes in _cells(mat, "face_bbx_list", path, num_events)]
  attributes = {}
  for name in ATTRIBUTES:
    key = f"{name}_label_list"
    if key in mat:
      attributes[name] = [[a[0] for a in labels]
                          for labels in _cells(mat, key, path, num_events)]
  gt_lists = {}
  for setting in SETTINGS:
    setting_path = os.path.join(gt_dir, setting_mat_name(setting))
    setting_mat = _load_mat(setting_path, ("gt_list",))
    cells = _cells(setting_mat, "gt_list", setting_path, num_events)
    for i, per_event in enumerate(cells):
      if len(per_event) != len(file_list[i]):
        raise ValueError(f"{setting_path}: gt_list of event {event_list[i]} has "
                         f"{len(per_event)} images, {path} has {len(file_list[i])}")
    gt_lists[setting] = [[g[0] for g in per_event] for per_event in cells]
  try:
    return EvalGroundTruth(event_list, file_list, face_bbx_list, gt_lists, **attributes)
  except ValueError as e:
    raise ValueError(f"{gt_dir}: {e}") from e


def _cell_column(values):
  """An (n x 1) object array (a MATLAB cell column) holding ``values`` as they are."""
  cell = np.empty((len(values), 1), dtype=object)
  for k, value in enumerate(values):
    cell[k, 0] = value
  return cell


def _integer_if_whole(boxes):
  """int32 boxes, as the official files store WIDER's integer pixel boxes; float64 only when a
  box is not whole (never for WIDER annotations)."""
  boxes = np.asarray(boxes, np.float64)
  whole = np.all(np.isfinite(boxes)) and np.array_equal(boxes, np.round(boxes))
  return boxes.astype(np.int32) if whole else boxes


def write_eval_ground_truth(gt_dir, gt):
  """Writes ``gt`` as the four eval_tools .mat files into ``gt_dir`` (created if needed).

  Like the official archive, every setting file also carries event_list, file_list and
  face_bbx_list (the MATLAB wider_eval.m loads them from there).
  """
  gt.validate()
  missing = [s for s in SETTINGS if s not in gt.gt_lists]
  if missing:
    raise ValueError(f"EvalGroundTruth has no gt_list for setting(s) {missing}")
  gt_dir = os.fspath(gt_dir)
  os.makedirs(gt_dir, exist_ok=True)
  common = {
      "event_list": _cell_column(list(gt.event_list)),
      "file_list": _cell_column([_cell_column(list(stems)) for stems in gt.file_list]),
      "face_bbx_list": _cell_column(
          [_cell_column([_integer_if_whole(np.asarray(b).reshape(-1, 4)) for b in boxes])
           for boxes in gt.face_bbx_list]),
  }

  def columns(nested):
    # Integer [n, 1] columns, as in the official files (the public Python evaluator indexes
    # arrays with gt_list directly, which NumPy allows for integers only).
    return _cell_column([_cell_column([np.asarray(v).astype(np.int32).reshape(-1, 1)
                                       for v in per]) for per in nested])

  val = dict(common)
  for name in ATTRIBUTES:
    value = getattr(gt, name)
    if value is not None:
      val[f"{name}_label_list"] = columns(value)
  _savemat(os.path.join(gt_dir, _VAL_MAT), val)
  for setting in SETTINGS:
    _savemat(os.path.join(gt_dir, setting_mat_name(setting)),
             dict(common, gt_list=columns(gt.gt_lists[setting])))


# The 116-byte MAT v5 header text; scipy writes the creation time there, which would make two
# writes of the same ground truth differ. Readers only parse the version/endian bytes after it.
_MAT_HEADER = b"MATLAB 5.0 MAT-file, Platform: posix, written by tinyfaces_tf".ljust(116)


def _savemat(path, variables):
  scipy.io.savemat(path, variables)
  with open(path, "r+b") as f:
    f.write(_MAT_HEADER)

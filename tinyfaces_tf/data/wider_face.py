"""WIDER FACE as distributed: annotation files, test file list, image paths, eval ground truth.

Layout (what the official archives unpack to)::

  <root>/WIDER_{train,val,test}/images/<event>/<file>.jpg
  <root>/wider_face_split/wider_face_{train,val}_bbx_gt.txt
  <root>/wider_face_split/wider_face_test_filelist.txt
  <root>/eval_tools/ground_truth/wider_face_val.mat, wider_{easy,medium,hard}_val.mat

``wider_face_*_bbx_gt.txt`` holds, per image, a name line (``event/file.jpg``), a face-count line,
then one line per face: ten integers ``x1 y1 w h blur expression illumination invalid occlusion
pose`` each followed by a space (so the line ends in a space). An image without faces has count
``0`` and still one all-zero face line. Attribute values (WIDER readme): blur 0 clear / 1 normal /
2 heavy; expression 0 typical / 1 exaggerate; illumination 0 normal / 1 extreme; invalid 0 / 1;
occlusion 0 none / 1 partial / 2 heavy; pose 0 typical / 1 atypical.

The eval_tools .mat files are ``data/wider_ground_truth.py``; result files ``data/result_files.py``.
"""
import dataclasses
import os
import re
from typing import Dict, List, Optional, Sequence

import numpy as np

from tinyfaces_tf import boxes as box_ops
from tinyfaces_tf import imaging
from tinyfaces_tf.data.result_files import read_text_lines
from tinyfaces_tf.data.wider_ground_truth import ATTRIBUTES
from tinyfaces_tf.data.wider_ground_truth import SETTINGS
from tinyfaces_tf.data.wider_ground_truth import EvalGroundTruth
from tinyfaces_tf.data.wider_ground_truth import read_eval_ground_truth

SPLITS = ("train", "val", "test")
# A baseline detector's boxes per split, as result files: <root>/proposals/<split>/<event>/<stem>.txt
# (read by the RoI builder; written by the demo job or any detector).
PROPOSALS_DIR = "proposals"
# The ten fields of a face line, in file order.
FACE_FIELDS = ("x", "y", "w", "h", *ATTRIBUTES)
# Easy / Medium / Hard by face height (SPEC section 5; the papers describe the settings by
# height, the official lists came from EdgeBox detection rates).
MIN_HEIGHTS = {"easy": 50, "medium": 30, "hard": 10}
# 0-face images still carry one line of ten zeros in the official files.
_EMPTY_FACE_LINE = "0 0 0 0 0 0 0 0 0 0 "
_INT = re.compile(r"^[+-]?\d+$")


def split_file(root, split):
  """``<root>/wider_face_split/wider_face_<split>_bbx_gt.txt`` (train and val only)."""
  if split not in ("train", "val"):
    raise ValueError(f"split {split!r} has no bbx_gt file; expected 'train' or 'val'")
  return os.path.join(os.fspath(root), "wider_face_split", f"wider_face_{split}_bbx_gt.txt")


def test_filelist_file(root):
  """``<root>/wider_face_split/wider_face_test_filelist.txt``."""
  return os.path.join(os.fspath(root), "wider_face_split", "wider_face_test_filelist.txt")


@dataclasses.dataclass(frozen=True)
class FaceAnnotation:
  """One face line of a bbx_gt file; all ten fields are integers as in the official files."""
  x: int
  y: int
  w: int
  h: int
  blur: int = 0
  expression: int = 0
  illumination: int = 0
  invalid: int = 0
  occlusion: int = 0
  pose: int = 0

  def __post_init__(self):
    # The file format has integers only; refuse silently truncating floats.
    for name in FACE_FIELDS:
      value = getattr(self, name)
      if isinstance(value, (bool, np.bool_)) or int(value) != value:
        raise ValueError(f"FaceAnnotation.{name} must be an integer, got {value!r}")
      object.__setattr__(self, name, int(value))

  @property
  def values(self):
    """The ten fields in file order."""
    return tuple(getattr(self, name) for name in FACE_FIELDS)

  def to_line(self):
    """The official face line, trailing space included, without the newline."""
    return "".join(f"{v} " for v in self.values)


@dataclasses.dataclass
class ImageAnnotation:
  """One image of a bbx_gt file: its name ``event/file.jpg`` and its faces."""
  name: str
  faces: List[FaceAnnotation] = dataclasses.field(default_factory=list)

  @property
  def event(self):
    return self.name.rsplit("/", 1)[0]

  @property
  def stem(self):
    """File name without folder and ``.jpg`` (the key eval_tools uses)."""
    return os.path.splitext(self.name.rsplit("/", 1)[-1])[0]

  def attribute(self, name):
    """int64 [K] values of one field (see FACE_FIELDS)."""
    if name not in FACE_FIELDS:
      raise ValueError(f"unknown face field {name!r}; expected one of {FACE_FIELDS}")
    return np.asarray([getattr(f, name) for f in self.faces], np.int64).reshape(-1)

  @property
  def boxes_xywh(self):
    """float32 [K, 4] x, y, w, h as in the file."""
    return np.asarray([[f.x, f.y, f.w, f.h] for f in self.faces], np.float32).reshape(-1, 4)

  @property
  def boxes_xyxy(self):
    """float32 [K, 4] x1, y1, x2, y2 with x2 = x + w (project convention, no +1)."""
    return box_ops.xywh_to_xyxy(self.boxes_xywh)

  @property
  def valid(self):
    """bool [K]: invalid flag 0 and a non-empty box (WIDER has a few 0-size boxes)."""
    boxes = self.boxes_xywh
    return (self.attribute("invalid") == 0) & (boxes[:, 2] > 0) & (boxes[:, 3] > 0)


def _is_image_name(text):
  """"event/file.jpg": one folder and one file, neither "." nor "..", so a name from a file can
  never point outside the images folder (no absolute paths, no "..", no backslashes)."""
  parts = text.split("/")
  return (len(parts) == 2 and all(p not in ("", ".", "..") for p in parts)
          and parts[1].lower().endswith(".jpg") and len(parts[1]) > 4
          and not any(c.isspace() or c == "\\" for c in text))


def read_bbx_gt(path) -> List[ImageAnnotation]:
  """Parses a ``wider_face_{train,val}_bbx_gt.txt`` file strictly.

  Trailing whitespace and CRLF line ends are accepted; anything else out of layout (a missing
  count, a face line without exactly ten integers, a non-zero placeholder line of a 0-face image,
  a repeated image, a short file) raises ValueError "FILE:LINE: what was expected".
  """
  path = os.fspath(path)
  lines = read_text_lines(path)
  n = len(lines)
  annotations, first_line = [], {}
  i = 0
  while i < n:
    name = lines[i].strip()
    if not _is_image_name(name):
      raise ValueError(f"{path}:{i + 1}: expected an image name 'event/file.jpg' (one folder, "
                       f"no '..' or absolute path), got {lines[i]!r}")
    if name in first_line:
      raise ValueError(f"{path}:{i + 1}: image {name} listed again (first at line "
                       f"{first_line[name]})")
    first_line[name] = i + 1
    i += 1
    count_text = lines[i].strip() if i < n else None
    if count_text is None or not _INT.match(count_text) or int(count_text) < 0:
      got = "end of file" if count_text is None else repr(lines[i])
      raise ValueError(f"{path}:{i + 1}: expected the face count (integer >= 0) of {name}, "
                       f"got {got}")
    count = int(count_text)
    i += 1
    faces = []
    for _ in range(max(count, 1)):
      if i >= n:
        raise ValueError(f"{path}:{i + 1}: expected face line {len(faces) + 1} of {max(count, 1)} "
                         f"of {name}, got end of file")
      fields = lines[i].split()
      if len(fields) != len(FACE_FIELDS) or not all(_INT.match(v) for v in fields):
        raise ValueError(f"{path}:{i + 1}: expected 10 integers 'x1 y1 w h blur expression "
                         f"illumination invalid occlusion pose' for {name}, got {lines[i]!r}")
      values = [int(v) for v in fields]
      if count == 0:
        if any(values):
          raise ValueError(f"{path}:{i + 1}: {name} has count 0, expected the all-zero "
                           f"placeholder line {_EMPTY_FACE_LINE!r}, got {lines[i]!r}")
      else:
        faces.append(FaceAnnotation(*values))
      i += 1
    annotations.append(ImageAnnotation(name, faces))
  return annotations


def format_bbx_gt(annotations: Sequence[ImageAnnotation]) -> str:
  """The text of a bbx_gt file, in the official layout (see module docstring)."""
  out = []
  for annotation in annotations:
    if not _is_image_name(annotation.name):
      raise ValueError(f"image name {annotation.name!r} is not of the form 'event/file.jpg'")
    out.append(f"{annotation.name}\n{len(annotation.faces)}\n")
    if annotation.faces:
      out.extend(face.to_line() + "\n" for face in annotation.faces)
    else:
      out.append(_EMPTY_FACE_LINE + "\n")
  return "".join(out)


def write_bbx_gt(path, annotations: Sequence[ImageAnnotation]):
  """Writes a bbx_gt file byte-compatible with the official ones; returns its path."""
  path = os.fspath(path)
  text = format_bbx_gt(annotations)
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  # newline="\n": the official files have LF line ends on every platform.
  with open(path, "w", encoding="utf-8", newline="\n") as f:
    f.write(text)
  return path


def read_test_filelist(path) -> List[str]:
  """``wider_face_test_filelist.txt`` -> ["event/file.jpg", ...]; bad lines raise FILE:LINE."""
  path = os.fspath(path)
  lines = read_text_lines(path)
  n = len(lines)
  names = []
  for i, line in enumerate(lines[:n]):
    if not _is_image_name(line.strip()):
      raise ValueError(f"{path}:{i + 1}: expected an image name 'event/file.jpg', got {line!r}")
    names.append(line.strip())
  return names


def write_test_filelist(path, names: Sequence[str]):
  """Writes one ``event/file.jpg`` per line (LF, final newline); returns the path."""
  path = os.fspath(path)
  for name in names:
    if not _is_image_name(name):
      raise ValueError(f"image name {name!r} is not of the form 'event/file.jpg'")
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  with open(path, "w", encoding="utf-8", newline="\n") as f:
    f.write("".join(f"{name}\n" for name in names))
  return path


def setting_indices(annotation: ImageAnnotation, min_height):
  """1-based indices of the valid faces with h >= ``min_height`` (one setting's gt_list)."""
  keep = annotation.valid & (annotation.boxes_xywh[:, 3] >= min_height)
  return np.flatnonzero(keep).astype(np.int64) + 1


def eval_ground_truth_from_annotations(annotations: Sequence[ImageAnnotation],
                                       min_heights: Optional[Dict[str, float]] = None
                                       ) -> EvalGroundTruth:
  """eval_tools ground truth of ``annotations`` with Easy/Medium/Hard by face height.

  A face is in a setting's gt_list when it is valid and its height is at least the setting's
  threshold (default MIN_HEIGHTS: 50 / 30 / 10 px); every other face is "don't care". Events
  follow the order of first appearance, so pass annotations grouped by event (as the official
  files are).
  """
  min_heights = dict(MIN_HEIGHTS if min_heights is None else min_heights)
  missing = [s for s in SETTINGS if s not in min_heights]
  if missing:
    raise ValueError(f"min_heights lacks setting(s) {missing}")
  return EvalGroundTruth.from_images(
      [a.name for a in annotations],
      [a.boxes_xywh.astype(np.float64) for a in annotations],
      {s: [setting_indices(a, min_heights[s]) for a in annotations] for s in SETTINGS},
      attributes={name: [a.attribute(name) for a in annotations] for name in ATTRIBUTES})


class WiderFace:
  """A WIDER FACE root in the distributed layout (real WIDER or the project's demo)."""

  def __init__(self, root):
    self.root = os.fspath(root)
    if not os.path.isdir(self.root):
      raise FileNotFoundError(f"WIDER FACE root not found: {self.root}")
    self._cache = {}

  def _check_split(self, split):
    if split not in SPLITS:
      raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")

  def split_file(self, split):
    return split_file(self.root, split)

  def annotations(self, split) -> List[ImageAnnotation]:
    """The split's ImageAnnotations in file order ('train' or 'val'; test has none)."""
    self._check_split(split)
    if split not in self._cache:
      path = self.split_file(split)
      if not os.path.isfile(path):
        raise FileNotFoundError(f"WIDER annotation file not found: {path}")
      self._cache[split] = tuple(read_bbx_gt(path))
    return list(self._cache[split])

  def test_names(self) -> List[str]:
    path = test_filelist_file(self.root)
    if not os.path.isfile(path):
      raise FileNotFoundError(f"WIDER test file list not found: {path}")
    return read_test_filelist(path)

  def names(self, split) -> List[str]:
    """``event/file.jpg`` of every image of the split (test: from the test file list)."""
    self._check_split(split)
    if split == "test":
      return self.test_names()
    return [a.name for a in self.annotations(split)]

  def proposals_dir(self, split):
    return os.path.join(self.root, PROPOSALS_DIR, split)

  def images_dir(self, split):
    self._check_split(split)
    return os.path.join(self.root, f"WIDER_{split}", "images")

  def image_path(self, split, name):
    return os.path.join(self.images_dir(split), *name.split("/"))

  def check_images(self, split) -> List[str]:
    """Paths of the split's listed images that are missing on disk (empty when complete)."""
    return [path for path in (self.image_path(split, name) for name in self.names(split))
            if not os.path.isfile(path)]

  def require_images(self, split):
    """Raises FileNotFoundError naming the missing image paths of the split, if any."""
    missing = self.check_images(split)
    if missing:
      shown = "\n  ".join(missing[:10])
      more = f"\n  ... and {len(missing) - 10} more" if len(missing) > 10 else ""
      raise FileNotFoundError(f"{len(missing)} image(s) of WIDER {split} missing:\n  "
                              f"{shown}{more}")

  def read_image(self, split, name):
    """uint8 RGB [H, W, 3] of one image (imaging.load_image: errors name the path)."""
    return imaging.load_image(self.image_path(split, name))

  @property
  def ground_truth_dir(self) -> Optional[str]:
    """``<root>/eval_tools/ground_truth`` when it exists, else None."""
    path = os.path.join(self.root, "eval_tools", "ground_truth")
    return path if os.path.isdir(path) else None

  def eval_ground_truth(self) -> EvalGroundTruth:
    """The val ground truth of eval_tools (the four .mat files)."""
    if self.ground_truth_dir is None:
      raise FileNotFoundError(f"no eval_tools ground truth under {self.root}: expected "
                              f"{os.path.join(self.root, 'eval_tools', 'ground_truth')}")
    return read_eval_ground_truth(self.ground_truth_dir)

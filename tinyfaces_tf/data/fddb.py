"""FDDB as distributed: fold lists, ellipse annotations, image paths, detection output files, and
an FDDB-layout copy of a WIDER-layout split.

Layout (Jain & Learned-Miller, UM-CS-2010-009)::

  <root>/originalPics/<year>/<month>/<day>/big/img_<n>.jpg
  <root>/FDDB-folds/FDDB-fold-XX.txt               one image name per line, e.g.
                                                   2002/08/11/big/img_591 (no .jpg)
  <root>/FDDB-folds/FDDB-fold-XX-ellipseList.txt   per image: name, face count, then one
                                                   "major_axis_radius minor_axis_radius angle
                                                   center_x center_y 1" line per face

Detections for the official ``evaluate`` are one file per fold, ``fold-XX-out.txt``: per image of
the fold, in fold order (the binary reads the list, the ellipses and the detections in lockstep),
the name, the detection count, then ``left_x top_y width height score`` lines. A long detection
job writes one file per image (``<results_dir>/<name>.txt``, the same block for one image) so it
can resume, and ``gather_fold_detections`` joins them into the fold's out file.

Angle convention: see ``evaluation/fddb.py`` (radians, major axis along (cos, sin) with y down;
upright faces have angle ~ pi/2).
"""
import os
import re
import shutil
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
from absl import logging

from tinyfaces_tf import atomic
from tinyfaces_tf.data import result_files
from tinyfaces_tf.data import wider_face
from tinyfaces_tf.evaluation import fddb as fddb_eval
from tinyfaces_tf.evaluation import wider_protocol

IMAGES_DIR = "originalPics"
FOLDS_DIR = "FDDB-folds"
IMAGE_EXT = ".jpg"  # what ``evaluate -z .jpg`` appends to the listed names
NUM_FOLDS = 10
FOLDS = tuple(range(1, NUM_FOLDS + 1))
# Semi-axes of the ellipse written for a face box, in units of half the box's pixel extent.
# 1.1 maximises the area IoU of an axis-aligned ellipse with its rectangle (0.837; 1 is the
# inscribed ellipse, IoU 0.785; sqrt(2) the circumscribed one, IoU 0.637).
ELLIPSE_SCALE = 1.1
META_FILE = "fddb_info.json"  # written last: its presence means the copy is complete.
_PARTIAL_FILE = ".fddb_incomplete"  # present while writing, so an interrupted run is redone.
_OWNED = (IMAGES_DIR, FOLDS_DIR, META_FILE, _PARTIAL_FILE)
_FOLD_FILE = re.compile(r"^FDDB-fold-(\d\d)\.txt$")


def _check_fold(fold) -> int:
  ok = isinstance(fold, (int, np.integer)) and not isinstance(fold, (bool, np.bool_))
  if not ok or not 1 <= int(fold) <= 99:
    raise ValueError(f"FDDB fold must be an integer in 1..99, got {fold!r}")
  return int(fold)


def name_problem(name) -> Optional[str]:
  """Why ``name`` is not an FDDB image name (relative, "/"-separated, no "." or ".." parts, no
  spaces or backslashes, listed without ".jpg"), or None when it is one."""
  if not isinstance(name, str) or not name:
    return f"expected an image name like '2002/08/11/big/img_591', got {name!r}"
  if any(c.isspace() or c == "\\" for c in name):
    return f"image name {name!r} holds a space or backslash"
  if any(part in ("", ".", "..") for part in name.split("/")):
    return f"image name {name!r} is not a relative path without '.' or '..' parts"
  if name.lower().endswith(IMAGE_EXT):
    return f"image name {name!r} ends in {IMAGE_EXT}; FDDB lists names without the extension"
  return None


def check_name(name) -> str:
  """``name`` when it is a valid FDDB image name, else ValueError (see ``name_problem``)."""
  problem = name_problem(name)
  if problem:
    raise ValueError(problem)
  return name


def fold_file(root, fold) -> str:
  """``<root>/FDDB-folds/FDDB-fold-XX.txt``."""
  return os.path.join(os.fspath(root), FOLDS_DIR, f"FDDB-fold-{_check_fold(fold):02d}.txt")


def ellipse_file(root, fold) -> str:
  """``<root>/FDDB-folds/FDDB-fold-XX-ellipseList.txt``."""
  return os.path.join(os.fspath(root), FOLDS_DIR,
                      f"FDDB-fold-{_check_fold(fold):02d}-ellipseList.txt")


def fold_out_file(out_dir, fold) -> str:
  """``<out_dir>/fold-XX-out.txt``, the conventional name of a fold's detection output."""
  return os.path.join(os.fspath(out_dir), f"fold-{_check_fold(fold):02d}-out.txt")


def read_fold_file(path) -> List[str]:
  """A ``FDDB-fold-XX.txt`` -> image names in file order.

  Blank lines are skipped (the official reader splits on whitespace); a bad or repeated name
  raises ValueError "FILE:LINE: ...", a missing file FileNotFoundError naming it.
  """
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"FDDB fold file not found: {path}")
  names, first_line = [], {}
  for line_no, line in enumerate(result_files.read_text_lines(path), 1):
    name = line.strip()
    if not name:
      continue
    problem = name_problem(name)
    if problem:
      raise ValueError(f"{path}:{line_no}: {problem}")
    if name in first_line:
      raise ValueError(f"{path}:{line_no}: image {name} listed again (first at line "
                       f"{first_line[name]})")
    first_line[name] = line_no
    names.append(name)
  return names


def write_fold_file(path, names: Sequence[str]) -> str:
  """Writes one name per line (LF, final newline) atomically; returns the path."""
  return atomic.write_text(path, "".join(f"{check_name(name)}\n" for name in names))


def format_ellipse_list(names: Sequence[str], ellipses: Mapping[str, np.ndarray]) -> str:
  """The text of an ``FDDB-fold-XX-ellipseList.txt``: ``ellipses[name]`` is [K, 5] (ra, rb,
  angle, cx, cy); every line ends in the distributed files' "  1"."""
  lines = []
  for name in names:
    rows = np.asarray(ellipses.get(name, np.zeros((0, 5))), np.float64).reshape(-1, 5)
    lines += [check_name(name), str(len(rows))]
    lines += [" ".join(f"{v:.6f}" for v in row) + "  1" for row in rows]
  return "".join(line + "\n" for line in lines)


class Fddb:
  """An FDDB root in the distributed layout (the real benchmark or a converted WIDER split)."""

  def __init__(self, root):
    self.root = os.fspath(root)
    if not os.path.isdir(self.root):
      raise FileNotFoundError(f"FDDB root not found: {self.root}")
    self._names = {}
    self._ellipses = {}

  @property
  def folds_dir(self) -> str:
    return os.path.join(self.root, FOLDS_DIR)

  @property
  def images_dir(self) -> str:
    return os.path.join(self.root, IMAGES_DIR)

  def folds(self) -> List[int]:
    """Numbers of the folds whose ``FDDB-fold-XX.txt`` exists, ascending."""
    if not os.path.isdir(self.folds_dir):
      raise FileNotFoundError(f"FDDB folds folder not found: {self.folds_dir}")
    found = (_FOLD_FILE.match(n) for n in os.listdir(self.folds_dir))
    return sorted(int(m.group(1)) for m in found if m and int(m.group(1)) >= 1)

  def fold_file(self, fold) -> str:
    return fold_file(self.root, fold)

  def ellipse_file(self, fold) -> str:
    return ellipse_file(self.root, fold)

  def names(self, fold) -> List[str]:
    """The fold's image names, as listed (no extension)."""
    fold = _check_fold(fold)
    if fold not in self._names:
      self._names[fold] = tuple(read_fold_file(self.fold_file(fold)))
    return list(self._names[fold])

  def all_names(self, folds: Optional[Sequence[int]] = None) -> List[str]:
    """Names of ``folds`` (default: every fold present), fold after fold."""
    return [n for fold in (self.folds() if folds is None else folds) for n in self.names(fold)]

  def image_path(self, name) -> str:
    """``<root>/originalPics/<name>.jpg``."""
    return os.path.join(self.images_dir, *check_name(name).split("/")) + IMAGE_EXT

  def ellipses(self, fold) -> Dict[str, np.ndarray]:
    """{name: float64 [K, 5] (ra, rb, angle, cx, cy)} of one fold, in fold order.

    The ellipse list must hold exactly the fold's images in the fold's order (the official
    binary reads both in lockstep); a name not in the fold list raises ValueError "FILE:LINE",
    missing or reordered images ValueError naming the file.
    """
    fold = _check_fold(fold)
    if fold not in self._ellipses:
      names = self.names(fold)
      listed = set(names)
      path = self.ellipse_file(fold)
      fold_path = self.fold_file(fold)

      def problem(name):
        return name_problem(name) or (
            None if name in listed else f"image {name!r} is not listed in {fold_path}")

      ellipses = fddb_eval.read_ellipses(path, check_name=problem)
      missing = [n for n in names if n not in ellipses]
      if missing:
        raise ValueError(f"{path}: {len(missing)} image(s) of {fold_path} have no ellipse block, "
                         f"first {missing[0]!r}")
      if list(ellipses) != names:
        raise ValueError(f"{path}: images are not in the order of {fold_path}")
      self._ellipses[fold] = ellipses
    return {name: rows.copy() for name, rows in self._ellipses[fold].items()}

  def all_ellipses(self, folds: Optional[Sequence[int]] = None) -> Dict[str, np.ndarray]:
    """``ellipses`` of several folds (default: every fold present) in one dict."""
    out = {}
    for fold in self.folds() if folds is None else folds:
      out.update(self.ellipses(fold))
    return out

  def num_faces(self, folds: Optional[Sequence[int]] = None) -> int:
    return int(sum(len(e) for e in self.all_ellipses(folds).values()))

  def check_images(self, folds: Optional[Sequence[int]] = None) -> List[str]:
    """Paths of listed images missing on disk (empty when complete)."""
    return [p for p in map(self.image_path, self.all_names(folds)) if not os.path.isfile(p)]

  def require_images(self, folds: Optional[Sequence[int]] = None):
    """Raises FileNotFoundError naming the missing image paths, if any."""
    missing = self.check_images(folds)
    if missing:
      shown = "\n  ".join(missing[:10])
      more = f"\n  ... and {len(missing) - 10} more" if len(missing) > 10 else ""
      raise FileNotFoundError(f"{len(missing)} FDDB image(s) missing:\n  {shown}{more}")

  def read_image(self, name) -> np.ndarray:
    """uint8 RGB [H, W, 3] (FDDB has grayscale images; imaging.load_image makes them RGB)."""
    from tinyfaces_tf import imaging  # pylint: disable=g-import-not-at-top (imports TF)
    return imaging.load_image(self.image_path(name))


# --- Detection output -------------------------------------------------------------------------

def _xywh(name, boxes_xyxy, scores) -> Tuple[np.ndarray, np.ndarray]:
  """Checked x1 y1 x2 y2 boxes -> float64 x y w h (w = x2 - x1, the project's convention; the
  official rectangle then spans x .. x + w) and float64 scores."""
  boxes, scores = wider_protocol.checked_predictions(name, boxes_xyxy, scores)
  return np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1), scores


def _block(name, boxes_xywh, scores) -> List[str]:
  # repr: the shortest text that reads back as the same float64 (C++ >> parses it too).
  rows = [" ".join(repr(float(v)) for v in (*box, score)) for box, score in zip(boxes_xywh, scores)]
  return [name, str(len(rows))] + rows


def _write_fold_xywh(out_dir, fold, names, detections_xywh) -> str:
  listed = set(names)
  unknown = [n for n in detections_xywh if n not in listed]
  if unknown:
    raise ValueError(f"fold {fold}: detections for {len(unknown)} image(s) not in the fold, "
                     f"first {unknown[0]!r}")
  lines = []
  for name in names:
    boxes, scores = detections_xywh.get(check_name(name), (np.zeros((0, 4)), np.zeros(0)))
    lines += _block(name, boxes, scores)
  # Atomic: a killed job leaves the previous file or the new one, never half of one.
  return atomic.write_text(fold_out_file(out_dir, fold), "".join(f"{l}\n" for l in lines))


def write_fold_detections(out_dir, fold: int, names: Sequence[str],
                          detections: Mapping[str, Tuple[np.ndarray, np.ndarray]]) -> str:
  """Writes ``<out_dir>/fold-XX-out.txt`` for the official ``evaluate``; returns its path.

  Args:
    out_dir: output folder (created).
    fold: fold number (names the file).
    names: the fold's image names in fold order (``Fddb.names(fold)``); every one gets a block,
      images without detections a count of 0, as the official binary needs.
    detections: {name: (boxes_xyxy [N, 4] x1 y1 x2 y2, scores [N])}; a name outside ``names``
      raises ValueError.
  """
  converted = {name: _xywh(name, *dets) for name, dets in detections.items()}
  return _write_fold_xywh(out_dir, fold, list(names), converted)


def image_result_path(results_dir, name) -> str:
  """``<results_dir>/<name>.txt``, the per-image detection file of a resumable job."""
  return os.path.join(os.fspath(results_dir), *check_name(name).split("/")) + ".txt"


def write_image_detections(results_dir, name: str, boxes_xyxy, scores) -> str:
  """Writes one image's detections to ``image_result_path`` (name, count, ``x y w h score``
  lines, the WIDER result block) atomically; returns the path."""
  boxes, scores = _xywh(name, boxes_xyxy, scores)
  text = "".join(f"{line}\n" for line in _block(name, boxes, scores))
  return atomic.write_text(image_result_path(results_dir, name), text)


def read_image_detections(results_dir, name: str) -> Tuple[np.ndarray, np.ndarray]:
  """One per-image file -> (boxes_xywh float64 [N, 4], scores float64 [N]); errors name
  FILE:LINE (``result_files.read_result_file``)."""
  path = image_result_path(results_dir, name)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"FDDB per-image detection file not found: {path}")
  return result_files.read_result_file(path)


def pending_names(results_dir, names: Sequence[str]) -> List[str]:
  """The names without a per-image file yet (what a resumed job still has to detect)."""
  return [n for n in names if not os.path.isfile(image_result_path(results_dir, n))]


def gather_fold_detections(results_dir, out_dir, fold: int, names: Sequence[str],
                           allow_missing: bool = False) -> str:
  """Joins the per-image files of a fold's ``names`` into ``<out_dir>/fold-XX-out.txt``.

  Args:
    results_dir: where ``write_image_detections`` wrote.
    out_dir: where the fold's out file goes.
    fold: fold number.
    names: the fold's image names in fold order (``Fddb.names(fold)``).
    allow_missing: write images without a per-image file as having no detections; by default
      they raise FileNotFoundError (an unfinished job must not look like a detector that found
      nothing).
  Returns:
    The out file's path.
  """
  names = list(names)
  missing = pending_names(results_dir, names)
  if missing and not allow_missing:
    first = image_result_path(results_dir, missing[0])
    raise FileNotFoundError(f"fold {fold}: {len(missing)} of {len(names)} image(s) have no "
                            f"per-image detection file, first {first}")
  missing = set(missing)
  detections = {n: read_image_detections(results_dir, n) for n in names if n not in missing}
  return _write_fold_xywh(out_dir, fold, names, detections)


def read_fold_detections(dataset: Fddb, out_dir, fold: int
                         ) -> Dict[str, Tuple[np.ndarray, np.ndarray]]:
  """A fold's out file -> {name: (boxes_xywh, scores)}, checked to list the fold's images in fold
  order, as the official binary requires (else ValueError naming the file)."""
  path = fold_out_file(out_dir, fold)
  detections = fddb_eval.read_detections(path)
  names = dataset.names(fold)
  if list(detections) != names:
    extra = [n for n in detections if n not in set(names)]
    missing = [n for n in names if n not in detections]
    if extra:
      what = f"image {extra[0]!r} is not in fold {fold}"
    elif missing:
      what = f"{len(missing)} image(s) of fold {fold} are missing, first {missing[0]!r}"
    else:
      what = f"images are not in the order of fold {fold}"
    raise ValueError(f"{path}: {what} (the official evaluate reads the fold list, the ellipses "
                     f"and the detections in lockstep)")
  return detections


def evaluate_fold_outputs(dataset: Fddb, out_dir, folds: Optional[Sequence[int]] = None,
                          overlap_threshold: float = 0.5) -> fddb_eval.FddbRoc:
  """FDDB ROC (discrete and continuous) of the ``fold-XX-out.txt`` files of ``folds`` (default:
  every fold present) against the folds' ellipses."""
  folds = dataset.folds() if folds is None else list(folds)
  detections = {}
  for fold in folds:
    detections.update(read_fold_detections(dataset, out_dir, fold))
  return fddb_eval.evaluate_fddb(dataset.all_ellipses(folds), detections, overlap_threshold)


# --- WIDER layout -> FDDB layout --------------------------------------------------------------

def ellipses_from_boxes(boxes_xywh, scale: float = ELLIPSE_SCALE) -> np.ndarray:
  """Face boxes -> FDDB ellipses [K, 5] (ra, rb, angle, cx, cy).

  Rule: the centre is the box centre (x + w/2, y + h/2); the semi-axes are
  ``scale * (h + 1) / 2`` and ``scale * (w + 1) / 2``: FDDB's rectangle x .. x + w fills both
  corner pixels, w + 1 pixels, so half the pixel extent is (w + 1) / 2, and ``scale`` = 1.1
  maximises the ellipse / rectangle IoU (rasterised, every integer box from 1x1 to 80x80 px with
  an aspect ratio within 1:2..2:1 keeps an overlap >= 0.8 with its ellipse under
  ``evaluation.fddb.region_overlaps``). FDDB ellipses are
  upright with the major axis along the face height: angle pi/2 when h >= w; a box wider than
  tall gets angle 0 so that ra >= rb (the major radius comes first) describes the same region.
  """
  boxes = np.asarray(boxes_xywh, np.float64).reshape(-1, 4)
  x, y, w, h = boxes.T
  upright = h >= w
  along_h, along_w = scale * (h + 1) / 2, scale * (w + 1) / 2
  ra = np.where(upright, along_h, along_w)
  rb = np.where(upright, along_w, along_h)
  angle = np.where(upright, np.pi / 2, 0.0)
  return np.stack([ra, rb, angle, x + w / 2, y + h / 2], axis=1)


def _fddb_name(event_index, index):
  # FDDB-like <year>/<month>/<day>/big/img_<n>: one "day" per WIDER event, n unique in the split.
  return f"2002/08/{event_index % 31 + 1:02d}/big/img_{index}"


def _prepare_out_root(out_root):
  """Refuses a non-empty folder this function did not write; clears what an earlier run wrote."""
  os.makedirs(out_root, exist_ok=True)
  entries = os.listdir(out_root)
  ours = any(os.path.isfile(os.path.join(out_root, n)) for n in (META_FILE, _PARTIAL_FILE))
  if entries and not ours:
    raise FileExistsError(f"{out_root} is not empty and holds no {META_FILE}: not an FDDB copy "
                          f"written by write_fddb_layout_from_wider, refusing to write into it")
  for name in _OWNED:
    path = os.path.join(out_root, name)
    if os.path.isdir(path) and not os.path.islink(path):
      shutil.rmtree(path)
    elif os.path.lexists(path):
      os.remove(path)
  atomic.write_text(os.path.join(out_root, _PARTIAL_FILE),
                    "tinyfaces_tf FDDB copy being written\n")


def _place_image(src, dst, link):
  """Hard-links ``src`` to ``dst`` when asked and possible (same file system), else copies."""
  os.makedirs(os.path.dirname(dst), exist_ok=True)
  if link:
    try:
      os.link(src, dst)
      return "hardlink"
    except OSError:
      pass
  shutil.copyfile(src, dst)
  return "copy"


def write_fddb_layout_from_wider(wider_root, out_root, split: str = "val", folds: int = NUM_FOLDS,
                                 link: bool = True, scale: float = ELLIPSE_SCALE) -> dict:
  """Writes an FDDB-layout copy of a WIDER-layout split (e.g. the demo's val) under ``out_root``.

  * images: hard-linked (``link``, falling back to a copy across file systems) or copied to
    ``originalPics/2002/08/<day>/big/img_<n>.jpg``, one day per WIDER event and n the image's
    index in the split's annotation file;
  * folds: ``min(folds, number of images)`` folds, image k of the annotation file going to fold
    k mod N + 1 (so every fold mixes events); ``FDDB-fold-XX.txt`` and
    ``FDDB-fold-XX-ellipseList.txt`` in annotation order;
  * faces: every valid face (invalid flag 0, non-empty box) becomes one ellipse by
    ``ellipses_from_boxes`` (upright, major axis along the height); invalid faces are dropped,
    so a detection on one counts as a false positive, FDDB having no "don't care" regions.
    Images left without a valid face keep a count of 0 (they still give false positives).

  ``fddb_info.json`` (written last, its presence means complete) records the settings and the
  FDDB -> WIDER name mapping. A non-empty ``out_root`` without it (or without the marker of an
  interrupted run) is refused with FileExistsError; an earlier copy is replaced.

  Returns:
    The summary written to ``fddb_info.json`` plus ``out_root``.
  """
  wider = wider_face.WiderFace(wider_root)
  if split not in ("train", "val"):
    raise ValueError(f"split {split!r} has no annotations; expected 'train' or 'val'")
  if int(folds) != folds or folds < 1:
    raise ValueError(f"folds must be an integer >= 1, got {folds!r}")
  annotations = wider.annotations(split)
  if not annotations:
    raise ValueError(f"WIDER {split} of {wider.root} lists no images")
  wider.require_images(split)  # before touching out_root
  out_root = os.fspath(out_root)
  _prepare_out_root(out_root)
  num_folds = min(int(folds), len(annotations))
  events = list(dict.fromkeys(a.event for a in annotations))
  fold_names = {f: [] for f in range(1, num_folds + 1)}
  ellipses, mapping, methods = {}, {}, set()
  num_faces = num_invalid = 0
  for k, annotation in enumerate(annotations):
    name = _fddb_name(events.index(annotation.event), k)
    methods.add(_place_image(wider.image_path(split, annotation.name),
                             os.path.join(out_root, IMAGES_DIR, *name.split("/")) + IMAGE_EXT,
                             link))
    valid = annotation.valid
    ellipses[name] = ellipses_from_boxes(annotation.boxes_xywh[valid], scale)
    num_faces += int(valid.sum())
    num_invalid += int(len(valid) - valid.sum())
    fold_names[k % num_folds + 1].append(name)
    mapping[name] = annotation.name
  for fold, names in fold_names.items():
    write_fold_file(fold_file(out_root, fold), names)
    atomic.write_text(ellipse_file(out_root, fold), format_ellipse_list(names, ellipses))
  summary = {"source": "WIDER layout", "split": split, "folds": num_folds,
             "images": len(annotations), "faces": num_faces, "dropped_invalid_faces": num_invalid,
             "ellipse_scale": scale, "images_placed_by": sorted(methods),
             "fold_images": {str(f): len(n) for f, n in fold_names.items()},
             "names": mapping}
  # Without folders, so the file is identical for a dataset wherever it is written.
  atomic.write_json(os.path.join(out_root, META_FILE), summary)
  os.remove(os.path.join(out_root, _PARTIAL_FILE))
  logging.info("FDDB copy of WIDER %s: %d images, %d faces in %d folds at %s", split,
               len(annotations), num_faces, num_folds, out_root)
  return dict(summary, out_root=os.path.abspath(out_root))

"""FDDB evaluation (Jain & Learned-Miller's ``evaluate``), discrete and continuous scores, on
rasterised regions.

Ground truth ``FDDB-fold-XX-ellipseList.txt``: image name, face count, then one
``major_axis_radius minor_axis_radius angle center_x center_y 1`` line per face. Detections: image
name, count, ``x y w h score`` lines (the reader and writer of the distributed layout are
``data/fddb.py``).

Angle convention: radians, the major axis points along (cos(angle), sin(angle)) in image
coordinates (x to the right, y down), so upright faces have angle ~ pi/2. This is what the official
code draws: its reader turns the angle into t = (pi - angle) * 180 / pi degrees and
``EllipseR::display`` calls ``cvEllipse`` with 180 - t = the angle in degrees, which OpenCV applies
as a rotation of the first axis from +x towards +y.

As the official evaluator does, every ellipse and detection rectangle is rasterised to pixels and
their overlap is |A n D| / |A u D|; at every score threshold the detections above it are matched
to the ellipses one-to-one by the Hungarian algorithm maximising the summed overlap, a matched
pair with overlap > 0.5 is a true positive, every other detection a false positive. The ROC is
the true-positive rate against the number of false positives over all thresholds.

Two scores, as the official ``Results`` class keeps them (``TPDisc`` and ``TPCont``):
  discrete: a matched pair counts 1 when its overlap exceeds 0.5 (``DiscROC.txt``);
  continuous: every matched pair (overlap > 0) counts its overlap ratio (``ContROC.txt``).
Both curves share the false-positive axis: detections above the threshold minus the discrete true
positives (the official FP count). Hence, per threshold, continuous TP <= the number of matched
pairs, and continuous TP >= discrete TP / 2.

Known differences from the official binary (documented rather than emulated): regions are not
clipped to the image (the official masks are image-sized, so an ellipse leaving the image loses
area there), and coordinates are used as floats (the official truncates the radii to int and
rounds the ellipse centre and the rectangle corners, which matters for faces a few pixels high). The
ROC is computed directly at every distinct score over all images; the official binary reaches
the same points by merging per-image result lists.
"""
import dataclasses
import os
from typing import Callable, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import scipy.optimize
from absl import logging

from tinyfaces_tf import atomic
from tinyfaces_tf.evaluation import wider_protocol

SCORES = ("discrete", "continuous")
DISC_ROC_FILE = "DiscROC.txt"  # names the official ``evaluate -r PREFIX`` appends to PREFIX
CONT_ROC_FILE = "ContROC.txt"


@dataclasses.dataclass
class FddbRoc:
  """Discrete and continuous ROC: one point per distinct detection score (descending thresholds).

  ``true_positives`` are the discrete counts; ``continuous_true_positives`` the summed overlaps of
  the matched pairs (None for an ROC built without them).
  """
  thresholds: np.ndarray
  true_positives: np.ndarray
  false_positives: np.ndarray
  num_faces: int
  continuous_true_positives: Optional[np.ndarray] = None

  @property
  def true_positive_rate(self):
    return self.true_positives / max(self.num_faces, 1)

  @property
  def continuous_true_positive_rate(self):
    if self.continuous_true_positives is None:
      raise ValueError("this FddbRoc has no continuous score")
    return self.continuous_true_positives / max(self.num_faces, 1)

  def rate(self, score: str = "discrete") -> np.ndarray:
    """The true-positive rate of ``score`` ("discrete" or "continuous")."""
    _check_score(score)
    return self.true_positive_rate if score == "discrete" else self.continuous_true_positive_rate

  def detection_rate_at(self, fp=500, score: str = "discrete"):
    """Highest true-positive rate among the points with at most ``fp`` false positives."""
    return detection_rate_at(self, fp, score)


def _check_score(score):
  if score not in SCORES:
    raise ValueError(f"unknown FDDB score {score!r}; expected one of {SCORES}")


def detection_rate_at(roc, fp=500, score: str = "discrete") -> float:
  """TPR at ``fp`` false positives: the best point with false_positives <= fp (0 when none)."""
  ok = roc.false_positives <= fp
  return float(np.max(roc.rate(score)[ok])) if np.any(ok) else 0.0


def _read_blocks(paths, num_fields, what, check_name=None):
  """Shared reader of FDDB's name / count / rows blocks -> {name: float64 [K, num_fields]}.

  ``check_name(name)`` may return an error text for a name line; it is raised as FILE:LINE.
  """
  if isinstance(paths, (str, os.PathLike)):
    paths = [paths]
  out = {}
  for path in paths:
    path = os.fspath(path)
    if not os.path.isfile(path):
      raise FileNotFoundError(f"FDDB {what} file not found: {path}")
    with open(path) as f:
      lines = [line.strip() for line in f.read().splitlines()]
    k = 0
    while k < len(lines):
      if not lines[k]:
        k += 1
        continue
      name = lines[k]
      problem = check_name(name) if check_name is not None else None
      if problem:
        raise ValueError(f"{path}:{k + 1}: {problem}")
      if k + 1 >= len(lines):
        raise ValueError(f"{path}:{k + 1}: image {name!r} has no count line")
      try:
        count = int(lines[k + 1])
        if count < 0:
          raise ValueError
      except ValueError:
        raise ValueError(f"{path}:{k + 2}: bad count {lines[k + 1]!r}") from None
      rows = np.zeros((count, num_fields))
      for r in range(count):
        line_no = k + 3 + r
        if line_no > len(lines):
          raise ValueError(f"{path}:{k + 2}: count says {count} but the file ends")
        fields = lines[line_no - 1].split()
        try:
          if len(fields) < num_fields:
            raise ValueError
          rows[r] = [float(v) for v in fields[:num_fields]]
        except ValueError:
          raise ValueError(f"{path}:{line_no}: expected {num_fields} numbers, got "
                           f"{lines[line_no - 1]!r}") from None
      if name in out:
        raise ValueError(f"{path}:{k + 1}: image {name!r} listed twice")
      out[name] = rows
      k += 2 + count
  return out


def read_ellipses(paths, check_name: Optional[Callable[[str], Optional[str]]] = None):
  """FDDB ellipse ground truth (one or more fold files) -> {name: [K, 5] (ra, rb, angle, cx, cy)}.

  Args:
    paths: one path or several; the dict keeps the file order.
    check_name: optional ``name -> error text or None`` applied to every image-name line (an
      error is raised as ValueError "FILE:LINE: text").
  """
  return _read_blocks(paths, 5, "ellipse list", check_name)


def read_detections(paths):
  """FDDB rectangle detections -> {name: (boxes_xywh [N, 4], scores [N])}."""
  return {name: (rows[:, :4], rows[:, 4])
          for name, rows in _read_blocks(paths, 5, "detection").items()}


def _ellipse_extent(e):
  ra, rb, angle = e[0], e[1], e[2]
  c, s = np.cos(angle), np.sin(angle)
  hw = np.sqrt((ra * c) ** 2 + (rb * s) ** 2)
  hh = np.sqrt((ra * s) ** 2 + (rb * c) ** 2)
  return e[3] - hw, e[4] - hh, e[3] + hw, e[4] + hh


def _grid(x1, y1, x2, y2):
  xs = np.arange(np.ceil(x1), np.floor(x2) + 1)
  ys = np.arange(np.ceil(y1), np.floor(y2) + 1)
  return np.meshgrid(xs, ys)


def _in_ellipse(e, x, y):
  ra, rb, angle, cx, cy = e
  c, s = np.cos(angle), np.sin(angle)
  u = (x - cx) * c + (y - cy) * s
  v = -(x - cx) * s + (y - cy) * c
  return (u / max(ra, 1e-9)) ** 2 + (v / max(rb, 1e-9)) ** 2 <= 1.0


def _in_rect(r, x, y):
  # A filled rectangle from (x, y) to (x + w, y + h), both corners included.
  return (x >= r[0]) & (x <= r[0] + r[2]) & (y >= r[1]) & (y <= r[1] + r[3])


def region_overlaps(ellipses, boxes_xywh):
  """[K, N] |ellipse n rectangle| / |ellipse u rectangle| in integer pixels."""
  ellipses = np.asarray(ellipses, np.float64).reshape(-1, 5)
  boxes = np.asarray(boxes_xywh, np.float64).reshape(-1, 4)
  out = np.zeros((len(ellipses), len(boxes)))
  if not len(ellipses) or not len(boxes):
    return out
  e_area = np.array([np.sum(_in_ellipse(e, *_grid(*_ellipse_extent(e)))) for e in ellipses])
  r_area = np.array([len(_grid(b[0], b[1], b[0] + b[2], b[1] + b[3])[0].ravel())
                     for b in boxes], np.float64)
  for i, e in enumerate(ellipses):
    ex1, ey1, ex2, ey2 = _ellipse_extent(e)
    for j, b in enumerate(boxes):
      x1, y1 = max(ex1, b[0]), max(ey1, b[1])
      x2, y2 = min(ex2, b[0] + b[2]), min(ey2, b[1] + b[3])
      if x2 < x1 or y2 < y1:
        continue
      x, y = _grid(x1, y1, x2, y2)
      inter = np.sum(_in_ellipse(e, x, y) & _in_rect(b, x, y))
      union = e_area[i] + r_area[j] - inter
      out[i, j] = inter / union if union > 0 else 0.0
  return out


def _match(overlaps, num_dets, threshold):
  """(discrete TP, continuous TP, matched pairs) for the first ``num_dets`` (score-sorted)
  detections: one-to-one matching maximising the summed overlap, as the official Hungarian."""
  sub = overlaps[:, :num_dets]
  if sub.size == 0 or not np.any(sub > 0):
    return 0, 0.0, 0
  rows, cols = scipy.optimize.linear_sum_assignment(sub, maximize=True)
  matched = sub[rows, cols]
  # The official keeps only pairs with overlap > 0 (zero-overlap assignments are no match).
  matched = matched[matched > 0]
  return int(np.sum(matched > threshold)), float(np.sum(matched)), int(len(matched))


def _true_positives(overlaps, num_dets, threshold):
  """Matched pairs above ``threshold`` for the first ``num_dets`` (score-sorted) detections."""
  return _match(overlaps, num_dets, threshold)[0]


def evaluate_fddb(ellipses, detections, overlap_threshold=0.5) -> FddbRoc:
  """FDDB ROC, discrete and continuous scores.

  Args:
    ellipses: {name: [K, 5]} from ``read_ellipses``; every listed face counts.
    detections: {name: (boxes_xywh [N, 4], scores [N])}; images missing here have no detections,
      detections of images not in ``ellipses`` are ignored.
    overlap_threshold: a matched pair is a true positive when its overlap exceeds this.
  Returns:
    An FddbRoc with both scores (``roc.rate("continuous")`` is the ContROC curve).
  """
  extra = set(detections) - set(ellipses)
  if extra:
    logging.warning("FDDB evaluation: %d detected images are not in the ground truth; ignored",
                    len(extra))
  num_faces = int(sum(len(e) for e in ellipses.values()))
  event_scores, event_tp, event_cont = [], [], []
  all_scores = []
  for name, annots in ellipses.items():
    if name not in detections:
      continue
    boxes, scores = wider_protocol.checked_predictions(name, *detections[name])
    if not len(scores):
      continue
    order = np.argsort(-scores, kind="stable")
    scores, boxes = scores[order], boxes[order]
    all_scores.append(scores)
    overlaps = region_overlaps(annots, boxes)
    # The matching is redone for every threshold, i.e. for every distinct-score prefix.
    ends = np.flatnonzero(np.r_[scores[1:] != scores[:-1], True]) + 1
    previous, previous_cont = 0, 0.0
    for n in ends:
      tp, cont, _ = _match(overlaps, n, overlap_threshold)
      event_scores.append(scores[n - 1])
      event_tp.append(tp - previous)
      event_cont.append(cont - previous_cont)
      previous, previous_cont = tp, cont
  if not all_scores:
    empty = np.zeros(0)
    return FddbRoc(empty, empty, empty, num_faces, empty)
  all_scores = np.concatenate(all_scores)
  thresholds = np.unique(all_scores)[::-1]
  event_scores, event_tp = np.asarray(event_scores), np.asarray(event_tp, np.float64)
  event_cont = np.asarray(event_cont, np.float64)
  # Sum of per-image TP changes and detection counts at scores >= each threshold.
  order = np.argsort(-event_scores, kind="stable")
  cum_tp = np.cumsum(event_tp[order])
  cum_cont = np.cumsum(event_cont[order])
  upto = np.searchsorted(-event_scores[order], -thresholds, side="right")
  tp = cum_tp[upto - 1]
  # Cumulative sums of float deltas drift by ~1e-16; a sum of overlaps is never negative.
  cont = np.maximum(cum_cont[upto - 1], 0.0)
  num_dets = np.searchsorted(np.sort(-all_scores), -thresholds, side="right").astype(np.float64)
  return FddbRoc(thresholds=thresholds, true_positives=tp, false_positives=num_dets - tp,
                 num_faces=num_faces, continuous_true_positives=cont)


def evaluate_fddb_files(ellipse_paths, detection_paths, overlap_threshold=0.5) -> FddbRoc:
  """``evaluate_fddb`` on FDDB fold files and detection files."""
  return evaluate_fddb(read_ellipses(ellipse_paths), read_detections(detection_paths),
                       overlap_threshold)


def _roc_rows(roc):
  """Indices of the ROC points in the official file order: ascending thresholds."""
  return np.argsort(np.asarray(roc.thresholds), kind="stable")


def format_roc(roc: FddbRoc, score: str = "discrete") -> str:
  """The text of the official ``DiscROC.txt`` (score "discrete") or ``ContROC.txt``.

  One row per threshold in the official order (ascending thresholds, so the false positives
  descend): ``true_positive_rate false_positives threshold`` for the discrete score and
  ``true_positive_rate false_positives`` for the continuous one; "0 0" rows when there are no faces,
  as the official ``Results::saveROC`` writes.
  """
  _check_score(score)
  rate = roc.rate(score)
  lines = []
  for i in _roc_rows(roc):
    if roc.num_faces:
      row = [f"{rate[i]:.10g}", f"{roc.false_positives[i]:.10g}"]
    else:
      row = ["0", "0"]
    if score == "discrete":
      row.append(f"{roc.thresholds[i]:.10g}")
    lines.append(" ".join(row))
  return "".join(line + "\n" for line in lines)


def write_roc_files(roc: FddbRoc, out_dir, prefix: str = "") -> Tuple[str, str]:
  """Writes ``<out_dir>/<prefix>DiscROC.txt`` and ``<prefix>ContROC.txt`` (see ``format_roc``)
  atomically, as ``evaluate -r <out_dir>/<prefix>`` does; returns (disc_path, cont_path)."""
  out_dir = os.fspath(out_dir)
  disc = atomic.write_text(os.path.join(out_dir, prefix + DISC_ROC_FILE), format_roc(roc))
  cont = atomic.write_text(os.path.join(out_dir, prefix + CONT_ROC_FILE),
                           format_roc(roc, "continuous"))
  return disc, cont


def read_roc_file(path) -> Tuple[np.ndarray, np.ndarray]:
  """A DiscROC.txt / ContROC.txt (ours or the official binary's) -> (tpr [P], false_positives [P])
  in file order; a malformed row raises ValueError "FILE:LINE"."""
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"FDDB ROC file not found: {path}")
  tpr, fp = [], []
  with open(path) as f:
    for line_no, line in enumerate(f.read().splitlines(), 1):
      fields = line.split()
      if not fields:
        continue
      try:
        if len(fields) not in (2, 3):
          raise ValueError
        values = [float(v) for v in fields]
      except ValueError:
        raise ValueError(f"{path}:{line_no}: expected 'true_positive_rate false_positives "
                         f"[threshold]', got {line!r}") from None
      tpr.append(values[0])
      fp.append(values[1])
  return np.asarray(tpr, np.float64), np.asarray(fp, np.float64)


def roc_label(name: str, roc: FddbRoc, score: str = "discrete", fp: int = 500) -> str:
  """Legend entry "name discrete (TPR 0.xxx at 500 FP)"."""
  return f"{name} {score} (TPR {detection_rate_at(roc, fp, score):.3f} at {fp} FP)"


def plot_fddb_roc(rocs: Union[FddbRoc, Mapping[str, FddbRoc]], out_path, max_fp: int = 2000,
                  fp_at: int = 500, title: Optional[str] = None,
                  scores: Sequence[str] = SCORES) -> str:
  """Writes a PNG of FDDB ROC curves (TPR against false positives, x from 0 to ``max_fp``).

  Each detector gets one colour, its discrete curve solid and its continuous one dashed; the
  legend gives the TPR at ``fp_at`` false positives. Uses an Agg canvas without pyplot, so no
  window opens and matplotlib's global state is untouched.

  Args:
    rocs: one FddbRoc or {label: FddbRoc}.
    out_path: the PNG to write (folders are created).
    max_fp: the x-axis limit.
    fp_at: the false-positive count quoted in the legend.
    title: optional axes title.
    scores: which curves to draw.
  Returns:
    ``out_path``.
  """
  # Imported here: evaluation without figures needs no matplotlib.
  from matplotlib.backends.backend_agg import FigureCanvasAgg  # pylint: disable=g-import-not-at-top
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top
  if isinstance(rocs, FddbRoc):
    rocs = {"detector": rocs}
  for score in scores:
    _check_score(score)
  fig = Figure(figsize=(6.4, 4.8), dpi=100)
  FigureCanvasAgg(fig)
  ax = fig.add_subplot(1, 1, 1)
  styles = {"discrete": "-", "continuous": "--"}
  for k, (name, roc) in enumerate(rocs.items()):
    color = f"C{k % 10}"
    # Descending thresholds: the false positives grow along the curve.
    order = np.argsort(-np.asarray(roc.thresholds), kind="stable")
    for score in scores:
      ax.plot(roc.false_positives[order], roc.rate(score)[order], styles[score], color=color,
              label=roc_label(name, roc, score, fp_at))
  ax.axvline(fp_at, color="0.7", linewidth=0.8, zorder=0)
  ax.set_xlim(0, max_fp)
  ax.set_ylim(0, 1)
  ax.set_xlabel("False positives")
  ax.set_ylabel("True positive rate")
  ax.grid(True, alpha=0.3)
  if title:
    ax.set_title(title)
  ax.legend(loc="lower right", fontsize=8)
  out_path = os.fspath(out_path)
  os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
  # Saved beside and renamed, so a killed run never leaves half a PNG.
  tmp = f"{out_path}.tmp"
  fig.savefig(tmp, format="png")
  os.replace(tmp, out_path)
  return out_path

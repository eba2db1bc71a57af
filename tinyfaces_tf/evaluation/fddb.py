"""FDDB discrete-score evaluation (Jain & Learned-Miller's ``evaluate``), on rasterised regions.

Ground truth ``FDDB-fold-XX-ellipseList.txt``: image name, face count, then one
``major_axis_radius minor_axis_radius angle center_x center_y 1`` line per face (angle in radians,
of the major axis against the x axis). Detections: image name, count, ``x y w h score`` lines.

As the official evaluator does, every ellipse and detection rectangle is rasterised to pixels and
their overlap is |A n D| / |A u D|; at every score threshold the detections above it are matched
to the ellipses one-to-one by the Hungarian algorithm maximising the summed overlap, a matched
pair with overlap > 0.5 is a true positive, every other detection a false positive. The ROC is
the true-positive rate against the number of false positives over all thresholds.
"""
import dataclasses
import os

import numpy as np
import scipy.optimize
from absl import logging

from tinyfaces_tf.evaluation import wider_protocol


@dataclasses.dataclass
class FddbRoc:
  """Discrete ROC: one point per distinct detection score (descending thresholds)."""
  thresholds: np.ndarray
  true_positives: np.ndarray
  false_positives: np.ndarray
  num_faces: int

  @property
  def true_positive_rate(self):
    return self.true_positives / max(self.num_faces, 1)

  def detection_rate_at(self, fp=500):
    """Highest true-positive rate among the points with at most ``fp`` false positives."""
    return detection_rate_at(self, fp)


def detection_rate_at(roc, fp=500):
  """TPR at ``fp`` false positives: the best point with false_positives <= fp (0 when none)."""
  ok = roc.false_positives <= fp
  return float(np.max(roc.true_positive_rate[ok])) if np.any(ok) else 0.0


def _read_blocks(paths, num_fields, what):
  """Shared reader of FDDB's name / count / rows blocks -> {name: float64 [K, num_fields]}."""
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


def read_ellipses(paths):
  """FDDB ellipse ground truth (one or more fold files) -> {name: [K, 5] (ra, rb, angle, cx, cy)}."""
  return _read_blocks(paths, 5, "ellipse list")


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


def _true_positives(overlaps, num_dets, threshold):
  """Matched pairs above ``threshold`` for the first ``num_dets`` (score-sorted) detections."""
  sub = overlaps[:, :num_dets]
  if sub.size == 0 or not np.any(sub > 0):
    return 0
  rows, cols = scipy.optimize.linear_sum_assignment(sub, maximize=True)
  return int(np.sum(sub[rows, cols] > threshold))


def evaluate_fddb(ellipses, detections, overlap_threshold=0.5):
  """Discrete FDDB ROC.

  Args:
    ellipses: {name: [K, 5]} from ``read_ellipses``; every listed face counts.
    detections: {name: (boxes_xywh [N, 4], scores [N])}; images missing here have no detections,
      detections of images not in ``ellipses`` are ignored.
    overlap_threshold: a matched pair is a true positive when its overlap exceeds this.
  Returns:
    An FddbRoc.
  """
  extra = set(detections) - set(ellipses)
  if extra:
    logging.warning("FDDB evaluation: %d detected images are not in the ground truth; ignored",
                    len(extra))
  num_faces = int(sum(len(e) for e in ellipses.values()))
  event_scores, event_tp = [], []
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
    previous = 0
    for n in ends:
      tp = _true_positives(overlaps, n, overlap_threshold)
      event_scores.append(scores[n - 1])
      event_tp.append(tp - previous)
      previous = tp
  if not all_scores:
    empty = np.zeros(0)
    return FddbRoc(empty, empty, empty, num_faces)
  all_scores = np.concatenate(all_scores)
  thresholds = np.unique(all_scores)[::-1]
  event_scores, event_tp = np.asarray(event_scores), np.asarray(event_tp, np.float64)
  # Sum of per-image TP changes and detection counts at scores >= each threshold.
  order = np.argsort(-event_scores, kind="stable")
  cum_tp = np.cumsum(event_tp[order])
  upto = np.searchsorted(-event_scores[order], -thresholds, side="right")
  tp = cum_tp[upto - 1]
  num_dets = np.searchsorted(np.sort(-all_scores), -thresholds, side="right").astype(np.float64)
  return FddbRoc(thresholds=thresholds, true_positives=tp, false_positives=num_dets - tp,
                 num_faces=num_faces)


def evaluate_fddb_files(ellipse_paths, detection_paths, overlap_threshold=0.5):
  """``evaluate_fddb`` on FDDB fold files and detection files."""
  return evaluate_fddb(read_ellipses(ellipse_paths), read_detections(detection_paths),
                       overlap_threshold)

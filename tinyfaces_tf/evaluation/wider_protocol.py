"""The official WIDER FACE evaluation protocol (eval_tools ``wider_eval.m``), reproduced exactly.

Per setting (easy, medium, hard): faces outside the setting's gt_list are "don't care"; a
prediction whose best-IoU face is one of them is neither a true nor a false positive. Scores are
min-max normalised over all predictions of all images, predictions are taken per image in
descending score order, IoU uses the +1 pixel convention with x2 = x + w, and precision/recall are
read at 1000 score thresholds and turned into a VOC-style AP. Where the MATLAB code and its python
port (``evaluation.py``) differ, the MATLAB code is followed (see BUILD_NOTES.md).
"""
import dataclasses

import numpy as np
from absl import logging

from tinyfaces_tf import boxes as box_ops
from tinyfaces_tf.data import result_files
from tinyfaces_tf.data import wider_ground_truth
from tinyfaces_tf.data.wider_ground_truth import SETTINGS

# norm_score.m starts its running max/min at realmin('single') / realmax('single').
_MATLAB_MAX_INIT = float(np.finfo(np.float32).tiny)
_MATLAB_MIN_INIT = float(np.finfo(np.float32).max)


@dataclasses.dataclass
class WiderEvalResult:
  """AP and PR curves per setting.

  Attributes:
    ap: setting -> VOC-style AP.
    precision, recall: setting -> [num_thresholds] curves, threshold by threshold (precision is
      NaN where no prediction passes the threshold, as 0/0 in the official code).
    true_positives, proposals: setting -> [num_thresholds] summed counts behind the curves
      (recalled faces; predictions that are not "don't care").
    num_faces: setting -> number of faces that count (``count_face``).
    thresholds: [num_thresholds] normalised-score thresholds, 1 - t / num_thresholds.
    num_images: images in the ground truth.
    num_missing: of those, images with no predictions entry (scored as no predictions).
    num_extra: prediction entries for images not in the ground truth (ignored).
    score_range: (min, max) raw scores used by the global normalisation.
  """
  ap: dict
  precision: dict
  recall: dict
  true_positives: dict
  proposals: dict
  num_faces: dict
  thresholds: np.ndarray
  num_images: int
  num_missing: int
  num_extra: int
  score_range: tuple


def overlaps_plus1(boxes, query_boxes):
  """IoU [N, K] of xyxy boxes with the +1 pixel convention of eval_tools' ``boxoverlap``.

  Areas are (x2 - x1 + 1) * (y2 - y1 + 1); the intersection is (min x2 - max x1 + 1) wide; pairs
  whose intersection width or height is <= 0 get 0.
  """
  a = np.asarray(boxes, np.float64).reshape(-1, 4)[:, None, :]
  b = np.asarray(query_boxes, np.float64).reshape(-1, 4)[None, :, :]
  iw = np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]) + 1
  ih = np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]) + 1
  inter = iw * ih
  area_a = (a[..., 2] - a[..., 0] + 1) * (a[..., 3] - a[..., 1] + 1)
  area_b = (b[..., 2] - b[..., 0] + 1) * (b[..., 3] - b[..., 1] + 1)
  union = area_a + area_b - inter
  valid = (iw > 0) & (ih > 0) & (union > 0)
  return np.where(valid, inter / np.where(valid, union, 1.0), 0.0)


def score_bounds(score_arrays):
  """Global (min, max) as norm_score.m computes them (running max/min from realmin/realmax)."""
  max_score, min_score = _MATLAB_MAX_INIT, _MATLAB_MIN_INIT
  for scores in score_arrays:
    if len(scores):
      max_score = max(max_score, float(np.max(scores)))
      min_score = min(min_score, float(np.min(scores)))
  return min_score, max_score


def normalize_scores(scores, min_score, max_score):
  """(s - min) / (max - min) in single precision, as norm_score.m computes it.

  norm_score.m's running max/min start as MATLAB singles, and single op double is single in
  MATLAB, so the normalised scores are float32 values (compared with double thresholds).
  All ones when every score is equal (the official code would divide by 0).
  """
  scores = np.asarray(scores, np.float32)
  lo, hi = np.float32(min_score), np.float32(max_score)
  if hi > lo:
    return ((scores - lo) / (hi - lo)).astype(np.float64)
  return np.ones(scores.shape, np.float64)


def image_eval(pred_xyxy, gt_xyxy, keep, iou_threshold=0.5):
  """One image, predictions already in descending score order (``image_evaluation`` in wider_eval.m).

  Args:
    pred_xyxy: [N, 4] predictions.
    gt_xyxy: [K, 4] ground truth (K >= 1).
    keep: [K] bool, True for faces that count in this setting (the official ``ignore == 1``).
  Returns:
    pred_recall [N] (faces recalled by predictions 0..h) and proposal flags [N] (1, or -1 for a
    prediction matched to a "don't care" face).
  """
  return _match(overlaps_plus1(pred_xyxy, gt_xyxy), np.asarray(keep, bool), iou_threshold)


def _match(overlaps, keep, iou_threshold):
  # The official loop is greedy per prediction but its state only records which faces were hit:
  # each prediction takes its max-IoU face (first one on ties, like MATLAB's max), faces that
  # count become recalled at their first hit, so a cumulative count of first hits reproduces it.
  n = overlaps.shape[0]
  best = np.argmax(overlaps, axis=1)
  hit = overlaps[np.arange(n), best] >= iou_threshold
  proposal = np.where(hit & ~keep[best], -1, 1)
  counted = np.flatnonzero(hit & keep[best])
  first_hits = np.zeros(n, np.int64)
  _, first = np.unique(best[counted], return_index=True)
  first_hits[counted[first]] = 1
  return np.cumsum(first_hits), proposal


def img_pr_info(scores, proposal, pred_recall, thresholds):
  """[T, 2] (proposals, recalled faces) at each threshold, for score-sorted predictions.

  At threshold t the official code takes the last prediction with score >= t: the proposals
  among predictions up to it and its pred_recall.
  """
  scores = np.asarray(scores, np.float64)
  # Scores are sorted descending, so -scores ascending: count of scores >= t.
  counts = np.searchsorted(-scores, -np.asarray(thresholds), side="right")
  cum_proposals = np.concatenate([[0], np.cumsum(np.asarray(proposal) == 1)])
  cum_recall = np.concatenate([[0], np.asarray(pred_recall)])
  return np.stack([cum_proposals[counts], cum_recall[counts]], axis=1).astype(np.float64)


def voc_ap(recall, precision):
  """VOC AP as eval_tools' ``VOCap``: sentinels, precision envelope, sum over recall changes.

  NaN precisions (0/0) are skipped by the envelope, as MATLAB's max does.
  """
  mrec = np.concatenate([[0.0], np.asarray(recall, np.float64), [1.0]])
  mpre = np.concatenate([[0.0], np.asarray(precision, np.float64), [0.0]])
  # Backward running max, NaN-skipping (np.fmax keeps the non-NaN operand).
  mpre = np.fmax.accumulate(mpre[::-1])[::-1]
  i = np.flatnonzero(mrec[1:] != mrec[:-1])
  return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


def checked_predictions(name, boxes, scores):
  """One image's (boxes [N,4], scores [N]) as float64, or a ValueError naming the image."""
  scores = np.asarray(scores, np.float64).reshape(-1)
  boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
  if len(boxes) != len(scores):
    raise ValueError(f"predictions for {name}: {len(boxes)} boxes but {len(scores)} scores")
  if not (np.all(np.isfinite(scores)) and np.all(np.isfinite(boxes))):
    raise ValueError(f"predictions for {name}: non-finite box or score")
  return boxes, scores


def _image_key(name):
  name = str(name)
  return name[:-len(".jpg")] if name.endswith(".jpg") else name


def evaluate(predictions, gt, iou_threshold=0.5, num_thresholds=1000):
  """Scores predictions with the official WIDER FACE protocol.

  Args:
    predictions: {"event/stem": (boxes_xywh [N, 4], scores [N])}, e.g. from
      ``result_files.read_result_dir``. Images of ``gt`` without an entry count as having no
      predictions; entries for other images are ignored.
    gt: an ``wider_ground_truth.EvalGroundTruth``.
    iou_threshold: IoU (+1 convention) for a match.
    num_thresholds: score thresholds 1 - t / num_thresholds, t = 1..num_thresholds.
  Returns:
    A WiderEvalResult.
  """
  absent = [s for s in SETTINGS if s not in gt.gt_lists]
  if absent:
    raise ValueError(f"ground truth has no gt_list for {absent}")
  preds = {_image_key(k): v for k, v in predictions.items()}
  names = gt.image_names()
  missing, per_image = [], []
  for name in names:
    if name not in preds:
      missing.append(name)
      per_image.append(None)
      continue
    per_image.append(checked_predictions(name, *preds[name]))
  num_extra = len(set(preds) - set(names))
  if names and len(missing) == len(names):
    # Scoring nothing would report AP 0 for a wrong path or an empty folder: say so instead.
    raise ValueError(f"no predictions for any of the {len(names)} ground-truth images (e.g. "
                     f"{names[0]}); {len(preds)} entries given: an empty or wrong results "
                     f"directory?")
  if missing:
    logging.warning("WIDER evaluation: %d of %d images have no predictions (e.g. %s); they count "
                    "as images without detections", len(missing), len(names), missing[0])
  if num_extra:
    logging.warning("WIDER evaluation: %d prediction entries are not in the ground truth and are "
                    "ignored", num_extra)

  # Global normalisation over every image of the ground truth (norm_score.m).
  min_score, max_score = score_bounds(p[1] for p in per_image if p is not None)
  thresholds = 1.0 - np.arange(1, num_thresholds + 1, dtype=np.float64) / num_thresholds
  pr_curves = {s: np.zeros((num_thresholds, 2)) for s in SETTINGS}
  count_face = {s: 0 for s in SETTINGS}
  k = 0
  for i in range(len(gt.event_list)):
    for j in range(len(gt.file_list[i])):
      entry = per_image[k]
      k += 1
      gt_boxes = gt.face_bbx_list[i][j]
      for s in SETTINGS:
        count_face[s] += len(gt.gt_lists[s][i][j])
      if len(gt_boxes) == 0 or entry is None or len(entry[1]) == 0:
        continue  # as wider_eval.m: such images add faces to count_face but nothing else
      boxes, scores = entry
      # read_pred.m sorts the raw scores (stable, like MATLAB's sort 'descend'), then
      # norm_score.m normalises them.
      order = np.argsort(-scores, kind="stable")
      scores = normalize_scores(scores[order], min_score, max_score)
      overlaps = overlaps_plus1(box_ops.xywh_to_xyxy(boxes[order]), box_ops.xywh_to_xyxy(gt_boxes))
      for s in SETTINGS:
        keep = np.zeros(len(gt_boxes), bool)
        keep[gt.gt_lists[s][i][j] - 1] = True
        pred_recall, proposal = _match(overlaps, keep, iou_threshold)
        pr_curves[s] += img_pr_info(scores, proposal, pred_recall, thresholds)

  ap, precision, recall, tps, props = {}, {}, {}, {}, {}
  for s in SETTINGS:
    props[s], tps[s] = pr_curves[s][:, 0], pr_curves[s][:, 1]
    with np.errstate(invalid="ignore", divide="ignore"):
      precision[s] = tps[s] / props[s]
      recall[s] = tps[s] / count_face[s] if count_face[s] else np.full(num_thresholds, np.nan)
    if count_face[s]:
      ap[s] = voc_ap(recall[s], precision[s])
    else:
      logging.warning("WIDER evaluation: setting %s has no faces; its AP is NaN", s)
      ap[s] = float("nan")
  return WiderEvalResult(ap=ap, precision=precision, recall=recall, true_positives=tps,
                         proposals=props, num_faces=count_face, thresholds=thresholds,
                         num_images=len(names), num_missing=len(missing), num_extra=num_extra,
                         score_range=(min_score, max_score))


def evaluate_results_dir(results_dir, gt_dir, iou_threshold=0.5, num_thresholds=1000):
  """Reads ``<results_dir>/<event>/<stem>.txt`` and the eval_tools .mat files; ``evaluate``s them.

  Scores are read as float64, as MATLAB reads them.
  """
  gt = wider_ground_truth.read_eval_ground_truth(gt_dir)
  predictions = result_files.read_result_dir(results_dir)
  return evaluate(predictions, gt, iou_threshold, num_thresholds)

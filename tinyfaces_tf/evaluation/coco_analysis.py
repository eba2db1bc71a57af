"""COCO error analysis (MTGAN Fig. 6) and the discriminator's RoI accuracy (MTGAN Table 9).

Error analysis
--------------
``analyze`` is the Hoiem-style breakdown of false positives of the official COCO toolbox:
cocoapi ``MatlabAPI/CocoEval.m``, method ``analyze()`` (toolbox version 2.0, Piotr Dollar and
Tsung-Yi Lin). Per area range (all, small, medium, large) it gives seven precision-recall
curves over the 101 recall thresholds 0:.01:1, each one at least as high as the one before:

  C75  PR at IoU .75.
  C50  PR at IoU .50.
  Loc  PR at IoU .10: localisation errors ignored, duplicate detections still false positives.
  Sim  PR at IoU .10 after supercategory false positives are removed.
  Oth  PR at IoU .10 after all class confusions are removed.
  BG   PR after all background false positives are removed as well.
  FN   PR after all remaining errors are removed (trivially AP = 1).

Step by step, as ``CocoEval.analyze`` does it (the MATLAB line it mirrors in brackets):

  1. One evaluation with ``maxDets = 100`` and ``iouThrs = [.75 .5 .1]`` over all ground-truth
     categories (``ev.params.iouThrs=[.75 .5 .1]; ev.evaluate(); ev.accumulate()``) gives C75,
     C50 and Loc, per category and area range.
  2. Then ``iouThrs = .1`` and ``useCats = 0`` and, for every category c, only the detections of
     c (``A=A([A.category_id]==catId)``):
       Sim: the ground truth restricted to c's supercategory, every box of another category in
       it flagged ``ignore`` (``A=A(ismember([A.category_id],is)); [A(...~=catId).ignore]=
       deal(1)``), so a detection on a similar object matches an ignore region instead of
       counting as a false positive;
       Oth: all ground truth, every box of another category flagged ``ignore``.
  3. ``ps(ps==-1)=0; ps(6,:,k,:)=ps(5,:,k,:)>0; ps(7,:,k,:)=1``: a category without ground truth
     in an area range (precision -1) counts as precision 0, BG is 1 wherever Oth's precision is
     positive (i.e. up to the recall Oth reaches) and FN is 1 everywhere.
  4. The plotted curves are means over categories (``makeplot(rs,mean(ps,3),...)``) and the
     legend's AP is the mean over the recall thresholds (``ap=round(mean(ps,2)*1000)``).
     ``cat_ids`` picks the categories of the mean: one id gives the official per-category
     plot, a supercategory's ids its ``overall-<supercategory>`` plot.

Evaluation runs through pycocotools' ``COCOeval`` with the parameters above. Deviations:

  * pycocotools' ``COCOeval._prepare`` overwrites a ground-truth ``ignore`` field with
    ``iscrowd``, so the MATLAB ``ignore`` flag of step 2 cannot be passed through the
    annotations. ``_IgnoreAwareEval`` only re-applies the flag this module sets (under a private
    key) after ``_prepare``; the flagged boxes then act as in MATLAB's ``evaluateImg``
    (``gtIg=[gt.iscrowd]|[gt.ignore]|...``): ordinary IoU, each absorbs at most one detection.
    The Python port (mmdetection ``tools/analysis_tools/coco_error_analysis.py``,
    ``analyze_individual_category``; facebookresearch/Detectron ships no ``analyze``) instead
    sets ``iscrowd = 1`` on those boxes and relabels them to c with ``useCats = 1``. That makes
    their overlap intersection over the detection's area and lets one box absorb any number of
    detections; ``ignore_as_crowd=True`` reproduces it. (Some mmdetection versions dropped the
    relabelling of the Sim step, which makes their Sim equal to Loc; not copied.)
  * Sim drops the other supercategories' boxes by pooling only the supercategory's ids
    (``params.catIds`` under ``useCats = 0``) instead of rebuilding the ground truth: the same
    boxes reach the matching. A category whose supercategory is missing or "" is a group of its
    own (MATLAB would fail or pool all such categories).
  * ``ignore`` fields already in the ground-truth file are disregarded, as pycocotools (and so
    the C75/C50 numbers of ``COCOeval.summarize``) does; MATLAB would honour them.
  * The per-category runs of step 2 are restricted to the images holding a detection or a box of
    c: every other image only holds ignore regions and no detection, which changes nothing.
  * ``absent_as_zero=False`` leaves categories without ground truth in an area range out of that
    range's means (as ``COCOeval.summarize`` does) instead of the official precision 0; then C75
    and C50 equal pycocotools' AP at IoU .75 and .50 for every area range. With the official
    default they are equal only where every category has ground truth in the range.
  * One figure holds the four area ranges (MATLAB writes one PDF per range); colours, stacking
    and the legend's "[.xxx] C75" format follow ``makeplot``.

Discriminator accuracy
----------------------
``classification_accuracy`` and ``ClassificationAccuracy`` score the K + 1-way classification
of RoIs (MTGAN Table 9): a RoI with IoU > 0.5 with a ground-truth box is a positive of that box's
class (the box of highest IoU), one with IoU < 0.35 with every box is a negative (class 0), and
RoIs in between are not counted. Note the strict ``> 0.5``; the training sampler
(``data/roi_sampler.label_proposals``) uses ``>= 0.5``. Boxes are xyxy in continuous coordinates
(x2 = x1 + w), as everywhere in the package.
"""
import contextlib
import functools
import io
import os
from typing import Iterable, Optional, Union

import numpy as np
import numpy.typing as npt

from tinyfaces_tf.evaluation.coco import _detections
from tinyfaces_tf.evaluation.coco import _ground_truth
from tinyfaces_tf.evaluation.coco import _load_json
from tinyfaces_tf.evaluation.coco import _pycocotools

ERROR_TYPES = ("C75", "C50", "Loc", "Sim", "Oth", "BG", "FN")
AREAS = ("all", "small", "medium", "large")
# COCOeval's default recall thresholds 0:.01:1, the x axis of every curve.
REC_THRS = np.linspace(0.0, 1.0, 101)
# makeplot's colours per stacked band: C75, C50 white, then blue, red, green, purple, orange.
_COLOURS = ((1.0, 1.0, 1.0), (1.0, 1.0, 1.0), (0.31, 0.51, 0.74), (0.75, 0.31, 0.30),
            (0.36, 0.90, 0.38), (0.50, 0.39, 0.64), (1.0, 0.6, 0.0))
# Private annotation key for MATLAB's `ignore` flag (pycocotools rewrites `ignore` itself).
_IGNORE_KEY = "_analysis_ignore"


@functools.lru_cache(maxsize=None)
def _ignore_aware_eval():
  """COCOeval whose ground truth honours the ignore flag this module sets (MATLAB semantics)."""
  _, COCOeval = _pycocotools()

  class _IgnoreAwareEval(COCOeval):

    def _prepare(self):
      super()._prepare()
      # _prepare just set ignore = iscrowd; add the analysis flag back, as evaluateImg reads it.
      for gts in self._gts.values():
        for gt in gts:
          if gt.get(_IGNORE_KEY):
            gt["ignore"] = 1

  return _IgnoreAwareEval


def _coco_index(dataset):
  """A pycocotools COCO object over ``dataset`` (no copy)."""
  COCO, _ = _pycocotools()
  coco = COCO()
  coco.dataset = dataset
  with contextlib.redirect_stdout(io.StringIO()):
    coco.createIndex()
  return coco


def _results(gt, dets):
  """The detections as a COCO results object (loadRes; an empty one for no detections)."""
  if not dets:
    # loadRes indexes anns[0], so it cannot take an empty list.
    return _coco_index({"images": gt.dataset["images"], "categories": gt.dataset["categories"],
                        "annotations": []})
  with contextlib.redirect_stdout(io.StringIO()):
    try:
      return gt.loadRes(dets)
    except AssertionError:
      raise ValueError("COCO detections name images the ground truth does not hold") from None


def _precision(evaluator):
  """evaluate() + accumulate(); precision [T, R, K, A] at the single maxDets."""
  with contextlib.redirect_stdout(io.StringIO()):
    evaluator.evaluate()
    evaluator.accumulate()
  return evaluator.eval["precision"][..., 0]


def _analysis_precision(gt, dt, img_ids, cat_ids, max_dets, ignore_as_crowd):
  """The seven curves per selected category: ps [7, R, K, A] (-1: no ground truth)."""
  Eval = _ignore_aware_eval()
  all_cats = sorted(gt.getCatIds())
  # Step 1: C75, C50, Loc for every category at once (useCats = 1).
  ev = Eval(gt, dt, "bbox")
  ev.params.imgIds = list(img_ids)
  ev.params.catIds = all_cats
  ev.params.maxDets = [max_dets]
  ev.params.iouThrs = np.array([0.75, 0.5, 0.1])
  base = _precision(ev)
  index = [all_cats.index(c) for c in cat_ids]
  num_rec, num_areas = base.shape[1], base.shape[3]
  ps = np.zeros((len(ERROR_TYPES), num_rec, len(cat_ids), num_areas))
  ps[:3] = base[:, :, index]
  # Step 2: Sim and Oth per category, on a private copy of the ground truth whose flags we set.
  gt_data = _ground_truth(_load_json(gt.dataset, "ground truth"))
  anns = gt_data.dataset["annotations"]
  crowd = {id(a): a["iscrowd"] for a in anns}
  # A category without a supercategory (missing or "") forms a group of its own.
  sup = {c["id"]: c.get("supercategory") or ("", c["id"]) for c in gt_data.dataset["categories"]}
  img_set = set(img_ids)
  for k, cat in enumerate(cat_ids):
    for a in anns:
      other = a["category_id"] != cat
      a[_IGNORE_KEY] = int(other)
      if ignore_as_crowd:
        # The Python port's way: other classes' boxes become crowd regions.
        a["iscrowd"] = 1 if other else crowd[id(a)]
    cat_dets = [d for d in dt.dataset["annotations"] if d["category_id"] == cat]
    cat_dt = _coco_index(dict(dt.dataset, annotations=cat_dets))
    # Images with neither a detection nor a box of `cat` hold only ignore regions: skipped.
    used = {d["image_id"] for d in cat_dets} | set(gt_data.getImgIds(catIds=[cat]))
    used = sorted(used & img_set)
    similar = [c for c in all_cats if sup[c] == sup[cat]]
    for row, cats in ((3, similar), (4, all_cats)):
      if not used:
        ps[row, :, k] = -1.0
        continue
      ev = Eval(gt_data, cat_dt, "bbox")
      ev.params.imgIds = used
      # useCats = 0 pools the boxes of params.catIds: the supercategory for Sim, all for Oth.
      ev.params.useCats = 0
      ev.params.catIds = list(cats)
      ev.params.maxDets = [max_dets]
      ev.params.iouThrs = np.array([0.1])
      ps[row, :, k] = _precision(ev)[0, :, 0]
  # Step 3: BG and FN (ps(6)=ps(5)>0, ps(7)=1), -1 kept for absent categories.
  absent = base[0, 0, index] < 0
  ps[5] = ps[4] > 0
  ps[6] = 1.0
  ps[:, :, absent] = -1.0
  return ps


def analyze(gt_json_or_dict: Union[str, os.PathLike, dict],
            detections: Union[str, os.PathLike, list, np.ndarray],
            image_ids: Optional[Iterable[int]] = None, *,
            cat_ids: Optional[Iterable[int]] = None, max_dets: int = 100,
            absent_as_zero: bool = True, ignore_as_crowd: bool = False) -> dict:
  """COCO error analysis: the C75, C50, Loc, Sim, Oth, BG, FN curves per area range.

  Args:
    gt_json_or_dict: COCO ground truth, a path or a dict (a category whose `supercategory` is
      missing or empty is a supercategory of its own for the Sim step).
    detections: a list of {image_id, category_id, bbox [x, y, w, h], score}, a results JSON
      path or an [N, 7] array (see ``evaluation.coco._detections``).
    image_ids: images to evaluate; None = all images of the ground truth.
    cat_ids: categories to analyse and average; None = all ground-truth categories (the
      official ``overall-all`` plot).
    max_dets: detections kept per image and category (official: 100).
    absent_as_zero: True (official) counts a category without ground truth in an area range as
      precision 0 there; False leaves it out of that range's mean, as COCOeval.summarize.
    ignore_as_crowd: True marks the Sim/Oth ignore regions as crowd boxes, as the Python port.

  Returns:
    {area: {error type: (ap, precision [101])}} for area in AREAS and type in ERROR_TYPES;
    the curve is over ``REC_THRS`` and ap is its mean. Where no selected category has ground
    truth in a range and ``absent_as_zero`` is False, ap is -1 and the curve all -1.
  """
  gt = _ground_truth(_load_json(gt_json_or_dict, "ground truth"))
  dt = _results(gt, _detections(detections))
  all_cats = sorted(gt.getCatIds())
  if cat_ids is None:
    cat_ids = all_cats
  cat_ids = [int(c) for c in cat_ids]
  unknown = sorted(set(cat_ids) - set(all_cats))
  if unknown or not cat_ids:
    raise ValueError(f"analyze: category ids {unknown or cat_ids} not in the ground truth")
  img_ids = sorted(gt.getImgIds()) if image_ids is None else sorted({int(i) for i in image_ids})
  ps = _analysis_precision(gt, dt, img_ids, cat_ids, int(max_dets), ignore_as_crowd)
  result = {}
  for a, area in enumerate(AREAS):
    area_ps = ps[:, :, :, a]
    present = area_ps[0, 0] >= 0
    if absent_as_zero:
      # Official: ps(ps==-1)=0 before BG, so an absent category has BG 0 and FN 1.
      area_ps = np.maximum(area_ps, 0.0)
      area_ps[6] = 1.0
    else:
      area_ps = area_ps[:, :, present]
    if area_ps.shape[2] == 0:
      result[area] = {t: (-1.0, np.full(len(REC_THRS), -1.0)) for t in ERROR_TYPES}
      continue
    curves = area_ps.mean(axis=2)
    result[area] = {t: (float(curves[i].mean()), curves[i]) for i, t in enumerate(ERROR_TYPES)}
  return result


def legend_label(ap: float, name: str) -> str:
  """makeplot's legend entry: "[.xxx] C75", "[1.00] FN" (AP x 1000 rounded), "[n/a]" for -1."""
  if ap < 0:
    return f"[n/a] {name}"
  milli = int(round(ap * 1000))
  return f"[1.00] {name}" if milli >= 1000 else f"[.{milli:03d}] {name}"


def plot_analysis(result: dict, path: Union[str, os.PathLike],
                  title: str = "overall-all") -> str:
  """One PNG, one panel per area range, the curves stacked as makeplot's area plot.

  Args:
    result: ``analyze``'s output.
    path: PNG to write (folders are created).
    title: panel titles are "<title>-<area>" (official plot names, e.g. "overall-all-small").
  Returns:
    path.
  """
  # Lazy: Figure + Agg canvas leave matplotlib's global backend alone (as viz.py does).
  from matplotlib.backends.backend_agg import FigureCanvasAgg  # pylint: disable=g-import-not-at-top
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top
  areas = [a for a in AREAS if a in result]
  if not areas:
    raise ValueError("plot_analysis: the result holds no area range")
  fig = Figure(figsize=(5.0 * len(areas), 4.8), dpi=100)
  FigureCanvasAgg(fig)
  axes = fig.subplots(1, len(areas), squeeze=False)[0]
  for ax, area in zip(axes, areas):
    lower = np.zeros(len(REC_THRS))
    for colour, name in zip(_COLOURS, ERROR_TYPES):
      ap, curve = result[area][name]
      upper = np.clip(np.asarray(curve, np.float64), 0.0, 1.0)
      # Clamp to the band below: the curves rise step by step (makeplot stacks their diffs).
      upper = np.maximum(upper, lower)
      ax.fill_between(REC_THRS, lower, upper, color=colour, label=legend_label(ap, name))
      ax.plot(REC_THRS, upper, color="black", linewidth=0.5)
      lower = upper
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(0.0, 1.0)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title(f"{title}-{area}")
    ax.legend(loc="lower left", fontsize="small")
  fig.tight_layout()
  folder = os.path.dirname(os.path.abspath(path))
  os.makedirs(folder, exist_ok=True)
  fig.savefig(path)
  return os.fspath(path)


def _boxes(boxes, what):
  boxes = np.asarray(boxes, np.float64)
  if boxes.size == 0:
    return np.zeros((0, 4))
  if boxes.ndim != 2 or boxes.shape[1] != 4:
    raise ValueError(f"{what} must be [N, 4] xyxy boxes, got shape {boxes.shape}")
  return boxes


def _iou(a, b):
  """Pairwise IoU [len(a), len(b)] of xyxy boxes (continuous coordinates, no +1)."""
  iw = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]),
               0.0, None)
  ih = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]),
               0.0, None)
  inter = iw * ih
  area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])
  union = area(a)[:, None] + area(b)[None, :] - inter
  return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def roi_labels(roi_boxes_xyxy: npt.ArrayLike, gt_boxes_xyxy: npt.ArrayLike,
               gt_classes: npt.ArrayLike, positive_iou: float = 0.5,
               negative_iou: float = 0.35) -> np.ndarray:
  """Table 9's RoI labels: a class 1..K (positive), 0 (negative) or -1 (not counted).

  A RoI is a positive of the class of its highest-IoU box when that IoU exceeds
  ``positive_iou``, a negative when its IoU with every box is below ``negative_iou``.

  Args:
    roi_boxes_xyxy: [N, 4] RoIs.
    gt_boxes_xyxy: [G, 4] ground-truth boxes (G may be 0: every RoI is then a negative).
    gt_classes: [G] classes 1..K.
    positive_iou: IoU a positive must exceed.
    negative_iou: IoU every box must stay under for a negative.
  Returns:
    int64 [N] labels.
  """
  rois = _boxes(roi_boxes_xyxy, "roi_boxes_xyxy")
  gts = _boxes(gt_boxes_xyxy, "gt_boxes_xyxy")
  classes = np.asarray(gt_classes, np.int64).reshape(-1)
  if len(classes) != len(gts):
    raise ValueError(f"gt_classes has {len(classes)} entries for {len(gts)} gt boxes")
  if classes.size and classes.min() < 1:
    raise ValueError("gt_classes must be >= 1 (0 is background)")
  labels = np.full(len(rois), -1, np.int64)
  if not len(gts):
    labels[:] = 0
    return labels
  iou = _iou(rois, gts)
  best = iou.argmax(axis=1)
  best_iou = iou[np.arange(len(rois)), best]
  labels[best_iou < negative_iou] = 0
  positive = best_iou > positive_iou
  labels[positive] = classes[best[positive]]
  return labels


def _accuracy_dict(correct_pos, num_pos, correct_neg, num_neg, num_unlabelled):
  ratio = lambda c, n: c / n if n else float("nan")
  return {"positive_accuracy": ratio(correct_pos, num_pos),
          "negative_accuracy": ratio(correct_neg, num_neg),
          "accuracy": ratio(correct_pos + correct_neg, num_pos + num_neg),
          "num_positive": int(num_pos), "num_negative": int(num_neg),
          "correct_positive": int(correct_pos), "correct_negative": int(correct_neg),
          "num_unlabelled": int(num_unlabelled)}


def _counts(roi_boxes_xyxy, predicted_classes, gt_boxes_xyxy, gt_classes, positive_iou,
            negative_iou):
  labels = roi_labels(roi_boxes_xyxy, gt_boxes_xyxy, gt_classes, positive_iou, negative_iou)
  predicted = np.asarray(predicted_classes)
  if predicted.ndim == 2:
    # Scores [N, K + 1]: the predicted class is the argmax (column 0 = background).
    predicted = predicted.argmax(axis=1)
  predicted = predicted.reshape(-1).astype(np.int64)
  if len(predicted) != len(labels):
    raise ValueError(f"{len(predicted)} predictions for {len(labels)} RoIs")
  pos, neg = labels > 0, labels == 0
  return (int(np.sum(predicted[pos] == labels[pos])), int(pos.sum()),
          int(np.sum(predicted[neg] == 0)), int(neg.sum()), int(np.sum(labels < 0)))


def classification_accuracy(roi_boxes_xyxy: npt.ArrayLike, predicted_classes: npt.ArrayLike,
                            gt_boxes_xyxy: npt.ArrayLike, gt_classes: npt.ArrayLike,
                            positive_iou: float = 0.5, negative_iou: float = 0.35) -> dict:
  """Accuracy of the K + 1-way RoI classification of one image (MTGAN Table 9).

  Args:
    roi_boxes_xyxy: [N, 4] RoIs.
    predicted_classes: [N] predicted classes (0 = background) or [N, K + 1] scores.
    gt_boxes_xyxy: [G, 4] ground-truth boxes.
    gt_classes: [G] their classes 1..K (the same numbering as the predictions).
    positive_iou: IoU a positive must exceed (0.5).
    negative_iou: IoU every box must stay under for a negative (0.35).
  Returns:
    {"positive_accuracy", "negative_accuracy", "accuracy" (NaN without such RoIs),
     "num_positive", "num_negative", "correct_positive", "correct_negative", "num_unlabelled"}.
  """
  return _accuracy_dict(*_counts(roi_boxes_xyxy, predicted_classes, gt_boxes_xyxy, gt_classes,
                                 positive_iou, negative_iou))


class ClassificationAccuracy:
  """Sums ``classification_accuracy`` over images (ratios of the summed counts)."""

  def __init__(self, positive_iou: float = 0.5, negative_iou: float = 0.35):
    self.positive_iou = positive_iou
    self.negative_iou = negative_iou
    self._totals = np.zeros(5, np.int64)

  def update(self, roi_boxes_xyxy: npt.ArrayLike, predicted_classes: npt.ArrayLike,
             gt_boxes_xyxy: npt.ArrayLike, gt_classes: npt.ArrayLike) -> dict:
    """Adds one image; returns that image's accuracy dict."""
    counts = _counts(roi_boxes_xyxy, predicted_classes, gt_boxes_xyxy, gt_classes,
                     self.positive_iou, self.negative_iou)
    self._totals += np.asarray(counts, np.int64)
    return _accuracy_dict(*counts)

  def result(self) -> dict:
    """The accuracy dict over every image added so far."""
    return _accuracy_dict(*self._totals.tolist())

  def reset(self) -> None:
    self._totals[:] = 0

"""COCO error analysis (C75 ... FN) and the discriminator's RoI accuracy (MTGAN Table 9)."""
import contextlib
import copy
import importlib.util
import io
import json

import numpy as np
import pytest

from tinyfaces_tf.data import roi_sampler
from tinyfaces_tf.evaluation import coco_analysis
from tinyfaces_tf.evaluation.coco import _ground_truth

needs_pycocotools = pytest.mark.skipif(importlib.util.find_spec("pycocotools") is None,
                                       reason="pycocotools missing: install the [coco] extra")

R = 101  # recall thresholds 0:.01:1

# Three 200x200 images; animal = {cat 1, dog 2}, vehicle = {car 3}. COCO areas: small < 32^2,
# medium < 96^2, large above.
GT = {
    "images": [{"id": i, "width": 200, "height": 200} for i in (1, 2, 3)],
    "categories": [{"id": 1, "name": "cat", "supercategory": "animal"},
                   {"id": 2, "name": "dog", "supercategory": "animal"},
                   {"id": 3, "name": "car", "supercategory": "vehicle"}],
    "annotations": [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 100, 100]},   # large
        {"id": 2, "image_id": 1, "category_id": 2, "bbox": [120, 10, 60, 60]},    # medium
        {"id": 3, "image_id": 2, "category_id": 3, "bbox": [10, 10, 20, 20]},     # small
        {"id": 4, "image_id": 2, "category_id": 1, "bbox": [50, 50, 50, 50]},     # medium
        {"id": 5, "image_id": 3, "category_id": 2, "bbox": [0, 0, 120, 120]},     # large
        {"id": 6, "image_id": 3, "category_id": 3, "bbox": [130, 130, 60, 60]},   # medium
        {"id": 7, "image_id": 3, "category_id": 1, "bbox": [150, 10, 20, 20]},    # small
    ],
}


def _det(image_id, category_id, bbox, score):
  return {"image_id": image_id, "category_id": category_id, "bbox": bbox, "score": score}


DETS = [
    # cat, in score order:
    _det(1, 1, [10, 10, 100, 100], 0.95),      # a: exact on cat 1: TP everywhere
    _det(1, 1, [120, 10, 60, 60], 0.90),       # b: on the dog (same supercategory): FP to Loc
    _det(2, 1, [62.5, 50, 50, 50], 0.85),      # c: IoU 0.6 with cat 4: TP from C50 on
    _det(3, 1, [130, 130, 60, 60], 0.80),      # d: on the car (other supercategory): FP to Sim
    _det(2, 1, [150, 150, 30, 30], 0.75),      # e: background (area 900, small): FP to Oth
    _det(3, 1, [150 + 40 / 3, 10, 20, 20], 0.70),  # f: IoU 0.2 with cat 7: TP at Loc only
    # dog:
    _det(1, 2, [10, 10, 100, 100], 0.70),      # on cat 1 (same supercategory): FP to Loc
    _det(3, 2, [0, 0, 120, 120], 0.60),        # exact on dog 5; dog 2 is never found
    # car:
    _det(2, 3, [10, 10, 20, 20], 0.90),        # exact on car 3
    _det(1, 3, [150, 150, 40, 40], 0.80),      # background (area 1600, medium): FP to Oth
    _det(3, 3, [145, 130, 60, 60], 0.70),      # IoU 0.6 with car 6: TP from C50 on
]

# Hand-worked APs (x 101 = the summed interpolated precision over the 101 recall thresholds),
# per category, area range and error type; None: no ground truth of the category in the range.
#  cat/all, ranked a b c d e f against 3 boxes. C75: TP a only, precision 1 up to recall 1/3
#    (34 thresholds). C50: + c at rank 3, precision 2/3 on (1/3, 2/3] (33 thresholds): 34 + 22.
#    Loc: + f at rank 6, precision 3/6 on (2/3, 1] (34 thresholds): 34 + 22 + 17. Sim: b
#    ignored, ranks a c d e f: 34 + 33 + 34 * 3/5. Oth: d ignored too: 34 + 33 + 34 * 3/4.
#    BG: precision 1 up to recall 1.
#  dog/all: FP then TP against 2 boxes: precision 1/2 up to recall 1/2 (51 thresholds); from Sim
#    on the FP matches the cat box, an ignore region: precision 1; dog 2 stays missed until FN.
#  car/all: TP, background FP, IoU 0.6 TP against 2 boxes: C75 51; C50 51 + 50 * 2/3; BG 101.
#  small: cat holds box 7 only: e and f are the only unignored detections (a and c match boxes
#    outside the range, the rest are unmatched and outside it): both FPs below Loc, then e FP,
#    f TP: precision 1/2 at every recall. car: its one TP, everything else ignored.
#  medium: cat holds box 4: b, c, d count (C75: all FPs; C50 F T F: 1/2; Sim: T F: 1).
#    dog: box 2 is never detected and its detections are outside the range: 0. car: background
#    FP (1600) then the IoU 0.6 TP: 1/2 from C50 on.
#  large: cat: a alone, 1. dog: the FP on cat 1 (area 10000) then the TP: 1/2, Sim on 1.
_A = 1.0
EXPECTED = {
    1: {"all": (34 / R, 56 / R, 73 / R, 87.4 / R, 92.5 / R, _A, _A),
        "small": (0, 0, 0.5, 0.5, 0.5, _A, _A),
        "medium": (0, 0.5, 0.5, _A, _A, _A, _A),
        "large": (_A,) * 7},
    2: {"all": (25.5 / R, 25.5 / R, 25.5 / R, 51 / R, 51 / R, 51 / R, _A),
        "small": None,
        "medium": (0, 0, 0, 0, 0, 0, _A),
        "large": (0.5, 0.5, 0.5, _A, _A, _A, _A)},
    3: {"all": (51 / R, (51 + 100 / 3) / R, (51 + 100 / 3) / R, (51 + 100 / 3) / R,
                (51 + 100 / 3) / R, _A, _A),
        "small": (_A,) * 7,
        "medium": (0, 0.5, 0.5, 0.5, 0.5, _A, _A),
        "large": None},
}


def _aps(result, area):
  return [result[area][t][0] for t in coco_analysis.ERROR_TYPES]


@pytest.fixture(scope="module")
def official():
  return coco_analysis.analyze(GT, DETS)


@pytest.fixture(scope="module")
def present_only():
  return coco_analysis.analyze(GT, DETS, absent_as_zero=False)


@needs_pycocotools
@pytest.mark.parametrize("cat_id", [1, 2, 3])
def test_hand_worked_aps_per_category(cat_id):
  result = coco_analysis.analyze(GT, DETS, cat_ids=[cat_id], absent_as_zero=False)
  for area in coco_analysis.AREAS:
    expected = EXPECTED[cat_id][area]
    if expected is None:
      assert _aps(result, area) == [-1.0] * 7, area
    else:
      np.testing.assert_allclose(_aps(result, area), expected, atol=1e-9, err_msg=area)


@needs_pycocotools
def test_each_step_removes_its_error_type():
  # Cat's curves at recall 0.67..1, where c, f and the three false positives decide it.
  cat = coco_analysis.analyze(GT, DETS, cat_ids=[1])["all"]
  at = lambda t: cat[t][1][67]
  assert at("C75") == 0 and at("C50") == 0         # f (IoU 0.2) is no TP at .75 or .5 ...
  assert at("Loc") == pytest.approx(3 / 6)          # ... but at .1, behind b, d, e
  assert at("Sim") == pytest.approx(3 / 5)          # b (dog, same supercategory) removed
  assert at("Oth") == pytest.approx(3 / 4)          # d (car, other supercategory) removed
  assert at("BG") == 1 and at("FN") == 1            # e (background) removed
  # Recall 0.34..0.66 holds c (IoU 0.6): a TP at C50, not at C75.
  assert cat["C75"][1][40] == 0 and cat["C50"][1][40] == pytest.approx(2 / 3)


@needs_pycocotools
def test_official_means_count_absent_categories_as_zero(official, present_only):
  for area in coco_analysis.AREAS:
    rows = [EXPECTED[c][area] for c in (1, 2, 3)]
    # Official: an absent category adds precision 0 to C75..BG (ps(ps==-1)=0, BG = Oth > 0)
    # and 1 to FN.
    zero = [r if r is not None else (0,) * 6 + (1,) for r in rows]
    np.testing.assert_allclose(_aps(official, area), np.mean(zero, axis=0), atol=1e-9,
                               err_msg=area)
    np.testing.assert_allclose(_aps(present_only, area),
                               np.mean([r for r in rows if r is not None], axis=0), atol=1e-9,
                               err_msg=area)
  # e.g. small: cat (0, 0, .5, .5, .5, 1, 1), dog absent, car all 1.
  np.testing.assert_allclose(_aps(official, "small"), [1 / 3, 1 / 3, 0.5, 0.5, 0.5, 2 / 3, 1])


@needs_pycocotools
def test_curves_rise_step_by_step_and_fn_is_one(official, present_only):
  for result in (official, present_only):
    for area in coco_analysis.AREAS:
      curves = np.stack([result[area][t][1] for t in coco_analysis.ERROR_TYPES])
      assert curves.shape == (7, R)
      assert np.all(np.diff(curves, axis=0) >= -1e-12), area
      aps = _aps(result, area)
      assert aps == sorted(aps), area
      assert aps[-1] == 1.0
      np.testing.assert_allclose(aps, curves.mean(axis=1))


def _pycocotools_precision(gt, dets):
  """COCOeval's own precision [T=10, R, K, A] at maxDets 100, default parameters."""
  from pycocotools.cocoeval import COCOeval  # pylint: disable=g-import-not-at-top
  coco_gt = _ground_truth(copy.deepcopy(gt))
  with contextlib.redirect_stdout(io.StringIO()):
    ev = COCOeval(coco_gt, coco_gt.loadRes(copy.deepcopy(dets)), "bbox")
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
  return ev.eval["precision"][..., 2], ev.stats


def _mean_present(s):
  return float(np.mean(s[s > -1])) if np.any(s > -1) else -1.0


@needs_pycocotools
def test_c75_c50_equal_pycocotools_ap75_ap50(official, present_only):
  precision, stats = _pycocotools_precision(GT, DETS)
  assert official["all"]["C50"][0] == pytest.approx(stats[1], abs=1e-12)
  assert official["all"]["C75"][0] == pytest.approx(stats[2], abs=1e-12)
  # Per area range: COCOeval's mean over the categories with ground truth there (iouThrs[0]
  # = .5, iouThrs[5] = .75).
  for a, area in enumerate(coco_analysis.AREAS):
    for t, name in ((0, "C50"), (5, "C75")):
      assert present_only[area][name][0] == pytest.approx(
          _mean_present(precision[t, :, :, a]), abs=1e-12), (area, name)


def _random_case(seed, num_images=6, num_dets=40):
  rng = np.random.default_rng(seed)
  cats = [{"id": 1, "name": "a", "supercategory": "x"}, {"id": 2, "name": "b",
          "supercategory": "x"}, {"id": 5, "name": "c", "supercategory": "y"}]
  anns, dets = [], []
  for img in range(1, num_images + 1):
    for _ in range(rng.integers(1, 5)):
      w, h = rng.uniform(8, 150, 2)
      box = [float(v) for v in (*rng.uniform(0, 100, 2), w, h)]
      anns.append({"id": len(anns) + 1, "image_id": img, "category_id": int(rng.choice([1, 2, 5])),
                   "bbox": box, "iscrowd": int(rng.uniform() < 0.1)})
  for _ in range(num_dets):
    # Half the detections jitter a ground-truth box (any class), half are anywhere.
    if rng.uniform() < 0.5:
      g = anns[rng.integers(len(anns))]
      box = [float(v) for v in np.asarray(g["bbox"]) * rng.uniform(0.7, 1.3, 4)]
      img = g["image_id"]
    else:
      box = [float(v) for v in (*rng.uniform(0, 150, 2), *rng.uniform(5, 120, 2))]
      img = int(rng.integers(1, num_images + 1))
    dets.append(_det(img, int(rng.choice([1, 2, 5])), box, float(rng.uniform())))
  return {"images": [{"id": i} for i in range(1, num_images + 1)], "categories": cats,
          "annotations": anns}, dets


@needs_pycocotools
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_case_against_pycocotools_and_monotone(seed):
  gt, dets = _random_case(seed)
  precision, _ = _pycocotools_precision(gt, dets)
  result = coco_analysis.analyze(gt, dets, absent_as_zero=False)
  for a, area in enumerate(coco_analysis.AREAS):
    for t, name in ((0, "C50"), (5, "C75")):
      assert result[area][name][0] == pytest.approx(_mean_present(precision[t, :, :, a]),
                                                    abs=1e-12), (area, name)
    aps = _aps(result, area)
    if aps[0] >= 0:
      assert np.all(np.diff(aps) >= -1e-12), (area, aps)


@needs_pycocotools
def test_ignore_regions_absorb_one_detection_unless_crowd():
  # Two cat detections on one dog (same supercategory), ranked before the cat's own TP.
  gt = {"images": [{"id": 1}], "categories": GT["categories"][:2],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 2, "bbox": [0, 0, 100, 100]},
                        {"id": 2, "image_id": 1, "category_id": 1, "bbox": [150, 150, 40, 40]}]}
  dets = [_det(1, 1, [0, 0, 100, 100], 0.9), _det(1, 1, [2, 2, 98, 98], 0.8),
          _det(1, 1, [150, 150, 40, 40], 0.7)]
  # MATLAB: the dog is a non-crowd ignore box, it absorbs the first only: F T, precision 1/2.
  matlab = coco_analysis.analyze(gt, dets, cat_ids=[1])["all"]
  assert matlab["Sim"][0] == pytest.approx(0.5)
  # Python port (iscrowd = 1): both absorbed, precision 1.
  port = coco_analysis.analyze(gt, dets, cat_ids=[1], ignore_as_crowd=True)["all"]
  assert port["Sim"][0] == pytest.approx(1.0)
  for result in (matlab, port):
    assert result["Loc"][0] == pytest.approx(1 / 3)  # F F T before any class confusion is lifted


@needs_pycocotools
def test_inputs_paths_image_ids_and_no_detections(tmp_path):
  gt_path = tmp_path / "gt.json"
  gt_path.write_text(json.dumps(GT))
  det_path = tmp_path / "dets.json"
  det_path.write_text(json.dumps(DETS))
  from_files = coco_analysis.analyze(str(gt_path), str(det_path))
  from_dicts = coco_analysis.analyze(GT, DETS)
  assert _aps(from_files, "all") == _aps(from_dicts, "all")
  # Image 1 alone: cat 1 found first (AP 1), dog 2 missed (0 until FN), no car (left out).
  one = coco_analysis.analyze(GT, DETS, image_ids=[1], absent_as_zero=False)
  np.testing.assert_allclose(_aps(one, "all"), [0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 1.0])
  # No detections at all: every curve 0 except FN.
  empty = coco_analysis.analyze(GT, [])
  assert _aps(empty, "all") == [0.0] * 6 + [1.0]
  with pytest.raises(ValueError, match="not in the ground truth"):
    coco_analysis.analyze(GT, DETS, cat_ids=[9])
  with pytest.raises(ValueError, match="images"):
    coco_analysis.analyze(GT, [_det(42, 1, [0, 0, 5, 5], 0.5)])


def test_legend_labels_follow_makeplot():
  assert coco_analysis.legend_label(0.3994, "C75") == "[.399] C75"
  assert coco_analysis.legend_label(0.0456, "C50") == "[.046] C50"
  assert coco_analysis.legend_label(0.9996, "BG") == "[1.00] BG"
  assert coco_analysis.legend_label(1.0, "FN") == "[1.00] FN"
  assert coco_analysis.legend_label(-1.0, "Loc") == "[n/a] Loc"


@needs_pycocotools
def test_plot_writes_a_png(tmp_path, present_only):
  path = coco_analysis.plot_analysis(present_only, str(tmp_path / "fig" / "analysis.png"),
                                     title="mtgan")
  data = (tmp_path / "fig" / "analysis.png").read_bytes()
  assert path.endswith("analysis.png")
  assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


# Two boxes of classes 1 and 2; RoIs hand-labelled by IoU.
_GT_BOXES = [[0, 0, 10, 10], [20, 20, 30, 30]]
_GT_CLASSES = [1, 2]
_ROIS = [[0, 0, 10, 10],      # IoU 1 with class 1: positive, predicted 1 (right)
         [20, 20, 30, 30],    # IoU 1 with class 2: positive, predicted 1 (wrong class)
         [0, 0, 10, 12],      # IoU 100/120 with class 1: positive, predicted 0 (wrong)
         [50, 50, 60, 60],    # IoU 0: negative, predicted 0 (right)
         [100, 100, 110, 110],  # IoU 0: negative, predicted 2 (wrong)
         [0, 0, 10, 25],      # IoU 0.4: in between, not counted
         [0, 0, 10, 20]]      # IoU exactly 0.5: not above 0.5, so not counted either
_PREDICTED = [1, 1, 0, 0, 2, 1, 0]


def test_roi_labels_by_hand():
  np.testing.assert_array_equal(coco_analysis.roi_labels(_ROIS, _GT_BOXES, _GT_CLASSES),
                                [1, 2, 1, 0, 0, -1, -1])
  # Without ground truth every RoI is a negative.
  np.testing.assert_array_equal(coco_analysis.roi_labels(_ROIS[:2], np.zeros((0, 4)), []),
                                [0, 0])


def test_classification_accuracy_by_hand():
  got = coco_analysis.classification_accuracy(_ROIS, _PREDICTED, _GT_BOXES, _GT_CLASSES)
  assert got == {"positive_accuracy": 1 / 3, "negative_accuracy": 1 / 2, "accuracy": 2 / 5,
                 "num_positive": 3, "num_negative": 2, "correct_positive": 1,
                 "correct_negative": 1, "num_unlabelled": 2}
  # [N, K + 1] scores give the same through their argmax.
  scores = np.eye(3)[_PREDICTED] * 0.8 + 0.05
  assert coco_analysis.classification_accuracy(_ROIS, scores, _GT_BOXES, _GT_CLASSES) == got
  with pytest.raises(ValueError, match="predictions"):
    coco_analysis.classification_accuracy(_ROIS, _PREDICTED[:3], _GT_BOXES, _GT_CLASSES)


def test_accumulator_sums_counts_over_images():
  acc = coco_analysis.ClassificationAccuracy()
  acc.update(_ROIS, _PREDICTED, _GT_BOXES, _GT_CLASSES)
  # An image without objects: two negatives, one predicted as class 3.
  image2 = acc.update([[0, 0, 5, 5], [10, 10, 20, 20]], [0, 3], np.zeros((0, 4)), [])
  assert image2["negative_accuracy"] == 0.5 and np.isnan(image2["positive_accuracy"])
  total = acc.result()
  assert (total["num_positive"], total["correct_positive"]) == (3, 1)
  assert (total["num_negative"], total["correct_negative"]) == (4, 2)
  assert total["accuracy"] == pytest.approx(3 / 7)
  acc.reset()
  assert np.isnan(acc.result()["accuracy"])


def test_roi_labels_agree_with_the_training_labeller():
  # Independent reference: data/roi_sampler.label_proposals (TF IoU; >= 0.5 for objects, which
  # random float boxes never hit exactly).
  rng = np.random.default_rng(3)
  xy = rng.uniform(0, 80, (200, 2))
  rois = np.concatenate([xy, xy + rng.uniform(4, 40, (200, 2))], axis=1)
  gxy = rng.uniform(0, 80, (6, 2))
  gts = np.concatenate([gxy, gxy + rng.uniform(8, 40, (6, 2))], axis=1)
  classes = np.array([1, 2, 3, 1, 2, 3])
  ours = coco_analysis.roi_labels(rois, gts, classes)
  theirs, _, _ = roi_sampler.label_proposals(rois.astype(np.float32), gts.astype(np.float32),
                                             gt_labels=classes)
  assert (ours > 0).sum() > 5 and (ours == 0).sum() > 5 and (ours < 0).sum() > 5
  np.testing.assert_array_equal(ours, theirs)

"""FDDB discrete ROC and COCO AP."""
import importlib.util

import numpy as np
import pytest

from tinyfaces_tf.evaluation import coco
from tinyfaces_tf.evaluation import fddb

# COCO AP goes through pycocotools, the `coco` extra.
needs_pycocotools = pytest.mark.skipif(importlib.util.find_spec("pycocotools") is None,
                                       reason="pycocotools missing: install the [coco] extra")


def test_region_overlap_against_geometry():
  # A circle of radius 100 against its bounding square: pi r^2 / (2r)^2 = pi / 4.
  circle = [[100, 100, 0.0, 300, 300]]
  got = fddb.region_overlaps(circle, [[200, 200, 200, 200], [300, 200, 200, 200],
                                      [600, 600, 10, 10]])
  assert got[0, 0] == pytest.approx(np.pi / 4, rel=0.01)
  # A 200x200 box over the right half: intersection = half circle, union = circle + box - it.
  circle_area = np.pi * 100 ** 2
  half = (circle_area / 2) / (circle_area + 200 * 200 - circle_area / 2)
  assert got[0, 1] == pytest.approx(half, rel=0.02)
  assert got[0, 2] == 0.0
  # Angle is the major axis' direction: radii (100, 50) at pi/2 stand upright, so the upright
  # bounding box overlaps pi * 100 * 50 / (100 * 200) = pi / 4 and the lying one much less.
  upright = [[100, 50, np.pi / 2, 300, 300]]
  got = fddb.region_overlaps(upright, [[250, 200, 100, 200], [200, 250, 200, 100]])
  # (Pixels: both rectangle corners are filled, 101 x 201 pixels, hence the 2% tolerance.)
  assert got[0, 0] == pytest.approx(np.pi / 4, rel=0.02)
  assert got[0, 1] < 0.45


def _write(path, blocks):
  lines = []
  for name, rows in blocks:
    lines += [name, str(len(rows))] + [" ".join(str(v) for v in r) for r in rows]
  path.write_text("\n".join(lines) + "\n")
  return path


def test_hand_worked_roc(tmp_path):
  # Image 1: circles r=20 at (50,50) and (150,50); image 2: a circle r=20 at (50,50). 3 faces.
  ellipses = _write(tmp_path / "FDDB-fold-01-ellipseList.txt", [
      ("2002/08/11/big/img_1", [[20, 20, 0, 50, 50, 1], [20, 20, 0, 150, 50, 1]]),
      ("2002/08/11/big/img_2", [[20, 20, 0, 50, 50, 1]])])
  # Score 0.9: tight box on circle 1 (overlap ~0.75, TP); 0.8: far away (FP); 0.7: half-off box
  # in image 2 (overlap ~0.28, FP); 0.6: tight box in image 2 (TP: the matching maximises the
  # summed overlap, so the circle goes to it); 0.5: duplicate of the 0.9 box (FP, one-to-one).
  dets = _write(tmp_path / "dets.txt", [
      ("2002/08/11/big/img_1", [[30, 30, 40, 40, 0.9], [300, 300, 40, 40, 0.8],
                                [30, 30, 40, 40, 0.5]]),
      ("2002/08/11/big/img_2", [[50, 30, 40, 40, 0.7], [30, 30, 40, 40, 0.6]])])
  roc = fddb.evaluate_fddb_files(ellipses, dets)
  np.testing.assert_allclose(roc.thresholds, [0.9, 0.8, 0.7, 0.6, 0.5])
  np.testing.assert_array_equal(roc.true_positives, [1, 1, 1, 2, 2])
  np.testing.assert_array_equal(roc.false_positives, [0, 1, 2, 2, 3])
  assert roc.num_faces == 3
  np.testing.assert_allclose(roc.true_positive_rate, [1 / 3, 1 / 3, 1 / 3, 2 / 3, 2 / 3])
  assert roc.detection_rate_at(fp=2) == pytest.approx(2 / 3)
  assert roc.detection_rate_at(fp=1) == pytest.approx(1 / 3)
  assert fddb.detection_rate_at(roc, fp=500) == pytest.approx(2 / 3)


def test_matching_is_redone_per_threshold():
  # One face, two boxes. Above 0.7 only the half-off box (overlap ~0.28 -> FP); adding the tight
  # box moves the match to it: TP 0 -> 1 and FP stays 1.
  roc = fddb.evaluate_fddb({"a": np.array([[20, 20, 0, 50, 50]])},
                           {"a": (np.array([[50, 30, 40, 40], [30, 30, 40, 40]]),
                                  np.array([0.8, 0.6]))})
  np.testing.assert_array_equal(roc.true_positives, [0, 1])
  np.testing.assert_array_equal(roc.false_positives, [1, 1])


def test_fddb_reader_errors(tmp_path):
  bad = tmp_path / "bad.txt"
  bad.write_text("img\n2\n1 2 3 4 5 1\n")
  with pytest.raises(ValueError, match="bad.txt:2"):
    fddb.read_ellipses(bad)
  bad.write_text("img\n1\n1 2 x 4 5 1\n")
  with pytest.raises(ValueError, match="bad.txt:3"):
    fddb.read_ellipses(bad)
  with pytest.raises(FileNotFoundError, match="nope.txt"):
    fddb.read_detections(tmp_path / "nope.txt")


def _coco_gt():
  # Sizes: 20x20 (small, area < 32^2), 50x50 (medium), 100x100 (large).
  return {
      "images": [{"id": 1, "width": 300, "height": 300}, {"id": 2, "width": 300, "height": 300}],
      "categories": [{"id": 1, "name": "face"}, {"id": 2, "name": "car"}],
      "annotations": [
          {"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 20]},
          {"id": 2, "image_id": 1, "category_id": 2, "bbox": [100, 100, 50, 50]},
          {"id": 3, "image_id": 2, "category_id": 1, "bbox": [0, 0, 100, 100]},
      ]}


@needs_pycocotools
def test_coco_perfect_detections():
  gt = _coco_gt()
  dets = [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"],
           "score": 0.9} for a in gt["annotations"]]
  result = coco.evaluate_coco(gt, dets)
  assert set(result) == {"AP", "AP50", "AP75", "APs", "APm", "APl"}
  for key, value in result.items():
    assert value == pytest.approx(1.0), key


@needs_pycocotools
def test_coco_shifted_box_counts_at_50_not_75(tmp_path):
  # gt [0,0,100,100]; the detection shifted by 23 px: IoU = 77*100 / (2*100*100 - 7700)
  # = 77/123 = 0.626. It is a hit at IoU thresholds 0.50, 0.55, 0.60 and a miss at 0.65..0.95,
  # so AP50 = 1, AP75 = 0 and AP (mean over the 10 thresholds) = 3/10.
  gt = {"images": [{"id": 1, "width": 200, "height": 200}],
        "categories": [{"id": 1, "name": "face"}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 100, 100]}]}
  gt_path = tmp_path / "gt.json"
  import json  # pylint: disable=g-import-not-at-top
  gt_path.write_text(json.dumps(gt))
  dets = np.array([[1, 23, 0, 100, 100, 0.8, 1]])
  result = coco.evaluate_coco(str(gt_path), dets)
  assert result["AP50"] == pytest.approx(1.0)
  assert result["AP75"] == pytest.approx(0.0)
  assert result["AP"] == pytest.approx(0.3)
  assert result["APl"] == pytest.approx(0.3)
  assert result["APs"] == -1.0  # no small ground truth

"""COCO end to end: the reader on hand-written JSON, K-class RoI labels with crowd regions,
COCO results proposals, per-class detection and the pipeline from a COCO layout to pycocotools
AP through the task layer."""
import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from tinyfaces_tf import boxes as box_ops
from tinyfaces_tf import config as config_lib
from tinyfaces_tf import proposals as proposals_lib
from tinyfaces_tf import task as task_lib
from tinyfaces_tf.data import coco
from tinyfaces_tf.data import roi_sampler
from tinyfaces_tf.detection import detector as detector_lib
from tinyfaces_tf.detection import jobs

pytest.importorskip("pycocotools")

DUMMY = os.path.join(os.path.dirname(os.path.dirname(__file__)), "tinyfaces_tf", "datasets",
                     "coco_rois", "dummy_data")


def _write_layout(root, annotations, split="val2017"):
  os.makedirs(os.path.join(root, "annotations"), exist_ok=True)
  path = os.path.join(root, "annotations", f"instances_{split}.json")
  with open(path, "w") as f:
    json.dump(annotations, f)
  return path


HAND = {
    "images": [{"id": 7, "file_name": "000000000007.jpg", "height": 100, "width": 120},
               {"id": 9, "file_name": "000000000009.jpg", "height": 50, "width": 60}],
    "categories": [{"id": 5, "name": "b", "supercategory": "s"},
                   {"id": 2, "name": "a", "supercategory": "s"}],
    "annotations": [
        {"id": 1, "image_id": 7, "category_id": 5, "bbox": [10, 20, 30, 40], "iscrowd": 0},
        {"id": 2, "image_id": 7, "category_id": 2, "bbox": [1.5, 2.5, 3, 4], "iscrowd": 0},
        {"id": 3, "image_id": 7, "category_id": 2, "bbox": [50, 50, 60, 40], "iscrowd": 1},
        {"id": 4, "image_id": 7, "category_id": 2, "bbox": [0, 0, 0, 5], "iscrowd": 0},
        {"id": 5, "image_id": 9, "category_id": 2, "bbox": [0, 0, "nan", 5], "iscrowd": 0},
        {"id": 6, "image_id": 8, "category_id": 2, "bbox": [0, 0, 5, 5], "iscrowd": 0},
    ]}


def test_reader_on_hand_written_json(tmp_path):
  path = _write_layout(tmp_path, HAND)
  dataset = coco.CocoDataset(tmp_path)
  # Categories 2, 5 -> labels 1, 2 (ascending id), whatever the file's order.
  assert dataset.category_ids("val2017") == [2, 5]
  images = {im.image_id: im for im in dataset.images("val2017")}
  assert sorted(images) == [7, 9]
  im = images[7]
  assert im.name == "val2017/000000000007.jpg" and (im.height, im.width) == (100, 120)
  np.testing.assert_allclose(im.boxes_xyxy, [[10, 20, 40, 60], [1.5, 2.5, 4.5, 6.5]])
  np.testing.assert_array_equal(im.labels, [2, 1])
  np.testing.assert_allclose(im.crowd_xyxy, [[50, 50, 110, 90]])
  assert len(images[9].boxes_xyxy) == 0
  skipped = {ann_id: reason for _, ann_id, reason in dataset.skipped_annotations}
  assert sorted(skipped) == [4, 5, 6] and "image id 8" in skipped[6]
  assert all(p == path for p, _, _ in dataset.skipped_annotations)
  assert coco.size_class(31.9 ** 2) == "small" and coco.size_class(32 ** 2) == "medium"
  assert coco.size_class(96 ** 2) == "large"


def test_reader_errors_name_the_file(tmp_path):
  path = _write_layout(tmp_path, HAND)
  with open(path, "w") as f:
    f.write('{"images": [\n  {"id": 1,,}\n]}')
  with pytest.raises(ValueError, match=f"{path}:2: not valid JSON"):
    coco.CocoDataset(tmp_path).images("val2017")
  _write_layout(tmp_path, {"images": [], "annotations": []})
  with pytest.raises(ValueError, match=r"missing \['categories'\]"):
    coco.CocoDataset(tmp_path).images("val2017")
  with pytest.raises(ValueError, match="unknown COCO split"):
    coco.CocoDataset(tmp_path).images("val2019")


def test_multiclass_labels_and_crowd_against_hand_worked_example():
  gt = np.array([[0, 0, 10, 10], [20, 0, 30, 10]], np.float32)
  crowd = np.array([[50, 50, 100, 100]], np.float32)
  rois = np.array([[0, 0, 10, 9],      # IoU 0.9 with box 0 -> its label 3
                   [21, 0, 30, 10],    # IoU 0.9 with box 1 -> label 2
                   [0, 0, 10, 20],     # IoU 0.5 with box 0 -> 3 (>= fg_iou)
                   [60, 60, 70, 70],   # inside the crowd -> ignored
                   [40, 40, 60, 60],   # 1/4 inside the crowd -> background
                   [5, 0, 25, 10]],    # IoU 1/3 with each box: < 0.35 -> background
                  np.float32)
  labels, matched, _ = roi_sampler.label_proposals(rois, gt, gt_labels=[3, 2],
                                                   crowd_boxes=crowd)
  np.testing.assert_array_equal(labels, [3, 2, 3, -1, 0, 0])
  np.testing.assert_array_equal(matched, [0, 1, 0, -1, -1, -1])


def test_sampled_targets_are_the_matched_boxes_encoding():
  gt = np.array([[10, 10, 40, 50], [60, 20, 90, 40]], np.float32)
  out = roi_sampler.sample_training_rois((100, 120), gt, None, None,
                                         roi_sampler.RoiSamplerConfig(), 0, gt_labels=[1, 3])
  positive = out["labels"] >= 1
  assert set(out["labels"][positive]) == {1, 3}
  # Decoding the stored target from the RoI gives back the matched box (encode's inverse).
  decoded = box_ops.decode(out["box_targets"][positive], out["rois"][positive]).numpy()
  np.testing.assert_allclose(decoded, gt[out["matched"][positive]], atol=1e-3)
  np.testing.assert_array_equal(out["labels"][positive], np.array([1, 3])[out["matched"][positive]])


def test_coco_results_proposer(tmp_path):
  path = tmp_path / "props.json"
  path.write_text(json.dumps([
      {"image_id": 7, "category_id": 5, "bbox": [0, 0, 10, 20], "score": 0.2},
      {"image_id": 7, "category_id": 2, "bbox": [5, 5, 10, 10], "score": 0.9},
      {"image_id": 7, "category_id": 99, "bbox": [1, 1, 2, 2], "score": 0.5}]))
  proposer = proposals_lib.make_proposer(f"coco_results:{path}", category_ids=[2, 5])
  got = proposer.propose(None, "val2017/000000000007.jpg")
  np.testing.assert_allclose(got.boxes, [[5, 5, 15, 15], [1, 1, 3, 3], [0, 0, 10, 20]])
  np.testing.assert_allclose(got.scores, [0.9, 0.5, 0.2])
  np.testing.assert_array_equal(got.labels, [1, 0, 2])  # unknown category: class-agnostic
  assert len(proposer.propose(None, "val2017/000000000008.jpg")) == 0
  assert proposals_lib.make_proposer(f"coco_results:{path}").propose(
      None, "000000000007.jpg").labels is None
  path.write_text(json.dumps([{"image_id": 7, "category_id": 5, "bbox": [0, 0, -1, 2],
                               "score": 0.2}]))
  with pytest.raises(ValueError, match="entry 0 .image 7."):
    proposals_lib.make_proposer(f"coco_results:{path}")
  with pytest.raises(ValueError, match="is not a file"):
    proposals_lib.make_proposer(f"coco_results:{tmp_path}/missing.json")


def _scored(probs, deltas=None):
  probs = tf.constant(probs, tf.float32)
  n, c = probs.shape
  return {"class_probs": probs,
          "box_deltas": tf.zeros([n, 4 * c]) if deltas is None else tf.constant(deltas)}


def test_per_class_nms_never_suppresses_across_classes():
  boxes = tf.constant([[0, 0, 10, 10], [0, 0, 10, 10], [1, 0, 11, 10]], tf.float32)
  # RoI 0: class 1; RoI 1 (same box): class 2; RoI 2 overlaps RoI 0 (IoU 0.82): class 1.
  probs = [[0.1, 0.8, 0.1], [0.1, 0.1, 0.8], [0.2, 0.7, 0.1]]
  config = detector_lib.DetectConfig(nms_iou=0.5, max_detections=100)
  out_boxes, scores, labels = detector_lib._per_class_detections(
      _scored(probs), boxes, tf.ones([3]), tf.zeros([3], tf.int32), tf.constant([20, 20, 3]),
      config, refine=False)
  # Class 1 keeps RoI 0 (0.8) and suppresses RoI 2 (0.7) and RoI 1 (0.1, same box); class 2
  # keeps RoI 1 (0.8) and suppresses its copies. The same box survives once in each class.
  found = sorted(zip(labels.numpy().tolist(), np.round(scores.numpy().astype(float), 4)))
  assert found == [(1, 0.8), (2, 0.8)], found
  np.testing.assert_allclose(out_boxes.numpy(), [[0, 0, 10, 10], [0, 0, 10, 10]])
  assert set(labels.numpy()) <= {1, 2}


def test_detections_are_capped_and_class_specific_boxes_decode():
  n = 150
  rng = np.random.default_rng(0)
  x = rng.uniform(0, 900, n).astype(np.float32)
  boxes = np.stack([x, x, x + 20, x + 20], axis=1)  # mostly disjoint
  probs = np.full((n, 3), 0.2, np.float32)
  probs[:, 1] = 0.6
  config = detector_lib.DetectConfig(nms_iou=0.5, max_detections=100)
  _, scores, _ = detector_lib._per_class_detections(
      _scored(probs), tf.constant(boxes), tf.ones([n]), tf.zeros([n], tf.int32),
      tf.constant([1000, 1000, 3]), config, refine=False)
  assert scores.shape[0] == 100
  # Class 2's deltas move its box; class 1's are zero: each class decodes with its own.
  target = np.array([[12, 10, 32, 34]], np.float32)
  roi = np.array([[10, 10, 30, 30]], np.float32)
  deltas = np.zeros((1, 12), np.float32)
  deltas[0, 8:12] = box_ops.encode(target, roi).numpy()[0]
  out_boxes, _, labels = detector_lib._per_class_detections(
      _scored([[0.0, 0.3, 0.7]], deltas), tf.constant(roi), tf.ones([1]), tf.zeros([1], tf.int32),
      tf.constant([100, 100, 3]), config, refine=True)
  by_label = dict(zip(labels.numpy().tolist(), out_boxes.numpy()))
  np.testing.assert_allclose(by_label[2], target[0], atol=1e-3)
  np.testing.assert_allclose(by_label[1], roi[0], atol=1e-3)


def test_product_fusion_uses_the_proposals_class():
  probs = [[0.2, 0.5, 0.3], [0.2, 0.5, 0.3]]
  config = detector_lib.DetectConfig(score_fusion="product", nms_iou=0.5)
  boxes = tf.constant([[0, 0, 10, 10], [50, 50, 60, 60]], tf.float32)
  _, scores, labels = detector_lib._per_class_detections(
      _scored(probs), boxes, tf.constant([0.5, 0.5]), tf.constant([2, 0]),
      tf.constant([100, 100, 3]), config, refine=False)
  found = sorted(zip(labels.numpy().tolist(), np.round(scores.numpy().astype(float), 4)))
  # RoI 0 (labelled class 2) scores class 2 only: 0.3 * 0.5, class 1 zero; RoI 1 (agnostic)
  # scores both: 0.5 * 0.5 and 0.3 * 0.5. The boxes are disjoint, so NMS keeps all four.
  assert found == [(1, 0.0), (1, 0.25), (2, 0.15), (2, 0.15)], found


def test_coco_layout_to_ap_through_the_task_layer(tmp_path):
  """Dummy COCO layout -> RoIs -> two GAN steps -> export -> per-class detect -> COCO AP."""
  root = tmp_path / "coco"
  shutil.copytree(DUMMY, root)
  cfg = config_lib.replace(config_lib.get_preset("demo_coco"), train={
      "batch_size": 4, "steps": 2, "pretrain_steps": 1, "checkpoint_every": 2,
      "precision": "float32"})
  task = task_lib.Task(cfg, str(root))
  counts = task.build_rois(str(tmp_path / "tfds"))
  assert counts == {"train": 8, "validation": 13}
  make_dataset, _ = task.build_train_dataset(str(tmp_path / "tfds"))
  batch = next(iter(make_dataset(0)))
  assert int(tf.reduce_max(batch["label"])) <= 3
  result, gan = task.train(make_dataset, str(tmp_path / "run"))
  assert result.steps == 2
  export_dir = task.export(gan.generator, gan.discriminator, str(tmp_path / "export"))
  from tinyfaces_tf import export  # pylint: disable=g-import-not-at-top
  detector = export.SavedModelDetector(export_dir)
  proposer = task.build_proposer(f"coco_results:{root / 'proposals' / 'val2017.json'}")
  adapter = task.adapter
  summary = jobs.detect_split(detector, adapter.image_root("val2017"),
                              adapter.image_names("val2017"), proposer,
                              str(tmp_path / "results" / "ours"),
                              str(tmp_path / "results" / "baseline"),
                              write=adapter.write_detections)
  assert summary.images == 2
  ours = coco.gather_results(str(tmp_path / "results" / "ours"))
  assert ours and {d["category_id"] for d in ours} <= {1, 3, 8}
  assert len(ours) <= 2 * 3 * 2  # 2 images x 2 proposals x 3 classes at most
  metrics = task.build_evaluator()({"baseline": str(tmp_path / "results" / "baseline"),
                                    "ours": str(tmp_path / "results" / "ours")},
                                   str(tmp_path / "eval"))
  assert set(metrics) == {"baseline", "ours"}
  for values in metrics.values():
    assert set(values) == {"AP", "AP50", "AP75", "APs", "APm", "APl"}
  # The baseline's proposals are the dummy file's: 2 of the 3 objects found at IoU >= 0.5
  # with the right class (the face IoU 0.87, the cat 0.90), the coin missed -> AP50 = 2/3 per
  # class averaged: face 1, cat 1, coin 0.
  assert metrics["baseline"]["AP50"] == pytest.approx(2 / 3, abs=1e-3)
  assert os.path.isfile(tmp_path / "eval" / adapter.METRICS_FILE)


def test_class_agnostic_boxes_are_reported_for_every_class(tmp_path):
  root = tmp_path / "coco"
  shutil.copytree(DUMMY, root)
  adapter = task_lib.Task(config_lib.get_preset("demo_coco"), str(root)).adapter
  boxes = np.array([[0, 0, 10, 10], [5, 5, 20, 25]], np.float32)
  path = adapter.write_detections(str(tmp_path / "out"), "val2017/000000000021.jpg", boxes,
                                  [0.9, 0.4], labels=[2, 0])
  with open(path) as f:
    entries = json.load(f)
  # Box 0 keeps its class (label 2 = category 3); box 1 (agnostic) is written for 1, 3 and 8.
  got = sorted((e["category_id"], e["bbox"], e["score"]) for e in entries)
  assert got == [(1, [5, 5, 15, 20], 0.4), (3, [0, 0, 10, 10], 0.9), (3, [5, 5, 15, 20], 0.4),
                 (8, [5, 5, 15, 20], 0.4)]
  assert all(e["image_id"] == 21 for e in entries)


def test_d_accuracy_job_against_hand_worked_counts(tmp_path):
  """MTGAN Table 9's job: proposals cropped, scored, argmax vs IoU-based labels."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  os.makedirs(tmp_path / "val", exist_ok=True)
  Image.fromarray(np.full((60, 80, 3), 128, np.uint8)).save(tmp_path / "val" / "1.jpg")
  gt_boxes = np.array([[0, 0, 20, 20], [40, 10, 60, 30]], np.float32)
  rois = np.array([[0, 0, 20, 20],    # positive, class 2
                   [40, 10, 60, 30],  # positive, class 1
                   [0, 0, 20, 40],    # IoU 0.5 exactly: not counted (Table 9 wants > 0.5)
                   [60, 40, 80, 60]],  # negative
                  np.float32)
  # Predictions: right, wrong (background), -, right (background).
  probs = np.array([[0.1, 0.2, 0.7], [0.8, 0.1, 0.1], [0.0, 1.0, 0.0], [0.9, 0.05, 0.05]])

  class Fixed(proposals_lib.Proposer):
    def propose(self, image, image_name=None):
      return proposals_lib.make_proposals(rois, np.linspace(1, 0.5, 4), None)

  seen = []

  def score_rois(lr):
    seen.append(lr.shape)
    return {"class_probs": tf.constant(probs, tf.float32)}

  crop = config_lib.get_preset("demo_coco").crop
  result = jobs.classification_accuracy_split(
      score_rois, crop, str(tmp_path), [("val/1.jpg", gt_boxes, np.array([2, 1]))], Fixed())
  assert seen == [(4, crop.lr_size, crop.lr_size, 3)]
  assert (result["num_positive"], result["correct_positive"]) == (2, 1)
  assert (result["num_negative"], result["correct_negative"]) == (1, 1)
  assert result["num_unlabelled"] == 1
  assert result["accuracy"] == pytest.approx(2 / 3)

"""coco_rois builder on dummy_data/ (COCO 2017 layout: 2 train images, 2 val images).

dummy_data: categories 1 face, 3 coin, 8 cat (non-contiguous ids -> labels 1, 2, 3). train2017:
image 11 has a cat and a coin; image 12 a face, a crowd region of coins and an annotation of
zero width (skipped by the reader); no proposals. val2017: image 21 a face, image 22 a cat and a
coin; proposals/val2017.json gives each val image one proposal on an object and one on
background.
"""
import importlib.util
import json

import numpy as np
import pytest
import tensorflow_datasets as tfds

from tinyfaces_tf.datasets.coco_rois import coco_rois_dataset_builder as builder_lib

DUMMY = builder_lib.Builder.code_path.parent / "dummy_data"
HAS_TFDS_TESTING = importlib.util.find_spec("dill") is not None

if HAS_TFDS_TESTING:

  class CocoRoisTest(tfds.testing.DatasetBuilderTestCase):
    """TFDS's standard checks: registration, generation, split sizes, reload, no overlap."""
    DATASET_CLASS = builder_lib.Builder
    BUILDER_CONFIG_NAMES_TO_TEST = ["x1.0"]
    # Worked out from dummy_data and RoiSamplerConfig's defaults (1 jittered positive per
    # object, ceil(1.5 x positives) backgrounds, at least 2 per image; crowds never positive):
    # train: image 11: 2 jittered + 3 backgrounds; image 12: 1 jittered + 2 backgrounds; = 8.
    # val: image 21: 1 proposal + 1 jittered positives, 1 proposal + 2 random backgrounds = 5;
    #      image 22: 1 proposal + 2 jittered, 1 proposal + 4 random backgrounds = 8; = 13.
    SPLITS = {"train": 8, "validation": 13}

else:

  def test_tfds_dataset_builder_test_case():
    pytest.skip("tfds.testing.DatasetBuilderTestCase needs `dill`; install the [test] extra")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
  builder = builder_lib.Builder(config="x1.0", data_dir=str(tmp_path_factory.mktemp("coco")),
                                beam=False)
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir=str(DUMMY)))
  return builder


def _gt(split):
  """{image file name: (object boxes xyxy, category ids, crowd boxes xyxy)} read with json."""
  data = json.loads((DUMMY / "annotations" / f"instances_{split}.json").read_text())
  names = {image["id"]: f"{split}/{image['file_name']}" for image in data["images"]}
  out = {name: ([], [], []) for name in names.values()}
  for ann in data["annotations"]:
    x, y, w, h = ann["bbox"]
    if w <= 0 or h <= 0:
      continue
    entry = out[names[ann["image_id"]]]
    if ann["iscrowd"]:
      entry[2].append([x, y, x + w, y + h])
    else:
      entry[0].append([x, y, x + w, y + h])
      entry[1].append(ann["category_id"])
  return {k: tuple(np.asarray(v, np.float64).reshape(-1, 4) if i != 1 else np.asarray(v)
                   for i, v in enumerate(e)) for k, e in out.items()}


def _iou(box, boxes):
  x1 = np.maximum(box[0], boxes[:, 0])
  y1 = np.maximum(box[1], boxes[:, 1])
  x2 = np.minimum(box[2], boxes[:, 2])
  y2 = np.minimum(box[3], boxes[:, 3])
  inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
  area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
  return inter / (area(box) + area(boxes) - inter)


@pytest.mark.parametrize("tfds_split,split", [("train", "train2017"),
                                              ("validation", "val2017")])
def test_labels_are_classes_of_the_best_iou_object(built, tfds_split, split):
  gt = _gt(split)
  # Contiguous labels in ascending category id: 1 -> 1, 3 -> 2, 8 -> 3.
  label_of = {1: 1, 3: 2, 8: 3}
  examples = list(tfds.as_numpy(built.as_dataset(split=tfds_split, shuffle_files=False)))
  assert examples
  for ex in examples:
    boxes, categories, crowds = gt[ex["image/filename"].decode()]
    ious = _iou(ex["roi"].astype(np.float64), boxes)
    if ex["label"] >= 1:
      best = int(np.argmax(ious))
      assert ious[best] >= 0.5
      assert ex["label"] == label_of[categories[best]]
      assert ex["category_id"] == categories[best]
      np.testing.assert_allclose(ex["iou"], ious[best], atol=1e-4)
    else:
      assert ex["label"] == 0 and ex["category_id"] == 0
      assert ious.max(initial=0.0) < 0.35
      for crowd in crowds:  # never mostly inside a crowd region
        roi = ex["roi"]
        iw = max(0.0, min(roi[2], crowd[2]) - max(roi[0], crowd[0]))
        ih = max(0.0, min(roi[3], crowd[3]) - max(roi[1], crowd[1]))
        assert iw * ih < 0.7 * (roi[2] - roi[0]) * (roi[3] - roi[1])
    assert ex["image/id"] == int(ex["image/filename"].decode().split("/")[1][:-4])


def test_every_category_appears_and_patch_shapes(built):
  examples = list(tfds.as_numpy(built.as_dataset(split="train", shuffle_files=False)))
  assert {int(ex["label"]) for ex in examples} == {0, 1, 2, 3}
  assert examples[0]["hr"].shape == (64, 64, 3) and examples[0]["lr"].shape == (16, 16, 3)


def test_split_config_names_differ_from_defaults():
  crop = builder_lib.roi_crop.CropConfig(context=1.0)
  assert builder_lib.config_name(crop) == "x1.0"
  name = builder_lib.config_name(crop, train_split="trainval35k2014", eval_split="minival2014")
  assert name.startswith("x1.0-") and name != "x1.0"
  with pytest.raises(ValueError, match="unknown COCO split"):
    builder_lib.CocoRoisConfig(crop=crop, train_split="train2018")

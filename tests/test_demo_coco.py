"""The embedded COCO demo dataset: pycocotools reads it, the files match the JSON, the ground
truth scores AP 1.0 against itself, output is deterministic for a seed, foreign folders are
refused, and the pasted pixels are the documented source images.

References are independent of the module: the JSON is read with pycocotools (COCO, COCOeval,
its RLE decoder), images with PIL, the source photos are loaded again from scikit-image and
resized with PIL (faces, coins) or scikit-image (cat) where the module uses the other library.
"""
import dataclasses
import json
import os

import numpy as np
import pytest
import skimage.data
import skimage.transform
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from tinyfaces_tf.data import demo_coco

SPLITS = ("train", "val")
# Crowds twice as often as by default, so a 10-image dataset surely has some.
CONFIG = dataclasses.replace(demo_coco.CocoSceneConfig(), crowd_probability=0.6)
CLEAN = dataclasses.replace(
    demo_coco.CocoSceneConfig(), blur_probabilities=(1.0, 0.0, 0.0), illumination_probability=0.0,
    occlusion_probability=0.0, noise_sigma_range=(0.0, 0.0), colour_jitter=False,
    objects_range=(8, 10), size_range=(24, 64), crowd_probability=0.0)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
  out = tmp_path_factory.mktemp("coco_demo")
  summary = demo_coco.make_coco_demo(out, train_images=6, val_images=4, seed=0, config=CONFIG)
  return out, summary


def _json_path(root, split):
  return os.path.join(root, "annotations", f"instances_{split}2017.json")


def _load(root, split):
  with open(_json_path(root, split)) as f:
    return json.load(f)


def _files(root):
  found = {}
  for folder, _, names in os.walk(root):
    for name in names:
      path = os.path.join(folder, name)
      with open(path, "rb") as f:
        found[os.path.relpath(path, root)] = f.read()
  return found


def _corr(a, b):
  a = np.asarray(a, np.float64).ravel() - np.mean(a)
  b = np.asarray(b, np.float64).ravel() - np.mean(b)
  return float(a @ b / np.sqrt((a @ a) * (b @ b) + 1e-12))


def _pil_resize(gray, w, h):
  image = Image.fromarray(np.asarray(gray, np.float32), mode="F")
  return np.asarray(image.resize((w, h), Image.Resampling.BILINEAR), np.float64)


def test_pycocotools_loads_it_and_images_match_the_json(dataset):
  root, _ = dataset
  image_ids, annotation_ids = [], []
  for split in SPLITS:
    raw = _load(root, split)
    assert {"info", "licenses", "images", "annotations", "categories"} <= set(raw)
    coco = COCO(_json_path(root, split))
    assert len(coco.getImgIds()) == {"train": 6, "val": 4}[split]
    for info in coco.loadImgs(coco.getImgIds()):
      assert info["file_name"] == f"{info['id']:012d}.jpg"
      path = os.path.join(root, f"{split}2017", info["file_name"])
      with Image.open(path) as image:
        assert image.format == "JPEG" and image.mode == "RGB"
        assert image.size == (info["width"], info["height"])
        assert 256 <= image.width <= 320 and 256 <= image.height <= 320
    assert sorted(os.listdir(os.path.join(root, f"{split}2017"))) == sorted(
        i["file_name"] for i in raw["images"])
    image_ids += [i["id"] for i in raw["images"]]
    annotation_ids += [a["id"] for a in raw["annotations"]]
    for a in raw["annotations"]:
      x, y, w, h = a["bbox"]
      assert all(isinstance(v, float) for v in a["bbox"])
      assert a["area"] == pytest.approx(w * h)
      assert a["iscrowd"] in (0, 1)
      if a["iscrowd"] == 0:
        assert a["segmentation"] == [[x, y, x + w, y, x + w, y + h, x, y + h]]
  assert len(set(image_ids)) == len(image_ids)
  assert len(set(annotation_ids)) == len(annotation_ids)
  assert os.path.isfile(os.path.join(root, demo_coco.META_FILE))
  assert not any(n.startswith(".") for n in os.listdir(root))  # no marker left behind.


def test_crowd_regions_are_uncompressed_rle_with_their_mask_box(dataset):
  root, _ = dataset
  crowds = 0
  for split in SPLITS:
    coco = COCO(_json_path(root, split))
    for a in coco.loadAnns(coco.getAnnIds(iscrowd=True)):
      crowds += 1
      info = coco.loadImgs(a["image_id"])[0]
      segmentation = a["segmentation"]
      assert isinstance(segmentation["counts"], list)
      assert segmentation["size"] == [info["height"], info["width"]]
      assert sum(segmentation["counts"]) == info["height"] * info["width"]
      rle = mask_utils.frPyObjects(segmentation, info["height"], info["width"])
      mask = mask_utils.decode(rle)
      assert mask.sum() > 0
      np.testing.assert_allclose(mask_utils.toBbox(rle), a["bbox"])
      np.testing.assert_array_equal(coco.annToMask(a), mask)
      # Members are not annotated one by one: no other box reaches into the crowd box.
      x, y, w, h = a["bbox"]
      for other in coco.loadAnns(coco.getAnnIds(imgIds=a["image_id"], iscrowd=False)):
        ox, oy, ow, oh = other["bbox"]
        assert ox >= x + w or x >= ox + ow or oy >= y + h or y >= oy + oh
  assert crowds >= 1


def test_ground_truth_as_detections_scores_ap_one(dataset):
  root, _ = dataset
  gt = COCO(_json_path(root, "val"))
  detections = [{"image_id": a["image_id"], "category_id": a["category_id"],
                 "bbox": a["bbox"], "score": 1.0}
                for a in gt.loadAnns(gt.getAnnIds(iscrowd=False))]
  evaluation = COCOeval(gt, gt.loadRes(detections), "bbox")
  evaluation.evaluate()
  evaluation.accumulate()
  evaluation.summarize()
  assert evaluation.stats[0] == pytest.approx(1.0)
  assert evaluation.stats[1] == pytest.approx(1.0)


def test_categories_are_non_contiguous_and_boxes_fit(dataset):
  root, summary = dataset
  for split in SPLITS:
    raw = _load(root, split)
    ids = sorted(c["id"] for c in raw["categories"])
    assert len(ids) >= 3 and ids != list(range(1, len(ids) + 1))
    assert {c["name"] for c in raw["categories"]} == {"face", "coin", "cat"}
    assert all(c["supercategory"] for c in raw["categories"])
    sizes = {i["id"]: (i["width"], i["height"]) for i in raw["images"]}
    used = {a["category_id"] for a in raw["annotations"] if not a["iscrowd"]}
    assert used == set(ids)
    for a in raw["annotations"]:
      x, y, w, h = a["bbox"]
      width, height = sizes[a["image_id"]]
      assert x >= 0 and y >= 0 and x + w <= width and y + h <= height and min(w, h) >= 1
      if not a["iscrowd"]:
        assert 8 <= max(w, h) <= 64
  # Train and val draw from disjoint face, non-face and coin instances.
  for key in ("lfw_face_ids", "lfw_nonface_ids", "coin_ids"):
    assert not set(summary[key]["train"]) & set(summary[key]["val"])
  # The adapter names labels 0..K: background, then the categories in ascending id.
  from tinyfaces_tf.data import adapters  # pylint: disable=g-import-not-at-top
  by_id = sorted(_load(root, "val")["categories"], key=lambda c: c["id"])
  assert adapters.CocoAdapter(str(root)).class_names() == (
      ["background"] + [c["name"] for c in by_id])


def test_same_seed_gives_identical_bytes_and_another_seed_differs(tmp_path):
  first, second, other = tmp_path / "a", tmp_path / "b", tmp_path / "c"
  for root, seed in ((first, 3), (second, 3), (other, 4)):
    demo_coco.make_coco_demo(root, train_images=2, val_images=2, seed=seed)
  a, b, c = _files(first), _files(second), _files(other)
  assert a == b
  assert set(a) == set(c)
  assert all(a[name] != c[name] for name in a if name.endswith(".jpg"))
  # A second run replaces the first: no stale images.
  demo_coco.make_coco_demo(first, train_images=1, val_images=1, seed=3)
  assert len(os.listdir(first / "train2017")) == 1 and len(os.listdir(first / "val2017")) == 1


def test_foreign_annotations_folder_is_refused_and_left_alone(tmp_path):
  foreign = tmp_path / "annotations" / "instances_train2017.json"
  foreign.parent.mkdir()
  foreign.write_text('{"mine": true}')
  with pytest.raises(FileExistsError):
    demo_coco.make_coco_demo(tmp_path, train_images=1, val_images=1)
  assert sorted(os.listdir(tmp_path)) == ["annotations"]
  assert os.listdir(tmp_path / "annotations") == ["instances_train2017.json"]
  assert foreign.read_text() == '{"mine": true}'


def test_written_images_are_the_rendered_scenes(dataset):
  root, _ = dataset
  sources = demo_coco.split_sources(0)
  raw = _load(root, "val")
  for index, info in enumerate(sorted(raw["images"], key=lambda i: i["id"])):
    scene = demo_coco.render_coco_scene(np.random.default_rng([0, 1, index]), sources["val"],
                                        CONFIG)
    with Image.open(os.path.join(root, "val2017", info["file_name"])) as image:
      written = np.asarray(image, np.float64)
    assert written.shape == scene.image.shape
    assert np.mean(np.abs(written - scene.image)) < 2.0  # JPEG quality 95.
    boxes = sorted(a["bbox"] for a in raw["annotations"] if a["image_id"] == info["id"] and
                   not a["iscrowd"])
    assert boxes == sorted([float(v) for v in o.visible_xywh] for o in scene.objects)


def test_pasted_objects_are_the_source_images():
  sources = demo_coco.split_sources(0)["train"]
  lfw = skimage.data.lfw_subset()
  coins = skimage.data.coins().astype(np.float64)
  chelsea = skimage.data.chelsea().astype(np.float64)
  checked = {}
  for index in range(3):
    scene = demo_coco.render_coco_scene(np.random.default_rng([11, index]), sources, CLEAN)
    image = scene.image.astype(np.float64)
    outside = np.ones(image.shape[:2], bool)
    for patch in scene.objects + scene.distractors:
      x, y, w, h = patch.box_xywh
      outside[y:y + h, x:x + w] = False
    np.testing.assert_array_equal(scene.image[outside], scene.background[outside])
    for obj in scene.objects:
      x, y, w, h = obj.box_xywh
      assert obj.visible_xywh == obj.box_xywh  # no occlusion in CLEAN.
      region = image[y:y + h, x:x + w]
      assert np.mean(np.abs(region - scene.background[y:y + h, x:x + w])) > 8.0
      if obj.category_id == demo_coco.FACE_ID:
        assert obj.source_index in sources.face_ids
        reference = _pil_resize(lfw[obj.source_index], w, h)
      elif obj.category_id == demo_coco.COIN_ID:
        assert obj.source_index in sources.coin_ids
        x0, y0, x1, y1 = (int(v) for v in obj.source_box)
        reference = _pil_resize(coins[y0:y1, x0:x1], w, h)
      else:
        x0, y0, x1, y1 = (int(round(v)) for v in obj.source_box)
        crop = chelsea[y0:y1, x0:x1].mean(axis=-1)
        reference = skimage.transform.resize(crop, (h, w), anti_aliasing=True)
      if obj.flipped:
        reference = reference[:, ::-1]
      # Compare inside the central ellipse, where every mask is opaque.
      yy, xx = np.mgrid[0:h, 0:w]
      core = ((yy + 0.5 - h / 2) / (h / 2)) ** 2 + ((xx + 0.5 - w / 2) / (w / 2)) ** 2 < 0.5
      correlation = _corr(region.mean(axis=-1)[core], reference[core])
      assert correlation > 0.9, (obj, correlation)
      checked[obj.category_id] = checked.get(obj.category_id, 0) + 1
  assert set(checked) == {demo_coco.FACE_ID, demo_coco.COIN_ID, demo_coco.CAT_ID}


def test_coins_are_single_coins_of_the_photo():
  photo = skimage.data.coins().astype(np.float64)
  coins = demo_coco.coin_sources()
  assert len(coins) >= 15
  boxes = [c.box for c in coins]
  for i, (x0, y0, x1, y1) in enumerate(boxes):
    assert 0 < x0 < x1 < photo.shape[1] and 0 < y0 < y1 < photo.shape[0]
    assert 0.8 < (x1 - x0) / (y1 - y0) < 1.25  # round
    # A disc fills about pi / 4 of its box and the coin is brighter than the backdrop ring.
    fill = coins[i].mask.mean()
    assert 0.7 < fill < 0.88
    ring = photo[max(y0 - 4, 0):y1 + 4, max(x0 - 4, 0):x1 + 4].copy()
    ring[4:-4, 4:-4] = np.nan
    assert photo[y0:y1, x0:x1][coins[i].mask].mean() > np.nanmean(ring) + 30
    for j in range(i):  # no two boxes overlap: single coins.
      a = boxes[j]
      assert a[2] <= x0 or x1 <= a[0] or a[3] <= y0 or y1 <= a[1]

"""wider_face_rois builder on dummy_data/ (WIDER layout: 3 train images, 2 val images).

dummy_data: train has 4 valid faces (one more marked invalid) in 2 images plus a face-less image
(the all-zero annotation line), no proposal files; val has 3 faces in 2 images and WIDER-format
proposal files (dummy_data/proposals/val/<event>/<stem>.txt, 3 boxes per image).
"""
import importlib.util

import numpy as np
import pytest
import tensorflow_datasets as tfds

from tinyfaces_tf.datasets.wider_face_rois import wider_face_rois_dataset_builder as builder_lib

DUMMY = builder_lib.Builder.code_path.parent / "dummy_data"
# tfds.testing imports `dill` (a TFDS test-only dependency, not pulled in by tensorflow-datasets).
HAS_TFDS_TESTING = importlib.util.find_spec("dill") is not None
HAS_BEAM = importlib.util.find_spec("apache_beam") is not None

if HAS_TFDS_TESTING:

  class WiderFaceRoisTest(tfds.testing.DatasetBuilderTestCase):
    """TFDS's standard checks: registration, generation, split sizes, reload, no overlap."""
    DATASET_CLASS = builder_lib.Builder
    BUILDER_CONFIG_NAMES_TO_TEST = ["x2.0"]  # configs differ only in the crop; keep it fast
    # Worked out from dummy_data and RoiSamplerConfig's defaults (1 jittered positive per valid face,
    # ceil(1.5 x positives) backgrounds, at least 2 per image, ignored RoIs not stored):
    # train: 2 faces -> 2 + 3; 1 valid face (+1 invalid) -> 1 + 2; no face -> 0 + 2; = 10.
    # val: 2 face proposals + 1 jittered -> 3 + 5 (1 background proposal + 4 random);
    #      2 face proposals + 2 jittered -> 4 + 6 (1 background proposal + 5 random); = 18.
    SPLITS = {"train": 10, "validation": 18}

else:

  def test_tfds_dataset_builder_test_case():
    pytest.skip("tfds.testing.DatasetBuilderTestCase needs `dill`; install the [test] extra")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
  """The x2.0 dataset built once for the property tests of this module."""
  return _build(tmp_path_factory.mktemp("wider_face_rois"), "x2.0")


def _build(tmp_path, config, manual_dir=DUMMY, **kwargs):
  builder = builder_lib.Builder(config=config, data_dir=str(tmp_path / "data"),
                                beam=kwargs.pop("beam", None), **kwargs.pop("builder", {}))
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir=str(manual_dir), **kwargs))
  return builder


def _examples(builder, split):
  return list(tfds.as_numpy(builder.as_dataset(split=split, shuffle_files=False)))


def _gt(split):
  """{name: (valid faces xyxy, all faces xyxy)} parsed here with NumPy, independently of
  tinyfaces_tf.data.wider_face."""
  lines = (DUMMY / "wider_face_split" / f"wider_face_{split}_bbx_gt.txt").read_text().split("\n")
  out, i = {}, 0
  while i < len(lines) and lines[i].strip():
    count = int(lines[i + 1])
    rows = np.array([[float(v) for v in line.split()] for line in lines[i + 2:i + 2 + count]])
    rows = rows.reshape(-1, 10)
    xyxy = np.concatenate([rows[:, :2], rows[:, :2] + rows[:, 2:4]], axis=1)
    out[lines[i].strip()] = (xyxy[rows[:, 7] == 0], xyxy)  # column 8 is WIDER's `invalid`
    i += 2 + max(count, 1)
  return out


def _np_iou(box, boxes):
  if len(boxes) == 0:
    return np.zeros(0)
  x1 = np.maximum(box[0], boxes[:, 0])
  y1 = np.maximum(box[1], boxes[:, 1])
  x2 = np.minimum(box[2], boxes[:, 2])
  y2 = np.minimum(box[3], boxes[:, 3])
  inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
  area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
  return inter / (area(box) + area(boxes) - inter)


def test_build_is_deterministic_and_contexts_share_rois(built, tmp_path):
  first = _examples(built, "validation")
  again = _examples(_build(tmp_path / "b", "x2.0"), "validation")
  wide = _examples(_build(tmp_path / "c", "x4.0"), "validation")
  assert len(first) == len(again) == len(wide) > 0
  for a, b, c in zip(first, again, wide):
    for key in a:
      np.testing.assert_array_equal(a[key], b[key])
    # Seeds come from the image name only: same RoIs and labels whatever the context ...
    np.testing.assert_array_equal(a["roi"], c["roi"])
    assert a["label"] == c["label"]
  # ... but a 4x window is a different crop than a 2x one.
  assert any(not np.array_equal(a["hr"], c["hr"]) for a, c in zip(first, wide))


@pytest.mark.skipif(not HAS_BEAM, reason="needs apache-beam (the [beam] extra)")
def test_beam_workers_build_the_in_process_examples(tmp_path):
  """Two DirectRunner worker processes give every example of the in-process build, in the same
  order (keys and per-image seeds do not depend on where an image is processed); a broken image
  is skipped and listed the same way."""
  import shutil  # pylint: disable=g-import-not-at-top
  import apache_beam as beam  # pylint: disable=g-import-not-at-top
  root = tmp_path / "wider"
  shutil.copytree(DUMMY, root)
  broken = root / "WIDER_train" / "images" / "0--Parade" / "0_Parade_marchingband_1_5.jpg"
  broken.write_bytes(broken.read_bytes()[:300])
  options = beam.options.pipeline_options.PipelineOptions(
      ["--direct_num_workers=2", "--direct_running_mode=multi_processing"])
  builds = {}
  for name, kwargs in {"local": {"beam": False},
                       "beam": {"beam": True, "beam_options": options}}.items():
    reports = tmp_path / f"reports-{name}"
    builder = _build(tmp_path / name, "x2.0", root, builder={"skipped_dir": str(reports)},
                     **kwargs)
    builds[name] = ({split: _examples(builder, split) for split in ("train", "validation")},
                    (reports / "wider_face_rois-x2.0-train-skipped_images.txt").read_text())
  (local, local_report), (parallel, parallel_report) = builds["local"], builds["beam"]
  assert parallel_report == local_report and local_report.startswith(f"{broken}\t")
  for split in ("train", "validation"):
    assert len(parallel[split]) == len(local[split]) > 0
    for a, b in zip(local[split], parallel[split]):
      for key in a:
        np.testing.assert_array_equal(a[key], b[key])


@pytest.mark.parametrize("split,wider_split", [("train", "train"), ("validation", "val")])
def test_labels_and_ious_follow_the_spec_thresholds(built, split, wider_split):
  gt = _gt(wider_split)
  examples = _examples(built, split)
  assert {ex["image/filename"].decode() for ex in examples} <= set(gt)
  for ex in examples:
    valid, every = gt[ex["image/filename"].decode()]
    best_valid = _np_iou(ex["roi"], valid).max(initial=0.0)
    best_any = _np_iou(ex["roi"], every).max(initial=0.0)
    np.testing.assert_allclose(ex["iou"], best_valid, atol=1e-4)
    # SPEC 5: IoU >= 0.5 with a valid face -> face; < 0.35 with every face (invalid ones too)
    # -> background; in between ignored, and the builder does not store ignored RoIs.
    assert ex["label"] in (0, 1)
    expected = 1 if best_valid >= 0.5 else (0 if best_any < 0.35 else -1)
    assert ex["label"] == expected, (ex["image/filename"], ex["roi"], best_valid, best_any)
    assert ex["lr"].shape == (16, 16, 3) and ex["hr"].shape == (64, 64, 3)
  labels = np.array([ex["label"] for ex in examples])
  assert (labels == 1).any() and (labels == 0).any()


def test_val_proposal_files_are_used(built):
  # Every proposal of dummy_data/proposals/val is labelled face or background (none falls in
  # the ignored band; worked out when the files were written), so each must be a stored RoI.
  examples = _examples(built, "validation")
  for path in sorted((DUMMY / "proposals" / "val").glob("*/*.txt")):
    lines = path.read_text().split("\n")
    xywh = np.array([[float(v) for v in line.split()[:4]]
                     for line in lines[2:2 + int(lines[1])]])
    name = f"{path.parent.name}/{path.stem}.jpg"
    rois = np.array([ex["roi"] for ex in examples if ex["image/filename"].decode() == name])
    for box in np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1):
      assert np.abs(rois - box).max(axis=1).min() < 1e-4, (name, box)


def test_patches_show_the_context_window(built):
  # Reference: PIL's area-aware bilinear resize of the window (RoI x2 about its centre) cut from
  # the same JPEG, for windows inside the image; and PIL's bicubic x4 down-sampling of hr.
  from PIL import Image  # pylint: disable=g-import-not-at-top
  examples = _examples(built, "train")
  checked = 0
  for ex in examples:
    x1, y1, x2, y2 = ex["roi"]
    cx, cy, w, h = (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1
    window = (cx - w, cy - h, cx + w, cy + h)
    image = Image.open(DUMMY / "WIDER_train" / "images" / ex["image/filename"].decode())
    image = image.convert("RGB")
    if min(window[:2]) < 0 or window[2] > image.width or window[3] > image.height:
      continue
    expected = np.asarray(image.resize((64, 64), Image.BILINEAR, box=window), np.float32)
    assert np.abs(ex["hr"].astype(np.float32) - expected).mean() < 8.0
    lr = np.asarray(Image.fromarray(ex["hr"]).resize((16, 16), Image.BICUBIC), np.float32)
    assert np.abs(ex["lr"].astype(np.float32) - lr).mean() < 3.0
    checked += 1
  assert checked >= 3


def test_missing_manual_files_name_the_file(tmp_path):
  builder = builder_lib.Builder(config="x2.0", data_dir=str(tmp_path / "data"))
  with pytest.raises(FileNotFoundError, match="wider_face_train_bbx_gt.txt"):
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
        manual_dir=str(tmp_path)))


if __name__ == "__main__":
  tfds.testing.test_main()

"""Throughput of RoI crops (crop_rois_with_context) and training-RoI sampling.

  python benchmarks/bench_rois.py                                   # synthetic 640x480, 200 RoIs
  python benchmarks/bench_rois.py --wider_dir=WIDER_ROOT --split=val  # real images + gt boxes

Reports RoIs/s and images/s for: the crop alone (tf.function, what detection runs), the crop
called eagerly (what the TFDS builder runs), and sample_training_rois (NumPy + IoU).
"""
import time

from absl import app
from absl import flags
import numpy as np
import tensorflow as tf

from tinyfaces_tf import roi_crop
from tinyfaces_tf.data import roi_sampler

_WIDER_DIR = flags.DEFINE_string("wider_dir", None, "WIDER FACE (or demo) root; unset: synthetic.")
_SPLIT = flags.DEFINE_string("split", "val", "WIDER split with --wider_dir.")
_IMAGES = flags.DEFINE_integer("images", 20, "Images timed.")
_ROIS = flags.DEFINE_integer("rois", 200, "RoIs per image for the crop timing.")
_CONTEXT = flags.DEFINE_float("context", 2.0, "Context factor m.")
_ANTIALIAS = flags.DEFINE_boolean("antialias", True, "Pyramid anti-aliasing of large windows.")


def synthetic_images(n, seed=0):
  """(image uint8 [480, 640, 3], gt xyxy, valid) with 5-40 faces of 8-120 px."""
  rng = np.random.default_rng(seed)
  for _ in range(n):
    image = rng.integers(0, 256, (480, 640, 3), np.uint8)
    count = int(rng.integers(5, 41))
    size = np.exp(rng.uniform(np.log(8), np.log(120), count))
    x = rng.uniform(0, 640 - size)
    y = rng.uniform(0, 480 - size * 1.2)
    gt = np.stack([x, y, x + size, y + 1.2 * size], axis=1).astype(np.float32)
    yield image, gt, rng.random(count) > 0.05


def wider_images(root, split, n):
  from tinyfaces_tf.data import wider_face  # pylint: disable=g-import-not-at-top
  dataset = wider_face.WiderFace(root)
  for i, annotation in enumerate(dataset.annotations(split)):
    if i >= n:
      return
    data = tf.io.read_file(dataset.image_path(split, annotation.name))
    image = tf.io.decode_image(data, channels=3, expand_animations=False).numpy()
    yield image, np.asarray(annotation.boxes_xyxy, np.float32), np.asarray(annotation.valid)


def proposals_for(shape, gt, count, rng):
  """`count` boxes: jittered gt boxes (1 in 4) and random windows, like a detector's RoIs."""
  height, width = shape[:2]
  size = np.exp(rng.uniform(np.log(8), np.log(min(height, width) / 2), count))
  x = rng.uniform(0, width - size)
  y = rng.uniform(0, height - size)
  boxes = np.stack([x, y, x + size, y + size], axis=1)
  if len(gt):
    near = rng.random(count) < 0.25
    picked = gt[rng.integers(0, len(gt), near.sum())]
    boxes[near] = picked + rng.normal(0, 2, picked.shape)
  return boxes.astype(np.float32)


def main(argv):
  del argv
  if _WIDER_DIR.value:
    source, images = f"{_WIDER_DIR.value}:{_SPLIT.value}", list(
        wider_images(_WIDER_DIR.value, _SPLIT.value, _IMAGES.value))
  else:
    source, images = "synthetic 640x480", list(synthetic_images(_IMAGES.value))
  rng = np.random.default_rng(0)
  proposals = [proposals_for(im.shape, gt, _ROIS.value, rng) for im, gt, _ in images]
  crop = roi_crop.CropConfig(context=_CONTEXT.value, antialias=_ANTIALIAS.value)
  sampler = roi_sampler.RoiSamplerConfig()
  crop_fn = roi_crop.compiled_crop(crop)
  crop_fn(tf.constant(images[0][0]), tf.constant(proposals[0]))  # trace

  def timed(name, fn, n_rois):
    start = time.perf_counter()
    for i, (image, gt, valid) in enumerate(images):
      fn(i, image, gt, valid)
    seconds = time.perf_counter() - start
    print(f"{name}: {n_rois / seconds:.0f} RoIs/s, {len(images) / seconds:.2f} images/s "
          f"({len(images)} images, {n_rois} RoIs, {seconds:.2f} s; {source}, m={crop.context}, "
          f"antialias={crop.antialias})")

  def graph_crop(i, image, *_):
    hr, lr = crop_fn(tf.constant(image), tf.constant(proposals[i]))
    lr.numpy()
    del hr

  def eager_crop(i, image, *_):
    roi_crop.crop_rois_with_context(image, proposals[i], crop)[1].numpy()

  sampled = []

  def sample(i, image, gt, valid):
    sampled.append(roi_sampler.sample_training_rois(image.shape, gt, valid, proposals[i], sampler, i))

  total = sum(len(p) for p in proposals)
  timed("crop_rois_with_context (tf.function)", graph_crop, total)
  timed("crop_rois_with_context (eager)", eager_crop, total)
  timed("sample_training_rois", sample, total)
  made = sum(len(s["rois"]) for s in sampled)

  def make(i, image, gt, valid):
    roi_sampler.make_training_examples(image, gt, valid, proposals[i], sampler, crop, i)

  roi_sampler.make_training_examples(images[0][0], images[0][1], images[0][2], proposals[0],
                                     sampler, crop, 0)  # trace the compiled crop
  timed(f"make_training_examples ({made} training RoIs made)", make, made)


if __name__ == "__main__":
  app.run(main)

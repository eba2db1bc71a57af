"""Throughput of the training input pipeline (batches/s and examples/s).

  python benchmarks/bench_pipeline.py                        # synthetic in-memory path only
  python benchmarks/bench_pipeline.py --data_dir=DATA_DIR    # plus a built wider_face_rois split

The synthetic path feeds PNG-encoded 16x16 / 64x64 patches (what TFDS stores) through the same
filter / resample / decode / batch chain, so it measures the pipeline without disk I/O.
"""
import time

from absl import app
from absl import flags
import numpy as np
import tensorflow as tf

from tinyfaces_tf.data import pipeline

_DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data_dir holding a built wider_face_rois.")
_CONFIG = flags.DEFINE_string("config", "x2.0", "wider_face_rois BuilderConfig.")
_SPLIT = flags.DEFINE_string("split", "train", "Split to read.")
_BATCH = flags.DEFINE_integer("batch_size", 32, "Global batch size.")
_BATCHES = flags.DEFINE_integer("batches", 200, "Batches timed (after the warm-up).")
_WARMUP = flags.DEFINE_integer("warmup", 20, "Batches skipped before timing (buffers filling).")
_SYNTHETIC_N = flags.DEFINE_integer("synthetic_examples", 2000, "Distinct synthetic examples.")


def synthetic_source(n, seed=0):
  """n PNG-encoded random patches, 1 face in 3, a few ignored (label -1)."""
  rng = np.random.default_rng(seed)
  lr = rng.integers(0, 256, (n, 16, 16, 3), dtype=np.uint8)
  hr = rng.integers(0, 256, (n, 64, 64, 3), dtype=np.uint8)
  labels = rng.choice([1, 0, 0, -1], size=n, p=[0.3, 0.3, 0.3, 0.1]).astype(np.int64)
  return tf.data.Dataset.from_tensor_slices({
      "lr": tf.stack([tf.io.encode_png(x) for x in lr]),
      "hr": tf.stack([tf.io.encode_png(x) for x in hr]),
      "label": labels,
      "box_target": rng.normal(size=(n, 4)).astype(np.float32),
  }).cache()


def time_batches(dataset, batches, warmup):
  """Seconds for `batches` batches after `warmup` untimed ones."""
  iterator = iter(dataset)
  for _ in range(warmup):
    next(iterator)
  start = time.perf_counter()
  for _ in range(batches):
    batch = next(iterator)
  batch["lr"].numpy()  # make sure the last batch is materialised
  return time.perf_counter() - start


def report(name, dataset, batch_size):
  seconds = time_batches(dataset, _BATCHES.value, _WARMUP.value)
  rate = _BATCHES.value / seconds
  print(f"{name}: {rate:.1f} batches/s, {rate * batch_size:.0f} examples/s "
        f"(batch {batch_size}, {_BATCHES.value} batches in {seconds:.2f} s)")


def main(argv):
  del argv
  config = pipeline.PipelineConfig()
  report("synthetic", pipeline.make_training_dataset(
      synthetic_source(_SYNTHETIC_N.value), config, _BATCH.value), _BATCH.value)
  if _DATA_DIR.value:
    source = pipeline.load_split(_DATA_DIR.value, _SPLIT.value, _CONFIG.value)
    report(f"wider_face_rois/{_CONFIG.value}:{_SPLIT.value}",
           pipeline.make_training_dataset(source, config, _BATCH.value), _BATCH.value)


if __name__ == "__main__":
  app.run(main)

"""Throughput of the training input pipeline (batches/s and RoIs/s), against what the train
step consumes.

  python benchmarks/pipeline.py                        # synthetic in-memory path only
  python benchmarks/pipeline.py --data_dir=DATA_DIR    # plus a built wider_face_rois split
  python benchmarks/pipeline.py --train_step_json=benchmarks/results/train_step.json
  python benchmarks/pipeline.py --encoded=false        # the serial part's rate (no PNG decode)

The synthetic path feeds PNG-encoded LR / HR patches (what TFDS stores) of each config's patch
sizes through the same filter / resample / decode / batch chain, so it measures the pipeline
without disk I/O. With --train_step_json (benchmarks/train_step.py's output, same machine) every
timed step configuration gets the ratio pipeline RoIs/s / step RoIs/s (target >= 3).
"""
import json
import time

from absl import app
from absl import flags
import numpy as np
import tensorflow as tf

from tinyfaces_tf import atomic
from tinyfaces_tf.data import pipeline

import common  # benchmarks/, first on sys.path

_DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data_dir holding a built wider_face_rois.")
_CONFIG = flags.DEFINE_string("config", "x2.0", "wider_face_rois BuilderConfig.")
_SPLIT = flags.DEFINE_string("split", "train", "Split to read.")
_BATCH = flags.DEFINE_integer("batch_size", 32, "Global batch size.")
_BATCHES = flags.DEFINE_integer("batches", 200, "Batches timed (after the warm-up).")
_WARMUP = flags.DEFINE_integer("warmup", 20, "Batches skipped before timing (buffers filling).")
_SYNTHETIC_N = flags.DEFINE_integer("synthetic_examples", 2000, "Distinct synthetic examples.")
_ENCODED = flags.DEFINE_bool("encoded", True, "Feed PNG-encoded patches (what TFDS stores). "
                             "False: decoded uint8 patches, no PNG decode: the rate of the "
                             "pipeline's serial part, which a host with many cores approaches.")
_CONFIGS = flags.DEFINE_list("configs", ["journal"], "Configs whose patch sizes are fed "
                             "(default: those in --train_step_json, else journal).")
_TRAIN_STEP_JSON = flags.DEFINE_string("train_step_json", None,
                                       "benchmarks/train_step.py's JSON: report the ratio.")
_JSON = flags.DEFINE_string("json", None, "Also write the figures here.")


def synthetic_source(n, crop, seed=0, encoded=True):
  """n random patches of ``crop``'s sizes (PNG-encoded unless ``encoded`` is False), 1 face in
  3, a few ignored (label -1)."""
  rng = np.random.default_rng(seed)
  lr = rng.integers(0, 256, (n, crop.lr_size, crop.lr_size, 3), dtype=np.uint8)
  hr = rng.integers(0, 256, (n, crop.hr_size, crop.hr_size, 3), dtype=np.uint8)
  labels = rng.choice([1, 0, 0, -1], size=n, p=[0.3, 0.3, 0.3, 0.1]).astype(np.int64)
  return tf.data.Dataset.from_tensor_slices({
      "lr": tf.stack([tf.io.encode_png(x) for x in lr]) if encoded else lr,
      "hr": tf.stack([tf.io.encode_png(x) for x in hr]) if encoded else hr,
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


def rois_per_second(name, dataset, batch_size):
  seconds = time_batches(dataset, _BATCHES.value, _WARMUP.value)
  rate = _BATCHES.value / seconds
  print(f"{name}: {rate:.1f} batches/s, {rate * batch_size:.0f} RoIs/s "
        f"(batch {batch_size}, {_BATCHES.value} batches in {seconds:.2f} s)", flush=True)
  return rate * batch_size


def main(argv):
  del argv
  config = pipeline.PipelineConfig()
  steps = []
  if _TRAIN_STEP_JSON.value:
    with open(_TRAIN_STEP_JSON.value) as f:
      steps = [c for c in json.load(f)["cases"] if "rois_per_s" in c]
  names = sorted({c["config"] for c in steps}) or _CONFIGS.value
  report = {"machine": common.machine(), "batch": _BATCH.value, "encoded": _ENCODED.value,
            "synthetic": {}, "ratios": []}
  for name in names:
    crop = common.get_config(name).crop
    report["synthetic"][name] = rois_per_second(
        f"synthetic {name} ({crop.lr_size}/{crop.hr_size} px"
        f"{'' if _ENCODED.value else ', decoded'})",
        pipeline.make_training_dataset(synthetic_source(_SYNTHETIC_N.value, crop,
                                                        encoded=_ENCODED.value), config,
                                       _BATCH.value, crop=crop), _BATCH.value)
  if _DATA_DIR.value:
    source = pipeline.load_split(_DATA_DIR.value, _SPLIT.value, _CONFIG.value)
    report["wider_face_rois"] = rois_per_second(
        f"wider_face_rois/{_CONFIG.value}:{_SPLIT.value}",
        pipeline.make_training_dataset(source, config, _BATCH.value), _BATCH.value)
  for c in steps:
    supply = report["synthetic"][c["config"]]
    ratio = supply / c["rois_per_s"]
    report["ratios"].append({**{k: c.get(k) for k in ("config", "policy", "jit", "batch",
                                                     "shared_generator_forward")},
                             "step_rois_per_s": c["rois_per_s"], "pipeline_rois_per_s": supply,
                             "ratio": round(ratio, 1)})
    print(f"{c['config']} {c['policy']} jit={c['jit']}: step {c['rois_per_s']} RoIs/s, "
          f"pipeline {supply:.0f} RoIs/s: {ratio:.1f}x")
  if _JSON.value:
    atomic.write_json(_JSON.value, report)


if __name__ == "__main__":
  app.run(main)

"""Scaling on this machine: the RoI build with 1 and 2 Beam workers, and the train step on one
device, two logical devices (MirroredStrategy, one process) and two workers
(MultiWorkerMirroredStrategy, two processes on 127.0.0.1), all in one run, as ratios.

  python benchmarks/scale_out.py                      # both parts, demo sizes
  python benchmarks/scale_out.py --part=train --steps=40 --config=demo
  python benchmarks/scale_out.py --json=benchmarks/results/scale_out.json

RoI build: a demo dataset of --images train images (written once into --work_dir), the
--proposer run inside the build on every image (MTCNN: the per-image work a real build spreads),
built in-process (no Beam), then with the DirectRunner in multi_processing mode with 1 and 2
workers. Wall time includes Beam's start-up (worker processes importing TensorFlow, 15-20 s
here), which a long build amortises; the "marginal" rate subtracts the wall time of the same
build on a 4-image dataset.

Train: the config's GAN step on synthetic batches of the global batch size, median and spread of
the per-step time after --warmup steps, RoIs/s and achieved FLOP/s from tinyfaces_tf.flops.
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags

from tinyfaces_tf import atomic

_PART = flags.DEFINE_enum("part", "all", ["all", "rois", "train"], "What to measure.")
_IMAGES = flags.DEFINE_integer("images", 400, "RoI build: demo train images.")
_PROPOSER = flags.DEFINE_string("proposer", "mtcnn", "RoI build: the proposer run in the build "
                                "on every image (the per-image work that Beam spreads).")
_WORK_DIR = flags.DEFINE_string("work_dir", None, "Where the demo data and builds go "
                                "(default: a temporary directory, removed).")
_CONFIG = flags.DEFINE_string("config", "demo", "Train: the preset timed.")
_BATCH = flags.DEFINE_integer("batch_size", 32, "Train: global batch.")
_STEPS = flags.DEFINE_integer("steps", 30, "Train: timed steps.")
_WARMUP = flags.DEFINE_integer("warmup", 5, "Train: untimed steps first.")
_ROWS = flags.DEFINE_list("rows", None, "Train: only these rows (by number, 1-5; default all).")
_JSON = flags.DEFINE_string("json", None, "Also write the figures here.")
_WORKER = flags.DEFINE_enum("worker", None, ["single", "mirrored", "multiworker"],
                            "Internal: run one training process of this kind.")
_INTER = flags.DEFINE_integer("inter_op_threads", 0, "Internal: inter-op threads (0: --threads).")
_THREADS = flags.DEFINE_integer("threads", 0, "Internal: TF intra- and inter-op threads of a "
                                "training process (0: TF's default, every core).")

BEAM_RUNS = {"in-process": None, "beam 1 worker": 1, "beam 2 workers": 2}


# RoI build ----------------------------------------------------------------------------------

def _build_rois(root, data_dir, workers):
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from tinyfaces_tf import config as config_lib  # pylint: disable=g-import-not-at-top
  from tinyfaces_tf.data import adapters  # pylint: disable=g-import-not-at-top
  cfg = config_lib.get_preset("demo")
  builder = adapters.get_adapter("wider_face", root).roi_builder(
      cfg.crop, cfg.sampler, data_dir, beam=workers is not None, proposer=_PROPOSER.value)
  options = None
  if workers is not None:
    import apache_beam as beam  # pylint: disable=g-import-not-at-top
    options = beam.options.pipeline_options.PipelineOptions(
        [f"--direct_num_workers={workers}", "--direct_running_mode=multi_processing"])
  start = time.perf_counter()
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir=root, beam_options=options))
  seconds = time.perf_counter() - start
  return sum(info.num_examples for info in builder.info.splits.values()), seconds


def measure_rois(work_dir):
  from tinyfaces_tf.data import demo  # pylint: disable=g-import-not-at-top
  big, small = os.path.join(work_dir, "demo"), os.path.join(work_dir, "demo_small")
  if not os.path.exists(os.path.join(big, "demo_info.json")):
    demo.make_demo_dataset(big, train_images=_IMAGES.value, val_images=_IMAGES.value // 4,
                           test_images=0)
  if not os.path.exists(os.path.join(small, "demo_info.json")):
    demo.make_demo_dataset(small, train_images=4, val_images=1, test_images=0)
  rows = {}
  for name, workers in BEAM_RUNS.items():
    rois, seconds = _build_rois(big, os.path.join(work_dir, f"tfds-{len(rows)}"), workers)
    _, overhead = _build_rois(small, os.path.join(work_dir, f"tfds-small-{len(rows)}"), workers)
    rows[name] = {"rois": rois, "seconds": round(seconds, 2),
                  "rois_per_s": round(rois / seconds, 1),
                  "startup_s": round(overhead, 2),
                  "marginal_rois_per_s": round(rois / max(seconds - overhead, 1e-6), 1)}
  base = rows["in-process"]
  for row in rows.values():
    row["ratio"] = round(row["rois_per_s"] / base["rois_per_s"], 2)
    row["marginal_ratio"] = round(row["marginal_rois_per_s"] / base["marginal_rois_per_s"], 2)
  two, one = rows["beam 2 workers"], rows["beam 1 worker"]
  rows["2 vs 1 beam workers"] = {"ratio": round(two["rois_per_s"] / one["rois_per_s"], 2),
                                 "marginal_ratio": round(
                                     two["marginal_rois_per_s"] / one["marginal_rois_per_s"], 2)}
  return rows


# Train step ---------------------------------------------------------------------------------

def train_worker(kind):
  """One training process: prints a JSON line with its per-step times."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  if _THREADS.value:
    tf.config.threading.set_intra_op_parallelism_threads(_THREADS.value)
    tf.config.threading.set_inter_op_parallelism_threads(_INTER.value or _THREADS.value)
  if kind == "mirrored":
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
  elif kind == "multiworker":
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
  else:
    strategy = tf.distribute.get_strategy()
  import keras  # pylint: disable=g-import-not-at-top
  from tinyfaces_tf import config as config_lib  # pylint: disable=g-import-not-at-top
  from tinyfaces_tf import flops  # pylint: disable=g-import-not-at-top
  from tinyfaces_tf import models  # pylint: disable=g-import-not-at-top
  from tinyfaces_tf import precision  # pylint: disable=g-import-not-at-top
  from tinyfaces_tf import task as task_lib  # pylint: disable=g-import-not-at-top
  from tinyfaces_tf.training import loop  # pylint: disable=g-import-not-at-top
  cfg = config_lib.replace(config_lib.get_preset(_CONFIG.value),
                           train={"batch_size": _BATCH.value, "precision": "float32"})
  task = task_lib.Task(cfg)
  with precision.policy_scope("float32"), strategy.scope():
    generator, discriminator = task.build_models()
    g_opt, d_opt, _ = loop.make_optimizers(cfg.optimizer, 1)
    gan = models.TinyFacesGAN(generator, discriminator, cfg.loss)
    gan.compile(g_optimizer=g_opt, d_optimizer=d_opt)
    gan.g_optimizer.build(generator.trainable_variables)
    gan.d_optimizer.build(discriminator.trainable_variables)
  dataset = loop.distributed_input(strategy, task.build_synthetic_dataset(), 0, 0)
  times = []

  class Timer(keras.callbacks.Callback):

    def on_train_batch_begin(self, batch, logs=None):
      self.start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
      float(logs["d_loss"])  # wait for the step
      times.append(time.perf_counter() - self.start)

  gan.fit(dataset, steps_per_epoch=_WARMUP.value + _STEPS.value, epochs=1, verbose=0,
          callbacks=[Timer()])
  step_flops = flops.gan_step_flops(generator, discriminator, cfg.crop.lr_size)
  print("RESULT " + json.dumps({"times": times[_WARMUP.value:], "flops_per_roi": step_flops,
                                "replicas": strategy.num_replicas_in_sync}), flush=True)


def _run_workers(kind, count, threads=0):
  env = dict(os.environ, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="3")
  args = [sys.executable, os.path.abspath(__file__), f"--worker={kind}", f"--threads={threads}",
          f"--config={_CONFIG.value}", f"--batch_size={_BATCH.value}", f"--steps={_STEPS.value}",
          f"--warmup={_WARMUP.value}"]
  procs = []
  if count > 1:
    import socket  # pylint: disable=g-import-not-at-top
    ports = []
    for _ in range(count):
      with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        ports.append(s.getsockname()[1])
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
  for index in range(count):
    if count > 1:
      env = dict(env, TF_CONFIG=json.dumps({"cluster": cluster,
                                            "task": {"type": "worker", "index": index}}))
    procs.append(subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, env=env))
  results = []
  for p in procs:
    out, err = p.communicate(timeout=1800)
    lines = [line for line in out.splitlines() if line.startswith("RESULT ")]
    if p.returncode or not lines:
      raise RuntimeError(f"{kind} worker failed:\n{err[-3000:]}")
    results.append(json.loads(lines[-1][len("RESULT "):]))
  return results[0]  # the chief's view (steps are synchronous)


def measure_train():
  rows = {}
  # On one machine, replicas share its cores: the first three rows give the overhead of
  # distribution at a fixed core count; the last two pin a worker to one core (one thread), the
  # way a worker per machine (or per GPU) adds compute.
  runs = {"1 device": ("single", 1, 0),
          "2 logical devices (mirrored)": ("mirrored", 1, 0),
          "2 workers (multi-worker)": ("multiworker", 2, 0),
          "1 worker, 1 thread": ("single", 1, 1),
          "2 workers, 1 thread each": ("multiworker", 2, 1)}
  picked = [int(r) for r in _ROWS.value] if _ROWS.value else range(1, len(runs) + 1)
  runs = {name: run for i, (name, run) in enumerate(runs.items(), 1) if i in picked}
  for name, (kind, count, threads) in runs.items():
    result = _run_workers(kind, count, threads)
    times = result["times"]
    median = statistics.median(times)
    rows[name] = {"median_step_s": round(median, 4),
                  "spread_s": [round(min(times), 4), round(max(times), 4)],
                  "rois_per_s": round(_BATCH.value / median, 1),
                  "gflop_per_s": round(_BATCH.value * result["flops_per_roi"] / median / 1e9, 1),
                  "flops_per_roi": result["flops_per_roi"], "replicas": result["replicas"]}
  base = rows[next(iter(rows))]["rois_per_s"]
  for row in rows.values():
    row["ratio"] = round(row["rois_per_s"] / base, 2)
  one, two = rows.get("1 worker, 1 thread"), rows.get("2 workers, 1 thread each")
  if one and two:
    rows["2 vs 1 single-thread workers"] = {"ratio": round(two["rois_per_s"] / one["rois_per_s"],
                                                           2)}
  return rows


def _cpu():
  with open("/proc/cpuinfo") as f:
    info = f.read()
  name = next((line.split(":", 1)[1].strip() for line in info.splitlines()
               if line.startswith("model name")), "?")
  flags_line = next((line for line in info.splitlines() if line.startswith("flags")), "")
  extras = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f" {f}" in flags_line]
  return f"{name} ({os.cpu_count()} cores; {', '.join(extras)})"


def main(argv):
  del argv
  if _WORKER.value:
    train_worker(_WORKER.value)
    return
  report = {"cpu": _cpu(), "date": time.strftime("%Y-%m-%d")}
  if _PART.value in ("all", "rois"):
    with tempfile.TemporaryDirectory() as temp:
      work_dir = _WORK_DIR.value or temp
      report["rois"] = measure_rois(work_dir)
    print(f"RoI build ({_IMAGES.value} demo train images, {_PROPOSER.value} proposals computed in "
          f"the build), {report['cpu']}")
    for name, row in report["rois"].items():
      print(f"  {name:24s} " + ", ".join(f"{k}={v}" for k, v in row.items()))
  if _PART.value in ("all", "train"):
    report["train"] = measure_train()
    print(f"Train step ({_CONFIG.value}, global batch {_BATCH.value}, float32, median of "
          f"{_STEPS.value} after {_WARMUP.value}), {report['cpu']}")
    for name, row in report["train"].items():
      print(f"  {name:30s} " + ", ".join(f"{k}={v}" for k, v in row.items()))
  if _JSON.value:
    atomic.write_json(_JSON.value, report)


if __name__ == "__main__":
  app.run(main)

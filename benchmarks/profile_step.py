"""Where a GAN train step's time goes: a TF profiler trace of a few steps inside one ``fit``,
summed per op category (convolutions forward / backward, transposed convolutions, batch norm,
casts, the [HR; SR] concat, optimizer updates, ...).

  python benchmarks/profile_step.py --config=journal --policy=mixed_bfloat16 --steps=3 \\
      --logdir=/tmp/profile --json=benchmarks/results/profile_journal_bf16.json

The trace (``--logdir``) also opens in TensorBoard's profile plugin. The summary reads the
trace's XPlane protobuf directly: every op event on the host's executor threads, named
``<op name>:<op type>``, is put in a category by its type and its Keras layer / optimizer scope.
Ops can run concurrently (inter-op threads), so shares are of the summed op time, printed beside
the steps' wall time.
"""
import collections
import time

from absl import app
from absl import flags
import keras
import tensorflow as tf

from tinyfaces_tf import atomic
from tinyfaces_tf import config as config_lib
from tinyfaces_tf import models
from tinyfaces_tf import precision
from tinyfaces_tf import task as task_lib
from tinyfaces_tf.training import loop

import common  # benchmarks/, first on sys.path
import op_profile

_CONFIG = flags.DEFINE_string("config", "journal", f"One of {sorted(common.CONFIGS)}.")
_POLICY = flags.DEFINE_string("policy", "mixed_bfloat16", "Keras dtype policy.")
_JIT = flags.DEFINE_bool("jit", False, "jit_compile the step.")
_SHARED = flags.DEFINE_bool("shared_generator_forward", False, "One G forward per step.")
_BATCH = flags.DEFINE_integer("batch", None, "RoIs per step (default: the config's).")
_STEPS = flags.DEFINE_integer("steps", 3, "Profiled steps (after --warmup).")
_WARMUP = flags.DEFINE_integer("warmup", 2, "Steps before the trace starts.")
_LOGDIR = flags.DEFINE_string("logdir", "/tmp/tinyfaces_profile", "Where the trace is written.")
_JSON = flags.DEFINE_string("json", None, "Also write the summary here.")

class _Trace(keras.callbacks.Callback):
  """Traces steps first..last (0-based) of one ``fit``; ``seconds`` is their wall time."""

  def __init__(self, logdir, first, last):
    super().__init__()
    self.logdir, self.first, self.last = logdir, first, last
    self.seconds = None
    self._start = None

  def on_train_batch_begin(self, batch, logs=None):
    if batch == self.first:
      tf.profiler.experimental.start(self.logdir)
      self._start = time.perf_counter()

  def on_train_batch_end(self, batch, logs=None):
    if batch == self.last:
      if logs:
        float(next(iter(logs.values())))  # the step has finished
      self.seconds = time.perf_counter() - self._start
      tf.profiler.experimental.stop()


def main(argv):
  del argv
  cfg = common.get_config(_CONFIG.value)
  cfg = config_lib.replace(cfg, train={"shared_generator_forward": _SHARED.value,
                                       "batch_size": _BATCH.value or cfg.train.batch_size})
  with precision.policy_scope(_POLICY.value):
    keras.utils.set_random_seed(0)
    task = task_lib.Task(cfg)
    generator, discriminator = task.build_models()
    g_opt, d_opt, _ = loop.make_optimizers(cfg.optimizer, 1)
    gan = models.TinyFacesGAN(generator, discriminator, cfg.loss,
                              shared_generator_forward=_SHARED.value)
    gan.compile(g_optimizer=g_opt, d_optimizer=d_opt, jit_compile=_JIT.value)
    dataset = task.build_synthetic_dataset()(0).prefetch(2)
    trace = _Trace(_LOGDIR.value, first=_WARMUP.value, last=_WARMUP.value + _STEPS.value - 1)
    gan.fit(dataset, steps_per_epoch=_WARMUP.value + _STEPS.value, epochs=1, verbose=0,
            shuffle=False, callbacks=[trace])
  wall = trace.seconds
  kernels = op_profile.gpu_kernel_times(_LOGDIR.value)
  if kernels:
    _report_gpu(cfg, wall, kernels)
    return
  by_category, by_type = op_profile.summarise(op_profile.op_times(_LOGDIR.value))
  total = sum(by_category.values())
  print(f"{_case(cfg)} in {wall:.2f} s wall, summed op time {total:.2f} s (trace in "
        f"{_LOGDIR.value})")
  _print_categories(by_category, "seconds", 1, "op time")
  print("top op types:", ", ".join(f"{t} {s / total:.1%}" for t, s in by_type.most_common(12)))
  if _JSON.value:
    atomic.write_json(_JSON.value, {
        **_run_fields(cfg, wall), "op_seconds": total,
        "categories": {k: v / _STEPS.value for k, v in by_category.most_common()},
        "op_types": {k: v / _STEPS.value for k, v in by_type.most_common(30)}})


def _print_categories(by_category, unit, per_second, what):
  total = sum(by_category.values())
  print(f"| category | {unit} per step | share of {what} |\n|---|---|---|")
  for name, seconds in by_category.most_common():
    print(f"| {name} | {seconds / _STEPS.value * per_second:.3f} | {seconds / total:.1%} |")


def _case(cfg):
  return (f"{_CONFIG.value} {_POLICY.value} jit={_JIT.value} shared={_SHARED.value} batch "
          f"{cfg.train.batch_size}: {_STEPS.value} steps")


def _run_fields(cfg, wall):
  """What every profile JSON says of its run."""
  return {"machine": common.machine(), "config": _CONFIG.value, "policy": _POLICY.value,
          "jit": _JIT.value, "shared_generator_forward": _SHARED.value,
          "batch": cfg.train.batch_size, "steps": _STEPS.value, "wall_seconds": wall}


def _report_gpu(cfg, wall, kernels):
  """GPU kernel time per category (the GPU runs one kernel at a time per stream here)."""
  by_category = collections.Counter()
  for (kernel, origin), seconds in kernels.items():
    by_category[op_profile.kernel_category(kernel, origin)] += seconds
  total = sum(by_category.values())
  print(f"{_case(cfg)} in {wall:.3f} s wall, GPU kernel time {total:.3f} s "
        f"({total / wall:.0%} of the wall time busy)")
  _print_categories(by_category, "ms", 1e3, "kernel time")
  for (kernel, origin), seconds in kernels.most_common(12):
    print(f"  {seconds / total:6.1%}  {kernel[:90]}  [{origin[:50]}]")
  if _JSON.value:
    atomic.write_json(_JSON.value, {
        **_run_fields(cfg, wall), "gpu_kernel_seconds": total,
        "categories_ms_per_step": {k: v / _STEPS.value * 1e3 for k, v in by_category.most_common()},
        "kernels": [{"kernel": k, "origin": o, "ms_per_step": v / _STEPS.value * 1e3}
                    for (k, o), v in kernels.most_common()]})  # all: re-categorisable later


if __name__ == "__main__":
  app.run(main)

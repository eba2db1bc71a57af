"""Sustained FLOP/s of the models' dominant layer shapes, forward and backward, per precision:
the denominator of every MFU figure.

  python benchmarks/roofline.py                          # journal G + D, float32 and bfloat16
  python benchmarks/roofline.py --configs=journal,mtgan --batch=32 --json=benchmarks/results/roofline.json

The shapes are taken from the models themselves (tinyfaces_tf.flops.per_layer): every counted
layer of each config's G and D, grouped by (kind, input shape, kernel, filters, strides), the
largest groups until they cover --coverage of the FLOPs. Each shape runs as one layer in a
tf.function: forward, and backward (gradients with respect to the input and the kernel, 2x the
forward FLOPs). "model roofline" is the FLOP-weighted harmonic mean over the shapes: the FLOP/s
the whole model would reach if every layer ran at its own sustained rate. float16 is measured on
a GPU only. On a CPU without native bfloat16 (no avx512_bf16 / amx_bf16) bfloat16 is emulated.
"""
from absl import app
from absl import flags
import tensorflow as tf

from tinyfaces_tf import atomic
from tinyfaces_tf import config as config_lib
from tinyfaces_tf import precision
from tinyfaces_tf import task as task_lib

from layer_rates import default_dtypes  # benchmarks/, first on sys.path
from layer_rates import model_roofline

_CONFIGS = flags.DEFINE_list("configs", ["journal"], "Presets whose G and D shapes are timed.")
_BATCH = flags.DEFINE_integer("batch", 32, "RoIs per call (the train step's batch).")
_COVERAGE = flags.DEFINE_float("coverage", 0.8, "Fraction of each model's FLOPs to cover.")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed calls per shape (median reported).")
_DTYPES = flags.DEFINE_list("dtypes", None, "Default: float32,bfloat16 (+ float16 on a GPU).")
_JIT = flags.DEFINE_bool("jit", False, "Time the shapes compiled by XLA (jit_compile).")
_JSON = flags.DEFINE_string("json", None, "Also write the figures here.")


def main(argv):
  del argv
  gpu = bool(tf.config.list_physical_devices("GPU"))
  dtypes = _DTYPES.value or default_dtypes()
  report = {"device": "GPU" if gpu else "CPU", "batch": _BATCH.value, "jit": _JIT.value,
            "models": {}}
  for preset in _CONFIGS.value:
    cfg = config_lib.get_preset(preset)
    with precision.policy_scope("float32"):  # the timing casts to each dtype itself
      generator, discriminator = task_lib.Task(cfg).build_models()
    lr = (cfg.crop.lr_size, cfg.crop.lr_size, 3)
    for label, model, shape in ((f"{preset} G", generator, lr), (f"{preset} D", discriminator,
                                                                   None)):
      rows, summary = model_roofline(model, shape, dtypes, _BATCH.value, _COVERAGE.value,
                                     _REPEATS.value, label, jit=_JIT.value)
      report["models"][label] = {"shapes": rows, "roofline": summary}
  if _JSON.value:
    atomic.write_json(_JSON.value, report)


if __name__ == "__main__":
  app.run(main)

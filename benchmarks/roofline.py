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
import collections
import statistics
import time

from absl import app
from absl import flags
import keras
import tensorflow as tf

from tinyfaces_tf import atomic
from tinyfaces_tf import config as config_lib
from tinyfaces_tf import flops
from tinyfaces_tf import precision
from tinyfaces_tf import task as task_lib

_CONFIGS = flags.DEFINE_list("configs", ["journal"], "Presets whose G and D shapes are timed.")
_BATCH = flags.DEFINE_integer("batch", 32, "RoIs per call (the train step's batch).")
_COVERAGE = flags.DEFINE_float("coverage", 0.8, "Fraction of each model's FLOPs to cover.")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed calls per shape (median reported).")
_DTYPES = flags.DEFINE_list("dtypes", None, "Default: float32,bfloat16 (+ float16 on a GPU).")
_JSON = flags.DEFINE_string("json", None, "Also write the figures here.")


def _signature(layer):
  """What decides a layer's speed: kind, input shape, kernel, filters / units, strides, padding."""
  kind = type(layer).__name__
  shape = tuple(int(d) for d in layer.input.shape[1:])
  if isinstance(layer, keras.layers.Dense):
    return kind, shape, None, layer.units, None, None
  return (kind, shape, tuple(layer.kernel_size), layer.filters, tuple(layer.strides),
          layer.padding)


def dominant_shapes(model, input_shape=None, coverage=0.8):
  """[(signature, forward FLOPs per example, share of the model's FLOPs)], largest first."""
  model = flops.with_input_shape(model, input_shape)
  layers = {layer.name: layer for layer in _leaf_layers(model)}
  groups = collections.Counter()
  per_example = {}
  for name, count in flops.per_layer(model).items():
    signature = _signature(layers[name.rsplit("/", 1)[-1]])
    groups[signature] += count
    per_example[signature] = count
  total = sum(groups.values())
  picked, covered = [], 0
  for signature, count in groups.most_common():
    if covered >= coverage * total:
      break
    picked.append((signature, per_example[signature], count / total))
    covered += count
  return picked


def _leaf_layers(model):
  for layer in model.layers:
    if isinstance(layer, keras.Model):
      yield from _leaf_layers(layer)
    else:
      yield layer


def _layer_of(signature):
  kind, _, kernel, filters, strides, padding = signature
  if kind == "Dense":
    return keras.layers.Dense(filters)
  cls = {"Conv2D": keras.layers.Conv2D, "Conv2DTranspose": keras.layers.Conv2DTranspose,
         "DepthwiseConv2D": keras.layers.DepthwiseConv2D}[kind]
  return cls(filters, kernel, strides=strides, padding=padding)


def time_shape(signature, flops_per_example, batch, dtype, repeats):
  """(forward GFLOP/s, backward GFLOP/s) of one layer shape."""
  layer = _layer_of(signature)
  x = tf.random.uniform((batch, *signature[1]), dtype=tf.float32)
  x = tf.cast(x, dtype)
  layer.build(x.shape)
  kernel = layer.kernel
  cast_kernel = lambda: tf.cast(kernel, dtype)

  @tf.function
  def forward(x):
    return _apply(layer, x, cast_kernel())

  @tf.function
  def backward(x):
    with tf.GradientTape() as tape:
      tape.watch(x)
      k = cast_kernel()
      tape.watch(k)
      y = _apply(layer, x, k)
    return tape.gradient(y, [x, k], output_gradients=tf.ones_like(y))

  rates = []
  for fn, factor in ((forward, 1), (backward, 2)):
    for _ in range(2):  # trace + warm up
      _block(fn(x))
    times = []
    for _ in range(repeats):
      start = time.perf_counter()
      _block(fn(x))
      times.append(time.perf_counter() - start)
    rates.append(factor * flops_per_example * batch / statistics.median(times) / 1e9)
  return tuple(rates)


def _apply(layer, x, kernel):
  """The layer's op with a given kernel (so the kernel's dtype follows x); no bias."""
  if isinstance(layer, keras.layers.Dense):
    return tf.tensordot(x, kernel, axes=1)
  strides, padding = (1, *layer.strides, 1), layer.padding.upper()
  if isinstance(layer, keras.layers.Conv2DTranspose):
    shape = layer.compute_output_shape(x.shape)
    return tf.nn.conv2d_transpose(x, kernel, shape, strides, padding=padding)
  if isinstance(layer, keras.layers.DepthwiseConv2D):
    return tf.nn.depthwise_conv2d(x, kernel, strides, padding=padding)
  return tf.nn.conv2d(x, kernel, strides, padding=padding)


def _block(result):
  for tensor in tf.nest.flatten(result):
    tensor.numpy()


def main(argv):
  del argv
  gpu = bool(tf.config.list_physical_devices("GPU"))
  dtypes = _DTYPES.value or (["float32", "bfloat16"] + (["float16"] if gpu else []))
  report = {"device": "GPU" if gpu else "CPU", "batch": _BATCH.value, "models": {}}
  for preset in _CONFIGS.value:
    cfg = config_lib.get_preset(preset)
    with precision.policy_scope("float32"):  # the timing casts to each dtype itself
      generator, discriminator = task_lib.Task(cfg).build_models()
    lr = (cfg.crop.lr_size, cfg.crop.lr_size, 3)
    for label, model, shape in ((f"{preset} G", generator, lr), (f"{preset} D", discriminator,
                                                                   None)):
      rows = []
      for signature, per_example, share in dominant_shapes(model, shape, _COVERAGE.value):
        row = {"layer": f"{signature[0]} in={signature[1]} k={signature[2]} "
                        f"out={signature[3]} s={signature[4]} {signature[5]}",
               "flop_share": round(share, 3)}
        for dtype in dtypes:
          fwd, bwd = time_shape(signature, per_example, _BATCH.value, getattr(tf, dtype),
                                _REPEATS.value)
          row[f"{dtype}_fwd_gflops"], row[f"{dtype}_bwd_gflops"] = round(fwd, 1), round(bwd, 1)
        rows.append(row)
        print(f"{label:12s} {row}", flush=True)
      summary = {}
      for dtype in dtypes:
        for direction in ("fwd", "bwd"):
          key = f"{dtype}_{direction}_gflops"
          weight = sum(r["flop_share"] for r in rows)
          summary[key] = round(weight / sum(r["flop_share"] / r[key] for r in rows), 1)
      print(f"{label:12s} model roofline (FLOP-weighted harmonic mean): {summary}", flush=True)
      report["models"][label] = {"shapes": rows, "roofline": summary}
  if _JSON.value:
    atomic.write_json(_JSON.value, report)


if __name__ == "__main__":
  app.run(main)

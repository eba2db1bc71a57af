"""Sustained FLOP/s of a model's dominant layer shapes, forward and backward, per dtype: the
roofline that roofline.py prints and train_step.py / detect.py divide by (see roofline.py).

A timed sample queues calls back to back and waits once, for the last: on a GPU a call returns
before its kernels finish, so timing one call at a time measures the host's launch and sync
latency (a 0.5 ms conv then reads as a few TFLOP/s). Each sample holds enough calls to last at
least ``sampling.MIN_SAMPLE_SECONDS``; on a CPU one call of a dominant shape already does. On a GPU a
shape whose call is shorter than the host's dispatch of one call (about 0.1 ms: the journal D's
8x8 and 4x4 layers at batch 128) is still dispatch-bound, so its rate and a model roofline made of
such shapes read low; a compiled step runs them without per-op dispatch and can exceed that
roofline (BUILD_NOTES.md, "GPU (H100)")."""
import collections
import time

import keras
import tensorflow as tf

from tinyfaces_tf import flops

import sampling  # benchmarks/, first on sys.path



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


def time_shape(signature, flops_per_example, batch, dtype, repeats, jit=False):
  """(forward GFLOP/s, backward GFLOP/s) of one layer shape; ``jit``: compiled by XLA, as a
  ``jit_compile`` train step's layers are."""
  layer = _layer_of(signature)
  x = tf.random.uniform((batch, *signature[1]), dtype=tf.float32)
  x = tf.cast(x, dtype)
  layer.build(x.shape)
  kernel = layer.kernel
  cast_kernel = lambda: tf.cast(kernel, dtype)

  @tf.function(jit_compile=jit)
  def forward(x):
    return _apply(layer, x, cast_kernel())

  @tf.function(jit_compile=jit)
  def backward(x):
    with tf.GradientTape() as tape:
      tape.watch(x)
      k = cast_kernel()
      tape.watch(k)
      y = _apply(layer, x, k)
    return tape.gradient(y, [x, k], output_gradients=tf.ones_like(y))

  rates = []
  for fn, factor in ((forward, 1), (backward, 2)):
    rates.append(factor * flops_per_example * batch / seconds_per_call(fn, x, repeats) / 1e9)
  return tuple(rates)


def seconds_per_call(fn, x, repeats):
  """Median over ``repeats`` samples of one call's sustained time (see the module docstring)."""
  for _ in range(2):  # trace + warm up (autotuning)
    _block(fn(x))
  return sampling.seconds_per_call(lambda calls: _sample(fn, x, calls), repeats)


def _sample(fn, x, calls):
  start = time.perf_counter()
  for _ in range(calls):
    result = fn(x)
  _block(result)
  return time.perf_counter() - start


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


def model_roofline(model, input_shape, dtypes, batch, coverage=0.8, repeats=5, label="",
                   jit=False):
  """(rows, summary) for one model: each dominant shape's forward / backward GFLOP/s per dtype
  and the FLOP-weighted harmonic mean ``summary["<dtype>_<fwd|bwd>_gflops"]``."""
  rows = []
  for signature, per_example, share in dominant_shapes(model, input_shape, coverage):
    row = {"layer": f"{signature[0]} in={signature[1]} k={signature[2]} "
                    f"out={signature[3]} s={signature[4]} {signature[5]}",
           "flop_share": round(share, 3)}
    for dtype in dtypes:
      fwd, bwd = time_shape(signature, per_example, batch, getattr(tf, dtype), repeats,
                            jit)
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
  return rows, summary


def default_dtypes():
  gpu = bool(tf.config.list_physical_devices("GPU"))
  return ["float32", "bfloat16"] + (["float16"] if gpu else [])


def step_roofline(parts, rates, dtype):
  """GFLOP/s of the whole step if each part ran at its model's sustained rate: parts are FLOPs
  per RoI by "g_fwd" / "g_bwd" / "d_fwd" / "d_bwd", rates {"G"|"D": roofline summary}."""
  seconds = sum(count / rates[key[0].upper()][f"{dtype}_{key[2:]}_gflops"]
                for key, count in parts.items() if count)
  return sum(parts.values()) / seconds

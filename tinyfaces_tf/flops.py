"""Analytic FLOP counts of the models: the numerator of every throughput and MFU figure.

A FLOP here is one multiply or one add: a layer's count is 2 x its multiply-accumulates, for the
layers that bound the step (Conv2D, Conv2DTranspose, DepthwiseConv2D, Dense). Bias adds, batch
norm, activations and pooling are left out (a few % of these models, memory-bound anyway), which
is also how the TF profiler counts Conv2D / Conv2DBackpropInput / MatMul (``tests/test_flops.py``
checks it against the profiler).
"""
import math
from typing import Dict

import keras

# Op types of the TF profiler that these layers lower to (for comparing with its count).
PROFILER_OPS = ("Conv2D", "Conv2DBackpropInput", "DepthwiseConv2dNative", "MatMul")


def _shape(tensor):
  return tuple(int(d) for d in tensor.shape[1:])  # without the batch axis


def layer_flops(layer: keras.layers.Layer) -> int:
  """Forward FLOPs of one call of ``layer`` on one example (0 for layers not counted)."""
  if isinstance(layer, keras.layers.Conv2DTranspose):
    h, w, c_in = _shape(layer.input)
    kh, kw = layer.kernel_size
    return 2 * h * w * c_in * kh * kw * layer.filters  # every input pixel scatters a kernel
  if isinstance(layer, keras.layers.DepthwiseConv2D):
    h, w, c_out = _shape(layer.output)
    kh, kw = layer.kernel_size
    return 2 * h * w * c_out * kh * kw
  if isinstance(layer, keras.layers.Conv2D):
    h, w, c_out = _shape(layer.output)
    kh, kw = layer.kernel_size
    c_in = _shape(layer.input)[-1]
    return 2 * h * w * c_out * kh * kw * c_in // layer.groups
  if isinstance(layer, keras.layers.Dense):
    *rows, c_in = _shape(layer.input)
    return 2 * math.prod(rows) * c_in * layer.units
  return 0


def per_layer(model: keras.Model, prefix: str = "") -> Dict[str, int]:
  """{layer path: forward FLOPs per example} of every counted layer, nested models included."""
  counts = {}
  for layer in model.layers:
    if isinstance(layer, keras.Model):
      counts.update(per_layer(layer, f"{prefix}{layer.name}/"))
    else:
      flops = layer_flops(layer)
      if flops:
        counts[prefix + layer.name] = flops
  return counts


def with_input_shape(model: keras.Model, input_shape=None) -> keras.Model:
  """``model``, or for a fully convolutional one (spatial size None) a clone taking
  ``input_shape`` (without the batch axis), so every layer has concrete shapes."""
  if all(d is not None for d in model.inputs[0].shape[1:]):
    return model
  if input_shape is None:
    raise ValueError(f"{model.name} takes any input size {tuple(model.inputs[0].shape)}; give "
                     "input_shape")
  return keras.models.clone_model(model, input_tensors=keras.Input(tuple(input_shape)))


def model_flops(model: keras.Model, input_shape=None) -> int:
  """Forward FLOPs per example of a functional model (``input_shape`` for a fully
  convolutional one)."""
  return sum(per_layer(with_input_shape(model, input_shape)).values())


def gan_step_flops(generator: keras.Model, discriminator: keras.Model, lr_size: int,
                   shared_generator_forward: bool = False) -> int:
  """FLOPs per RoI of one TinyFacesGAN.train_step (k = 1: one D then one G update) on
  ``lr_size`` x ``lr_size`` LR patches.

  A backward pass costs two forwards (gradients with respect to inputs and to weights); a frozen
  network that only passes gradients on costs one. Per RoI: D update = G forward + D forward and
  backward on [HR; SR] (2 patches); G update = G forward and backward + D forward and the
  input gradient on SR. Total 4 G + 8 D; 3 G + 8 D when the D update reuses the G update's
  forward pass (``shared_generator_forward``).
  """
  parts = gan_step_parts(model_flops(generator, (lr_size, lr_size, 3)),
                         model_flops(discriminator), shared_generator_forward)
  return sum(parts.values())


def gan_step_parts(g: int, d: int, shared_generator_forward: bool = False) -> Dict[str, int]:
  """One step's FLOPs per RoI by (network, direction), from the forward FLOPs of G and D per
  RoI: what a per-direction roofline divides (see gan_step_flops)."""
  return {"g_fwd": (1 if shared_generator_forward else 2) * g, "g_bwd": 2 * g,
          "d_fwd": 3 * d,          # [HR; SR] in the D update, SR in the G update
          "d_bwd": 2 * 2 * d + d}  # weights + input gradients on 2 patches; input only on SR


def detect_flops(generator: keras.Model, discriminator: keras.Model, lr_size: int) -> int:
  """FLOPs per RoI at test time: G forward then D forward on the SR patch."""
  return model_flops(generator, (lr_size, lr_size, 3)) + model_flops(discriminator)

"""Inference batch norms folded into the convolution before them, for exports.

In inference a batch norm is a per-channel affine map, so after a convolution whose output only it
reads, ``bn(conv(x)) = conv'(x)`` with the kernel's output channels scaled by
``s = gamma / sqrt(moving_variance + epsilon)`` and the bias ``(bias - moving_mean) * s + beta``.
Grappler fuses a float32 batch norm into oneDNN's convolution on its own but leaves most bfloat16
ones (and the ReLUs and adds after them) as separate memory-bound ops: a quarter of the bfloat16
detection time (BUILD_NOTES "Performance"). Folding removes them in every precision.
"""
import keras
from keras import layers
import numpy as np

# Convolutions whose kernel keeps its output channels on one axis (Conv2D: [kh, kw, in, out];
# Conv2DTranspose: [kh, kw, out, in]); other layers are never folded into.
_OUTPUT_AXIS = {layers.Conv2D: -1, layers.Conv2DTranspose: -2}


def _sole_producer(batch_norm, model_outputs):
  """The convolution feeding ``batch_norm`` when nothing else reads its output, else None."""
  if len(batch_norm._inbound_nodes) != 1:  # pylint: disable=protected-access
    return None
  inputs = batch_norm._inbound_nodes[0].arguments.keras_tensors  # pylint: disable=protected-access
  if len(inputs) != 1:
    return None
  conv = inputs[0]._keras_history.operation  # pylint: disable=protected-access
  if (type(conv) not in _OUTPUT_AXIS or conv.data_format != "channels_last"
      or len(conv._inbound_nodes) != 1 or len(conv._outbound_nodes) != 1  # pylint: disable=protected-access
      or any(output is inputs[0] for output in model_outputs)):
    return None
  if batch_norm.axis not in (-1, 3) or batch_norm.renorm or batch_norm.synchronized:
    return None
  return conv


def _foldable_pairs(model):
  """{id(conv): batch_norm, id(batch_norm): conv} over ``model`` and its nested models."""
  pairs = {}
  outputs = keras.tree.flatten(model.outputs)
  for layer in model.layers:
    if isinstance(layer, keras.Model):
      pairs.update(_foldable_pairs(layer))
    elif isinstance(layer, layers.BatchNormalization):
      conv = _sole_producer(layer, outputs)
      if conv is not None:
        pairs[id(conv)] = layer
        pairs[id(layer)] = conv
  return pairs


def _folded_weights(conv, batch_norm):
  """[kernel, bias] of ``conv`` followed by ``batch_norm`` in inference, computed in float64."""
  channels = conv.filters
  as_array = lambda variable: np.asarray(keras.ops.convert_to_numpy(variable), np.float64)
  gamma = as_array(batch_norm.gamma) if batch_norm.scale else np.ones(channels)
  beta = as_array(batch_norm.beta) if batch_norm.center else np.zeros(channels)
  scale = gamma / np.sqrt(as_array(batch_norm.moving_variance) + batch_norm.epsilon)
  kernel = as_array(conv.kernel)
  axis = _OUTPUT_AXIS[type(conv)]
  kernel = kernel * np.expand_dims(scale, tuple(range(axis + 1, 0)))
  bias = as_array(conv.bias) if conv.use_bias else np.zeros(channels)
  bias = (bias - as_array(batch_norm.moving_mean)) * scale + beta
  dtype = keras.backend.standardize_dtype(conv.kernel.dtype)
  return [kernel.astype(dtype), bias.astype(dtype)]


def _copy_weights(source, clone, pairs):
  for src, dst in zip(source.layers, clone.layers):
    if isinstance(src, keras.Model):
      _copy_weights(src, dst, pairs)
    elif id(src) in pairs and not isinstance(src, layers.BatchNormalization):
      dst.set_weights(_folded_weights(src, pairs[id(src)]))
    elif id(src) not in pairs and src.weights:
      dst.set_weights(src.get_weights())


def fold_batch_norms(model: keras.Model) -> keras.Model:
  """A copy of the functional ``model`` (nested models included) for inference: every batch norm
  that is the only reader of a Conv2D / Conv2DTranspose output becomes an identity, folded into
  that convolution (given a bias if it had none). Same inference outputs to float rounding; the
  copy must not be trained (its batch norms are gone). ``model`` is left as it is."""
  pairs = _foldable_pairs(model)
  identities = set()

  def clone(layer):
    if id(layer) in pairs and isinstance(layer, layers.BatchNormalization):
      identity = layers.Identity(name=layer.name, dtype=layer.dtype_policy)
      identities.add(id(identity))
      return identity
    config = layer.get_config()
    if id(layer) in pairs:
      config["use_bias"] = True
    return layer.__class__.from_config(config)

  def call(layer, *args, **kwargs):
    # The batch norm's call carried `training` / `mask`, which an identity does not take.
    return layer(args[0]) if id(layer) in identities else layer(*args, **kwargs)

  folded = keras.models.clone_model(model, clone_function=clone, call_function=call,
                                    recursive=True)
  _copy_weights(model, folded, pairs)
  return folded

"""Batch normalization as one fused TensorFlow kernel.

Keras 3's BatchNormalization computes moments and the normalization as separate element-wise ops
(and under mixed precision casts every activation to float32 and back first): a profile of the
demo train step puts about a third of the op time there (BUILD_NOTES "Performance").
``FusedBatchNormalization`` is the same layer (same config, variables, checkpoints and results to
float rounding) whose 4-D channels-last path runs ``FusedBatchNormV3`` and its fused gradient:
statistics in float32 inside the kernel. float16 activations stay float16; bfloat16 ones stay
bfloat16 where this TensorFlow build registers bfloat16 kernels for the op and its gradient on
every device type (the kernel computes in float32 and rounds its output once, as the Keras path's
cast does), and are cast to float32 and back otherwise: on a CPU with AMX the two casts and the
un-fused ReLU after them took a third of the bfloat16 journal step (BUILD_NOTES "Performance").
"""
import functools

import keras
from keras import layers
import tensorflow as tf
from tensorflow.python.framework import kernels

_FUSED_OPS = ("FusedBatchNormV3", "FusedBatchNormGradV3")


@functools.lru_cache(maxsize=None)
def bfloat16_kernels_registered() -> bool:
  """Whether FusedBatchNormV3 and its gradient take bfloat16 inputs on every device type that
  has a kernel for them (TensorFlow builds differ: older GPU builds have none)."""
  for op in _FUSED_OPS:
    dtypes_by_device = {}
    for kernel in kernels.get_registered_kernels_for_op(op).kernel:
      for constraint in kernel.constraint:
        if constraint.name == "T":
          dtypes_by_device.setdefault(kernel.device_type, set()).update(
              constraint.allowed_values.list.type)
    if not dtypes_by_device or any(tf.bfloat16.as_datatype_enum not in dtypes
                                   for dtypes in dtypes_by_device.values()):
      return False
  return True


@keras.saving.register_keras_serializable(package="tinyfaces_tf")
class FusedBatchNormalization(layers.BatchNormalization):
  """keras.layers.BatchNormalization through FusedBatchNormV3 for [N, H, W, C] inputs.

  Other cases (a mask, renorm, synchronized statistics, another axis or rank) take the Keras
  path. The moving variance follows Keras: the biased batch variance (the kernel returns the
  unbiased one, which is scaled back).
  """

  def _fusable(self, inputs, mask):
    return (mask is None and not self.renorm and not self.synchronized
            and len(inputs.shape) == 4 and self.axis in (-1, 3))

  def call(self, inputs, training=None, mask=None):
    if not self._fusable(inputs, mask):
      return super().call(inputs, training=training, mask=mask)
    channels = inputs.shape[-1]
    dtype = inputs.dtype
    if dtype == tf.bfloat16 and not bfloat16_kernels_registered():
      inputs = tf.cast(inputs, tf.float32)
    scale = (tf.convert_to_tensor(self.gamma, tf.float32) if self.scale
             else tf.ones([channels], tf.float32))
    offset = (tf.convert_to_tensor(self.beta, tf.float32) if self.center
              else tf.zeros([channels], tf.float32))
    common = dict(x=inputs, scale=scale, offset=offset, epsilon=self.epsilon,
                  exponential_avg_factor=1.0, data_format="NHWC")
    if training and self.trainable:
      empty = tf.constant([], tf.float32)
      outputs, mean, unbiased_variance, *_ = tf.raw_ops.FusedBatchNormV3(
          mean=empty, variance=empty, is_training=True, **common)
      count = tf.cast(tf.size(inputs) // channels, tf.float32)
      variance = unbiased_variance * tf.maximum(count - 1.0, 0.0) / count
      momentum = tf.cast(self.momentum, tf.float32)
      self.moving_mean.assign(self.moving_mean * momentum + mean * (1.0 - momentum))
      self.moving_variance.assign(self.moving_variance * momentum + variance * (1.0 - momentum))
      return tf.cast(outputs, dtype)  # a no-op when the kernel kept the dtype
    outputs, *_ = tf.raw_ops.FusedBatchNormV3(
        mean=tf.convert_to_tensor(self.moving_mean, tf.float32),
        variance=tf.convert_to_tensor(self.moving_variance, tf.float32), is_training=False,
        **common)
    return tf.cast(outputs, dtype)  # a no-op when the kernel kept the dtype

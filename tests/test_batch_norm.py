"""FusedBatchNormalization against a NumPy re-computation of batch normalization and against
Keras' own layer: outputs, moving statistics, gradients, precision, checkpoints."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from tinyfaces_tf import precision
from tinyfaces_tf.models.batch_norm import FusedBatchNormalization

EPSILON, MOMENTUM = 1e-3, 0.9


def _inputs(shape=(4, 6, 5, 8), seed=0):
  rng = np.random.default_rng(seed)
  return (rng.normal(size=shape) * 3 + 1).astype(np.float32)


def _layer(cls=FusedBatchNormalization, channels=8, seed=1, rank=4):
  layer = cls(momentum=MOMENTUM, epsilon=EPSILON)
  layer.build((None,) * (rank - 1) + (channels,))
  rng = np.random.default_rng(seed)
  layer.gamma.assign(rng.uniform(0.5, 1.5, channels).astype(np.float32))
  layer.beta.assign(rng.normal(size=channels).astype(np.float32))
  layer.moving_mean.assign(rng.normal(size=channels).astype(np.float32))
  layer.moving_variance.assign(rng.uniform(0.5, 2.0, channels).astype(np.float32))
  return layer


def test_training_mode_matches_numpy_and_updates_moving_statistics_like_keras():
  x = _inputs()
  layer = _layer()
  gamma, beta = layer.gamma.numpy(), layer.beta.numpy()
  old_mean, old_var = layer.moving_mean.numpy(), layer.moving_variance.numpy()
  y = layer(x, training=True).numpy()
  mean, var = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))  # biased, as Keras uses
  np.testing.assert_allclose(y, (x - mean) / np.sqrt(var + EPSILON) * gamma + beta,
                             rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(layer.moving_mean.numpy(),
                             MOMENTUM * old_mean + (1 - MOMENTUM) * mean, rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(layer.moving_variance.numpy(),
                             MOMENTUM * old_var + (1 - MOMENTUM) * var, rtol=1e-5, atol=1e-6)


def test_inference_mode_uses_the_moving_statistics():
  x = _inputs()
  layer = _layer()
  mean, var = layer.moving_mean.numpy(), layer.moving_variance.numpy()
  expected = (x - mean) / np.sqrt(var + EPSILON) * layer.gamma.numpy() + layer.beta.numpy()
  np.testing.assert_allclose(layer(x, training=False).numpy(), expected, rtol=1e-5, atol=1e-5)
  layer.trainable = False  # a frozen layer normalizes with the moving statistics, as Keras does
  np.testing.assert_allclose(layer(x, training=True).numpy(), expected, rtol=1e-5, atol=1e-5)


def test_gradients_match_keras_batch_normalization():
  x = tf.constant(_inputs(seed=3))
  ours, keras_bn = _layer(), _layer(keras.layers.BatchNormalization)
  grads = []
  for layer in (ours, keras_bn):
    with tf.GradientTape() as tape:
      tape.watch(x)
      y = layer(x, training=True)
      loss = tf.reduce_sum(y * tf.sin(y))  # a non-trivial upstream gradient
    grads.append(tape.gradient(loss, [x, layer.gamma, layer.beta]))
  for a, b in zip(*grads):
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_keeps_the_compute_dtype(policy):
  x = _inputs()
  reference = _layer()(x, training=True).numpy()
  with precision.policy_scope(policy):
    layer = _layer()
    y = layer(x, training=True)
  assert y.dtype == keras.mixed_precision.Policy(policy).compute_dtype
  np.testing.assert_allclose(tf.cast(y, tf.float32).numpy(), reference, atol=0.1)
  assert layer.moving_mean.dtype == "float32"


def test_cases_it_does_not_fuse_take_the_keras_path():
  x2d = _inputs((16, 8))
  ours, keras_bn = _layer(rank=2), _layer(keras.layers.BatchNormalization, rank=2)
  np.testing.assert_allclose(ours(x2d, training=True).numpy(),
                             keras_bn(x2d, training=True).numpy(), rtol=1e-6, atol=1e-6)


def test_checkpoints_of_keras_batch_normalization_restore(tmp_path):
  def model(cls):
    inputs = keras.Input((6, 5, 8))
    return keras.Model(inputs, cls(name="bn")(keras.layers.Conv2D(8, 3, name="conv")(inputs)))

  saved = model(keras.layers.BatchNormalization)
  for v in saved.variables:
    v.assign(tf.random.normal(v.shape) + 2.0)
  path = tf.train.Checkpoint(model=saved).write(str(tmp_path / "ckpt"))
  restored = model(FusedBatchNormalization)
  tf.train.Checkpoint(model=restored).read(path).assert_existing_objects_matched()
  for a, b in zip(saved.variables, restored.variables):
    np.testing.assert_array_equal(a.numpy(), b.numpy())


def _bfloat16_step(layer, x):
  with tf.GradientTape() as tape:
    tape.watch(x)
    y = layer(x, training=True)
    loss = tf.reduce_sum(tf.cast(y, tf.float32) * tf.sin(tf.cast(y, tf.float32)))
  return [y, *tape.gradient(loss, [x, layer.gamma, layer.beta])]


def test_bfloat16_activations_skip_the_float32_round_trip(monkeypatch):
  """With bfloat16 kernels registered the op runs on bfloat16 directly; outputs and gradients
  equal the cast-to-float32 path's (the kernel computes in float32 and rounds once)."""
  from tinyfaces_tf.models import batch_norm  # pylint: disable=import-outside-toplevel
  x = tf.cast(_inputs(seed=5), tf.bfloat16)
  with precision.policy_scope("mixed_bfloat16"):
    native = _bfloat16_step(_layer(), x)
    traced = _layer()
    graph = tf.function(lambda v: traced(v, training=True)).get_concrete_function(x).graph
    op_dtypes = {op.get_attr("T") for op in graph.get_operations()
                 if op.type == "FusedBatchNormV3"}
    assert batch_norm.bfloat16_kernels_registered()  # TensorFlow >= 2.13 on CPU and GPU
    assert op_dtypes == {tf.bfloat16}
    monkeypatch.setattr(batch_norm, "bfloat16_kernels_registered", lambda: False)
    cast = _bfloat16_step(_layer(), x)
  for a, b in zip(native, cast):
    assert a.dtype == b.dtype
    np.testing.assert_allclose(tf.cast(a, tf.float32).numpy(), tf.cast(b, tf.float32).numpy(),
                               rtol=1e-2, atol=1e-2)


def test_bfloat16_kernels_must_exist_on_every_device_type(monkeypatch):
  from tensorflow.core.framework import kernel_def_pb2  # pylint: disable=import-outside-toplevel
  from tinyfaces_tf.models import batch_norm  # pylint: disable=import-outside-toplevel

  def registry(devices_with_bfloat16):
    def kernels_for(op):
      del op
      kernel_list = kernel_def_pb2.KernelList()
      for device in ("CPU", "GPU"):
        kernel = kernel_list.kernel.add(op="FusedBatchNormV3", device_type=device)
        constraint = kernel.constraint.add(name="T")
        constraint.allowed_values.list.type.append(tf.float32.as_datatype_enum)
        if device in devices_with_bfloat16:
          constraint.allowed_values.list.type.append(tf.bfloat16.as_datatype_enum)
      return kernel_list
    return kernels_for

  for devices, expected in (({"CPU", "GPU"}, True), ({"CPU"}, False), (set(), False)):
    monkeypatch.setattr(batch_norm.kernels, "get_registered_kernels_for_op", registry(devices))
    batch_norm.bfloat16_kernels_registered.cache_clear()
    assert batch_norm.bfloat16_kernels_registered() is expected
  batch_norm.bfloat16_kernels_registered.cache_clear()

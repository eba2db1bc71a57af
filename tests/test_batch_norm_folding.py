"""Batch norms folded into convolutions: a hand-worked 1x1 case, the unfolded Keras model in
inference as the reference for every foldable shape, the cases that must stay unfolded, the
papers' generators and discriminators, and the export (no batch norm op left in its graph)."""
import keras
from keras import layers
import numpy as np
import pytest
import tensorflow as tf

from tinyfaces_tf import config as config_lib
from tinyfaces_tf import export
from tinyfaces_tf.models import discriminator as discriminator_lib
from tinyfaces_tf.models import generator as generator_lib
from tinyfaces_tf.models.batch_norm import FusedBatchNormalization
from tinyfaces_tf.models.batch_norm_folding import fold_batch_norms


def _randomize_batch_norms(model, seed=0):
  """Statistics and affine terms far from the identity, so an unfolded or misfolded norm shows."""
  rng = np.random.default_rng(seed)
  for layer in model.layers:
    if isinstance(layer, keras.Model):
      _randomize_batch_norms(layer, seed + 1)
    elif isinstance(layer, layers.BatchNormalization):
      channels = layer.moving_mean.shape[0]
      layer.moving_mean.assign(rng.normal(0, 0.5, channels))
      layer.moving_variance.assign(rng.uniform(0.3, 3.0, channels))
      if layer.scale:
        layer.gamma.assign(rng.uniform(0.5, 1.5, channels))
      if layer.center:
        layer.beta.assign(rng.normal(0, 0.5, channels))


def _batch_norms(model):
  return [layer for layer in model.layers if isinstance(layer, layers.BatchNormalization)] + [
      norm for layer in model.layers if isinstance(layer, keras.Model)
      for norm in _batch_norms(layer)]


def _assert_same_inference(model, folded, x, rtol=1e-5, atol=1e-5):
  expected = keras.tree.map_structure(np.asarray, model(x, training=False))
  actual = keras.tree.map_structure(np.asarray, folded(x, training=False))
  keras.tree.map_structure(
      lambda a, e: np.testing.assert_allclose(a, e, rtol=rtol, atol=atol), actual, expected)


def test_a_1x1_convolution_folds_to_the_hand_worked_kernel_and_bias():
  inputs = keras.Input((1, 1, 1))
  conv = layers.Conv2D(2, 1, name="conv")
  norm = layers.BatchNormalization(epsilon=0.0, name="bn")
  model = keras.Model(inputs, norm(conv(inputs)))
  conv.set_weights([np.array([[[[2.0, -1.0]]]]), np.array([1.0, 3.0])])
  # gamma, beta, mean, variance: channel 0 scales by 3 / 2, channel 1 by 1 / 4.
  norm.set_weights([np.array([3.0, 1.0]), np.array([0.5, -2.0]), np.array([4.0, 1.0]),
                    np.array([4.0, 16.0])])
  folded = fold_batch_norms(model)
  kernel, bias = folded.get_layer("conv").get_weights()
  np.testing.assert_allclose(kernel.ravel(), [2.0 * 1.5, -1.0 * 0.25])
  np.testing.assert_allclose(bias, [(1.0 - 4.0) * 1.5 + 0.5, (3.0 - 1.0) * 0.25 - 2.0])
  assert not _batch_norms(folded)
  # y = (5 * w + b - mean) * scale + beta
  np.testing.assert_allclose(np.asarray(folded(np.full((1, 1, 1, 1), 5.0))).ravel(),
                             [(10.0 + 1.0 - 4.0) * 1.5 + 0.5, (-5.0 + 3.0 - 1.0) * 0.25 - 2.0])


@pytest.mark.parametrize("transpose", [False, True])
@pytest.mark.parametrize("use_bias,center,scale", [(True, True, True), (False, False, False),
                                                   (False, True, False)])
def test_folded_convolutions_match_the_keras_batch_norm_in_inference(transpose, use_bias,
                                                                     center, scale):
  inputs = keras.Input((6, 5, 3))
  cls = layers.Conv2DTranspose if transpose else layers.Conv2D
  x = cls(4, 3, strides=2, padding="same", use_bias=use_bias,
          bias_initializer="random_normal")(inputs)
  x = FusedBatchNormalization(center=center, scale=scale)(x)
  x = layers.ReLU()(x)
  model = keras.Model(inputs, x)
  _randomize_batch_norms(model)
  folded = fold_batch_norms(model)
  assert not _batch_norms(folded)
  _assert_same_inference(model, folded, np.random.default_rng(0).normal(size=(2, 6, 5, 3)))


def test_a_convolution_read_by_more_than_its_norm_or_a_norm_after_another_layer_stays():
  inputs = keras.Input((8, 8, 4))
  conv = layers.Conv2D(4, 3, padding="same")(inputs)
  branched = layers.Add()([layers.BatchNormalization()(conv), conv])  # conv has two readers
  after_add = layers.BatchNormalization()(branched)  # reads an Add, not a convolution
  also_output = layers.Conv2D(4, 1)(after_add)
  model = keras.Model(inputs, [layers.BatchNormalization()(also_output), also_output])
  _randomize_batch_norms(model)
  folded = fold_batch_norms(model)
  assert len(_batch_norms(folded)) == 3
  _assert_same_inference(model, folded, np.random.default_rng(1).normal(size=(2, 8, 8, 4)))


def test_folding_leaves_the_trained_model_as_it_was():
  model = generator_lib.build_generator("tinyfaces", width=8, upsample_width=8)
  _randomize_batch_norms(model)
  before = [w.copy() for w in model.get_weights()]
  fold_batch_norms(model)
  for old, new in zip(before, model.get_weights()):
    np.testing.assert_array_equal(old, new)


@pytest.mark.parametrize("kind,overrides", [("tinyfaces", dict(width=8, upsample_width=16)),
                                            ("tinyfaces", dict(width=8, refinement=False)),
                                            ("mtgan", dict(width=8, upsample_width=16))])
def test_generators_fold_every_batch_norm(kind, overrides):
  model = generator_lib.build_generator(kind, **overrides)
  _randomize_batch_norms(model)
  folded = fold_batch_norms(model)
  assert _batch_norms(model) and not _batch_norms(folded)
  _assert_same_inference(model, folded,
                         np.random.default_rng(2).uniform(-1, 1, (3, 16, 16, 3)), atol=1e-6)


@pytest.mark.parametrize("backbone", ["tiny", "resnet50"])
def test_discriminators_fold_every_batch_norm_of_their_nested_backbone(backbone):
  model = discriminator_lib.build_discriminator(backbone)
  _randomize_batch_norms(model)
  folded = fold_batch_norms(model)
  assert len(_batch_norms(model)) == {"tiny": 4, "resnet50": 53}[backbone]
  assert not _batch_norms(folded)
  # ResNet-50's logits reach about 30 here: float32 rounding of 53 re-associated layers.
  _assert_same_inference(model, folded,
                         np.random.default_rng(3).uniform(-1, 1, (2, 64, 64, 3)), rtol=1e-4,
                         atol=1e-4)


def test_mixed_bfloat16_folding_stays_within_bfloat16_rounding():
  policy = keras.config.dtype_policy()
  keras.config.set_dtype_policy("mixed_bfloat16")
  try:
    model = generator_lib.build_generator("tinyfaces", width=8, upsample_width=16)
  finally:
    keras.config.set_dtype_policy(policy)
  _randomize_batch_norms(model)
  folded = fold_batch_norms(model)
  assert folded.get_layer("g1_conv1").compute_dtype == "bfloat16"
  x = np.random.default_rng(4).uniform(-1, 1, (3, 16, 16, 3))
  expected = np.asarray(model(x, training=False)["sr"])
  actual = np.asarray(folded(x, training=False)["sr"])
  # bfloat16 keeps 8 significant bits; relative to the output's range.
  assert np.abs(actual - expected).max() < 0.05 * np.abs(expected).max()


def test_an_export_has_no_batch_norm_op_left(tmp_path):
  config = config_lib.ExperimentConfig()
  generator = generator_lib.build_generator("tinyfaces", width=8, upsample_width=8)
  discriminator = discriminator_lib.build_discriminator("tiny")
  for model in (generator, discriminator):
    _randomize_batch_norms(model)
  path = export.export_saved_model(generator, discriminator, str(tmp_path / "export"), config)
  served = tf.saved_model.load(path)
  lr = np.random.default_rng(5).uniform(-1, 1, (4, 16, 16, 3)).astype(np.float32)
  graph = served.score_rois.get_concrete_function(
      tf.TensorSpec([None, 16, 16, 3], tf.float32)).graph.as_graph_def()
  ops = {node.op for function in graph.library.function for node in function.node_def}
  ops |= {node.op for node in graph.node}
  assert not {op for op in ops if "BatchNorm" in op}
  scores = served.score_rois(tf.constant(lr))
  sr = np.asarray(generator(lr, training=False)["sr"])
  np.testing.assert_allclose(scores["sr"].numpy(), sr, rtol=1e-5, atol=1e-6)

"""The analytic FLOP counter against hand formulas for single layers and against the TF
profiler's count of the traced graph for whole models."""
import keras
import pytest
import tensorflow as tf

from tinyfaces_tf import config as config_lib
from tinyfaces_tf import flops
from tinyfaces_tf import task as task_lib


def _one_layer(layer, shape):
  inputs = keras.Input(shape)
  return keras.Model(inputs, layer(inputs))


def test_conv2d_counts_two_flops_per_multiply_add():
  # 3x3, 8 -> 16 channels, stride 2, "same" on 10x12: output 5x6; 2 * 5*6*16 * 3*3*8.
  model = _one_layer(keras.layers.Conv2D(16, 3, strides=2, padding="same"), (10, 12, 8))
  assert flops.model_flops(model) == 2 * 5 * 6 * 16 * 3 * 3 * 8
  grouped = _one_layer(keras.layers.Conv2D(16, 3, padding="valid", groups=4), (10, 12, 8))
  assert flops.model_flops(grouped) == 2 * 8 * 10 * 16 * 3 * 3 * (8 // 4)


def test_conv2d_transpose_scatters_a_kernel_per_input_pixel():
  # 4x4 kernel, stride 2, 6x5 input of 8 channels -> 12x10x3: 2 * 6*5*8 * 4*4*3.
  model = _one_layer(keras.layers.Conv2DTranspose(3, 4, strides=2, padding="same"), (6, 5, 8))
  assert model.output.shape[1:] == (12, 10, 3)
  assert flops.model_flops(model) == 2 * 6 * 5 * 8 * 4 * 4 * 3


def test_dense_counts_every_row():
  assert flops.model_flops(_one_layer(keras.layers.Dense(7), (5,))) == 2 * 5 * 7
  assert flops.model_flops(_one_layer(keras.layers.Dense(7), (3, 5))) == 2 * 3 * 5 * 7


def test_fully_convolutional_models_need_an_input_shape():
  model = _one_layer(keras.layers.Conv2D(4, 3), (None, None, 3))
  with pytest.raises(ValueError, match="input_shape"):
    flops.model_flops(model)
  assert flops.model_flops(model, (6, 6, 3)) == 2 * 4 * 4 * 4 * 3 * 3 * 3


def _profiler_flops(model, shape):
  """What the TF profiler counts for the counted op types of the traced forward graph."""
  fn = tf.function(lambda x: model(x, training=False)).get_concrete_function(
      tf.TensorSpec((1, *shape), tf.float32))
  options = (tf.compat.v1.profiler.ProfileOptionBuilder(
      tf.compat.v1.profiler.ProfileOptionBuilder.float_operation())
             .with_empty_output().build())
  profile = tf.compat.v1.profiler.profile(fn.graph, cmd="op", options=options)
  found = {}

  def walk(node):  # the op view nests op types; float_ops is each one's own count
    for child in node.children:
      found[child.name] = child.float_ops
      walk(child)

  walk(profile)
  assert found.get("Conv2D", 0) > 0, found
  return sum(found.get(op, 0) for op in flops.PROFILER_OPS)


@pytest.mark.parametrize("preset", ["demo", "journal"])
def test_whole_models_match_the_tf_profiler(preset, restore_policy):
  keras.mixed_precision.set_dtype_policy("float32")
  cfg = config_lib.get_preset(preset)
  generator, discriminator = task_lib.Task(cfg).build_models()
  lr = (cfg.crop.lr_size, cfg.crop.lr_size, 3)
  hr = (cfg.crop.hr_size, cfg.crop.hr_size, 3)
  assert flops.model_flops(generator, lr) == _profiler_flops(generator, lr)
  assert flops.model_flops(discriminator) == _profiler_flops(discriminator, hr)
  if preset == "journal":  # the figures the performance notes quote: ~10.3 G and ~2.5 D GFLOP
    assert 10.2e9 < flops.model_flops(generator, lr) < 10.4e9
    assert 2.4e9 < flops.model_flops(discriminator) < 2.6e9


def test_gan_step_counts_four_generator_and_eight_discriminator_forwards():
  # G: 3x3 conv 3 -> 4 on an 8x8 LR patch: g = 2 * 8*8*4 * 3*3*3 = 13,824.
  # D: dense 8*8*4 -> 1 on the flattened patch: d = 2 * 256 = 512.
  g_in = keras.Input((None, None, 3))
  generator = keras.Model(g_in, keras.layers.Conv2D(4, 3, padding="same")(g_in))
  d_in = keras.Input((8, 8, 4))
  discriminator = keras.Model(d_in, keras.layers.Dense(1)(keras.layers.Flatten()(d_in)))
  g, d = 13_824, 512
  assert flops.gan_step_flops(generator, discriminator, 8) == 4 * g + 8 * d
  assert flops.gan_step_flops(generator, discriminator, 8, shared_generator_forward=True) == (
      3 * g + 8 * d)
  assert flops.gan_step_parts(g, d) == {"g_fwd": 2 * g, "g_bwd": 2 * g, "d_fwd": 3 * d,
                                        "d_bwd": 5 * d}

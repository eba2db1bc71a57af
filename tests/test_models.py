"""Model shapes and initialisation (journal Table 1, MTGAN Table 1)."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from tinyfaces_tf import models


@pytest.mark.parametrize("kind", models.GENERATOR_KINDS)
@pytest.mark.parametrize("lr_size", [16, 32])
def test_generator_shapes(kind, lr_size):
  g = models.build_generator(kind, width=8, upsample_width=8, residual_units=1)
  out = g(np.zeros((2, lr_size, lr_size, 3), np.float32))
  assert set(out) == {"upsampled", "sr"}
  for value in out.values():
    assert value.shape == (2, 4 * lr_size, 4 * lr_size, 3)
    assert value.dtype == tf.float32


def test_generator_paper_configuration_layers():
  g = models.build_generator("tinyfaces")
  convs = [l for l in g.layers if "Conv" in type(l).__name__]
  deconvs = [l for l in convs if type(l).__name__ == "Conv2DTranspose"]
  # Table 1: G1 = conv, x8, conv, deconv, deconv, conv; G2 = conv, x8, conv, conv, conv, conv.
  assert len(convs) == (1 + 8 + 1 + 2 + 1) + (1 + 8 + 1 + 1 + 1 + 1)
  assert [d.filters for d in deconvs] == [256, 256]
  assert all(d.strides == (2, 2) and d.kernel_size == (3, 3) for d in deconvs)
  assert g.get_layer("g1_out").kernel_size == (1, 1)
  assert g.get_layer("g2_out").filters == 3


def test_no_refinement_and_bilinear():
  g = models.build_generator("tinyfaces", width=8, upsample_width=8, residual_units=1,
                             refinement=False)
  x = np.random.default_rng(0).uniform(-1, 1, (1, 16, 16, 3)).astype(np.float32)
  out = g(x)
  np.testing.assert_array_equal(out["upsampled"], out["sr"])
  assert not any(l.name.startswith("g2_") for l in g.layers)
  sbu = models.build_generator("bilinear")
  assert not sbu.trainable_variables
  expected = tf.image.resize(x, (64, 64), method="bilinear")
  np.testing.assert_allclose(sbu(x)["sr"], expected, atol=1e-5)


def test_mtgan_generator_layers():
  g = models.build_generator("mtgan")
  assert g.get_layer("conv_in").kernel_size == (9, 9)
  assert g.get_layer("conv_out").kernel_size == (9, 9)
  assert sum(1 for l in g.layers if type(l).__name__ == "PReLU") == 1 + 5 + 2
  assert sum(1 for l in g.layers if l.name.endswith("_add")) == 5


@pytest.mark.parametrize("backbone", ["tiny", "vgg19", "resnet50", "resnet101"])
def test_discriminator_shapes(backbone):
  d = models.build_discriminator(backbone)
  out = d(np.zeros((2, 64, 64, 3), np.float32))
  assert out["gan_logit"].shape == (2, 1)
  assert out["cls_logits"].shape == (2, 1)
  assert out["box_deltas"].shape == (2, 4)
  trunk = models.discriminator.build_backbone(backbone)
  assert trunk.output.shape[1:3] == (4, 4)  # 64x64 RoI -> 4x4 map (stride 16)
  if backbone.startswith("resnet"):
    assert not any(type(l).__name__ == "MaxPooling2D" for l in trunk.layers)


def test_multiclass_and_ablation_heads():
  d = models.build_discriminator("tiny", num_classes=81)
  out = d(np.zeros((3, 64, 64, 3), np.float32))
  assert out["cls_logits"].shape == (3, 81)
  assert out["box_deltas"].shape == (3, 4 * 81)
  d = models.build_discriminator("tiny", reg_branch=False, adv_branch=False)
  assert set(d(np.zeros((1, 64, 64, 3), np.float32))) == {"cls_logits"}


def test_initialisation_statistics():
  g = models.build_generator("tinyfaces")
  kernel = g.get_layer("g2_conv3").kernel.numpy()
  assert abs(kernel.std() - 0.02) < 0.002 and abs(kernel.mean()) < 0.002
  assert np.all(g.get_layer("g2_conv3").bias.numpy() == 0)
  d = models.build_discriminator("tiny", num_classes=81)
  head = d.get_layer("fc_reg").kernel.numpy()
  assert abs(head.std() - 0.1) < 0.01 and np.all(d.get_layer("fc_reg").bias.numpy() == 0)


def test_caffe_preprocess_matches_keras_applications():
  x = np.random.default_rng(0).uniform(-1, 1, (2, 8, 8, 3)).astype(np.float32)
  ours = models.discriminator.CaffePreprocess()(x)
  reference = keras.applications.resnet50.preprocess_input((x + 1.0) * 127.5)
  np.testing.assert_allclose(ours, reference, atol=1e-3)


def test_backbone_weights_from_a_local_file(tmp_path):
  # What `--backbone_weights=PATH` does for a ResNet: weights survive the stem-pool removal.
  reference = keras.applications.ResNet50(include_top=False, weights=None, input_shape=(64, 64, 3))
  kernel = reference.get_layer("conv4_block1_1_conv").kernel
  kernel.assign(np.random.default_rng(0).normal(size=kernel.shape).astype(np.float32))
  path = str(tmp_path / "resnet50.weights.h5")
  reference.save_weights(path)
  d = models.build_discriminator("resnet50", backbone_weights=path)
  trunk = d.get_layer("backbone_resnet50")
  np.testing.assert_array_equal(trunk.get_layer("conv4_block1_1_conv").kernel.numpy(),
                                kernel.numpy())

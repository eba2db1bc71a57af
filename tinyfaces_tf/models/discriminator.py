"""Multi-task discriminators: backbone + three parallel heads (fc_gan, fc_cls, fc_reg).

Backbones follow the papers: VGG19 conv layers without pool5 (CVPR18), ResNet50 without the stem
max-pool so a 64x64 RoI gives a 4x4 final map at stride 16 (journal Table 1), ResNet101 (MTGAN),
and a small ``tiny`` backbone for tests and the demo.
"""
import dataclasses

import keras
from keras import layers
from keras import ops

from tinyfaces_tf.models.batch_norm import FusedBatchNormalization
from tinyfaces_tf.roi_crop import DEFAULT_CROP

BACKBONES = ("vgg19", "resnet50", "resnet101", "tiny")


@dataclasses.dataclass(frozen=True)
class DiscriminatorConfig:
  """The discriminator's backbone and heads; its input size is the experiment's ``crop.hr_size``,
  given to ``build_discriminator``.

  Attributes:
    backbone: "vgg19" (CVPR18), "resnet50" (journal), "resnet101" (MTGAN) or "tiny" (demo, tests).
    num_classes: 1: sigmoid face/non-face; > 1: softmax over K + 1 classes (MTGAN / COCO).
    backbone_weights: None (random init), a local weights file, or "imagenet" (downloads).
    reg_branch: the fc_reg box-regression head (False: Table 2 "w/o reg+ branch").
    adv_branch: the fc_gan real/fake head (False: MTGAN Table 3 "D w/o adv").
    tiny_width: channels of the first stage of the "tiny" backbone.
  """
  backbone: str = dataclasses.field(default="resnet50", metadata={"choices": BACKBONES})
  num_classes: int = 1
  backbone_weights: str | None = None
  reg_branch: bool = True
  adv_branch: bool = True
  tiny_width: int = 32

  def __post_init__(self):
    if self.backbone not in BACKBONES:
      raise ValueError(f"discriminator.backbone must be one of {BACKBONES}, got "
                       f"{self.backbone!r}")
    if self.num_classes < 1:
      raise ValueError(f"discriminator.num_classes must be >= 1, got {self.num_classes}")


@keras.saving.register_keras_serializable(package="tinyfaces_tf")
class CaffePreprocess(layers.Layer):
  """[-1, 1] RGB -> the BGR mean-subtracted input keras.applications' VGG/ResNet weights expect,
  so ImageNet (or converted) backbone weights see what they were trained on."""

  def call(self, inputs):
    x = (inputs + 1.0) * 127.5
    x = x[..., ::-1]
    return x - ops.convert_to_tensor([103.939, 116.779, 123.68], dtype=x.dtype)


def _without_stem_pool(model):
  """Clone a keras.applications ResNet replacing its stem max-pool (and its padding) with
  identities, keeping the loaded weights (pooling layers have none); its batch norms become
  the fused layer (same variables)."""
  drop = {"pool1_pad", "pool1_pool"}

  def clone(layer):
    if layer.name in drop:
      return layers.Identity(name=layer.name)
    if type(layer) is layers.BatchNormalization:  # pylint: disable=unidiomatic-typecheck
      return FusedBatchNormalization.from_config(layer.get_config())
    return layer.__class__.from_config(layer.get_config())

  clone_model = keras.models.clone_model(model, clone_function=clone)
  for src, dst in zip(model.layers, clone_model.layers):
    if src.weights:
      dst.set_weights(src.get_weights())
  return clone_model


def build_backbone(name, hr_size=DEFAULT_CROP.hr_size, weights=None, tiny_width=32):
  """The convolutional trunk as a keras.Model mapping [N, S, S, 3] (model range) to a feature map."""
  if name not in BACKBONES:
    raise ValueError(f"unknown backbone {name!r}; expected one of {BACKBONES}")
  shape = (hr_size, hr_size, 3)
  if name == "tiny":
    inputs = keras.Input(shape)
    x = inputs
    for i, mult in enumerate((1, 2, 4, 4)):
      x = layers.Conv2D(tiny_width * mult, 3, strides=2, padding="same", name=f"tiny_conv{i + 1}")(x)
      x = FusedBatchNormalization(momentum=0.9, name=f"tiny_bn{i + 1}")(x)
      x = layers.LeakyReLU(0.2, name=f"tiny_act{i + 1}")(x)
    return keras.Model(inputs, x, name="backbone_tiny")
  apps = {"vgg19": keras.applications.VGG19, "resnet50": keras.applications.ResNet50,
          "resnet101": keras.applications.ResNet101}
  base = apps[name](include_top=False, weights=weights, input_shape=shape)
  if name == "vgg19":
    # CVPR18: "the max-pooling is removed from the conv5 layer".
    return keras.Model(base.input, base.get_layer("block5_conv4").output, name="backbone_vgg19")
  trunk = _without_stem_pool(base)
  trunk.name = f"backbone_{name}"
  return trunk


def build_discriminator(backbone="resnet50", num_classes=1, config=None,
                        hr_size=DEFAULT_CROP.hr_size, **overrides):
  """Builds the multi-task discriminator.

  Outputs a dict: ``gan_logit`` [N, 1] (real/fake), ``cls_logits`` [N, num_classes] and
  ``box_deltas`` [N, 4] (faces: class agnostic) or [N, 4 * num_classes] (multi-class), all float32.
  ``gan_logit`` is absent without the adversarial branch, ``box_deltas`` without the regression branch.
  ``hr_size`` is the input side (the experiment's crop.hr_size).
  """
  if config is None:
    config = DiscriminatorConfig()
  config = dataclasses.replace(config, backbone=backbone, num_classes=num_classes, **overrides)
  inputs = keras.Input((hr_size, hr_size, 3), name="image")
  x = inputs
  if config.backbone != "tiny":
    x = CaffePreprocess(name="caffe_preprocess")(x)
  trunk = build_backbone(config.backbone, hr_size, config.backbone_weights, config.tiny_width)
  features = layers.GlobalAveragePooling2D(name="gap")(trunk(x))

  def head(units, name):
    # journal 4.2: fc layers N(0, 0.1), zero bias; float32 logits under mixed precision.
    return layers.Dense(units, name=name, dtype="float32",
                        kernel_initializer=keras.initializers.RandomNormal(stddev=0.1),
                        bias_initializer="zeros")(features)

  outputs = {}
  if config.adv_branch:
    outputs["gan_logit"] = head(1, "fc_gan")
  outputs["cls_logits"] = head(config.num_classes, "fc_cls")
  if config.reg_branch:
    outputs["box_deltas"] = head(4 if config.num_classes == 1 else 4 * config.num_classes, "fc_reg")
  model = keras.Model(inputs, outputs, name=f"discriminator_{config.backbone}")
  model.config = config
  return model

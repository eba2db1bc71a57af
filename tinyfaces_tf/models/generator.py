"""Generators: the papers' super-resolution networks (journal Table 1, MTGAN Table 1) and SBU.

Every generator maps LR RoIs [N, h, w, 3] in model range [-1, 1] to a dict
``{"upsampled": G1(x), "sr": G(x)}`` of x4 images on the same scale; the last layer is linear,
so outputs may overshoot [-1, 1] slightly (``imaging.to_uint8`` clips for display).
"""
import dataclasses

import keras
from keras import layers

from tinyfaces_tf.models.batch_norm import FusedBatchNormalization
from tinyfaces_tf.roi_crop import DEFAULT_CROP

GENERATOR_KINDS = ("tinyfaces", "mtgan", "bilinear")


@dataclasses.dataclass(frozen=True)
class GeneratorConfig:
  """The generator's kind and sizes; defaults are the paper configuration. The up-sampling factor
  is the experiment's ``crop.scale`` (one fact, one place), given to ``build_generator``.

  Attributes:
    kind: "tinyfaces" (CVPR18/journal G1 + G2), "mtgan" (SRGAN-like) or "bilinear" (MTGAN
      Table 4 SBU: no learned weights).
    width: feature maps of the residual trunk (journal Table 1: 64).
    upsample_width: feature maps of the de-convs and late convs (journal Table 1: 256).
    residual_units: two-conv residual units per stack ("x8" = 8 conv layers = 4 units; mtgan: 5).
    refinement: tinyfaces only, the refinement network G2 (False: Table 2 "w/o Refinement
      Network").
  """
  kind: str = dataclasses.field(default="tinyfaces", metadata={"choices": GENERATOR_KINDS})
  width: int = 64
  upsample_width: int = 256
  residual_units: int = 4
  refinement: bool = True

  def __post_init__(self):
    if self.kind not in GENERATOR_KINDS:
      raise ValueError(f"generator.kind must be one of {GENERATOR_KINDS}, got {self.kind!r}")
    if min(self.width, self.upsample_width) < 1 or self.residual_units < 0:
      raise ValueError(f"generator widths must be >= 1 and residual_units >= 0, got "
                       f"{self.width}, {self.upsample_width}, {self.residual_units}")


def _conv_init():
  return keras.initializers.RandomNormal(stddev=0.02)  # journal 4.2: N(0, 0.02), zero bias


def _conv(filters, kernel, name, strides=1, transpose=False):
  cls = layers.Conv2DTranspose if transpose else layers.Conv2D
  return cls(filters, kernel, strides=strides, padding="same", name=name,
             kernel_initializer=_conv_init(), bias_initializer="zeros")


# Momentum 0.9 (SRGAN implementations' decay) rather than Keras' 0.99: with the papers' N(0, 0.02)
# init the pre-BN activations are tiny, and 0.99 leaves the moving variance near its initial 1.0
# for thousands of steps, so inference-mode outputs would lag far behind training-mode ones.
BN_MOMENTUM = 0.9


def _bn(name):
  return FusedBatchNormalization(momentum=BN_MOMENTUM, name=name)


def _conv_bn_act(x, filters, kernel, name, strides=1, transpose=False, act="relu"):
  x = _conv(filters, kernel, name, strides, transpose)(x)
  x = _bn(f"{name}_bn")(x)
  if act == "prelu":
    return layers.PReLU(shared_axes=[1, 2], name=f"{name}_prelu")(x)
  return layers.ReLU(name=f"{name}_relu")(x)


def _residual_stack(x, units, width, name, act):
  """`units` two-conv residual units. tinyfaces: ResNet basic block (ReLU after the add, so every
  conv is followed by BN+ReLU as Table 1's text says); mtgan: SRGAN block (no activation after)."""
  for i in range(units):
    y = _conv_bn_act(x, width, 3, f"{name}_unit{i}_conv1", act=act)
    y = _conv(width, 3, f"{name}_unit{i}_conv2")(y)
    y = _bn(f"{name}_unit{i}_conv2_bn")(y)
    x = layers.Add(name=f"{name}_unit{i}_add")([x, y])
    if act == "relu":
      x = layers.ReLU(name=f"{name}_unit{i}_relu")(x)
  return x


def _as_float32(x, name):
  # Outputs are float32 under mixed precision: losses and export see one dtype.
  return layers.Activation("linear", dtype="float32", name=name)(x)


def _tinyfaces(inputs, config, scale):
  w, uw = config.width, config.upsample_width
  # Up-sampling sub-network G1.
  x = _conv_bn_act(inputs, w, 3, "g1_conv1")
  x = _residual_stack(x, config.residual_units, w, "g1_res", "relu")
  x = _conv_bn_act(x, w, 3, "g1_conv2")
  for i in range(_num_doublings(scale)):
    x = _conv_bn_act(x, uw, 3, f"g1_deconv{i + 1}", strides=2, transpose=True)
  upsampled = _conv(3, 1, "g1_out")(x)
  if not config.refinement:
    upsampled = _as_float32(upsampled, "upsampled")
    return {"upsampled": upsampled, "sr": layers.Identity(name="sr")(upsampled)}
  # Refinement sub-network G2.
  x = _conv_bn_act(upsampled, w, 3, "g2_conv1")
  x = _residual_stack(x, config.residual_units, w, "g2_res", "relu")
  x = _conv_bn_act(x, w, 3, "g2_conv2")
  x = _conv_bn_act(x, uw, 3, "g2_conv3")
  x = _conv_bn_act(x, uw, 3, "g2_conv4")
  sr = _conv(3, 3, "g2_out")(x)
  return {"upsampled": _as_float32(upsampled, "upsampled"), "sr": _as_float32(sr, "sr")}


def _mtgan(inputs, config, scale):
  w, uw = config.width, config.upsample_width
  x = _conv(w, 9, "conv_in")(inputs)
  head = x = layers.PReLU(shared_axes=[1, 2], name="conv_in_prelu")(x)
  x = _residual_stack(x, config.residual_units, w, "res", "prelu")
  x = _conv(w, 3, "conv_mid")(x)
  x = _bn("conv_mid_bn")(x)
  x = layers.Add(name="long_skip")([head, x])  # SRGAN's long skip, which MTGAN's G follows
  for i in range(_num_doublings(scale)):
    x = _conv_bn_act(x, uw, 3, f"deconv{i + 1}", strides=2, transpose=True, act="prelu")
  sr = _as_float32(_conv(3, 9, "conv_out")(x), "sr")
  return {"upsampled": layers.Identity(name="upsampled")(sr), "sr": sr}


def _bilinear(inputs, config, scale):
  up = layers.UpSampling2D(scale, interpolation="bilinear", name="bilinear_up")(inputs)
  up = _as_float32(up, "sr")
  return {"upsampled": layers.Identity(name="upsampled")(up), "sr": up}


def _num_doublings(scale):
  if scale not in (2, 4, 8):
    raise ValueError(f"scale must be 2, 4 or 8 (stride-2 de-convs), got {scale}")
  return {2: 1, 4: 2, 8: 3}[scale]


def build_generator(kind="tinyfaces", lr_size=None, config=None, scale=DEFAULT_CROP.scale,
                    **overrides):
  """Builds a generator as a functional keras.Model.

  Args:
    kind: "tinyfaces" (CVPR18/journal G1+G2), "mtgan" (SRGAN-like) or "bilinear" (SBU, no weights).
    lr_size: optional static LR size; None accepts any size (16x16 -> 64x64, 32x32 -> 128x128).
    config: a GeneratorConfig; ``overrides`` replace its fields (e.g. width=16, refinement=False).
    scale: the up-sampling factor (the experiment's crop.scale).
  """
  if kind not in GENERATOR_KINDS:
    raise ValueError(f"unknown generator kind {kind!r}; expected one of {GENERATOR_KINDS}")
  if config is None:
    config = GeneratorConfig(kind=kind, residual_units=5 if kind == "mtgan" else 4)
  config = dataclasses.replace(config, kind=kind, **overrides)
  shape = (lr_size, lr_size, 3) if lr_size else (None, None, 3)
  inputs = keras.Input(shape=shape, name="lr")
  builder = {"tinyfaces": _tinyfaces, "mtgan": _mtgan, "bilinear": _bilinear}[kind]
  model = keras.Model(inputs, builder(inputs, config, scale), name=f"generator_{kind}")
  model.config = config
  return model

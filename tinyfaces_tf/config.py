"""Experiment configuration: small dataclasses, one per concern, plus the papers' presets.

The presets are the table rows' common bases; ``experiments/*.cfg`` flagfiles select one with
``--preset`` and switch the ablation flags on top (see BUILD_NOTES.md for each interpretation).
"""
import dataclasses

from tinyfaces_tf import precision as precision_lib
from tinyfaces_tf.losses import LossConfig
from tinyfaces_tf.models.discriminator import DiscriminatorConfig
from tinyfaces_tf.models.generator import GeneratorConfig

PRECISIONS = ("auto", *precision_lib.POLICIES)


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
  g_learning_rate: float = 1e-2
  d_learning_rate: float = 1e-2
  d_optimizer: str = "adam"        # journal: Adam for both; MTGAN: SGD (momentum 0.9) for D
  beta_1: float = 0.9              # journal 4.2: Adam with beta_1 = 0.9
  sgd_momentum: float = 0.9
  decay_epochs: tuple = (6,)       # journal: 6 epochs at 1e-2, then 4 at 1e-3
  decay_factor: float = 0.1
  pretrain_learning_rate: float = 1e-4

  def __post_init__(self):
    if self.d_optimizer not in ("adam", "sgd"):
      raise ValueError(f"d_optimizer must be 'adam' or 'sgd', got {self.d_optimizer!r}")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  batch_size: int = 32
  epochs: float = 10.0             # journal: 10 epochs; MTGAN-WIDER: 6
  steps: int | None = None         # overrides epochs when set
  pretrain_steps: int = 0          # MSE-only generator warm start
  precision: str = "auto"          # auto: tinyfaces_tf.precision picks per device
  jit_compile: bool = False
  checkpoint_every: int = 500      # steps between checkpoints (a killed run resumes from the last)
  keep_checkpoints: int = 3
  seed: int = 0
  face_fraction: float = 0.4       # journal: ~1.5 background RoIs per face

  def __post_init__(self):
    if self.precision not in PRECISIONS:
      raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
  generator: GeneratorConfig = GeneratorConfig()
  discriminator: DiscriminatorConfig = DiscriminatorConfig()
  loss: LossConfig = LossConfig()
  optimizer: OptimizerConfig = OptimizerConfig()
  train: TrainConfig = TrainConfig()
  context: float = 2.0             # journal Table 3: x2.0 chosen for Hard


def _preset(generator, discriminator, optimizer=OptimizerConfig(), train=TrainConfig(), **kw):
  return ExperimentConfig(generator=generator, discriminator=discriminator, optimizer=optimizer,
                          train=train, **kw)


PRESETS = {
    # Journal "Ours*": tinyfaces G (G1 + G2), ResNet50 D with reg branch, context x2.0.
    "journal": _preset(GeneratorConfig("tinyfaces"), DiscriminatorConfig("resnet50")),
    # CVPR18: VGG19 D, no regression branch, no context (x1.0 crops).
    "cvpr18": _preset(GeneratorConfig("tinyfaces"),
                      DiscriminatorConfig("vgg19", reg_branch=False), context=1.0),
    # MTGAN on WIDER: SRGAN-like G, ResNet-50 D, Adam G / SGD D, 3 epochs at 1e-4 then 3 at 1e-5.
    "mtgan": _preset(GeneratorConfig("mtgan", residual_units=5), DiscriminatorConfig("resnet50"),
                     OptimizerConfig(g_learning_rate=1e-4, d_learning_rate=1e-4, d_optimizer="sgd",
                                     decay_epochs=(3,)),
                     TrainConfig(epochs=6.0), context=1.0),
    # MTGAN Table 4 "SBU": bilinear up-sampling instead of a learned generator.
    "sbu": _preset(GeneratorConfig("bilinear"), DiscriminatorConfig("resnet50"),
                   OptimizerConfig(g_learning_rate=1e-4, d_learning_rate=1e-4, d_optimizer="sgd",
                                   decay_epochs=(3,)),
                   TrainConfig(epochs=6.0), context=1.0),
    # The demo: same structure at CPU size (narrow G, tiny D), trains in minutes on 2 cores.
    "demo": _preset(GeneratorConfig("tinyfaces", width=16, upsample_width=32, residual_units=1),
                    DiscriminatorConfig("tiny", tiny_width=32),
                    OptimizerConfig(g_learning_rate=1e-3, d_learning_rate=1e-3,
                                    decay_epochs=(), pretrain_learning_rate=2e-3),
                    TrainConfig(batch_size=32, steps=600, pretrain_steps=200,
                                checkpoint_every=100)),
}


def get_preset(name):
  if name not in PRESETS:
    raise ValueError(f"unknown preset {name!r}; expected one of {sorted(PRESETS)}")
  return PRESETS[name]


def from_dict(d):
  """Inverse of dataclasses.asdict for an ExperimentConfig (e.g. a run's config.json)."""
  optimizer = dict(d["optimizer"], decay_epochs=tuple(d["optimizer"]["decay_epochs"]))
  return ExperimentConfig(generator=GeneratorConfig(**d["generator"]),
                          discriminator=DiscriminatorConfig(**d["discriminator"]),
                          loss=LossConfig(**d["loss"]), optimizer=OptimizerConfig(**optimizer),
                          train=TrainConfig(**d["train"]), context=d["context"])

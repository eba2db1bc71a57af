"""The experiment config: one frozen dataclass tree that says everything about a run.

``ExperimentConfig`` holds the models, losses, optimisers and schedule, training, the crop (context
and patch sizes), the RoI sampler, the input pipeline, the detector and the dataset family. It is
written as ``config.json`` beside the checkpoints and inside every SavedModel export
(``assets.extra/``), and ``from_dict(to_dict(c)) == c``. The papers' table rows start from a
preset here; ``experiments/*.cfg`` flagfiles switch fields on top (``--config.loss.g_adv=false``,
flags generated from these dataclasses by ``cli/config_flags.py``).
"""
import dataclasses
import json
import os
import types
import typing
from typing import Any, Optional

from tinyfaces_tf import atomic
from tinyfaces_tf import precision as precision_lib
from tinyfaces_tf.data.adapters import DATASET_FAMILIES
from tinyfaces_tf.data.adapters import get_adapter
from tinyfaces_tf.data.pipeline import PipelineConfig
from tinyfaces_tf.data.roi_sampler import RoiSamplerConfig
from tinyfaces_tf.detection.detector import DetectConfig
from tinyfaces_tf.losses import LossConfig
from tinyfaces_tf.models.discriminator import DiscriminatorConfig
from tinyfaces_tf.models.generator import GeneratorConfig
from tinyfaces_tf.roi_crop import CropConfig

PRECISIONS = ("auto", *precision_lib.POLICIES)
D_OPTIMIZERS = ("adam", "sgd")
CONFIG_FILE = "config.json"  # beside the checkpoints of a run directory
COCO_CLASSES = 80  # K of the COCO detection task
DEMO_COCO_CLASSES = 3  # K of the COCO-format demo (data/demo_coco.py)


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
  """Optimisers and learning-rate schedule (journal 4.2, MTGAN 4.2).

  Attributes:
    g_learning_rate: generator learning rate (journal: 1e-2).
    d_learning_rate: discriminator learning rate (journal: 1e-2).
    d_optimizer: "adam" (journal: Adam for both) or "sgd" (MTGAN: SGD with momentum for D).
    beta_1: Adam's beta_1 (journal 4.2: 0.9).
    sgd_momentum: momentum of the SGD discriminator optimizer.
    decay_epochs: epochs after which both rates are multiplied by decay_factor (journal: 6).
    decay_steps: GAN steps after which they are, instead of decay_epochs (MTGAN on COCO: x0.1
      after 40k mini-batches); empty: decay_epochs.
    decay_factor: the step decay factor (0.1).
    pretrain_learning_rate: Adam rate of the MSE-only generator warm start.
  """
  g_learning_rate: float = 1e-2
  d_learning_rate: float = 1e-2
  d_optimizer: str = dataclasses.field(default="adam", metadata={"choices": D_OPTIMIZERS})
  beta_1: float = 0.9
  sgd_momentum: float = 0.9
  decay_epochs: tuple[float, ...] = (6.0,)
  decay_steps: tuple[int, ...] = ()
  decay_factor: float = 0.1
  pretrain_learning_rate: float = 1e-4

  def __post_init__(self):
    if self.d_optimizer not in D_OPTIMIZERS:
      raise ValueError(f"optimizer.d_optimizer must be one of {D_OPTIMIZERS}, got "
                       f"{self.d_optimizer!r}")
    rates = (self.g_learning_rate, self.d_learning_rate, self.pretrain_learning_rate)
    if min(rates) <= 0:
      raise ValueError(f"optimizer learning rates must be > 0, got {rates}")
    if any(e <= 0 for e in self.decay_epochs):
      raise ValueError(f"optimizer.decay_epochs must be > 0, got {self.decay_epochs}")
    if any(s < 1 for s in self.decay_steps) or list(self.decay_steps) != sorted(self.decay_steps):
      raise ValueError(f"optimizer.decay_steps must be ascending steps >= 1, got "
                       f"{self.decay_steps}")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """The training run.

  Attributes:
    batch_size: global batch of RoIs per step (split over replicas).
    epochs: epochs over the RoI dataset (journal: 10; MTGAN-WIDER: 6); unused when steps is set.
    steps: GAN steps; overrides epochs when set.
    pretrain_steps: MSE-only generator warm-start steps before the GAN (both papers warm-start).
    precision: "auto" (mixed_bfloat16 on bf16 CPUs and GPUs >= sm80, mixed_float16 on sm7x, else
      float32), or a Keras policy name.
    jit_compile: XLA-compile the train step.
    checkpoint_every: steps between checkpoints (a killed run resumes from the last).
    keep_checkpoints: checkpoints kept on disk.
    seed: seed of weight init and the input order.
    deterministic: op determinism, one inter-op thread, a fixed input order, Grappler's
      arithmetic optimizer off and, on a CPU without jit_compile, the step function re-traced
      every 64 calls (same seed -> the same run bit for bit, also in another process on the
      same CPU; training.loop.enable_determinism and STEP_FUNCTION_CALLS).
    shared_generator_forward: one G forward per GAN step, shared by the D and G updates (the D
      update then sees SR made with G's batch statistics; models.TinyFacesGAN).
  """
  batch_size: int = 32
  epochs: float = 10.0
  steps: Optional[int] = None
  pretrain_steps: int = 0
  precision: str = dataclasses.field(default="auto", metadata={"choices": PRECISIONS})
  jit_compile: bool = False
  checkpoint_every: int = 500
  keep_checkpoints: int = 3
  seed: int = 0
  deterministic: bool = False
  shared_generator_forward: bool = False

  def __post_init__(self):
    if self.precision not in PRECISIONS:
      raise ValueError(f"train.precision must be one of {PRECISIONS}, got {self.precision!r}")
    for name in ("batch_size", "checkpoint_every", "keep_checkpoints"):
      if getattr(self, name) < 1:
        raise ValueError(f"train.{name} must be >= 1, got {getattr(self, name)}")
    if self.steps is not None and self.steps < 0:
      raise ValueError(f"train.steps must be >= 0, got {self.steps}")
    if self.pretrain_steps < 0 or not self.epochs > 0:
      raise ValueError(f"train.pretrain_steps must be >= 0 and train.epochs > 0, got "
                       f"{self.pretrain_steps}, {self.epochs}")


@dataclasses.dataclass(frozen=True)
class DataConfig:
  """Which dataset family the run reads (its adapter: ``data/adapters.py``).

  Attributes:
    family: the dataset adapter ("wider_face", "coco"); it knows the raw layout, the TFDS RoI
      builder, the result format and the official evaluation.
    train_split: the raw split training RoIs are cut from (None: the family's, "train" /
      "train2017"; MTGAN on COCO: "trainval35k2014").
    eval_split: the raw split detections are evaluated on (None: "val" / "val2017"; MTGAN:
      "minival2014").
  """
  family: str = dataclasses.field(default="wider_face", metadata={"choices": DATASET_FAMILIES})
  train_split: Optional[str] = None
  eval_split: Optional[str] = None

  def __post_init__(self):
    if self.family not in DATASET_FAMILIES:
      raise ValueError(f"data.family must be one of {DATASET_FAMILIES}, got {self.family!r}")
    try:
      get_adapter(self.family, None, self.train_split, self.eval_split)
    except ValueError as e:
      raise ValueError(f"data: {e}") from None


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
  """Everything about one experiment; see each section's Attributes."""
  generator: GeneratorConfig = GeneratorConfig()
  discriminator: DiscriminatorConfig = DiscriminatorConfig()
  loss: LossConfig = LossConfig()
  optimizer: OptimizerConfig = OptimizerConfig()
  train: TrainConfig = TrainConfig()
  crop: CropConfig = CropConfig()
  sampler: RoiSamplerConfig = RoiSamplerConfig()
  pipeline: PipelineConfig = PipelineConfig()
  detect: DetectConfig = DetectConfig()
  data: DataConfig = DataConfig()


def replace(config, **sections):
  """``config`` with fields of its sections replaced: ``replace(c, train={"steps": 5})``."""
  return dataclasses.replace(config, **{
      name: dataclasses.replace(getattr(config, name), **values)
      for name, values in sections.items()})


_MTGAN_OPTIMIZER = OptimizerConfig(g_learning_rate=1e-4, d_learning_rate=1e-4, d_optimizer="sgd",
                                   decay_epochs=(3.0,))

_MTGAN_COCO = ExperimentConfig(
    generator=GeneratorConfig("mtgan", residual_units=5),
    discriminator=DiscriminatorConfig("resnet50", num_classes=COCO_CLASSES + 1),
    optimizer=OptimizerConfig(g_learning_rate=1e-4, d_learning_rate=1e-2, d_optimizer="sgd",
                              decay_epochs=(), decay_steps=(40_000,)),
    train=TrainConfig(steps=80_000),
    crop=CropConfig(context=1.0),
    detect=DetectConfig(nms_iou=0.5, max_rois=100, max_detections=100),
    data=DataConfig("coco", train_split="trainval35k2014", eval_split="minival2014"))

PRESETS = {
    # Journal "Ours*": tinyfaces G (G1 + G2), ResNet50 D with reg branch, context x2.0.
    "journal": ExperimentConfig(discriminator=DiscriminatorConfig("resnet50")),
    # CVPR18: VGG19 D, no regression branch, no context (x1.0 crops).
    "cvpr18": ExperimentConfig(discriminator=DiscriminatorConfig("vgg19", reg_branch=False),
                               crop=CropConfig(context=1.0)),
    # MTGAN on WIDER: SRGAN-like G, ResNet-50 D, Adam G / SGD D, 3 epochs at 1e-4 then 3 at 1e-5.
    "mtgan": ExperimentConfig(generator=GeneratorConfig("mtgan", residual_units=5),
                              optimizer=_MTGAN_OPTIMIZER, train=TrainConfig(epochs=6.0),
                              crop=CropConfig(context=1.0)),
    # MTGAN Table 4 "SBU": bilinear up-sampling instead of a learned generator.
    "sbu": ExperimentConfig(generator=GeneratorConfig("bilinear"), optimizer=_MTGAN_OPTIMIZER,
                            train=TrainConfig(epochs=6.0), crop=CropConfig(context=1.0)),
    # MTGAN on COCO (MTGAN 4.2): SRGAN-like G (Adam), ResNet-50 D over K + 1 = 81 classes with
    # class-specific boxes (SGD 0.01, x0.1 after 40k mini-batches, 80k iterations), no context,
    # trainval35k / minival, 100 RoIs per test image.
    "mtgan_coco": _MTGAN_COCO,
    # MTGAN Table 2's ResNet-101 discriminator.
    "mtgan_coco_r101": replace(_MTGAN_COCO, discriminator={"backbone": "resnet101"}),
    # The demo: same structure at CPU size (narrow G, tiny D), trains in minutes on 2 cores.
    "demo": ExperimentConfig(
        generator=GeneratorConfig("tinyfaces", width=16, upsample_width=32, residual_units=1),
        discriminator=DiscriminatorConfig("tiny", tiny_width=32),
        optimizer=OptimizerConfig(g_learning_rate=1e-3, d_learning_rate=1e-3, decay_epochs=(),
                                  pretrain_learning_rate=2e-3),
        train=TrainConfig(batch_size=32, steps=600, pretrain_steps=200, checkpoint_every=100)),
}
# The COCO-format demo (data/demo_coco.py: face, coin, cat): the demo's networks over K + 1 = 4
# classes with class-specific boxes, MTGAN's crop and detection settings, the demo's schedule.
# 350 GAN steps after 150 MSE ones and at most 96 RoIs per image keep `make demo-coco` within
# 10 minutes on 2 cores (BUILD_NOTES "COCO and MTGAN").
PRESETS["demo_coco"] = replace(
    PRESETS["demo"], discriminator={"num_classes": DEMO_COCO_CLASSES + 1},
    crop={"context": 1.0}, detect=dataclasses.asdict(_MTGAN_COCO.detect),
    sampler={"max_rois": 96}, train={"steps": 350, "pretrain_steps": 150},
    data={"family": "coco"})


def get_preset(name: str) -> ExperimentConfig:
  if name not in PRESETS:
    raise ValueError(f"unknown preset {name!r}; expected one of {sorted(PRESETS)}")
  return PRESETS[name]


# ---------------------------------------------------------------------------------------------
# Serialisation: JSON-ready dicts and back, checked field by field.

def to_dict(config) -> dict:
  return dataclasses.asdict(config)


def to_json(config) -> str:
  return json.dumps(to_dict(config), indent=2, sort_keys=False) + "\n"


def field_types(cls) -> dict:
  """{field name: resolved type} of a config dataclass."""
  return typing.get_type_hints(cls)


def optional_inner(tp):
  """T for Optional[T] / T | None, else None."""
  if typing.get_origin(tp) in (typing.Union, types.UnionType):
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if len(args) == 1 and len(typing.get_args(tp)) == 2:
      return args[0]
  return None


def _value(tp, value, where):
  inner = optional_inner(tp)
  if inner is not None:
    return None if value is None else _value(inner, value, where)
  if dataclasses.is_dataclass(tp):
    return from_dict(value, tp, where)
  if typing.get_origin(tp) is tuple:
    if not isinstance(value, (list, tuple)):
      raise ValueError(f"{where}: expected a list, got {value!r}")
    items = typing.get_args(tp)
    if len(items) != 2 or items[1] is not Ellipsis:
      if len(value) != len(items):
        raise ValueError(f"{where}: expected {len(items)} values, got {value!r}")
      return tuple(_value(t, v, where) for t, v in zip(items, value))
    return tuple(_value(items[0], v, where) for v in value)
  if tp is bool:
    if not isinstance(value, bool):
      raise ValueError(f"{where}: expected true or false, got {value!r}")
    return value
  if tp is int:
    if isinstance(value, bool) or not isinstance(value, int):
      raise ValueError(f"{where}: expected an integer, got {value!r}")
    return value
  if tp is float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
      raise ValueError(f"{where}: expected a number, got {value!r}")
    return float(value)
  if tp is str:
    if not isinstance(value, str):
      raise ValueError(f"{where}: expected a string, got {value!r}")
    return value
  raise TypeError(f"{where}: unsupported config field type {tp}")


def from_dict(d: dict, cls=ExperimentConfig, where: str = "config"):
  """Inverse of ``to_dict``: unknown keys and wrongly typed values raise ValueError naming the
  field; fields the dict lacks take their defaults (configs written by older versions load)."""
  if not isinstance(d, dict):
    raise ValueError(f"{where}: expected an object, got {d!r}")
  types_ = field_types(cls)
  unknown = sorted(set(d) - set(types_))
  if unknown:
    raise ValueError(f"{where}: unknown field(s) {unknown}; {cls.__name__} has {sorted(types_)}")
  return cls(**{name: _value(types_[name], value, f"{where}.{name}")
                for name, value in d.items()})


def from_json(text: str, where: str = "config") -> ExperimentConfig:
  try:
    d = json.loads(text)
  except json.JSONDecodeError as e:
    raise ValueError(f"{where}: not JSON ({e})") from None
  return from_dict(d, where=where)


def save(config: ExperimentConfig, path: str) -> str:
  """Writes ``config`` as JSON to ``path`` (through a temporary sibling, renamed into place)."""
  return atomic.write_text(path, to_json(config))


def load(path: str) -> ExperimentConfig:
  """An ExperimentConfig from a config.json; errors name the file."""
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{path}: config file not found")
  with open(path) as f:
    return from_json(f.read(), where=path)


def load_run_config(run_dir: str) -> ExperimentConfig:
  """The config.json of a training run directory."""
  path = os.path.join(os.fspath(run_dir), CONFIG_FILE)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{path}: not a run directory (no {CONFIG_FILE})")
  return load(path)


def resolve(spec: str) -> ExperimentConfig:
  """A preset name, a config.json path, or a run directory holding one."""
  if spec in PRESETS:
    return PRESETS[spec]
  if os.path.isdir(spec):
    return load_run_config(spec)
  if spec.endswith(".json") or os.path.exists(spec):
    return load(spec)
  raise ValueError(f"unknown config {spec!r}: expected a preset ({', '.join(sorted(PRESETS))}), "
                   f"a config.json or a run directory")


def differences(a: Any, b: Any, prefix: str = "") -> list:
  """Dotted names of the fields where two configs differ."""
  if dataclasses.is_dataclass(a) and type(a) is type(b):
    out = []
    for f in dataclasses.fields(a):
      out += differences(getattr(a, f.name), getattr(b, f.name), f"{prefix}{f.name}.")
    return out
  return [] if a == b else [prefix.rstrip(".")]

"""What every benchmark reports beside its figures: the machine, peak memory, step timing, and the
configs it measures (the presets plus the public PyTorch implementation's shapes)."""
import dataclasses
import os
import platform
import statistics
import time

import keras
import tensorflow as tf

from tinyfaces_tf import config as config_lib
from tinyfaces_tf import precision
from tinyfaces_tf.models.discriminator import DiscriminatorConfig
from tinyfaces_tf.roi_crop import CropConfig

# EthanGuan/Finding-Tiny-Faces-with-GAN: LR 32 -> HR 128, 8 residual units per stack, a VGG19 D
# with adversarial and face heads only, 8 faces + 8 backgrounds per step.
PUBLIC_IMPLEMENTATION = config_lib.replace(
    config_lib.ExperimentConfig(
        discriminator=DiscriminatorConfig("vgg19", reg_branch=False),
        crop=CropConfig(context=1.0, hr_size=128, scale=4)),
    generator={"residual_units": 8}, train={"batch_size": 16})

CONFIGS = {**config_lib.PRESETS, "public": PUBLIC_IMPLEMENTATION}


def get_config(name: str) -> config_lib.ExperimentConfig:
  if name not in CONFIGS:
    raise ValueError(f"unknown config {name!r}; expected one of {sorted(CONFIGS)}")
  return CONFIGS[name]


def compute_dtype(policy: str) -> str:
  """The dtype a policy's convolutions run in: the roofline it is measured against."""
  return {"float32": "float32", "mixed_bfloat16": "bfloat16", "mixed_float16": "float16"}[policy]


def machine() -> dict:
  """CPU model and its native low-precision support, cores, TF version, GPUs."""
  model = "unknown"
  if os.path.exists("/proc/cpuinfo"):
    with open("/proc/cpuinfo") as f:
      model = next((line.split(":", 1)[1].strip() for line in f
                    if line.startswith("model name")), model)
  flags = precision.cpu_flags()
  gpus = [tf.config.experimental.get_device_details(g).get("device_name", g.name)
          for g in tf.config.list_physical_devices("GPU")]
  return {"cpu": model, "cores": os.cpu_count(), "avx512f": "avx512f" in flags,
          "native_bf16": sorted(flags & {"avx512_bf16", "amx_bf16"}), "gpus": gpus,
          "tensorflow": tf.__version__, "keras": keras.__version__,
          "python": platform.python_version()}


def _gpu():
  return bool(tf.config.list_physical_devices("GPU"))


def reset_peak_memory():
  """Starts a new peak: the GPU allocator's, or the process's peak resident set (Linux resets
  VmHWM when 5 is written to clear_refs)."""
  if _gpu():
    tf.config.experimental.reset_memory_stats("GPU:0")
    return
  try:
    with open("/proc/self/clear_refs", "w") as f:
      f.write("5")
  except OSError:
    pass  # then peak_memory_mib reports the process's peak so far


def peak_memory_mib() -> float:
  """Peak GPU memory allocated, or the process's peak resident set since reset_peak_memory."""
  if _gpu():
    return tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20
  with open("/proc/self/status") as f:
    for line in f:
      if line.startswith("VmHWM:"):
        return int(line.split()[1]) / 1024
  return float("nan")


@dataclasses.dataclass
class Spread:
  """Median and spread of repeated timings, in seconds."""
  median: float
  low: float
  high: float
  count: int

  @classmethod
  def of(cls, seconds):
    return cls(statistics.median(seconds), min(seconds), max(seconds), len(seconds))


class StepTimer(keras.callbacks.Callback):
  """Wall time of every train step inside one ``fit``: from one step's end to the next (the
  first from its begin), so per-step overheads of ``fit`` itself are counted, its start is not.
  Reading a logged value waits for the step's results."""

  def __init__(self):
    super().__init__()
    self.seconds = []
    self._last = None

  def on_train_batch_begin(self, batch, logs=None):
    if self._last is None:
      self._last = time.perf_counter()

  def on_train_batch_end(self, batch, logs=None):
    if logs:
      float(next(iter(logs.values())))
    now = time.perf_counter()
    self.seconds.append(now - self._last)
    self._last = now

"""Chooses the mixed-precision policy for `precision="auto"` from the device at hand.

Measured on the development CPUs (BUILD_NOTES.md, "Performance"): mixed_bfloat16 runs the paper
train steps 1.8x (AVX512_BF16) to 2.5-3.3x (AMX) and the demo one about 2x faster than float32
where the CPU has native bfloat16; without it bfloat16 is emulated and slower, so float32 stays.
On GPUs, bfloat16 needs compute capability 8.0 (A100, H100) and no loss scaling; Volta/Turing
(7.x) have float16 tensor cores only, so mixed_float16 with a LossScaleOptimizer.
"""
import contextlib
import os

from absl import logging
import tensorflow as tf

POLICIES = ("float32", "mixed_bfloat16", "mixed_float16")
_CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_flags(path="/proc/cpuinfo"):
  """The CPU feature flags (lower case) as the kernel lists them; empty where unknown."""
  if not os.path.exists(path):
    return set()
  with open(path) as f:
    for line in f:
      if line.startswith("flags"):
        return set(line.split(":", 1)[1].split())
  return set()


def gpu_compute_capabilities():
  """[(major, minor)] of the visible GPUs (empty on CPU-only machines)."""
  capabilities = []
  for gpu in tf.config.list_physical_devices("GPU"):
    details = tf.config.experimental.get_device_details(gpu)
    capabilities.append(tuple(details.get("compute_capability", (0, 0))))
  return capabilities


def choose_policy(gpu_capabilities, cpu_feature_flags):
  """The faster policy for a device: see the module docstring for the measurements."""
  if gpu_capabilities:
    slowest = min(gpu_capabilities)  # every replica must run the policy
    if slowest >= (8, 0):
      return "mixed_bfloat16"
    if slowest >= (7, 0):
      return "mixed_float16"
    return "float32"
  if any(flag in cpu_feature_flags for flag in _CPU_BF16_FLAGS):
    return "mixed_bfloat16"
  return "float32"


def resolve_precision(precision):
  """`precision` itself, or for "auto" the policy `choose_policy` picks for this machine."""
  if precision in POLICIES:
    return precision
  if precision != "auto":
    raise ValueError(f"precision must be 'auto' or one of {POLICIES}, got {precision!r}")
  policy = choose_policy(gpu_compute_capabilities(), cpu_flags())
  logging.info("precision=auto -> %s", policy)
  return policy


@contextlib.contextmanager
def policy_scope(precision):
  """Sets the Keras global dtype policy for ``precision`` ("auto" resolved) and restores the
  policy it found on exit: models built inside keep their layers' policies, nothing leaks out.
  Yields the policy name."""
  import keras  # pylint: disable=g-import-not-at-top
  policy = resolve_precision(precision)
  previous = keras.mixed_precision.dtype_policy()
  keras.mixed_precision.set_dtype_policy(policy)
  try:
    yield policy
  finally:
    keras.mixed_precision.set_dtype_policy(previous)

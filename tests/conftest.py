"""Shared test set-up: quiet TF logs, CPU only, seeded and deterministic ops."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import keras  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture
def restore_policy():
  """Restores the global Keras dtype policy a test changes."""
  previous = keras.mixed_precision.dtype_policy()
  yield
  keras.mixed_precision.set_dtype_policy(previous)


@pytest.fixture(autouse=True)
def _seed():
  keras.utils.set_random_seed(1234)
  yield

"""Sustained time per call, shared by the TensorFlow roofline (layer_rates.py) and the torch
convolution rates (public_impl.py); no framework imports, so a torch-only environment can use it."""
import math
import statistics
from typing import Callable

MIN_SAMPLE_SECONDS = 0.2


def seconds_per_call(sample: Callable[[int], float], repeats: int) -> float:
  """Median over ``repeats`` samples of one call's sustained time. ``sample(calls)`` makes
  ``calls`` calls and returns the seconds until the last has finished; the number of calls per
  sample grows until a sample lasts at least MIN_SAMPLE_SECONDS (warm-up is the caller's)."""
  calls = 1
  while True:
    seconds = sample(calls)
    if seconds >= MIN_SAMPLE_SECONDS:
      break
    calls = max(calls * 2, math.ceil(calls * 1.2 * MIN_SAMPLE_SECONDS / max(seconds, 1e-6)))
  times = [seconds / calls] + [sample(calls) / calls for _ in range(repeats - 1)]
  return statistics.median(times)

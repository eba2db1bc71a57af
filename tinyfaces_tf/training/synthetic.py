"""Random RoI batches: smoke runs and benchmarks without data on disk."""
import numpy as np
import tensorflow as tf

from tinyfaces_tf.roi_crop import DEFAULT_CROP
from tinyfaces_tf.roi_crop import CropConfig


def synthetic_dataset(batch_size: int, seed: int = 0, crop: CropConfig = DEFAULT_CROP,
                      num_classes: int = 1) -> tf.data.Dataset:
  """An infinite dataset of random batches shaped like ``crop``'s patches (LR = bicubic HR)."""
  rng = np.random.default_rng(seed)
  n = 4 * batch_size
  hr = rng.uniform(-1, 1, (n, crop.hr_size, crop.hr_size, 3)).astype(np.float32)
  data = {"lr": tf.image.resize(hr, (crop.lr_size,) * 2, "bicubic", antialias=True).numpy(),
          "hr": hr, "label": (np.arange(n) % (max(num_classes, 2))).astype(np.int32),
          "box_target": rng.normal(0, 0.5, (n, 4)).astype(np.float32)}
  return tf.data.Dataset.from_tensor_slices(data).repeat().batch(batch_size, drop_remainder=True)

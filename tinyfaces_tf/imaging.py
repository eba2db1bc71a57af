"""Pixel-range conventions shared by data, models and export.

Models see float32 images in [-1, 1]. Keeping one symmetric range lets the generator's linear
output layer, the MSE loss and the discriminator all agree without per-module rescaling.
"""
import os

import numpy as np
import tensorflow as tf


def to_model_range(images):
  """uint8 (or float in [0, 255]) images -> float32 in [-1, 1]."""
  return tf.cast(images, tf.float32) / 127.5 - 1.0


def to_uint8(images):
  """Model-range images -> uint8 [0, 255], clipping what the generator overshoots."""
  images = tf.cast(images, tf.float32)
  return tf.cast(tf.round(tf.clip_by_value((images + 1.0) * 127.5, 0.0, 255.0)), tf.uint8)


def load_image(path) -> np.ndarray:
  """uint8 RGB [H, W, 3] of an image file (grey, palette and alpha images are converted).

  Raises FileNotFoundError or ValueError naming the path; the one image reader of the package.
  """
  from PIL import Image  # pylint: disable=g-import-not-at-top
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{path}: image not found")
  try:
    with Image.open(path) as image:
      return np.asarray(image.convert("RGB"))
  except (OSError, ValueError) as e:
    raise ValueError(f"{path}: cannot decode image ({e})") from e

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
  """uint8 RGB [H, W, 3] of an image file: grey, palette, CMYK and alpha images are converted,
  16-bit ones scaled to 8 bits. Pixels stay as stored (no EXIF rotation: WIDER's boxes refer to
  the stored pixels). Raises FileNotFoundError or ValueError naming the path (truncated, empty or
  not an image); the one image reader of the package."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{path}: image not found")
  try:
    with Image.open(path) as image:
      image.load()  # decode now: a truncated file fails here, inside this try
      if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        wide = np.asarray(image, np.int64)
        shift = 8 if wide.max(initial=0) > 255 else 0
        grey = np.clip(wide >> shift, 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=-1)
      return np.asarray(image.convert("RGB"))
  except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
    # SyntaxError: some bad headers; DecompressionBombError: over 2 x PIL's MAX_IMAGE_PIXELS
    # (179 Mpx), more than any detector here should be handed in one piece.
    raise ValueError(f"{path}: cannot decode image ({type(e).__name__}: {e})") from e


def write_skipped_report(path, skipped) -> str:
  """Writes ``path`` listing images a job skipped: one "path<TAB>reason" line each; returns it."""
  from tinyfaces_tf import atomic  # pylint: disable=g-import-not-at-top
  return atomic.write_text(path, "".join(f"{image}\t{reason}\n" for image, reason in skipped))

"""Multi-scale square sliding windows: a learning-free proposer (lower bound / sanity baseline)."""
import numpy as np

from tinyfaces_tf.proposals import base


def window_positions(length, size, stride):
  """Start offsets of windows of ``size`` along an axis of ``length``: every ``stride`` from 0,
  plus one flush with the far edge so the border is covered too."""
  if size > length:
    return np.zeros([0], np.float32)
  starts = np.arange(0, length - size + 1, stride, dtype=np.float32)
  if starts[-1] < length - size:
    starts = np.append(starts, np.float32(length - size))
  return starts


class SlidingWindowProposer(base.Proposer):
  """Square windows of sizes ``min_size * scale_step**k`` (k = 0, 1, ...) up to ``max_size``,
  each slid with stride ``max(1, round(stride_fraction * size))``.

  Windows carry no evidence, so every score is 1.0 (uniform; 1 rather than 0 so that
  ``score_fusion=product`` leaves the detector's own probability unchanged). Output order is
  deterministic: scales small to large, then row-major. When there are more windows than
  ``max_rois``, an evenly spaced subset of that list is kept (``np.linspace`` indices), so every
  scale keeps a share proportional to its window count; raise ``max_rois`` or ``stride_fraction``
  to control the trade-off explicitly.

  With the defaults (scale_step 1.25, stride_fraction 0.25) any square face between min_size and
  max_size overlaps some window with IoU >= 0.5 (worst case: size ratio 1.25 and a half-stride
  shift on both axes, IoU ~ 0.6).
  """

  def __init__(self, min_size=10, max_size=None, scale_step=1.25, stride_fraction=0.25,
               max_rois=base.DEFAULT_MAX_ROIS):
    if min_size < 1:
      raise ValueError(f"min_size must be >= 1, got {min_size}")
    if max_size is not None and max_size < min_size:
      raise ValueError(f"max_size ({max_size}) must be >= min_size ({min_size})")
    if scale_step <= 1.0:
      raise ValueError(f"scale_step must be > 1, got {scale_step}")
    if not 0.0 < stride_fraction <= 1.0:
      raise ValueError(f"stride_fraction must be in (0, 1], got {stride_fraction}")
    self.min_size = float(min_size)
    self.max_size = None if max_size is None else float(max_size)
    self.scale_step = float(scale_step)
    self.stride_fraction = float(stride_fraction)
    self.max_rois = max_rois

  def sizes(self, height, width):
    """Window sizes used for an image of ``height`` x ``width``."""
    limit = min(height, width) if self.max_size is None else min(self.max_size, height, width)
    sizes = []
    size = self.min_size
    while size <= limit + 1e-6:
      sizes.append(size)
      size *= self.scale_step
    return sizes

  def all_windows(self, height, width):
    """Every window (float32 [N, 4] xyxy) before the ``max_rois`` cap."""
    boxes = []
    for size in self.sizes(height, width):
      stride = max(1, int(round(self.stride_fraction * size)))
      xs = window_positions(width, size, stride)
      ys = window_positions(height, size, stride)
      yy, xx = np.meshgrid(ys, xs, indexing="ij")
      x1, y1 = xx.reshape(-1), yy.reshape(-1)
      boxes.append(np.stack([x1, y1, x1 + size, y1 + size], axis=1))
    if not boxes:
      return np.zeros([0, 4], np.float32)
    return np.concatenate(boxes).astype(np.float32)

  def propose(self, image, image_name=None):
    del image_name  # windows depend on the image size only
    height, width = base.check_image(image).shape[:2]
    boxes = self.all_windows(height, width)
    if self.max_rois is not None and len(boxes) > self.max_rois:
      keep = np.unique(np.round(np.linspace(0, len(boxes) - 1, self.max_rois)).astype(np.int64))
      boxes = boxes[keep]
    return base.make_proposals(boxes, np.ones([len(boxes)], np.float32), self.max_rois)

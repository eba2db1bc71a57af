"""The RoI crop op: context window -> HR patch -> bicubic x4 LR patch (SPEC section 5).

TensorFlow only, graph-safe: the same op cuts training RoIs (``data/roi_sampler.py`` through the
TFDS builder) and serves inside the exported ``detect`` signature (``detection/detector.py``).
Boxes are continuous pixel ``x1, y1, x2, y2`` (pixel i covers [i, i + 1)).
"""
import dataclasses
import functools
import math

import tensorflow as tf

from tinyfaces_tf.imaging import to_model_range


@dataclasses.dataclass(frozen=True)
class CropConfig:
  """How a RoI becomes its HR/LR patch pair; shared by training RoIs and the detector.

  Attributes:
    context: crop window = the RoI scaled by this factor m about its centre (journal 3.5 and
      Table 3; x2.0 is the journal's choice).
    hr_size: HR patch side in pixels (journal Table 1: 64).
    scale: LR = HR down-sampled by this factor (4: 16x16 LR patches); the generator up-samples by
      the same factor.
    pad_value: model-range value where a window leaves the image (0.0 = mid-grey, the networks'
      zero input).
    antialias: crop large windows from a 2x image pyramid so shrinking does not alias.
  """
  context: float = 2.0
  hr_size: int = 64
  scale: int = 4
  pad_value: float = 0.0
  antialias: bool = True

  def __post_init__(self):
    if not self.context > 0:
      raise ValueError(f"crop.context must be > 0, got {self.context}")
    if self.hr_size < 1 or self.scale < 1 or self.hr_size % self.scale:
      raise ValueError(f"crop.hr_size ({self.hr_size}) must be a positive multiple of "
                       f"crop.scale ({self.scale})")
    if not -1.0 <= self.pad_value <= 1.0:
      raise ValueError(f"crop.pad_value is in model range [-1, 1], got {self.pad_value}")

  @property
  def lr_size(self) -> int:
    return self.hr_size // self.scale


DEFAULT_CROP = CropConfig()  # the journal's patch sizes: 64x64 HR, 16x16 LR, x2.0 context



def context_windows(rois, context):
  """RoIs [..., 4] scaled by ``context`` about their centres (the crop windows)."""
  rois = tf.cast(rois, tf.float32)
  context = tf.cast(context, tf.float32)
  cx = 0.5 * (rois[..., 0] + rois[..., 2])
  cy = 0.5 * (rois[..., 1] + rois[..., 3])
  half_w = 0.5 * context * (rois[..., 2] - rois[..., 0])
  half_h = 0.5 * context * (rois[..., 3] - rois[..., 1])
  return tf.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], axis=-1)


def _sample_centres(lo, hi, size):
  """Continuous coordinates [N, size] of `size` evenly spaced sample centres over [lo, hi)."""
  steps = (tf.range(size, dtype=tf.float32) + 0.5) / size
  return lo[:, None] + steps[None, :] * (hi - lo)[:, None]


def _crop_level(image, windows, size, pad_value):
  """Bilinear crops [N, size, size, C] of `windows` (continuous coords of `image`).

  The image gets a 1-pixel edge-replicated border so samples within half a pixel of the image
  edge (inside the image, but beyond the outermost pixel centre) interpolate towards the edge
  pixel instead of towards `extrapolation_value`; the caller paints the padding afterwards.
  """
  padded = tf.pad(image, [[1, 1], [1, 1], [0, 0]], mode="SYMMETRIC")
  # crop_and_resize: normalised 0 / 1 are the first / last pixel CENTRES of the padded image and
  # the `size` samples include both ends. Sample j's centre is x1 + (j + 0.5) * w / size in
  # continuous coords = that - 0.5 + 1 (border) in padded pixel-index coords.
  height = tf.cast(tf.shape(image)[0], tf.float32)
  width = tf.cast(tf.shape(image)[1], tf.float32)
  x1, y1, x2, y2 = tf.unstack(windows, axis=-1)
  step_x = (x2 - x1) / size
  step_y = (y2 - y1) / size
  first_x = x1 + 0.5 * step_x + 0.5
  last_x = x1 + (size - 0.5) * step_x + 0.5
  first_y = y1 + 0.5 * step_y + 0.5
  last_y = y1 + (size - 0.5) * step_y + 0.5
  normalised = tf.stack([first_y / (height + 1.0), first_x / (width + 1.0),
                         last_y / (height + 1.0), last_x / (width + 1.0)], axis=-1)
  return tf.image.crop_and_resize(
      padded[None], normalised, tf.zeros([tf.shape(windows)[0]], tf.int32), [size, size],
      method="bilinear", extrapolation_value=pad_value)


def crop_rois_with_context(image, rois, config: CropConfig = DEFAULT_CROP, max_levels: int = 6):
  """HR and LR patches of each RoI's context window; the one crop path of training and detection.

  The window is the RoI scaled by `config.context` about its centre; `hr_size` x `hr_size` samples at
  the window's evenly spaced sample centres are bilinearly interpolated (pixel i covers
  [i, i + 1), its value sits at i + 0.5). Samples whose centre lies outside the image get
  `pad_value` (model range; 0.0 = mid-grey). With `antialias`, a window whose sample step
  exceeds 2 pixels is cropped from a 2x2-box-filtered image pyramid level where the step is in
  [1, 2) (mip-mapping), so shrinking large faces does not alias. LR is
  ``tf.image.resize(hr, [hr_size // scale] * 2, "bicubic", antialias=True)`` clipped to [-1, 1]:
  MATLAB's imresize, which the papers' data preparation used, anti-aliases when down-sampling
  and saturates to the uint8 range.

  Args:
    image: uint8 [H, W, 3] image (tensor or array; float in [0, 255] is accepted).
    rois: float [N, 4] boxes x1, y1, x2, y2 (N may be 0).
    config: the CropConfig (context, patch sizes, padding, anti-aliasing).
    max_levels: pyramid levels beyond the image (shrink factor up to 2**max_levels).

  Returns:
    (hr float32 [N, hr_size, hr_size, C], lr float32 [N, hr_size // scale, hr_size // scale, C]),
    both in the model range [-1, 1].
  """
  hr_size, pad_value = config.hr_size, config.pad_value
  image = to_model_range(tf.convert_to_tensor(image))
  image.shape.assert_has_rank(3)
  rois = tf.reshape(tf.cast(rois, tf.float32), [-1, 4])
  windows = context_windows(rois, config.context)
  x1, y1, x2, y2 = tf.unstack(windows, axis=-1)
  height = tf.cast(tf.shape(image)[0], tf.float32)
  width = tf.cast(tf.shape(image)[1], tf.float32)

  if config.antialias and max_levels > 0:
    # Level l halves the image l times; its continuous coords are level-0 coords / 2**l
    # (avg_pool SAME pads odd sizes at the end only and averages the valid pixels).
    min_step = tf.minimum(x2 - x1, y2 - y1) / hr_size
    level = tf.math.floor(tf.math.log(tf.maximum(min_step, 1.0)) / math.log(2.0))
    level = tf.cast(tf.clip_by_value(level, 0.0, float(max_levels)), tf.int32)
    indices, crops = [], []
    pyramid = image
    for l in range(max_levels + 1):
      if l:
        pyramid = tf.nn.avg_pool2d(pyramid[None], 2, 2, "SAME")[0]
      idx = tf.cast(tf.where(tf.equal(level, l))[:, 0], tf.int32)
      indices.append(idx)
      crops.append(_crop_level(pyramid, tf.gather(windows, idx) / float(2 ** l), hr_size,
                               pad_value))
    hr = tf.dynamic_stitch(indices, crops)
    hr = tf.reshape(hr, [-1, hr_size, hr_size, image.shape[-1] or tf.shape(image)[-1]])
  else:
    hr = _crop_level(image, windows, hr_size, pad_value)

  # Padding exactly where a sample centre leaves the image (separable per RoI).
  xs = _sample_centres(x1, x2, hr_size)
  ys = _sample_centres(y1, y2, hr_size)
  inside_x = (xs >= 0.0) & (xs < width)
  inside_y = (ys >= 0.0) & (ys < height)
  inside = inside_y[:, :, None, None] & inside_x[:, None, :, None]
  hr = tf.where(inside, hr, tf.constant(pad_value, tf.float32))
  lr = tf.image.resize(hr, [config.lr_size, config.lr_size], method="bicubic", antialias=True)
  return hr, tf.clip_by_value(lr, -1.0, 1.0)


@functools.lru_cache(maxsize=None)
def compiled_crop(config: CropConfig):
  """crop_rois_with_context as one tf.function for any uint8 image size (2.5x faster than eager
  in benchmarks/bench_rois.py); traced once per CropConfig. Returns f(image, boxes) -> (hr, lr)."""
  return tf.function(
      lambda image, boxes: crop_rois_with_context(image, boxes, config),
      input_signature=[tf.TensorSpec([None, None, 3], tf.uint8),
                       tf.TensorSpec([None, 4], tf.float32)])

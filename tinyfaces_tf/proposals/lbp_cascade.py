"""scikit-image's multi-block LBP frontal-face cascade (Viola-Jones style, Gentle AdaBoost) as a
weaker proposer than MTCNN: the journal's section 4.3 asks how the method fares on a weaker
baseline detector. The cascade file ships with scikit-image, so this runs offline.
"""
import numpy as np
from PIL import Image
import tensorflow as tf

from tinyfaces_tf import boxes as box_ops
from tinyfaces_tf.proposals import base

# Raw windows that overlap this much count as neighbours of each other (OpenCV's grouping rule
# reports the same neighbour count as a cascade's confidence).
NEIGHBOUR_IOU = 0.5


class LbpCascadeProposer(base.Proposer):
  """Faces found by ``skimage.feature.Cascade.detect_multi_scale`` with the bundled
  ``lbp_frontal_face_cascade_filename()``.

  The cascade returns windows without a confidence. Every raw window that passes all stages is
  kept (``intersection_score_threshold=1`` switches scikit-image's own merging off); a window's
  score is its neighbour count n (raw windows at IoU >= 0.5 with it, itself included, the
  quantity OpenCV's grouping thresholds on) mapped to n / (n + 1), so scores rank like n and lie
  in (0, 1) for ``score_fusion=product``; greedy NMS at ``nms_iou`` then keeps the best-supported
  window of each cluster. The cascade's window is 24x24 px, so the image is first up-sampled by
  ``upscale`` (2: faces from 12 px).

  Args:
    upscale: factor the image is enlarged by before detection (>= 1).
    scale_factor: window growth between pyramid levels (> 1).
    step_ratio: sliding step in units of the current scale (1 = every position).
    nms_iou: IoU above which a less-supported window is dropped.
    max_rois: cap on proposals per image, highest scores first.
  """

  def __init__(self, upscale=2.0, scale_factor=1.2, step_ratio=1.0, nms_iou=0.5,
               max_rois=base.DEFAULT_MAX_ROIS):
    if upscale < 1.0:
      raise ValueError(f"upscale must be >= 1, got {upscale}")
    if scale_factor <= 1.0:
      raise ValueError(f"scale_factor must be > 1, got {scale_factor}")
    if step_ratio <= 0.0:
      raise ValueError(f"step_ratio must be > 0, got {step_ratio}")
    if not 0.0 < nms_iou <= 1.0:
      raise ValueError(f"nms_iou must be in (0, 1], got {nms_iou}")
    self.upscale, self.scale_factor, self.step_ratio = float(upscale), scale_factor, step_ratio
    self.nms_iou = nms_iou
    self.max_rois = max_rois
    self._cascade = None

  def __getstate__(self):  # the Cython cascade does not pickle; Beam workers rebuild it
    return {**self.__dict__, "_cascade": None}

  @property
  def cascade(self):
    if self._cascade is None:
      from skimage import data  # pylint: disable=g-import-not-at-top
      from skimage import feature  # pylint: disable=g-import-not-at-top
      self._cascade = feature.Cascade(data.lbp_frontal_face_cascade_filename())
    return self._cascade

  def raw_windows(self, image):
    """Every window that passes all cascade stages, float32 [N, 4] x1, y1, x2, y2 in ``image``'s
    pixels."""
    image = base.check_image(image)
    height, width = image.shape[:2]
    big = image
    if self.upscale != 1.0:
      size = (round(width * self.upscale), round(height * self.upscale))
      big = np.asarray(Image.fromarray(image).resize(size, Image.BILINEAR))
    window = (self.cascade.window_height, self.cascade.window_width)
    if min(big.shape[:2]) < max(window):
      return np.zeros([0, 4], np.float32)
    found = self.cascade.detect_multi_scale(
        img=big, scale_factor=self.scale_factor, step_ratio=self.step_ratio, min_size=window,
        max_size=big.shape[:2], min_neighbor_number=1, intersection_score_threshold=1.0)
    boxes = np.asarray([[d["c"], d["r"], d["c"] + d["width"], d["r"] + d["height"]]
                        for d in found], np.float32).reshape(-1, 4)
    return boxes / np.float32(self.upscale)

  def propose(self, image, image_name=None):
    del image_name
    boxes = self.raw_windows(image)
    overlaps = np.asarray(box_ops.iou_matrix(boxes, boxes))
    neighbours = (overlaps >= NEIGHBOUR_IOU).sum(axis=1).astype(np.float32)
    # TF's NMS breaks score ties by box index, so the result is deterministic.
    keep = tf.image.non_max_suppression(boxes[:, [1, 0, 3, 2]], neighbours, len(boxes),
                                        self.nms_iou).numpy()
    return base.make_proposals(boxes[keep], neighbours[keep] / (neighbours[keep] + 1.0),
                               self.max_rois)

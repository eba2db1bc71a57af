"""Box formats, IoU and the Fast R-CNN regression parametrisation.

Boxes are float pixel ``x1, y1, x2, y2`` with x2 = x1 + w (continuous coordinates; WIDER's
``x y w h`` converts with ``xywh_to_xyxy``). The +1-pixel convention of the official WIDER
evaluation lives in ``evaluation/wider_protocol.py`` only, where the protocol demands it.
"""
import numpy as np
import tensorflow as tf
from keras_cv import bounding_box

# Fast R-CNN target normalisation (journal: "as in [52]"; SPEC section 5).
BOX_STDS = (0.1, 0.1, 0.2, 0.2)


def _float_boxes(boxes):
  """[N, 4] NumPy boxes; float64 stays float64 (the WIDER protocol's doubles), else float32."""
  boxes = np.asarray(boxes)
  dtype = np.float64 if boxes.dtype == np.float64 else np.float32
  return boxes.astype(dtype, copy=False).reshape(-1, 4)


def xywh_to_xyxy(boxes):
  """x, y, w, h -> x1, y1, x2 = x + w, y2 = y + h (the one conversion of the package)."""
  boxes = _float_boxes(boxes)
  return np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], axis=1)


def xyxy_to_xywh(boxes):
  boxes = _float_boxes(boxes)
  return np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)


def iou_matrix(boxes_a, boxes_b):
  """Pairwise IoU [len(a), len(b)] of xyxy boxes (keras_cv.bounding_box.compute_iou)."""
  boxes_a = tf.reshape(tf.cast(boxes_a, tf.float32), [-1, 4])
  boxes_b = tf.reshape(tf.cast(boxes_b, tf.float32), [-1, 4])
  if boxes_a.shape[0] == 0 or boxes_b.shape[0] == 0:
    return tf.zeros([tf.shape(boxes_a)[0], tf.shape(boxes_b)[0]], tf.float32)
  return bounding_box.compute_iou(boxes_a, boxes_b, bounding_box_format="xyxy")


def _centre_size(boxes):
  widths = boxes[..., 2] - boxes[..., 0]
  heights = boxes[..., 3] - boxes[..., 1]
  return boxes[..., 0] + 0.5 * widths, boxes[..., 1] + 0.5 * heights, widths, heights


def encode(gt_boxes, rois, stds=BOX_STDS):
  """Regression targets v of ``gt_boxes`` against ``rois`` (both xyxy, same shape [..., 4]).

  v = ((gx - rx) / rw, (gy - ry) / rh, log(gw / rw), log(gh / rh)) / stds.
  """
  gt_boxes = tf.cast(gt_boxes, tf.float32)
  rois = tf.cast(rois, tf.float32)
  gx, gy, gw, gh = _centre_size(gt_boxes)
  rx, ry, rw, rh = _centre_size(rois)
  rw = tf.maximum(rw, 1e-6)
  rh = tf.maximum(rh, 1e-6)
  deltas = tf.stack([(gx - rx) / rw, (gy - ry) / rh,
                     tf.math.log(tf.maximum(gw, 1e-6) / rw),
                     tf.math.log(tf.maximum(gh, 1e-6) / rh)], axis=-1)
  return deltas / tf.constant(stds, tf.float32)


def decode(deltas, rois, stds=BOX_STDS):
  """Exact inverse of ``encode``: boxes (xyxy) from deltas and rois."""
  deltas = tf.cast(deltas, tf.float32) * tf.constant(stds, tf.float32)
  rois = tf.cast(rois, tf.float32)
  rx, ry, rw, rh = _centre_size(rois)
  # Clip the log-size deltas so an untrained regressor cannot overflow exp().
  dw = tf.minimum(deltas[..., 2], np.log(1000.0 / 16.0))
  dh = tf.minimum(deltas[..., 3], np.log(1000.0 / 16.0))
  cx = rx + deltas[..., 0] * rw
  cy = ry + deltas[..., 1] * rh
  w = rw * tf.exp(dw)
  h = rh * tf.exp(dh)
  return tf.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], axis=-1)


def clip_to_image(boxes, height, width):
  boxes = tf.cast(boxes, tf.float32)
  height = tf.cast(height, tf.float32)
  width = tf.cast(width, tf.float32)
  x1 = tf.clip_by_value(boxes[..., 0], 0.0, width)
  y1 = tf.clip_by_value(boxes[..., 1], 0.0, height)
  x2 = tf.clip_by_value(boxes[..., 2], 0.0, width)
  y2 = tf.clip_by_value(boxes[..., 3], 0.0, height)
  return tf.stack([x1, y1, x2, y2], axis=-1)

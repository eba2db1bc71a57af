"""A proposer's recall by face height: the property the journal (section 4.3) says the baseline
detector must have ("the only thing needs to be ensured is that the baseline detector needs a
high recall"), since re-scoring can reorder proposals but never find a missed face."""
import math
from typing import Dict, Mapping, Sequence, Tuple

import numpy as np

from tinyfaces_tf import boxes as box_ops
from tinyfaces_tf.data import wider_face

# Face heights in pixels, [low, high); WIDER's "Hard" reaches down to 10 px.
HEIGHT_BINS: Tuple[Tuple[float, float], ...] = ((0, 16), (16, 32), (32, 64), (64, math.inf))
RECALL_IOU = 0.5  # a face counts as found when one proposal overlaps it at least this much


def bin_label(low: float, high: float) -> str:
  return f">={low:g}px" if math.isinf(high) else f"{low:g}-{high:g}px"


def recall_by_height(annotations: Sequence[wider_face.ImageAnnotation],
                     predictions: Mapping[str, Tuple[np.ndarray, np.ndarray]],
                     bins=HEIGHT_BINS, iou=RECALL_IOU) -> Dict[str, Dict[str, float]]:
  """Recall of ``predictions`` ({"event/stem": (boxes_xywh, scores)}, as
  ``result_files.read_result_dir`` returns) over the valid faces of ``annotations``.

  Every proposal counts, whatever its score. An image without a result file has found nothing.
  Returns {bin label: {"recall", "faces"}} for each height bin, plus "all".
  """
  heights, found = [], []
  for annotation in annotations:
    valid = annotation.valid
    gt = annotation.boxes_xyxy[valid]
    boxes_xywh, _ = predictions.get(f"{annotation.event}/{annotation.stem}",
                                    (np.zeros([0, 4], np.float32), None))
    hit = np.zeros(len(gt), bool)
    if len(gt) and len(boxes_xywh):
      overlaps = np.asarray(box_ops.iou_matrix(gt, box_ops.xywh_to_xyxy(boxes_xywh)))
      hit = overlaps.max(axis=1) >= iou
    heights.append(gt[:, 3] - gt[:, 1])
    found.append(hit)
  heights, found = np.concatenate(heights or [[]]), np.concatenate(found or [[]]).astype(bool)
  out = {}
  for low, high in (*bins, (0, math.inf)):
    in_bin = (heights >= low) & (heights < high)
    label = "all" if (low, high) == (0, math.inf) else bin_label(low, high)
    count = int(in_bin.sum())
    out[label] = {"recall": float(found[in_bin].mean()) if count else float("nan"),
                  "faces": count}
  return out

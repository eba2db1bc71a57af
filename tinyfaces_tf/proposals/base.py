"""The proposer interface: one uint8 image in, score-sorted candidate face boxes out.

Every baseline proposer (MTCNN, any detector's WIDER result files, multi-scale windows) returns
``Proposals``; the GAN detector then re-scores and regresses them (SPEC section 6).
"""
import abc
import dataclasses
from typing import Optional

import numpy as np

# Journal section 4.2: 600 RoIs per test image (100 for COCO; pass max_rois=100 there).
DEFAULT_MAX_ROIS = 600


@dataclasses.dataclass(frozen=True)
class Proposals:
  """Candidate boxes of one image, sorted by score (descending).

  Attributes:
    boxes: float32 [N, 4] pixel x1, y1, x2, y2 (x2 = x1 + w).
    scores: float32 [N], the proposer's own confidence.
    labels: int32 [N] the proposer's class 1..K (0 where it has none) for multi-class
      proposers, None for face proposers and class-agnostic ones.
  """
  boxes: np.ndarray
  scores: np.ndarray
  labels: Optional[np.ndarray] = None

  def __len__(self):
    return int(self.scores.shape[0])


def make_proposals(boxes, scores, max_rois, labels=None):
  """Validated ``Proposals``: sorted by score descending (stable), the first ``max_rois`` kept."""
  boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
  scores = np.asarray(scores, dtype=np.float32).reshape(-1)
  if boxes.shape[0] != scores.shape[0]:
    raise ValueError(f"{boxes.shape[0]} boxes but {scores.shape[0]} scores")
  if labels is not None:
    labels = np.asarray(labels, np.int32).reshape(-1)
    if labels.shape[0] != scores.shape[0]:
      raise ValueError(f"{labels.shape[0]} labels but {scores.shape[0]} scores")
  if max_rois is not None and max_rois < 1:
    raise ValueError(f"max_rois must be >= 1 or None, got {max_rois}")
  # Stable order keeps equal-score proposals in the proposer's own (deterministic) order.
  order = np.argsort(-scores, kind="stable")[:max_rois]
  return Proposals(boxes=boxes[order], scores=scores[order],
                   labels=None if labels is None else labels[order])


def check_image(image):
  """Returns ``image`` as a uint8 [H, W, 3] array or raises ValueError saying what is wrong."""
  image = np.asarray(image)
  if image.ndim != 3 or image.shape[-1] != 3:
    raise ValueError(f"expected an RGB image [H, W, 3], got shape {image.shape}")
  if image.dtype != np.uint8:
    raise ValueError(f"expected a uint8 image, got {image.dtype}")
  return image


class Proposer(abc.ABC):
  """Produces candidate face boxes for one image."""

  max_rois = DEFAULT_MAX_ROIS

  @abc.abstractmethod
  def propose(self, image, image_name=None):
    """Proposals for ``image`` (uint8 [H, W, 3]).

    Args:
      image: uint8 RGB image.
      image_name: the image's name relative to the split's image folder ("event/file.jpg"); only
        proposers that read stored results need it.
    Returns:
      ``Proposals`` sorted by score, at most ``max_rois`` of them.
    """

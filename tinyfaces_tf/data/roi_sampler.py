"""The training RoI sampler (NumPy): labels, jittered positives, backgrounds, regression targets.

Boxes are continuous pixel ``x1, y1, x2, y2`` (pixel i covers [i, i + 1)).

``sample_training_rois`` / ``make_training_examples``: proposals of a baseline detector
are labelled face (IoU >= 0.5 with a valid face), background (IoU < 0.35 with every face, valid or
not) or ignored; ground-truth-jittered positives and random background windows are added, the
backgrounds topped up to ``background_ratio`` (journal 4.2: 1,626,328 non-faces for 1,075,968
faces, ~1.5) per positive. The patches are then cut by ``roi_crop.crop_rois_with_context``, the
op the detector serves with.
"""
import dataclasses
import functools
import math
from typing import Optional

import numpy as np
import tensorflow as tf

from tinyfaces_tf import boxes as box_ops
from tinyfaces_tf import roi_crop


@dataclasses.dataclass(frozen=True)
class RoiSamplerConfig:
  """Which RoIs of a training image are kept, and how they are labelled.

  Attributes:
    fg_iou: IoU with a valid face at or above which a RoI is a face.
    bg_iou: max IoU with all faces (valid or not) below which a RoI is background.
    jitter_per_face: ground-truth-jittered positives per valid face.
    jitter_shift: max centre shift of a jittered box, as a fraction of the face's width / height.
    jitter_scale: max size factor (width and height independently, in [1/s, s]) of a jittered box.
    background_ratio: backgrounds per positive RoI (journal: ~1.5).
    num_background: fixed background count per image instead of the ratio (None: use the ratio).
    min_background: backgrounds per image at least (face-less images still give negatives).
    hard_background_fraction: share of random backgrounds drawn next to a face (shifted /
      rescaled face boxes with IoU < bg_iou: partial faces, hair, neck); the rest are placed
      uniformly over the image. Either kind takes its size from a random face of the image.
    background_size_range: side range (log-uniform) of random backgrounds in face-less images.
    max_rois: RoIs per image at most (positives and backgrounds subsampled keeping the ratio).
    keep_ignored: also return the ignored proposals (label -1); the training pipeline drops them.
    max_attempts: candidate draws per wanted jittered / background box before giving up.
    crowd_ioa: share of a RoI's area inside a crowd region (COCO ``iscrowd``) at or above which a
      RoI that is not an object is ignored instead of background (Detectron's
      TRAIN.CROWD_FILTER_THRESH, 0.7).
  """
  fg_iou: float = 0.5
  bg_iou: float = 0.35
  jitter_per_face: int = 1
  jitter_shift: float = 0.2
  jitter_scale: float = 1.25
  background_ratio: float = 1.5
  num_background: Optional[int] = None
  min_background: int = 2
  hard_background_fraction: float = 0.5
  background_size_range: tuple[float, float] = (10.0, 100.0)
  max_rois: int = 256
  keep_ignored: bool = False
  max_attempts: int = 20
  crowd_ioa: float = 0.7

  def __post_init__(self):
    if not 0.0 <= self.bg_iou <= self.fg_iou <= 1.0:
      raise ValueError(f"RoiSamplerConfig needs 0 <= bg_iou <= fg_iou <= 1, got bg_iou={self.bg_iou}, "
                       f"fg_iou={self.fg_iou}")
    if self.jitter_scale < 1.0 or self.jitter_shift < 0.0:
      raise ValueError(f"RoiSamplerConfig needs jitter_scale >= 1 and jitter_shift >= 0, got "
                       f"{self.jitter_scale}, {self.jitter_shift}")
    if not 0.0 <= self.hard_background_fraction <= 1.0:
      raise ValueError("RoiSamplerConfig.hard_background_fraction must be in [0, 1], got "
                       f"{self.hard_background_fraction}")
    if self.max_rois < 1:
      raise ValueError(f"RoiSamplerConfig.max_rois must be >= 1, got {self.max_rois}")


def _as_boxes(boxes, what):
  if boxes is None:
    return np.zeros((0, 4), np.float32)
  boxes = np.asarray(boxes, np.float32)
  if boxes.size == 0:
    return np.zeros((0, 4), np.float32)
  if boxes.ndim != 2 or boxes.shape[1] < 4:
    raise ValueError(f"{what} must be [N, 4] x1, y1, x2, y2 boxes, got shape {boxes.shape}")
  return boxes[:, :4]


def _widths_heights(boxes):
  return boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]


def label_proposals(proposals, gt_boxes, gt_valid=None, fg_iou=0.5, bg_iou=0.35,
                    gt_labels=None, crowd_boxes=None, crowd_ioa=0.7):
  """Labels RoIs against the ground truth (SPEC section 5; MTGAN 4.5 for K classes).

  Object (the matched box's label, 1 for faces): IoU >= `fg_iou` with a valid box, the label of
  the valid box of highest IoU. Background (0): IoU < `bg_iou` with every box, valid or not, and
  less than `crowd_ioa` of its area inside any crowd region. Anything else is ignored (-1).

  Args:
    proposals: [N, 4] boxes.
    gt_boxes: [G, 4] objects.
    gt_valid: [G] bool (WIDER's `invalid` flag negated); None = all valid.
    gt_labels: [G] int labels 1..K; None = all 1 (faces).
    crowd_boxes: [R, 4] crowd regions (COCO iscrowd): never matched, they only turn would-be
      backgrounds into ignored RoIs.
    crowd_ioa: the share of a RoI's area inside one crowd region that makes it ignored.

  Returns:
    labels int32 [N]; matched int32 [N] (index into `gt_boxes` of the best valid box for
    objects, -1 otherwise); ious float32 [N] (best IoU with a valid box, 0 without one).
  """
  proposals = _as_boxes(proposals, "proposals")
  gt_boxes = _as_boxes(gt_boxes, "gt_boxes")
  valid = (np.ones(len(gt_boxes), bool) if gt_valid is None
           else np.asarray(gt_valid, bool).reshape(-1))
  if len(valid) != len(gt_boxes):
    raise ValueError(f"gt_valid has {len(valid)} entries for {len(gt_boxes)} gt_boxes")
  n = len(proposals)
  iou = box_ops.iou_matrix(proposals, gt_boxes).numpy().reshape(n, len(gt_boxes))
  max_all = iou.max(axis=1) if len(gt_boxes) else np.zeros(n, np.float32)
  valid_iou = np.where(valid[None, :], iou, -1.0)
  if valid.any():
    best = valid_iou.argmax(axis=1).astype(np.int32)
    ious = valid_iou[np.arange(n), best].astype(np.float32)
  else:
    best = np.full(n, -1, np.int32)
    ious = np.zeros(n, np.float32)
  classes = (np.ones(len(gt_boxes), np.int32) if gt_labels is None
             else np.asarray(gt_labels, np.int32).reshape(-1))
  if len(classes) != len(gt_boxes):
    raise ValueError(f"gt_labels has {len(classes)} entries for {len(gt_boxes)} gt_boxes")
  if classes.size and classes.min() < 1:
    raise ValueError(f"gt_labels must be >= 1 (0 is background), got {classes.min()}")
  labels = np.full(n, -1, np.int32)
  labels[(max_all < bg_iou) & (crowd_share(proposals, crowd_boxes) < crowd_ioa)] = 0
  is_object = ious >= fg_iou
  labels[is_object] = classes[best[is_object]]
  matched = np.where(is_object, best, -1).astype(np.int32)
  return labels, matched, ious


def crowd_share(boxes, crowd_boxes):
  """[N] the largest share of each box's area inside one crowd region (0 without regions)."""
  boxes = _as_boxes(boxes, "boxes")
  crowd = _as_boxes(crowd_boxes, "crowd_boxes")
  if not len(boxes) or not len(crowd):
    return np.zeros(len(boxes), np.float32)
  iw = np.clip(np.minimum(boxes[:, None, 2], crowd[None, :, 2])
               - np.maximum(boxes[:, None, 0], crowd[None, :, 0]), 0, None)
  ih = np.clip(np.minimum(boxes[:, None, 3], crowd[None, :, 3])
               - np.maximum(boxes[:, None, 1], crowd[None, :, 1]), 0, None)
  area = np.maximum((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]), 1e-12)
  return (iw * ih).max(axis=1) / area


def _paired_iou(a, b):
  """IoU of a[i] with b[i] (NumPy, [N, 4] each)."""
  iw = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
  ih = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)
  inter = iw * ih
  area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])
  union = area(a) + area(b) - inter
  return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def _boxes_from_centres(cx, cy, w, h):
  return np.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], axis=-1)


def jitter_positives(faces, count, config, rng):
  """Up to `count` random shifts / rescalings per face, each with IoU >= fg_iou with its face.

  Returns (boxes [M, 4] float32, face index [M] int32 into `faces`), grouped by face.
  """
  faces = _as_boxes(faces, "faces")
  if count <= 0 or not len(faces):
    return np.zeros((0, 4), np.float32), np.zeros(0, np.int32)
  draws = count * config.max_attempts
  w, h = _widths_heights(faces)
  cx = faces[:, 0] + 0.5 * w
  cy = faces[:, 1] + 0.5 * h
  shift = config.jitter_shift
  log_s = math.log(config.jitter_scale)
  shape = (len(faces), draws)
  ncx = cx[:, None] + rng.uniform(-shift, shift, shape) * w[:, None]
  ncy = cy[:, None] + rng.uniform(-shift, shift, shape) * h[:, None]
  nw = w[:, None] * np.exp(rng.uniform(-log_s, log_s, shape))
  nh = h[:, None] * np.exp(rng.uniform(-log_s, log_s, shape))
  candidates = _boxes_from_centres(ncx, ncy, nw, nh).reshape(-1, 4)
  owner = np.repeat(np.arange(len(faces), dtype=np.int32), draws)
  ok = (_paired_iou(candidates, faces[owner]) >= config.fg_iou).reshape(shape)
  # The first `count` accepted draws of each face, in draw order (deterministic given rng).
  keep = ok & (np.cumsum(ok, axis=1) <= count)
  keep &= (w > 0)[:, None] & (h > 0)[:, None]
  keep = keep.reshape(-1)
  return candidates[keep].astype(np.float32), owner[keep]


def random_backgrounds(image_shape, gt_boxes, count, config, rng, crowd_boxes=None):
  """`count` (or fewer, if attempts run out) windows inside the image with IoU < bg_iou with
  every box in `gt_boxes` and less than `crowd_ioa` of their area inside a crowd region. Sizes follow the faces of the image (a random face's width and height
  times a factor in [0.8, 1.25]); without faces, a log-uniform square side in
  `config.background_size_range`. A `hard_background_fraction` share is placed next to a face.
  """
  height, width = float(image_shape[0]), float(image_shape[1])
  gt_boxes = _as_boxes(gt_boxes, "gt_boxes")
  if count <= 0 or height < 1 or width < 1:
    return np.zeros((0, 4), np.float32)
  gw, gh = _widths_heights(gt_boxes)
  sized = gt_boxes[(gw >= 1) & (gh >= 1)]
  num_hard = int(round(count * config.hard_background_fraction)) if len(sized) else 0
  out = []
  for wanted, hard in ((num_hard, True), (count - num_hard, False)):
    got = np.zeros((0, 4), np.float32)
    for _ in range(config.max_attempts):
      if len(got) >= wanted:
        break
      n = 4 * (wanted - len(got))
      if len(sized):
        template = sized[rng.integers(0, len(sized), n)]
        tw, th = _widths_heights(template)
        factor = np.exp(rng.uniform(math.log(0.8), math.log(1.25), (2, n)))
        bw, bh = tw * factor[0], th * factor[1]
      else:
        lo, hi = config.background_size_range
        bw = bh = np.exp(rng.uniform(math.log(lo), math.log(hi), n))
      bw, bh = np.minimum(bw, width), np.minimum(bh, height)
      if hard:
        # Next to a face: centre shifted by 0.5 to 1.5 face sizes (partial faces, hair, neck).
        tcx = template[:, 0] + 0.5 * tw
        tcy = template[:, 1] + 0.5 * th
        sign = rng.choice([-1.0, 1.0], (2, n))
        cx = tcx + sign[0] * rng.uniform(0.0, 1.5, n) * tw
        cy = tcy + sign[1] * rng.uniform(0.0, 1.5, n) * th
      else:
        cx = rng.uniform(0.0, 1.0, n) * (width - bw) + 0.5 * bw
        cy = rng.uniform(0.0, 1.0, n) * (height - bh) + 0.5 * bh
      cand = _boxes_from_centres(cx, cy, bw, bh).astype(np.float32)
      inside = ((cand[:, 0] >= 0) & (cand[:, 1] >= 0) & (cand[:, 2] <= width)
                & (cand[:, 3] <= height) & (bw >= 1) & (bh >= 1))
      cand = cand[inside]
      if len(gt_boxes) and len(cand):
        cand = cand[box_ops.iou_matrix(cand, gt_boxes).numpy().max(axis=1) < config.bg_iou]
      cand = cand[crowd_share(cand, crowd_boxes) < config.crowd_ioa]
      got = np.concatenate([got, cand[:wanted - len(got)]])
    out.append(got)
  return np.concatenate(out).astype(np.float32)


def _subsample(n, keep, rng):
  """Sorted indices of `keep` of range(n) chosen at random (all if keep >= n)."""
  if keep >= n:
    return np.arange(n)
  return np.sort(rng.choice(n, size=keep, replace=False))


def _rng(rng):
  return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def sample_training_rois(image_shape, gt_boxes, gt_valid, proposals, config, rng,
                         gt_labels=None, crowd_boxes=None):
  """Training RoIs of one image: labelled proposals + jittered positives + random backgrounds.

  Positives: proposals with IoU >= fg_iou with a valid face, plus `jitter_per_face` jittered
  copies of each valid face. Backgrounds: `num_background`, or max(min_background,
  ceil(background_ratio * positives)); proposal backgrounds first (the baseline detector's own
  false positives), subsampled if there are more, then random windows fill the shortfall. At most
  `max_rois` in all, positives and backgrounds subsampled in the configured ratio. Every returned
  RoI is (re)labelled by `label_proposals`, so labels always follow the IoU thresholds.

  Args:
    image_shape: (H, W[, C]).
    gt_boxes: [G, 4] faces, x1 y1 x2 y2.
    gt_valid: [G] bool, or None for all valid.
    proposals: [P, 4] (extra columns such as scores are ignored), or None.
    config: RoiSamplerConfig.
    rng: np.random.Generator or an int seed. Same rng state -> same RoIs.
    gt_labels: [G] labels 1..K of the boxes (None: all faces, label 1).
    crowd_boxes: [R, 4] crowd regions (COCO iscrowd): never positives; RoIs mostly inside one
      are ignored, not backgrounds.

  Returns:
    dict of NumPy arrays: rois float32 [N, 4], labels int32 [N] (1..K the matched box's label,
    0 background, -1 ignored), box_targets float32 [N, 4] (boxes.encode of the matched box
    against the RoI, zeros elsewhere; the loss picks the label's class-specific deltas), ious
    float32 [N] (best IoU with a valid box), matched int32 [N].
  """
  rng = _rng(rng)
  gt_boxes = _as_boxes(gt_boxes, "gt_boxes")
  valid = (np.ones(len(gt_boxes), bool) if gt_valid is None
           else np.asarray(gt_valid, bool).reshape(-1))
  if len(valid) != len(gt_boxes):
    raise ValueError(f"gt_valid has {len(valid)} entries for {len(gt_boxes)} gt_boxes")
  proposals = _as_boxes(proposals, "proposals")
  pw, ph = _widths_heights(proposals)
  proposals = proposals[np.isfinite(proposals).all(axis=1) & (pw > 0) & (ph > 0)]

  label = functools.partial(label_proposals, gt_boxes=gt_boxes, gt_valid=valid,
                            fg_iou=config.fg_iou, bg_iou=config.bg_iou, gt_labels=gt_labels,
                            crowd_boxes=crowd_boxes, crowd_ioa=config.crowd_ioa)
  labels, _, _ = label(proposals)
  jittered, _ = jitter_positives(gt_boxes[valid], config.jitter_per_face, config, rng)
  positives = np.concatenate([proposals[labels >= 1], jittered])
  if config.num_background is not None:
    num_bg = config.num_background
  else:
    num_bg = max(config.min_background, math.ceil(config.background_ratio * len(positives)))
  proposal_bg = proposals[labels == 0]
  proposal_bg = proposal_bg[_subsample(len(proposal_bg), num_bg, rng)]
  backgrounds = np.concatenate([proposal_bg, random_backgrounds(
      image_shape, gt_boxes, num_bg - len(proposal_bg), config, rng, crowd_boxes)])

  total = len(positives) + len(backgrounds)
  if total > config.max_rois:
    share = int(round(config.max_rois / (1.0 + config.background_ratio)))
    keep_pos = min(len(positives), max(config.max_rois - len(backgrounds), share))
    keep_bg = min(len(backgrounds), config.max_rois - keep_pos)
    positives = positives[_subsample(len(positives), keep_pos, rng)]
    backgrounds = backgrounds[_subsample(len(backgrounds), keep_bg, rng)]
  parts = [positives, backgrounds]
  if config.keep_ignored:
    ignored = proposals[labels == -1]
    room = max(0, config.max_rois - len(positives) - len(backgrounds))
    parts.append(ignored[_subsample(len(ignored), room, rng)])
  rois = np.concatenate(parts).astype(np.float32).reshape(-1, 4)

  labels, matched, ious = label(rois)
  box_targets = np.zeros((len(rois), 4), np.float32)
  positive = labels >= 1
  if positive.any():
    box_targets[positive] = box_ops.encode(gt_boxes[matched[positive]], rois[positive]).numpy()
  return {"rois": rois, "labels": labels, "box_targets": box_targets, "ious": ious,
          "matched": matched}


def make_training_examples(image, gt_boxes, gt_valid, proposals, config: RoiSamplerConfig,
                           crop: roi_crop.CropConfig, rng, gt_labels=None, crowd_boxes=None):
  """`sample_training_rois` plus the patches `crop` cuts: adds ``hr`` float32 [N, 64, 64, 3] and
  ``lr`` float32 [N, 16, 16, 3] (model range [-1, 1]; `imaging.to_uint8` for storage)."""
  image = np.asarray(image)
  if image.ndim != 3 or image.shape[-1] != 3 or image.dtype != np.uint8:
    raise ValueError(f"image must be uint8 [H, W, 3], got {image.dtype} {image.shape}")
  out = sample_training_rois(image.shape, gt_boxes, gt_valid, proposals, config, rng,
                             gt_labels=gt_labels, crowd_boxes=crowd_boxes)
  hr, lr = roi_crop.compiled_crop(crop)(tf.constant(image), tf.constant(out["rois"]))
  out["hr"] = hr.numpy()
  out["lr"] = lr.numpy()
  return out

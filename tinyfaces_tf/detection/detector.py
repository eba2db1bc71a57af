"""The graph detector: proposals of one image -> context crops -> G then D in one batched call ->
scored, regressed, NMS'd boxes. Graph-safe; the exported ``detect`` signature is this code.
Split-level jobs that write files are ``detection/jobs.py``."""
import dataclasses

import tensorflow as tf

from tinyfaces_tf import boxes as box_ops
from tinyfaces_tf import roi_crop
from tinyfaces_tf.proposals.base import DEFAULT_MAX_ROIS

SCORE_FUSIONS = ("none", "product")


@dataclasses.dataclass(frozen=True)
class DetectConfig:
  """How RoIs become detections (the crop itself is the experiment's CropConfig).

  Attributes:
    score_fusion: "none": D's face probability; "product": times the proposer's score (MTGAN
      Table 6 ensemble).
    nms_iou: IoU above which NMS suppresses the lower-scored box.
    max_rois: proposals per image re-scored, highest proposer score first (journal 4.2: 600).
    max_detections: boxes per image kept after NMS.
    refine_boxes: decode fc_reg's deltas into the boxes (when D has a regression branch).
  """
  score_fusion: str = dataclasses.field(default="none", metadata={"choices": SCORE_FUSIONS})
  nms_iou: float = 0.4
  max_rois: int = DEFAULT_MAX_ROIS
  max_detections: int = DEFAULT_MAX_ROIS
  refine_boxes: bool = True

  def __post_init__(self):
    if self.score_fusion not in SCORE_FUSIONS:
      raise ValueError(f"detect.score_fusion must be one of {SCORE_FUSIONS}, got "
                       f"{self.score_fusion!r}")
    if not 0.0 < self.nms_iou <= 1.0:
      raise ValueError(f"detect.nms_iou must be in (0, 1], got {self.nms_iou}")
    if self.max_rois < 1 or self.max_detections < 1:
      raise ValueError(f"detect.max_rois and detect.max_detections must be >= 1, got "
                       f"{self.max_rois}, {self.max_detections}")


def score_rois(generator, discriminator, lr):
  """G then D on LR RoIs [N, h, w, 3] (model range). Returns float32 tensors: ``sr``,
  ``face_prob`` [N] (sigmoid face/non-face, or 1 - P(background) for K+1 classes),
  ``class_probs`` [N, C] (multi-class only), ``real_prob`` [N] and ``box_deltas`` [N, 4 or 4C]."""
  sr = generator(lr, training=False)["sr"]
  d = discriminator(sr, training=False)
  n = tf.shape(lr)[0]
  out = {"sr": tf.cast(sr, tf.float32)}
  logits = tf.cast(d["cls_logits"], tf.float32)
  if logits.shape[-1] == 1:
    out["face_prob"] = tf.sigmoid(logits[:, 0])
  else:
    out["class_probs"] = tf.nn.softmax(logits, axis=-1)
    out["face_prob"] = 1.0 - out["class_probs"][:, 0]
  out["real_prob"] = (tf.sigmoid(tf.cast(d["gan_logit"][:, 0], tf.float32)) if "gan_logit" in d
                      else tf.ones([n], tf.float32))
  num_deltas = 4 if logits.shape[-1] == 1 else 4 * logits.shape[-1]
  out["box_deltas"] = (tf.cast(d["box_deltas"], tf.float32) if "box_deltas" in d
                       else tf.zeros([n, num_deltas], tf.float32))
  return out


def detect_image(generator, discriminator, image, proposals, proposal_scores,
                 crop: roi_crop.CropConfig, config: DetectConfig):
  """One image: uint8 [H, W, 3] (or [H, W, 1] grey, repeated to RGB), proposals float32 [N, 4]
  (pixel x1, y1, x2, y2) and their scores.

  Proposals with a non-finite coordinate or score, or without positive width and height (an
  inverted box), are dropped before anything else: they have no crop to score. Returns (boxes
  [M, 4] x1, y1, x2, y2, scores [M]), highest score first. Graph-safe (used inside the exported
  ``detect`` signature), so N may be 0.
  """
  image = tf.convert_to_tensor(image)
  image = tf.ensure_shape(tf.cond(tf.shape(image)[-1] == 1,
                                  lambda: tf.tile(image, [1, 1, 3]), lambda: image),
                          [None, None, 3])
  proposals = tf.reshape(tf.cast(proposals, tf.float32), [-1, 4])
  proposal_scores = tf.reshape(tf.cast(proposal_scores, tf.float32), [-1])
  usable = (tf.reduce_all(tf.math.is_finite(proposals), axis=1)
            & tf.math.is_finite(proposal_scores)
            & (proposals[:, 2] > proposals[:, 0]) & (proposals[:, 3] > proposals[:, 1]))
  proposals = tf.boolean_mask(proposals, usable)
  proposal_scores = tf.boolean_mask(proposal_scores, usable)
  order = tf.argsort(proposal_scores, direction="DESCENDING", stable=True)[:config.max_rois]
  proposals = tf.gather(proposals, order)
  proposal_scores = tf.gather(proposal_scores, order)
  # One dummy RoI is appended and dropped again: Keras batch norm rejects an empty batch, and a
  # graph-safe detect must accept images without proposals.
  n = tf.shape(proposals)[0]
  padded = tf.concat([proposals, tf.constant([[0.0, 0.0, 1.0, 1.0]])], axis=0)
  _, lr = roi_crop.crop_rois_with_context(image, padded, crop)
  out = {k: v[:n] for k, v in score_rois(generator, discriminator, lr).items()}
  scores = out["face_prob"]
  if config.score_fusion == "product":
    scores = scores * proposal_scores
  refined = proposals
  if config.refine_boxes and "box_deltas" in discriminator.output:
    deltas = out["box_deltas"]
    if deltas.shape[-1] != 4:  # class-specific: take the most probable non-background class
      best = tf.argmax(out["class_probs"][:, 1:], axis=-1, output_type=tf.int32) + 1
      deltas = tf.gather(tf.reshape(deltas, [tf.shape(deltas)[0], -1, 4]), best, batch_dims=1)
    shape = tf.shape(image)
    refined = box_ops.clip_to_image(box_ops.decode(deltas, proposals), shape[0], shape[1])
  yx = tf.gather(refined, [1, 0, 3, 2], axis=1)
  keep = tf.image.non_max_suppression(yx, scores, config.max_detections, config.nms_iou)
  return tf.gather(refined, keep), tf.gather(scores, keep)


class Detector:
  """Keras models + CropConfig + DetectConfig behind tf.functions with explicit signatures."""

  def __init__(self, generator, discriminator, crop: roi_crop.CropConfig = roi_crop.DEFAULT_CROP,
               config: DetectConfig = DetectConfig()):
    self.generator, self.discriminator = generator, discriminator
    self.crop, self.config = crop, config
    lr_size = crop.lr_size
    self.score_rois = tf.function(
        lambda lr: score_rois(generator, discriminator, lr),
        input_signature=[tf.TensorSpec([None, lr_size, lr_size, 3], tf.float32, name="lr")])
    self.detect = self._detect_function(config)
    # The same detection with each score fusion, whatever the config's: exported too, so
    # `tinyfaces-detect --score_fusion` can choose without re-exporting.
    self.detect_by_fusion = {
        fusion: (self.detect if fusion == config.score_fusion else self._detect_function(
            dataclasses.replace(config, score_fusion=fusion)))
        for fusion in SCORE_FUSIONS}

  def _detect_function(self, config):
    generator, discriminator, crop = self.generator, self.discriminator, self.crop
    return tf.function(
        lambda image, boxes, scores: dict(zip(("boxes", "scores"), detect_image(
            generator, discriminator, image, boxes, scores, crop, config))),
        input_signature=[tf.TensorSpec([None, None, None], tf.uint8, name="image"),
                         tf.TensorSpec([None, 4], tf.float32, name="boxes"),
                         tf.TensorSpec([None], tf.float32, name="scores")])

  def __call__(self, image, proposals, proposal_scores):
    out = self.detect(checked_image(image),
                      tf.convert_to_tensor(proposals, tf.float32),
                      tf.convert_to_tensor(proposal_scores, tf.float32))
    return out["boxes"].numpy(), out["scores"].numpy()


def checked_image(image):
  """``image`` as a uint8 tensor [H, W, 3] or [H, W, 1]; other dtypes or shapes raise ValueError
  naming the argument (a float image in [0, 1] is never cast to uint8 silently)."""
  image = tf.convert_to_tensor(image)
  if image.dtype != tf.uint8:
    raise ValueError(f"image: expected uint8 pixels in [0, 255], got {image.dtype.name}")
  if image.shape.rank == 2:
    image = image[..., None]
  if image.shape.rank != 3 or image.shape[-1] not in (1, 3):
    raise ValueError(f"image: expected [H, W, 3] RGB or [H, W] / [H, W, 1] grey, got shape "
                     f"{image.shape}")
  return image

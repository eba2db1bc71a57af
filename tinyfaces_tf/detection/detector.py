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
                 crop: roi_crop.CropConfig, config: DetectConfig, proposal_labels=None):
  """One image: uint8 [H, W, 3] (or [H, W, 1] grey, repeated to RGB), proposals float32 [N, 4]
  (pixel x1, y1, x2, y2), their scores and, for a K + 1-class D, their labels (int32 [N], 1..K
  the proposer's class, 0 class-agnostic; None: all 0).

  Proposals with a non-finite coordinate or score, or without positive width and height (an
  inverted box), are dropped before anything else: they have no crop to score. Returns (boxes
  [M, 4] x1, y1, x2, y2, scores [M], labels int32 [M]), highest score first: for faces one box
  per kept RoI (label 1); for K classes per-class scores and class-specific boxes, NMS within
  each class, at most ``max_detections`` in all (MTGAN 4.2: 100). Graph-safe (used inside the
  exported ``detect`` signature), so N may be 0.
  """
  image = tf.convert_to_tensor(image)
  image = tf.ensure_shape(tf.cond(tf.shape(image)[-1] == 1,
                                  lambda: tf.tile(image, [1, 1, 3]), lambda: image),
                          [None, None, 3])
  proposals = tf.reshape(tf.cast(proposals, tf.float32), [-1, 4])
  proposal_scores = tf.reshape(tf.cast(proposal_scores, tf.float32), [-1])
  proposal_labels = (tf.zeros_like(proposal_scores, tf.int32) if proposal_labels is None
                     else tf.reshape(tf.cast(proposal_labels, tf.int32), [-1]))
  usable = (tf.reduce_all(tf.math.is_finite(proposals), axis=1)
            & tf.math.is_finite(proposal_scores)
            & (proposals[:, 2] > proposals[:, 0]) & (proposals[:, 3] > proposals[:, 1]))
  proposals, proposal_scores, proposal_labels = (
      tf.boolean_mask(t, usable) for t in (proposals, proposal_scores, proposal_labels))
  order = tf.argsort(proposal_scores, direction="DESCENDING", stable=True)[:config.max_rois]
  proposals, proposal_scores, proposal_labels = (
      tf.gather(t, order) for t in (proposals, proposal_scores, proposal_labels))
  # One dummy RoI is appended and dropped again: Keras batch norm rejects an empty batch, and a
  # graph-safe detect must accept images without proposals.
  n = tf.shape(proposals)[0]
  padded = tf.concat([proposals, tf.constant([[0.0, 0.0, 1.0, 1.0]])], axis=0)
  _, lr = roi_crop.crop_rois_with_context(image, padded, crop)
  out = {k: v[:n] for k, v in score_rois(generator, discriminator, lr).items()}
  refine = config.refine_boxes and "box_deltas" in discriminator.output
  shape = tf.shape(image)
  if "class_probs" in out:
    return _per_class_detections(out, proposals, proposal_scores, proposal_labels, shape,
                                 config, refine)
  scores = out["face_prob"]
  if config.score_fusion == "product":
    scores = scores * proposal_scores
  refined = proposals
  if refine:
    refined = box_ops.clip_to_image(box_ops.decode(out["box_deltas"], proposals), shape[0],
                                    shape[1])
  yx = tf.gather(refined, [1, 0, 3, 2], axis=1)
  keep = tf.image.non_max_suppression(yx, scores, config.max_detections, config.nms_iou)
  return (tf.gather(refined, keep), tf.gather(scores, keep),
          tf.ones_like(keep, dtype=tf.int32))


def _per_class_detections(out, proposals, proposal_scores, proposal_labels, image_shape,
                          config, refine):
  """K classes: every RoI scores every class (softmax without background), boxes decoded with
  that class's deltas, NMS within each class (never across), the best max_detections kept."""
  probs = out["class_probs"][:, 1:]  # [N, K]
  num_classes = tf.shape(probs)[1]
  if config.score_fusion == "product":
    # MTGAN Table 6: times the proposer's score of the same class; a class-agnostic proposal
    # (label 0) scores every class, a labelled one only its own.
    same_class = tf.one_hot(proposal_labels - 1, num_classes)
    weight = tf.where(proposal_labels[:, None] > 0, same_class, tf.ones_like(probs))
    probs = probs * proposal_scores[:, None] * weight
  n = tf.shape(proposals)[0]
  if refine:
    deltas = tf.reshape(out["box_deltas"], [n, -1, 4])[:, 1:]  # [N, K, 4]
    anchors = tf.repeat(proposals, num_classes, axis=0)
    boxes = box_ops.clip_to_image(box_ops.decode(tf.reshape(deltas, [-1, 4]), anchors),
                                  image_shape[0], image_shape[1])
    boxes = tf.reshape(boxes, [n, num_classes, 4])
  else:
    boxes = proposals[:, None, :]  # one box shared by every class
  yx = tf.gather(boxes, [1, 0, 3, 2], axis=-1)
  nms = tf.image.combined_non_max_suppression(
      yx[None], probs[None], max_output_size_per_class=config.max_detections,
      max_total_size=config.max_detections, iou_threshold=config.nms_iou, clip_boxes=False)
  valid = nms.valid_detections[0]
  return (tf.gather(nms.nmsed_boxes[0, :valid], [1, 0, 3, 2], axis=-1),
          nms.nmsed_scores[0, :valid], tf.cast(nms.nmsed_classes[0, :valid], tf.int32) + 1)


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

  @property
  def multi_class(self) -> bool:
    """A K + 1-class D: ``detect`` also takes the proposals' labels."""
    return self.discriminator.output["cls_logits"].shape[-1] > 1

  def _detect_function(self, config):
    generator, discriminator, crop = self.generator, self.discriminator, self.crop
    inputs = [tf.TensorSpec([None, None, None], tf.uint8, name="image"),
              tf.TensorSpec([None, 4], tf.float32, name="boxes"),
              tf.TensorSpec([None], tf.float32, name="scores")]

    def detect(image, boxes, scores, labels=None):
      return dict(zip(OUTPUTS, detect_image(generator, discriminator, image, boxes, scores,
                                            crop, config, labels)))

    if self.multi_class:
      return tf.function(detect, input_signature=inputs + [
          tf.TensorSpec([None], tf.int32, name="labels")])
    return tf.function(lambda image, boxes, scores: detect(image, boxes, scores),
                       input_signature=inputs)

  def __call__(self, image, proposals, proposal_scores):
    """(boxes, scores) numpy, highest score first."""
    return self.detect_classes(image, proposals, proposal_scores)[:2]

  def detect_classes(self, image, proposals, proposal_scores, proposal_labels=None):
    """(boxes, scores, labels 1..K) numpy; ``proposal_labels`` 1..K or 0 (class-agnostic)."""
    return detect_call(self.detect, self.multi_class, image, proposals, proposal_scores,
                       proposal_labels)


OUTPUTS = ("boxes", "scores", "labels")  # of the detect signatures


def detect_call(detect, multi_class, image, proposals, proposal_scores, proposal_labels=None):
  """Calls a detect function (in process or from a SavedModel) with checked inputs; returns
  numpy (boxes, scores, labels)."""
  proposals = tf.reshape(tf.convert_to_tensor(proposals, tf.float32), [-1, 4])
  proposal_scores = tf.reshape(tf.convert_to_tensor(proposal_scores, tf.float32), [-1])
  args = [checked_image(image), proposals, proposal_scores]
  if multi_class:
    args.append(tf.zeros_like(proposal_scores, tf.int32) if proposal_labels is None
                else tf.reshape(tf.convert_to_tensor(proposal_labels, tf.int32), [-1]))
  out = dict(detect(*args))
  if "labels" not in out:  # a face export written before class labels existed: one class.
    out["labels"] = tf.ones_like(out["scores"], tf.int32)
  return tuple(out[k].numpy() for k in OUTPUTS)


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

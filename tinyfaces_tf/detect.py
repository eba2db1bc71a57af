"""Detection: proposals of one image -> context crops -> G then D in one batched call -> scored,
regressed, NMS'd boxes. Also runs a whole WIDER split and writes WIDER result files."""
import dataclasses
import os

import numpy as np
import tensorflow as tf
from absl import logging

from tinyfaces_tf import boxes as box_ops
from tinyfaces_tf.data import rois as rois_lib
from tinyfaces_tf.progress import Progress

SCORE_FUSIONS = ("none", "product")


@dataclasses.dataclass(frozen=True)
class DetectConfig:
  context: float = 2.0        # must match the training crops (journal Table 3)
  hr_size: int = 64
  scale: int = 4
  score_fusion: str = "none"  # "product": D's face probability x proposer score (MTGAN Table 6)
  nms_iou: float = 0.4
  max_rois: int = 600         # journal 4.2: 600 RoIs per test image
  max_detections: int = 600
  refine_boxes: bool = True   # decode fc_reg deltas (when D has a regression branch)

  def __post_init__(self):
    if self.score_fusion not in SCORE_FUSIONS:
      raise ValueError(f"score_fusion must be one of {SCORE_FUSIONS}, got {self.score_fusion!r}")


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


def detect_image(generator, discriminator, image, proposals, proposal_scores, config):
  """One image: uint8 [H, W, 3], proposals float32 [N, 4] (pixel x1, y1, x2, y2) and their scores.

  Returns (boxes [M, 4] x1, y1, x2, y2, scores [M]), highest score first. Graph-safe (used inside
  the exported ``detect`` signature), so N may be 0.
  """
  image = tf.convert_to_tensor(image)
  proposals = tf.reshape(tf.cast(proposals, tf.float32), [-1, 4])
  proposal_scores = tf.reshape(tf.cast(proposal_scores, tf.float32), [-1])
  order = tf.argsort(proposal_scores, direction="DESCENDING", stable=True)[:config.max_rois]
  proposals = tf.gather(proposals, order)
  proposal_scores = tf.gather(proposal_scores, order)
  # One dummy RoI is appended and dropped again: Keras batch norm rejects an empty batch, and a
  # graph-safe detect must accept images without proposals.
  n = tf.shape(proposals)[0]
  padded = tf.concat([proposals, tf.constant([[0.0, 0.0, 1.0, 1.0]])], axis=0)
  _, lr = rois_lib.crop_rois_with_context(image, padded, config.context, config.hr_size,
                                          config.scale)
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
  """Keras models + DetectConfig behind tf.functions with explicit input signatures."""

  def __init__(self, generator, discriminator, config=None):
    self.generator, self.discriminator = generator, discriminator
    self.config = config or DetectConfig()
    lr_size = self.config.hr_size // self.config.scale
    self.score_rois = tf.function(
        lambda lr: score_rois(generator, discriminator, lr),
        input_signature=[tf.TensorSpec([None, lr_size, lr_size, 3], tf.float32, name="lr")])
    self.detect = tf.function(
        lambda image, boxes, scores: dict(zip(("boxes", "scores"), detect_image(
            generator, discriminator, image, boxes, scores, self.config))),
        input_signature=[tf.TensorSpec([None, None, 3], tf.uint8, name="image"),
                         tf.TensorSpec([None, 4], tf.float32, name="boxes"),
                         tf.TensorSpec([None], tf.float32, name="scores")])

  def __call__(self, image, proposals, proposal_scores):
    out = self.detect(tf.convert_to_tensor(image, tf.uint8),
                      tf.convert_to_tensor(proposals, tf.float32),
                      tf.convert_to_tensor(proposal_scores, tf.float32))
    return out["boxes"].numpy(), out["scores"].numpy()


def load_image(path):
  """uint8 RGB [H, W, 3]; raises ValueError naming the file if it cannot be decoded."""
  from PIL import Image
  try:
    with Image.open(path) as im:
      return np.asarray(im.convert("RGB"))
  except (OSError, ValueError) as e:
    raise ValueError(f"{path}: cannot decode image ({e})") from e


def detect_split(detector, image_root, image_names, proposer, out_dir, baseline_dir=None,
                 limit=None, log_every=50):
  """Detects every image of a split and writes WIDER result files.

  Args:
    detector: a Detector.
    image_root: folder holding ``<event>/<file>.jpg`` (e.g. WIDER_val/images).
    image_names: "event/file.jpg" names (from the split's annotation file or test file list).
    proposer: a tinyfaces_tf.proposals Proposer.
    out_dir: result directory for our detections (``<event>/<stem>.txt``).
    baseline_dir: if given, the proposer's own boxes and scores are written there too, so the
      baseline is scored on exactly the same proposals.
  Returns a summary dict (images, detections, skipped: [(path, reason)]).
  """
  from tinyfaces_tf.data import eval_tools
  names = list(image_names)[:limit]
  progress = Progress(len(names))
  skipped, total = [], 0
  for i, name in enumerate(names):
    path = os.path.join(image_root, name)
    try:
      image = load_image(path)
    except (ValueError, FileNotFoundError) as e:
      skipped.append((path, str(e)))
      logging.warning("skipping %s", e)
      continue
    proposals = proposer.propose(image, name)
    boxes, scores = detector(image, proposals.boxes, proposals.scores)
    eval_tools.write_result_file(out_dir, name, box_ops.xyxy_to_xywh(boxes), scores)
    if baseline_dir:
      eval_tools.write_result_file(baseline_dir, name, box_ops.xyxy_to_xywh(proposals.boxes),
                                   proposals.scores)
    total += len(scores)
    progress.update(i + 1)
  if skipped:
    logging.warning("%d of %d images skipped (unreadable)", len(skipped), len(names))
  return {"images": len(names) - len(skipped), "detections": total, "skipped": skipped}

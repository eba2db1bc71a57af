"""SavedModel export with explicit serving signatures and the experiment config beside them.

Signatures:
  score_rois(lr: float32 [N, 16, 16, 3] in [-1, 1]) ->
      sr [N, 64, 64, 3], face_prob [N] (class_probs [N, C] for multi-class), real_prob [N],
      box_deltas [N, 4 or 4C]
  detect(image: uint8 [H, W, 3] (or [H, W, 1] grey), boxes: float32 [N, 4] pixel x1, y1, x2, y2,
         scores: float32 [N][, labels: int32 [N] for a K + 1-class D: the proposer's class 1..K,
         0 class-agnostic]) -> boxes [M, 4] (same format), scores [M], labels int32 [M] (1 for
      faces; per-class NMS, class-specific boxes for K classes); proposals with non-finite
      values or without positive size are dropped
  detect_score_fusion_none / detect_score_fusion_product: detect with that score fusion, for each
      fusion other than the config's (which ``detect`` uses)
The patch sizes, crop context, RoI budget, NMS and score fusion are the config's; the config is
written to ``assets.extra/config.json`` (TF's place for files that travel with a SavedModel but
are not loaded by the graph), so an export alone says how it was built and how it detects.
The exported models are inference copies with each batch norm folded into the convolution before
it (``batch_norm_folding``): the same outputs to float rounding, fewer memory-bound ops.
"""
import dataclasses
import os
import shutil
from typing import Optional

import keras

from tinyfaces_tf import config as config_lib
from tinyfaces_tf.detection import detector as detector_lib
from tinyfaces_tf.models import batch_norm_folding

CONFIG_ASSET = os.path.join("assets.extra", config_lib.CONFIG_FILE)
# Called with each stage name of an export ("written", "config", "old_moved", "new_moved"): a
# seam for the test that kills an export between its steps.
_after_stage = lambda stage: None


def _staging_paths(path):
  return f"{path}.writing", f"{path}.previous"


def recover(path):
  """Completes what an export killed between its two renames left: the old export is back at
  ``path`` when the new one never arrived there. Called by export and by SavedModelDetector."""
  staging, previous = _staging_paths(os.fspath(path).rstrip("/"))
  if not os.path.exists(path) and os.path.isfile(os.path.join(previous, "saved_model.pb")):
    os.replace(previous, path)


def fusion_endpoint(score_fusion: str) -> str:
  """The endpoint that detects with ``score_fusion`` (one of detector.SCORE_FUSIONS)."""
  return f"detect_score_fusion_{score_fusion}"


def export_saved_model(generator, discriminator, path, config: config_lib.ExperimentConfig):
  """Writes a SavedModel to ``path``; returns ``path``. Reload with tf.saved_model.load(path) or
  SavedModelDetector(path).

  Atomic in effect: the new export is written to ``<path>.writing`` and renamed into place only
  once complete, so a kill at any instant leaves the previous export (or, between the two
  renames, ``<path>.previous``, which ``recover`` puts back) or the new one, never a mix.
  """
  path = os.fspath(path).rstrip("/")
  recover(path)
  generator = batch_norm_folding.fold_batch_norms(generator)
  discriminator = batch_norm_folding.fold_batch_norms(discriminator)
  detector = detector_lib.Detector(generator, discriminator, config.crop, config.detect)
  archive = keras.export.ExportArchive()
  archive.track(generator)
  archive.track(discriminator)
  archive.add_endpoint("score_rois", detector.score_rois)
  archive.add_endpoint("detect", detector.detect)
  for fusion, function in detector.detect_by_fusion.items():
    if fusion != config.detect.score_fusion:  # the config's own fusion is `detect`
      archive.add_endpoint(fusion_endpoint(fusion), function)
  staging, previous = _staging_paths(path)
  for leftover in (staging, previous):
    shutil.rmtree(leftover, ignore_errors=True)
  archive.write_out(staging, verbose=False)
  _after_stage("written")
  config_lib.save(config, os.path.join(staging, CONFIG_ASSET))
  _after_stage("config")
  if os.path.exists(path):
    os.replace(path, previous)
  _after_stage("old_moved")
  os.replace(staging, path)
  _after_stage("new_moved")
  shutil.rmtree(previous, ignore_errors=True)
  return path


def load_config(path) -> config_lib.ExperimentConfig:
  """The ExperimentConfig an export was written with."""
  return config_lib.load(os.path.join(os.fspath(path), CONFIG_ASSET))


class SavedModelDetector:
  """A reloaded export behind the same call as detection.Detector: (image, boxes, scores) ->
  numpy; ``config`` is the experiment config it was exported with."""

  def __init__(self, path, score_fusion: Optional[str] = None):
    """``score_fusion``: detect with this fusion instead of the export config's."""
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    recover(path)
    if not os.path.isfile(os.path.join(os.fspath(path), "saved_model.pb")):
      raise FileNotFoundError(f"{path}: not a SavedModel directory (no saved_model.pb)")
    self.path = path
    self.config = load_config(path)
    self.model = tf.saved_model.load(path)
    self._detect = self.model.detect
    if score_fusion is not None and score_fusion != self.config.detect.score_fusion:
      # DetectConfig validates the name (ValueError listing the fusions).
      detect = dataclasses.replace(self.config.detect, score_fusion=score_fusion)
      if not hasattr(self.model, fusion_endpoint(score_fusion)):
        raise ValueError(f"{path}: exported before score fusion could be chosen at detection "
                         "time; re-export it (tinyfaces-export) or export with "
                         f"--config.detect.score_fusion={score_fusion}")
      self._detect = getattr(self.model, fusion_endpoint(score_fusion))
      self.config = dataclasses.replace(self.config, detect=detect)

  @property
  def multi_class(self) -> bool:
    return self.config.discriminator.num_classes > 1

  def __call__(self, image, proposals, proposal_scores):
    """(boxes, scores) numpy, highest score first."""
    return self.detect_classes(image, proposals, proposal_scores)[:2]

  def detect_classes(self, image, proposals, proposal_scores, proposal_labels=None):
    """(boxes, scores, labels 1..K) numpy; ``proposal_labels`` 1..K or 0 (class-agnostic)."""
    return detector_lib.detect_call(self._detect, self.multi_class, image, proposals,
                                    proposal_scores, proposal_labels)

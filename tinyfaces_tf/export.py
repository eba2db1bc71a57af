"""SavedModel export with explicit serving signatures (separate from training code).

Signatures:
  score_rois(lr: float32 [N, 16, 16, 3] in [-1, 1]) ->
      sr [N, 64, 64, 3], face_prob [N] (class_probs [N, C] for multi-class), real_prob [N],
      box_deltas [N, 4 or 4C]
  detect(image: uint8 [H, W, 3], boxes: float32 [N, 4] pixel x1, y1, x2, y2, scores: float32 [N]) ->
      boxes [M, 4] (same format), scores [M]
"""
import keras

from tinyfaces_tf import detect as detect_lib


def export_saved_model(generator, discriminator, path, context=2.0, detect_config=None):
  """Writes a SavedModel to ``path``; returns ``path``. Reload with tf.saved_model.load(path)."""
  config = detect_config or detect_lib.DetectConfig(context=context)
  detector = detect_lib.Detector(generator, discriminator, config)
  archive = keras.export.ExportArchive()
  archive.track(generator)
  archive.track(discriminator)
  archive.add_endpoint("score_rois", detector.score_rois)
  archive.add_endpoint("detect", detector.detect)
  archive.write_out(path, verbose=False)
  return path


class SavedModelDetector:
  """A reloaded export behind the same call as detect.Detector: (image, boxes, scores) -> numpy."""

  def __init__(self, path):
    import tensorflow as tf
    self.path = path
    self.model = tf.saved_model.load(path)

  def __call__(self, image, proposals, proposal_scores):
    import tensorflow as tf
    out = self.model.detect(tf.convert_to_tensor(image, tf.uint8),
                            tf.reshape(tf.convert_to_tensor(proposals, tf.float32), [-1, 4]),
                            tf.reshape(tf.convert_to_tensor(proposal_scores, tf.float32), [-1]))
    return out["boxes"].numpy(), out["scores"].numpy()

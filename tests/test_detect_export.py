"""Detection on one image and the SavedModel round trip."""
import numpy as np
import pytest
import tensorflow as tf

from tinyfaces_tf import boxes as box_ops
from tinyfaces_tf import config as config_lib
from tinyfaces_tf import export
from tinyfaces_tf import models
from tinyfaces_tf import roi_crop
from tinyfaces_tf.detection import detector as detect


@pytest.fixture(scope="module")
def tiny_models():
  g = models.build_generator("tinyfaces", width=8, upsample_width=8, residual_units=1)
  d = models.build_discriminator("tiny", tiny_width=8)
  return g, d


def scene(seed=0):
  rng = np.random.default_rng(seed)
  image = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
  boxes = np.array([[10, 12, 40, 50], [80, 30, 120, 70], [100, 90, 130, 118], [0, 0, 20, 20]],
                   np.float32)
  scores = np.array([0.9, 0.3, 0.8, 0.5], np.float32)
  return image, boxes, scores


def test_detect_matches_independent_pipeline(tiny_models):
  g, d = tiny_models
  image, boxes, scores = scene()
  cfg = detect.DetectConfig(nms_iou=0.99)
  crop = roi_crop.CropConfig(context=2.0)
  out_boxes, out_scores = detect.Detector(g, d, crop, cfg)(image, boxes, scores)
  # Independent recomputation: crop -> G -> D -> sigmoid, decode, sort by score.
  _, lr = roi_crop.crop_rois_with_context(image, boxes, crop)
  dout = d(g(lr)["sr"])
  probs = 1 / (1 + np.exp(-dout["cls_logits"].numpy()[:, 0]))
  refined = box_ops.clip_to_image(box_ops.decode(dout["box_deltas"], boxes), 120, 160).numpy()
  assert np.all(np.diff(out_scores) <= 0)  # highest score first
  # Pair each output with the reference RoI it came from (the boxes are far apart).
  index = [int(np.argmin(np.abs(refined - b).sum(1))) for b in out_boxes]
  assert sorted(index) == [0, 1, 2, 3]
  np.testing.assert_allclose(out_boxes, refined[index], rtol=1e-4, atol=1e-3)
  np.testing.assert_allclose(out_scores, probs[index], rtol=1e-4, atol=1e-5)
  fused = detect.Detector(g, d, crop, detect.DetectConfig(score_fusion="product", nms_iou=0.99))
  _, fused_scores = fused(image, boxes, scores)
  np.testing.assert_allclose(np.sort(fused_scores), np.sort(probs * scores), rtol=1e-4, atol=1e-5)


def test_detect_handles_no_proposals_and_nms(tiny_models):
  g, d = tiny_models
  image, _, _ = scene()
  b, s = detect.Detector(g, d)(image, np.zeros((0, 4), np.float32), np.zeros((0,), np.float32))
  assert b.shape == (0, 4) and s.shape == (0,)
  # Two identical proposals: NMS keeps one.
  box = np.array([[20, 20, 60, 60]] * 2, np.float32)
  b, s = detect.Detector(g, d, config=detect.DetectConfig(refine_boxes=False))(image, box,
                                                                              [0.5, 0.5])
  assert len(b) == 1


def test_export_round_trip(tiny_models, tmp_path):
  g, d = tiny_models
  image, boxes, scores = scene(1)
  path = export.export_saved_model(g, d, str(tmp_path / "export"), config_lib.ExperimentConfig())
  loaded = tf.saved_model.load(path)
  assert set(loaded.signatures) >= {"score_rois", "detect"}
  lr = np.random.default_rng(0).uniform(-1, 1, (5, 16, 16, 3)).astype(np.float32)
  served = loaded.signatures["score_rois"](lr=tf.constant(lr))
  reference = detect.score_rois(g, d, lr)
  for key in ("sr", "face_prob", "real_prob", "box_deltas"):
    np.testing.assert_allclose(served[key], reference[key], rtol=1e-4, atol=1e-5)
  served = loaded.signatures["detect"](image=tf.constant(image), boxes=tf.constant(boxes),
                                      scores=tf.constant(scores))
  ref_boxes, ref_scores = detect.Detector(g, d)(image, boxes, scores)
  np.testing.assert_allclose(served["boxes"], ref_boxes, rtol=1e-4, atol=1e-3)
  np.testing.assert_allclose(served["scores"], ref_scores, rtol=1e-4, atol=1e-5)
  via_wrapper = export.SavedModelDetector(path)(image, boxes, scores)
  np.testing.assert_allclose(via_wrapper[1], ref_scores, rtol=1e-4, atol=1e-5)
  # Fusion chosen at detection time: one proposal at a time (no NMS between them), the product
  # score is the face probability times the proposer's score.
  fused = export.SavedModelDetector(path, score_fusion="product")
  assert fused.config.detect.score_fusion == "product"
  for box, score in zip(boxes, scores):
    _, alone = fused(image, box[None], score[None])
    _, plain = detect.Detector(g, d)(image, box[None], score[None])
    np.testing.assert_allclose(alone, plain * score, rtol=1e-4, atol=1e-6)
  with pytest.raises(ValueError, match="score_fusion"):
    export.SavedModelDetector(path, score_fusion="sum")
  with pytest.raises((TypeError, ValueError), match="(?i)dtype|float|uint8"):
    loaded.detect(tf.constant(image, tf.float32), tf.constant(boxes), tf.constant(scores))
  with pytest.raises((TypeError, ValueError)):
    loaded.score_rois(tf.constant(lr[0]))  # rank 3 instead of 4


def test_config_round_trips_through_the_exports_assets(tmp_path):
  g = models.build_generator("bilinear")  # SR = the crop up-sampled: scores follow the crop
  d = models.build_discriminator("tiny", tiny_width=8)
  kernel, bias = d.get_layer("fc_cls").get_weights()
  d.get_layer("fc_cls").set_weights([kernel * 50, bias])  # scores that tell crops apart
  cfg = config_lib.replace(config_lib.get_preset("demo"), crop={"context": 1.5},
                           detect={"max_rois": 123, "nms_iou": 0.99},
                           optimizer={"decay_epochs": (2.0, 4.0)}, train={"steps": None})
  path = export.export_saved_model(g, d, str(tmp_path / "export"), cfg)
  assert export.load_config(path) == cfg
  assert export.SavedModelDetector(path).config == cfg
  # The detect signature crops with the config's x1.5 windows, not the default x2.0.
  image, boxes, scores = scene(2)
  loaded = tf.saved_model.load(path)  # held: its functions need its variables alive
  served = loaded.detect(image=tf.constant(image), boxes=tf.constant(boxes),
                         scores=tf.constant(scores))
  at = lambda m: np.sort(detect.Detector(g, d, roi_crop.CropConfig(context=m), cfg.detect)(
      image, boxes, scores)[1])
  np.testing.assert_allclose(np.sort(served["scores"]), at(1.5), rtol=1e-4, atol=1e-5)
  assert np.abs(np.log(at(1.5)) - np.log(at(2.0))).max() > 1e-2
  # A second export replaces the first whole, with no staging folder left behind.
  export.export_saved_model(g, d, path, config_lib.get_preset("demo"))
  assert export.load_config(path) == config_lib.get_preset("demo")
  assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]


def test_a_face_export_without_labels_reads_as_one_class():
  # SavedModels exported before class labels existed return only boxes and scores; they are
  # face detectors, so every detection is class 1.
  def old_detect(image, boxes, scores):
    del image
    return {"boxes": boxes[::-1], "scores": scores[::-1]}
  image = np.zeros((8, 8, 3), np.uint8)
  boxes, scores, labels = detect.detect_call(old_detect, False, image, [[0, 0, 4, 4], [1, 1, 5, 5]],
                                             [0.2, 0.9])
  np.testing.assert_array_equal(boxes, [[1, 1, 5, 5], [0, 0, 4, 4]])
  np.testing.assert_array_equal(scores, np.float32([0.9, 0.2]))
  np.testing.assert_array_equal(labels, [1, 1])

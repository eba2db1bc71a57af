"""A model trained for a few steps on demo scenes moves ground-truth-jittered proposals toward
the ground truth on average (the regression branch at work, journal Fig. 1)."""
import keras
import numpy as np
import tensorflow as tf

from tinyfaces_tf import boxes
from tinyfaces_tf import config as config_lib
from tinyfaces_tf import models
from tinyfaces_tf import roi_crop
from tinyfaces_tf.data import demo
from tinyfaces_tf.data import roi_sampler as rois
from tinyfaces_tf.detection import detector as detect

CROP = roi_crop.CropConfig(context=2.0)


def scenes(split, count, seed):
  ids = demo.split_lfw_ids(0)[split]
  return [demo.render_scene(np.random.default_rng([seed, i]), ids[0], ids[1]) for i in range(count)]


def roi_dataset(count, config):
  parts = []
  for i, scene in enumerate(scenes("train", count, 1)):
    ann = [a for a in scene.annotations]
    gt = np.array([[a.x, a.y, a.x + a.w, a.y + a.h] for a in ann], np.float32)
    valid = np.array([a.invalid == 0 for a in ann])
    parts.append(rois.make_training_examples(scene.image, gt, valid, None, config, CROP,
                                             np.random.default_rng(i)))
  keys = ("lr", "hr", "labels", "box_targets")
  data = {k: np.concatenate([p[k] for p in parts]) for k in keys}
  return {"lr": data["lr"], "hr": data["hr"], "label": data["labels"].astype(np.int32),
          "box_target": data["box_targets"].astype(np.float32)}


def test_refined_boxes_move_toward_ground_truth(restore_policy):
  roi_config = rois.RoiSamplerConfig(jitter_per_face=4)
  data = roi_dataset(25, roi_config)
  ds = tf.data.Dataset.from_tensor_slices(data).shuffle(4096, seed=0).repeat().batch(32)
  cfg = config_lib.get_preset("demo")
  g = models.build_generator("tinyfaces", config=cfg.generator)
  d = models.build_discriminator("tiny", config=cfg.discriminator)
  keras.mixed_precision.set_dtype_policy("float32")
  pre = models.SRPretrainer(g)
  pre.compile(optimizer=keras.optimizers.Adam(2e-3))
  pre.fit(ds, steps_per_epoch=30, epochs=1, verbose=0)
  gan = models.TinyFacesGAN(g, d)
  gan.compile(g_optimizer=keras.optimizers.Adam(1e-3), d_optimizer=keras.optimizers.Adam(1e-3))
  gan.fit(ds, steps_per_epoch=150, epochs=1, verbose=0)

  before, after = [], []
  rng = np.random.default_rng(5)
  for scene in scenes("val", 6, 2):  # held-out faces
    gt = np.array([[a.x, a.y, a.x + a.w, a.y + a.h] for a in scene.annotations if not a.invalid],
                  np.float32)
    proposals, face = rois.jitter_positives(gt, 3, roi_config, rng)
    _, lr = roi_crop.crop_rois_with_context(scene.image, proposals, CROP)
    deltas = detect.score_rois(g, d, lr)["box_deltas"]
    refined = boxes.decode(deltas, proposals).numpy()
    iou = lambda b: np.diag(boxes.iou_matrix(b, gt[face]).numpy())
    before.append(iou(proposals))
    after.append(iou(refined))
  before, after = np.concatenate(before), np.concatenate(after)
  assert len(before) >= 30
  print("mean IoU before %.3f after %.3f, improved %.2f" % (before.mean(), after.mean(), (after > before).mean()))
  assert after.mean() > before.mean() + 0.02, (before.mean(), after.mean())
  assert (after > before).mean() > 0.55

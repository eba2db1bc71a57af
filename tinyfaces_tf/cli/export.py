"""tinyfaces-export: SavedModel from a training run's latest checkpoint.

  tinyfaces-export --run_dir=runs/journal --out=runs/journal/export [--context=2.0]
"""
from absl import app
from absl import flags
from absl import logging

FLAGS = flags.FLAGS
flags.DEFINE_string("run_dir", None, "Training run directory (config.json + checkpoints/).")
flags.DEFINE_string("checkpoint", None, "A specific checkpoint prefix (default: the latest).")
flags.DEFINE_string("out", None, "SavedModel directory to write (default <run_dir>/export).")
flags.DEFINE_float("context", None, "Crop context for `detect` (default: the run's).")
flags.DEFINE_enum("score_fusion", "none", ["none", "product"], "detect's scoring (MTGAN Table 6).")
flags.DEFINE_float("nms_iou", 0.4, "NMS IoU threshold of `detect`.")
flags.DEFINE_integer("max_rois", 600, "RoIs per image kept by `detect` (journal: 600).")
flags.mark_flag_as_required("run_dir")


def main(argv):
  del argv
  import os
  from tinyfaces_tf import detect
  from tinyfaces_tf import export
  from tinyfaces_tf import train
  generator, discriminator, cfg = train.restore_models(FLAGS.run_dir, FLAGS.checkpoint)
  config = detect.DetectConfig(context=FLAGS.context or cfg.context,
                               score_fusion=FLAGS.score_fusion, nms_iou=FLAGS.nms_iou,
                               max_rois=FLAGS.max_rois)
  out = FLAGS.out or os.path.join(FLAGS.run_dir, "export")
  export.export_saved_model(generator, discriminator, out, detect_config=config)
  logging.info("wrote SavedModel %s (signatures: score_rois, detect)", out)


def run():
  app.run(main)


if __name__ == "__main__":
  run()

"""tinyfaces-export: a SavedModel from a training run's latest checkpoint.

  tinyfaces-export --run_dir=runs/journal [--out=runs/journal/export] \
      [--config.detect.score_fusion=product --config.detect.max_rois=300]

The run's config.json is the base; --config.<section>.<field> changes what may change after
training (the detector's settings); the written config goes into the export's assets.
"""
from tinyfaces_tf.cli import common
from tinyfaces_tf.cli import config_flags

from absl import flags  # pylint: disable=g-bad-import-order

FLAGS = flags.FLAGS
# Only the detector may differ from the run: the rest decides the trained weights and crops.
EXPORT_SECTIONS = ("detect",)

config_flags.define_config_flags(default=None)
flags.DEFINE_string("run_dir", None, "Training run directory (config.json + checkpoints/).")
flags.DEFINE_string("checkpoint", None, "A specific checkpoint prefix (default: the latest).")
flags.DEFINE_string("out", None, "SavedModel directory to write (default <run_dir>/export).")
flags.mark_flag_as_required("run_dir")


def main(argv):
  del argv
  import os  # pylint: disable=g-import-not-at-top
  from tinyfaces_tf import config as config_lib  # pylint: disable=g-import-not-at-top
  from tinyfaces_tf import task as task_lib  # pylint: disable=g-import-not-at-top
  if FLAGS.config is None:
    FLAGS.config = FLAGS.run_dir
  common.check_distinct_paths(out=FLAGS.out, run_dir=FLAGS.run_dir)
  trained = config_lib.load_run_config(FLAGS.run_dir)
  cfg = config_flags.config_from_flags()
  changed = [name for name in config_lib.differences(trained, cfg)
             if name.split(".")[0] not in EXPORT_SECTIONS]
  if changed:
    common.usage_error(f"{changed} differ from {FLAGS.run_dir}'s config.json; only "
                       f"{', '.join(EXPORT_SECTIONS)} settings can change at export")
  task = task_lib.Task(cfg)
  generator, discriminator = task.restore_models(FLAGS.run_dir, FLAGS.checkpoint)
  out = task.export(generator, discriminator, FLAGS.out or os.path.join(FLAGS.run_dir, "export"))
  print(f"Exported SavedModel {out} (signatures: score_rois, detect with score fusion "
        f"{cfg.detect.score_fusion!r}; tinyfaces-detect --score_fusion picks another)")
  return 0


def run():
  common.run(main, __name__, config_flags.__name__)


if __name__ == "__main__":
  run()

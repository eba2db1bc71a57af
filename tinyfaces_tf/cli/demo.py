"""`make demo`: the whole pipeline on the embedded demo dataset, printing baseline vs ours.

  python -m tinyfaces_tf.cli.demo [--data_dir=data/demo --run_dir=runs/demo --steps=N]
"""
from tinyfaces_tf.cli import common

from absl import flags  # pylint: disable=g-bad-import-order

FLAGS = flags.FLAGS
flags.DEFINE_string("data_dir", "data/demo", "Where the demo WIDER dataset is (or is written).")
flags.DEFINE_string("run_dir", "runs/demo", "Run directory for checkpoints, export, figures.")
flags.DEFINE_integer("train_images", 160, "Demo train images (when the dataset is made).",
                     lower_bound=1)
flags.DEFINE_integer("val_images", 60, "Demo val images (when the dataset is made).",
                     lower_bound=1)
flags.DEFINE_integer("seed", 0, "Demo dataset seed.")
flags.DEFINE_integer("steps", None, "GAN steps (default: the demo preset's).", lower_bound=0)


def main(argv):
  del argv
  common.check_distinct_paths(data_dir=FLAGS.data_dir, run_dir=FLAGS.run_dir)
  from tinyfaces_tf import demo_job  # pylint: disable=g-import-not-at-top
  paths = demo_job.DemoPaths(FLAGS.data_dir, FLAGS.run_dir)
  metrics = demo_job.run_demo(paths, FLAGS.train_images, FLAGS.val_images, FLAGS.seed,
                              FLAGS.steps)
  print(demo_job.format_summary(metrics, paths), flush=True)
  return 0


def run():
  common.run(main, __name__)


if __name__ == "__main__":
  run()

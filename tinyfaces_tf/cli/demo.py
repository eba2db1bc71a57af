"""`make demo` / `make demo-coco`: the whole pipeline on an embedded demo dataset, printing
baseline vs ours.

  python -m tinyfaces_tf.cli.demo [--dataset=wider_face|coco --data_dir=... --run_dir=...
                                   --steps=N]
"""
from tinyfaces_tf.cli import common

from absl import flags  # pylint: disable=g-bad-import-order

FLAGS = flags.FLAGS
flags.DEFINE_enum("dataset", "wider_face", ["wider_face", "coco"],
                  "wider_face: the WIDER-layout face demo (MTCNN baseline); coco: the "
                  "COCO-layout demo of faces, coins and cats (MTGAN, K + 1 = 4 classes).")
flags.DEFINE_string("data_dir", None, "Where the demo dataset is (or is written); default "
                    "data/demo or data/demo_coco.")
flags.DEFINE_string("run_dir", None, "Run directory for checkpoints, export, figures; default "
                    "runs/demo or runs/demo_coco.")
flags.DEFINE_integer("train_images", None, "Demo train images (when the dataset is made; "
                     "default 160 for wider_face, 120 for coco).",
                     lower_bound=1)
flags.DEFINE_integer("val_images", None, "Demo val images (when the dataset is made; "
                     "default 60 for wider_face, 50 for coco).",
                     lower_bound=1)
flags.DEFINE_integer("seed", 0, "Demo dataset seed.")
flags.DEFINE_integer("steps", None, "GAN steps (default: the demo preset's).", lower_bound=0)


def main(argv):
  del argv
  from tinyfaces_tf import demo_job  # pylint: disable=g-import-not-at-top
  kind = demo_job.KINDS[FLAGS.dataset]
  paths = demo_job.DemoPaths(FLAGS.data_dir or kind.data_dir, FLAGS.run_dir or kind.run_dir)
  common.check_distinct_paths(data_dir=paths.data_dir, run_dir=paths.run_dir)
  metrics = demo_job.run_demo(paths, FLAGS.train_images, FLAGS.val_images, FLAGS.seed,
                              FLAGS.steps, family=FLAGS.dataset)
  print(demo_job.format_summary(metrics, paths), flush=True)
  return 0


def run():
  common.run(main, __name__)


if __name__ == "__main__":
  run()

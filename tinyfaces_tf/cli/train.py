"""tinyfaces-train: train (or resume) one experiment.

  tinyfaces-train --config=journal --data_dir=~/tensorflow_datasets --out_dir=runs/journal
  tinyfaces-train --flagfile=experiments/table2/ours_star.cfg --data_dir=... --out_dir=...
  tinyfaces-train --config=demo --synthetic --config.train.steps=20 --out_dir=/tmp/smoke

--config picks the base (a preset, a config.json or a run directory); any field is then set with
--config.<section>.<field> (see --help). Re-running the same command after a crash or kill
resumes from the last checkpoint in --out_dir; the run's config.json is written there.
"""
from tinyfaces_tf.cli import common
from tinyfaces_tf.cli import config_flags

from absl import flags  # pylint: disable=g-bad-import-order

FLAGS = flags.FLAGS
DISTRIBUTE = ("default", "mirrored", "multiworker")

config_flags.define_config_flags(default="journal")
flags.DEFINE_string("out_dir", None, "Run directory (config.json, checkpoints/, tb/, export/).")
flags.DEFINE_string("data_dir", None, "TFDS data_dir holding the built training RoIs "
                    "(tfds build tinyfaces_tf/datasets/wider_face_rois ...).")
flags.DEFINE_boolean("synthetic", False, "Train on random tensors (smoke runs, benchmarks).")
flags.DEFINE_enum("distribute", "default", DISTRIBUTE,
                  "tf.distribute strategy: mirrored = every local GPU (or logical device); "
                  "multiworker = MultiWorkerMirroredStrategy over the TF_CONFIG cluster (run the "
                  "same command on every worker, same --out_dir on shared storage; only the "
                  "chief writes there).")
flags.DEFINE_boolean("export", True, "Write a SavedModel to <out_dir>/export after training.")


def _strategy(name):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  if name == "mirrored":
    return tf.distribute.MirroredStrategy()
  if name == "multiworker":
    return tf.distribute.MultiWorkerMirroredStrategy()
  return tf.distribute.get_strategy()


def main(argv):
  if len(argv) > 1:
    common.usage_error(f"unexpected arguments: {argv[1:]}")
  if not FLAGS.out_dir:
    common.usage_error("--out_dir is required")
  if not FLAGS.synthetic and not FLAGS.data_dir:
    common.usage_error("give --data_dir (built training RoIs) or --synthetic")
  common.check_distinct_paths(out_dir=FLAGS.out_dir, data_dir=FLAGS.data_dir)
  cfg = config_flags.config_from_flags()
  import tensorflow as tf  # pylint: disable=g-import-not-at-top  (after flag parsing: fast --help)
  from tinyfaces_tf import task as task_lib  # pylint: disable=g-import-not-at-top
  if cfg.train.deterministic:
    from tinyfaces_tf.training import loop  # pylint: disable=g-import-not-at-top
    loop.enable_determinism()
  # Before any other TF work: MultiWorkerMirroredStrategy configures the runtime's collectives.
  strategy = _strategy(FLAGS.distribute)
  task = task_lib.Task(cfg)
  steps_per_epoch = None
  if FLAGS.synthetic:
    make_dataset = task.build_synthetic_dataset()
  else:
    make_dataset, steps_per_epoch = task.build_train_dataset(FLAGS.data_dir)
  result, gan = task.train(make_dataset, FLAGS.out_dir, steps_per_epoch, strategy)
  print(f"Trained {result.steps} GAN steps ({result.resumed_from} resumed) in "
        f"{result.seconds:.0f}s, {result.rois_per_second:.1f} RoIs/s, {result.precision}")
  if FLAGS.export:
    import os  # pylint: disable=g-import-not-at-top
    path = task.export(gan.generator, gan.discriminator, os.path.join(FLAGS.out_dir, "export"),
                       strategy)
    if path:  # None on a non-chief worker (its export went to a temporary directory)
      print(f"Exported SavedModel {path}")
  return 0


def run():
  common.run(main, __name__, config_flags.__name__)


if __name__ == "__main__":
  run()

"""tinyfaces-train: train (or resume) one experiment.

  tinyfaces-train --preset=journal --data_dir=~/tensorflow_datasets --out_dir=runs/journal
  tinyfaces-train --flagfile=experiments/table2/ours_star.cfg
  tinyfaces-train --preset=demo --synthetic --steps=20 --out_dir=/tmp/smoke   # no data needed

Every flag left unset takes its value from --preset. Re-running the same command after a crash
or kill resumes from the last checkpoint in --out_dir.
"""
import dataclasses
import os

import tensorflow as tf
from absl import app
from absl import flags
from absl import logging

from tinyfaces_tf import config as config_lib

FLAGS = flags.FLAGS

flags.DEFINE_enum("preset", "journal", sorted(config_lib.PRESETS), "Base configuration.")
flags.DEFINE_string("out_dir", None, "Run directory (checkpoints/, tb/, export/).")
flags.DEFINE_string("data_dir", None, "TFDS data_dir holding the built wider_face_rois dataset.")
flags.DEFINE_string("tfds_config", None, "wider_face_rois config, default x<context> (e.g. x2.0).")
flags.DEFINE_boolean("synthetic", False, "Train on random tensors (smoke runs, benchmarks).")
# Models.
flags.DEFINE_enum("generator", None, ["tinyfaces", "mtgan", "bilinear"], "Generator kind.")
flags.DEFINE_integer("residual_units", None, "Two-conv residual units per stack.")
flags.DEFINE_integer("width", None, "Generator trunk width (paper 64).")
flags.DEFINE_integer("upsample_width", None, "Generator de-conv width (paper 256).")
flags.DEFINE_boolean("no_refinement", None, "Drop G2 (Table 2 'w/o Refinement Network').")
flags.DEFINE_enum("backbone", None, ["vgg19", "resnet50", "resnet101", "tiny"], "D backbone.")
flags.DEFINE_string("backbone_weights", None, "None, a local weights file, or 'imagenet'.")
flags.DEFINE_integer("num_classes", None, "1 for faces; K+1 for multi-class (MTGAN/COCO).")
flags.DEFINE_boolean("no_reg_branch", None, "Remove fc_reg (Table 2 'w/o reg+ branch').")
flags.DEFINE_boolean("no_adv_branch", None, "Remove fc_gan (MTGAN Table 3 'D w/o adv').")
# Losses.
flags.DEFINE_boolean("no_adv_loss", None, "Drop the adversarial term from G's loss.")
flags.DEFINE_boolean("no_cls_loss", None, "Drop the classification term from G's loss.")
flags.DEFINE_boolean("no_reg_loss", None, "Drop the regression term from G's loss.")
flags.DEFINE_enum("adv_loss", None, ["nonsaturating", "saturating"], "G's adversarial form.")
flags.DEFINE_float("alpha", None, "Adversarial weight (paper 0.001).")
flags.DEFINE_float("beta", None, "Classification weight (paper 0.01).")
flags.DEFINE_float("gamma", None, "Regression weight (paper 0.01).")
flags.DEFINE_float("context", None, "Crop-window enlargement m (journal Table 3).")
# Optimisation.
flags.DEFINE_float("g_lr", None, "Generator learning rate.")
flags.DEFINE_float("d_lr", None, "Discriminator learning rate.")
flags.DEFINE_enum("d_optimizer", None, ["adam", "sgd"], "Discriminator optimizer.")
flags.DEFINE_list("decay_epochs", None, "Epochs after which the rates drop x0.1.")
flags.DEFINE_integer("batch_size", None, "Global batch of RoIs.")
flags.DEFINE_integer("steps", None, "GAN steps (overrides --epochs).")
flags.DEFINE_float("epochs", None, "Epochs over the RoI dataset.")
flags.DEFINE_integer("pretrain_steps", None, "MSE-only generator warm-start steps.")
flags.DEFINE_enum("precision", None, list(config_lib.PRECISIONS),
                  "Mixed-precision policy; auto (default): mixed_bfloat16 on bf16 CPUs and "
                  "GPUs >= sm80, mixed_float16 on sm7x, else float32.")
flags.DEFINE_boolean("jit_compile", None, "XLA-compile the train step.")
flags.DEFINE_integer("checkpoint_every", None, "Steps between checkpoints.")
flags.DEFINE_integer("seed", None, "Random seed.")
flags.DEFINE_float("face_fraction", None, "Fraction of face RoIs per batch (journal ~0.4).")
flags.DEFINE_boolean("deterministic", False, "tf.config.experimental.enable_op_determinism().")
flags.DEFINE_enum("distribute", "default", ["default", "mirrored", "multiworker"],
                  "tf.distribute strategy.")
flags.DEFINE_boolean("export", True, "Write a SavedModel to <out_dir>/export after training.")


def _set(obj, **values):
  values = {k: v for k, v in values.items() if v is not None}
  return dataclasses.replace(obj, **values) if values else obj


def _negate(flag):
  return None if flag is None else not flag


def config_from_flags(f=FLAGS):
  """The preset with every explicitly given flag applied on top."""
  cfg = config_lib.get_preset(f.preset)
  generator = _set(cfg.generator, kind=f.generator, residual_units=f.residual_units,
                   width=f.width, upsample_width=f.upsample_width,
                   refinement=_negate(f.no_refinement))
  discriminator = _set(cfg.discriminator, backbone=f.backbone, num_classes=f.num_classes,
                       backbone_weights=f.backbone_weights, reg_branch=_negate(f.no_reg_branch),
                       adv_branch=_negate(f.no_adv_branch))
  loss = _set(cfg.loss, g_adv=_negate(f.no_adv_loss), g_cls=_negate(f.no_cls_loss),
              g_reg=_negate(f.no_reg_loss), adv_loss=f.adv_loss, alpha=f.alpha, beta=f.beta,
              gamma=f.gamma)
  decay = tuple(float(e) for e in f.decay_epochs) if f.decay_epochs is not None else None
  optimizer = _set(cfg.optimizer, g_learning_rate=f.g_lr, d_learning_rate=f.d_lr,
                   d_optimizer=f.d_optimizer, decay_epochs=decay)
  train_cfg = _set(cfg.train, batch_size=f.batch_size, steps=f.steps, epochs=f.epochs,
                   pretrain_steps=f.pretrain_steps, precision=f.precision,
                   jit_compile=f.jit_compile, checkpoint_every=f.checkpoint_every, seed=f.seed,
                   face_fraction=f.face_fraction)
  if f.epochs is not None and f.steps is None:
    train_cfg = dataclasses.replace(train_cfg, steps=None)
  return _set(cfg, generator=generator, discriminator=discriminator, loss=loss,
              optimizer=optimizer, train=train_cfg, context=f.context)


def _strategy(name):
  if name == "mirrored":
    return tf.distribute.MirroredStrategy()
  if name == "multiworker":
    return tf.distribute.MultiWorkerMirroredStrategy()
  return tf.distribute.get_strategy()


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if not FLAGS.out_dir:
    raise app.UsageError("--out_dir is required")
  if not FLAGS.synthetic and not FLAGS.data_dir:
    raise app.UsageError("give --data_dir (a built wider_face_rois dataset) or --synthetic")
  if FLAGS.deterministic:
    tf.config.experimental.enable_op_determinism()
  from tinyfaces_tf import train as train_lib  # heavy imports after flag parsing
  cfg = config_from_flags()
  os.makedirs(FLAGS.out_dir, exist_ok=True)
  strategy = _strategy(FLAGS.distribute)
  steps_per_epoch = None
  if FLAGS.synthetic:
    make_dataset = lambda seed: train_lib.synthetic_dataset(
        cfg.train.batch_size, seed, num_classes=cfg.discriminator.num_classes)
  else:
    from tinyfaces_tf.data import pipeline
    tfds_config = FLAGS.tfds_config or f"x{cfg.context:.1f}"
    source = pipeline.load_split(FLAGS.data_dir, "train", tfds_config)
    num_examples = pipeline.count_examples(FLAGS.data_dir, "train", tfds_config)
    steps_per_epoch = max(1, num_examples // cfg.train.batch_size)
    make_dataset = lambda seed: pipeline.make_training_dataset(source, pipeline.PipelineConfig(
        batch_size=cfg.train.batch_size, face_fraction=cfg.train.face_fraction, seed=seed,
        deterministic=FLAGS.deterministic))
  result, gan = train_lib.train(cfg, make_dataset, FLAGS.out_dir, steps_per_epoch, strategy)
  logging.info("trained %d steps (%d resumed) in %.1fs, %.1f RoIs/s", result.steps,
               result.resumed_from, result.seconds, result.rois_per_second)
  if FLAGS.export:
    from tinyfaces_tf import export
    path = export.export_saved_model(gan.generator, gan.discriminator,
                                     os.path.join(FLAGS.out_dir, "export"), context=cfg.context)
    logging.info("exported SavedModel to %s", path)


def run():
  app.run(main)


if __name__ == "__main__":
  run()

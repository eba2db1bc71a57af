"""Training: builds the models for an ExperimentConfig, runs the MSE warm start then the GAN,
checkpoints every few hundred steps and resumes a killed run from its last checkpoint."""
import dataclasses
import json
import os
import time

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from tinyfaces_tf import imaging
from tinyfaces_tf import models
from tinyfaces_tf import precision as precision_lib


@dataclasses.dataclass
class TrainResult:
  steps: int                 # GAN steps completed in total (across resumed runs)
  pretrain_steps: int
  seconds: float             # wall time of this run's training (both phases)
  rois_per_second: float     # RoIs through the GAN train_step per second in this run
  metrics: dict
  resumed_from: int          # GAN step the run started at (0 for a fresh run)
  precision: str = ""        # the policy the run used ("auto" resolved)


def build_models(config):
  generator = models.build_generator(config.generator.kind, config=config.generator)
  discriminator = models.build_discriminator(
      config.discriminator.backbone, config.discriminator.num_classes, config=config.discriminator)
  return generator, discriminator


def _schedule(base, decay_epochs, factor, steps_per_epoch):
  if not decay_epochs:
    return base
  boundaries = [int(e * steps_per_epoch) for e in decay_epochs]
  values = [base * factor ** i for i in range(len(boundaries) + 1)]
  return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)


def make_optimizers(opt, steps_per_epoch):
  """(G Adam, D Adam or SGD-momentum, pre-training Adam) with the papers' step schedules."""
  g = keras.optimizers.Adam(_schedule(opt.g_learning_rate, opt.decay_epochs, opt.decay_factor,
                                      steps_per_epoch), beta_1=opt.beta_1)
  d_lr = _schedule(opt.d_learning_rate, opt.decay_epochs, opt.decay_factor, steps_per_epoch)
  if opt.d_optimizer == "sgd":
    d = keras.optimizers.SGD(d_lr, momentum=opt.sgd_momentum)
  else:
    d = keras.optimizers.Adam(d_lr, beta_1=opt.beta_1)
  return g, d, keras.optimizers.Adam(opt.pretrain_learning_rate, beta_1=opt.beta_1)


def total_steps(train_config, steps_per_epoch):
  if train_config.steps is not None:
    return int(train_config.steps)
  if not steps_per_epoch:
    raise ValueError("steps_per_epoch is needed when TrainConfig.steps is not set")
  return int(round(train_config.epochs * steps_per_epoch))


class _CheckpointEvery(keras.callbacks.Callback):
  """Saves at the end of every chunk ("epoch" of checkpoint_every steps)."""

  def __init__(self, manager, step_fn):
    super().__init__()
    self.manager, self.step_fn = manager, step_fn

  def on_epoch_end(self, epoch, logs=None):
    path = self.manager.save(checkpoint_number=int(self.step_fn()))
    logging.info("checkpoint %s", path)


class _SRImages(keras.callbacks.Callback):
  """TensorBoard image grids: LR (nearest x4) | SR | HR of a fixed batch, once per chunk."""

  def __init__(self, writer, batch, generator, step_fn, rows=6):
    super().__init__()
    self.writer, self.generator, self.step_fn = writer, generator, step_fn
    self.lr, self.hr = batch["lr"][:rows], batch["hr"][:rows]

  def on_epoch_end(self, epoch, logs=None):
    sr = self.generator(self.lr, training=False)["sr"]
    size = self.hr.shape[1:3]
    lr_up = tf.image.resize(self.lr, size, method="nearest")
    grid = tf.concat([lr_up, tf.cast(sr, tf.float32), self.hr], axis=2)
    with self.writer.as_default():
      tf.summary.image("lr_sr_hr", imaging.to_uint8(grid), step=int(self.step_fn()), max_outputs=6)
    self.writer.flush()


class _Progress(keras.callbacks.Callback):
  def __init__(self, phase, step_fn, total, start_time):
    super().__init__()
    self.phase, self.step_fn, self.total, self.start = phase, step_fn, total, start_time

  def on_epoch_end(self, epoch, logs=None):
    shown = " ".join(f"{k}={float(v):.4f}" for k, v in sorted((logs or {}).items()))
    logging.info("[%s] step %d/%d (%.0fs) %s", self.phase, int(self.step_fn()), self.total,
                 time.time() - self.start, shown)


def train(config, make_dataset, out_dir, steps_per_epoch=None, strategy=None, sample_batch=None):
  """Trains (or resumes) one experiment.

  Args:
    config: an ExperimentConfig.
    make_dataset: callable(seed) -> an infinite tf.data.Dataset of GAN batch dicts (global batch).
      Called again with a new seed on resume, so a resumed run does not replay the same batches.
    out_dir: run directory; ``checkpoints/`` and ``tb/`` are written below it.
    steps_per_epoch: RoI batches per epoch (for epoch-based schedules and ``TrainConfig.epochs``).
    strategy: a tf.distribute.Strategy (default: the current one).
    sample_batch: optional batch for TensorBoard SR grids (default: the dataset's first batch).
  Returns:
    (TrainResult, gan)
  """
  tc = config.train
  policy = precision_lib.resolve_precision(tc.precision)
  keras.mixed_precision.set_dtype_policy(policy)
  keras.utils.set_random_seed(tc.seed)  # weight init follows --seed (a resumed run restores it)
  strategy = strategy or tf.distribute.get_strategy()
  with strategy.scope():
    generator, discriminator = build_models(config)
    g_opt, d_opt, pre_opt = make_optimizers(config.optimizer, steps_per_epoch or 1)
    gan = models.TinyFacesGAN(generator, discriminator, config.loss)
    gan.compile(g_optimizer=g_opt, d_optimizer=d_opt, jit_compile=tc.jit_compile)
    pretrainer = models.SRPretrainer(generator)
    pretrainer.compile(optimizer=pre_opt, jit_compile=tc.jit_compile)
    for optimizer in (gan.g_optimizer, gan.d_optimizer):
      optimizer.build(generator.trainable_variables if optimizer is gan.g_optimizer
                      else discriminator.trainable_variables)
    pretrainer.optimizer.build(generator.trainable_variables)
  ckpt = models.make_checkpoint(gan, pretrain_optimizer=pretrainer.optimizer)
  manager = tf.train.CheckpointManager(ckpt, os.path.join(out_dir, "checkpoints"),
                                       max_to_keep=tc.keep_checkpoints)
  if manager.latest_checkpoint:
    ckpt.restore(manager.latest_checkpoint).assert_existing_objects_matched()
    logging.info("resumed from %s", manager.latest_checkpoint)
  gan_step = lambda: int(gan.step.numpy())  # .numpy(): int() fails on mirrored variables
  pre_step = lambda: int(pretrainer.optimizer.iterations.numpy())
  total_step = lambda: pre_step() + gan_step()  # checkpoint numbers grow across both phases
  resumed_from = gan_step()
  n_total = total_steps(tc, steps_per_epoch)
  os.makedirs(out_dir, exist_ok=True)
  with open(os.path.join(out_dir, "config.json"), "w") as f:
    json.dump(dataclasses.asdict(config), f, indent=2)
  writer = tf.summary.create_file_writer(os.path.join(out_dir, "tb", "images"))
  dataset = make_dataset(tc.seed + resumed_from + pre_step())
  if sample_batch is None:
    sample_batch = next(iter(dataset))
  chunk = max(1, tc.checkpoint_every)
  start = time.time()

  remaining_pre = max(0, tc.pretrain_steps - pre_step())
  if remaining_pre and generator.trainable_variables:
    logging.info("MSE pre-training of the generator: %d steps", remaining_pre)
    _fit_in_chunks(pretrainer, dataset, remaining_pre, chunk, pre_step, [
        _CheckpointEvery(manager, total_step), _Progress("pretrain", pre_step, tc.pretrain_steps,
                                                         start)])
  # The GAN phase draws its own batch order (seeded by where it starts).
  dataset = make_dataset(tc.seed + 7919 + gan_step())
  gan_start, steps_before = time.time(), gan_step()
  remaining = max(0, n_total - gan_step())
  history = {}
  if remaining:
    callbacks = [
        _CheckpointEvery(manager, total_step),
        keras.callbacks.TensorBoard(os.path.join(out_dir, "tb"), update_freq="epoch"),
        _SRImages(writer, sample_batch, generator, gan_step),
        _Progress("gan", gan_step, n_total, start)]
    logging.info("GAN training: steps %d..%d, batch %d, %s", gan_step(), n_total, tc.batch_size,
                 policy)
    history = _fit_in_chunks(gan, dataset, remaining, chunk, gan_step, callbacks)
  gan_seconds = time.time() - gan_start
  steps_run = gan_step() - steps_before
  result = TrainResult(
      steps=gan_step(), pretrain_steps=pre_step(), seconds=time.time() - start,
      rois_per_second=(steps_run * tc.batch_size / gan_seconds) if steps_run else 0.0,
      metrics={k: float(v[-1]) for k, v in history.items()}, resumed_from=resumed_from,
      precision=policy)
  with open(os.path.join(out_dir, "train_result.json"), "w") as f:
    json.dump(dataclasses.asdict(result), f, indent=2)
  return result, gan


class _StopAt(keras.callbacks.Callback):
  def __init__(self, step_fn, target):
    super().__init__()
    self.step_fn, self.target = step_fn, target

  def on_train_batch_end(self, batch, logs=None):
    if self.step_fn() >= self.target:
      self.model.stop_training = True  # Keras ends the epoch here (on_epoch_end still runs)


def _fit_in_chunks(model, dataset, steps, chunk, step_fn, callbacks):
  """``steps`` train steps as Keras epochs of ``chunk`` steps (callbacks checkpoint at each epoch
  end); the last epoch stops early at the exact step count. One fit call, one data iterator."""
  done = step_fn() // chunk
  target = step_fn() + steps
  return model.fit(dataset, steps_per_epoch=chunk, initial_epoch=done,
                   epochs=done + -(-steps // chunk) + 1, verbose=0,
                   shuffle=False,  # the tf.data pipeline shuffles; Keras would only warn
                   callbacks=[_StopAt(step_fn, target), *callbacks]).history


def synthetic_dataset(batch_size, seed=0, hr_size=64, scale=4, num_classes=1):
  """An infinite dataset of random RoI batches: smoke runs and benchmarks without data on disk."""
  rng = np.random.default_rng(seed)
  n = 4 * batch_size
  hr = rng.uniform(-1, 1, (n, hr_size, hr_size, 3)).astype(np.float32)
  data = {"lr": tf.image.resize(hr, (hr_size // scale,) * 2, "bicubic", antialias=True).numpy(),
          "hr": hr, "label": (np.arange(n) % (max(num_classes, 2))).astype(np.int32),
          "box_target": rng.normal(0, 0.5, (n, 4)).astype(np.float32)}
  return tf.data.Dataset.from_tensor_slices(data).repeat().batch(batch_size, drop_remainder=True)


def restore_models(run_dir, checkpoint=None):
  """(generator, discriminator, config) of a run directory: config.json + its latest checkpoint."""
  from tinyfaces_tf import config as config_lib
  path = os.path.join(run_dir, "config.json")
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path}: not a run directory (no config.json)")
  with open(path) as f:
    cfg = config_lib.from_dict(json.load(f))
  generator, discriminator = build_models(cfg)
  checkpoint = checkpoint or tf.train.latest_checkpoint(os.path.join(run_dir, "checkpoints"))
  if not checkpoint:
    raise FileNotFoundError(f"{run_dir}/checkpoints: no checkpoint to restore")
  tf.train.Checkpoint(generator=generator, discriminator=discriminator).restore(
      checkpoint).expect_partial()
  return generator, discriminator, cfg

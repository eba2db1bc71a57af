"""The training loop: the MSE warm start then the GAN, checkpoints every few hundred steps, a
killed run resumed from its last checkpoint. Models and data come from a Task (``task.py``)."""
import dataclasses
import json
import math
import os
import time

import keras
import tensorflow as tf
from absl import logging

from tinyfaces_tf import atomic
from tinyfaces_tf import config as config_lib
from tinyfaces_tf import imaging
from tinyfaces_tf import models
from tinyfaces_tf import precision as precision_lib
from tinyfaces_tf.progress import ProgressCallback
from tinyfaces_tf.training import workers

RESULT_FILE = "train_result.json"
CHECKPOINT_NAME = "ckpt"  # checkpoints/<CHECKPOINT_NAME>-<total step>
GAN_STREAM_OFFSET = 7919  # the GAN phase's batches are another stream than the warm start's
# TensorFlow's executor starts every kernel at a cost estimate of 1e8 cycles, decays it by 9/10 per
# run and runs a kernel it then deems cheap (< 8000 cycles) inline on whichever thread is at hand:
# from about the 90th call of a step function on, which depends on timing, and a run's arithmetic
# then differs per process (BUILD_NOTES "Noise floor"). Deterministic runs on the CPU re-trace the
# step function before that: every STEP_FUNCTION_CALLS calls.
STEP_FUNCTION_CALLS = 64
# Sections a resumed run must share with the run directory's config.json: they decide the
# variables in the checkpoint and what the RoIs look like.
_FIXED_SECTIONS = ("generator", "discriminator", "crop", "data")


@dataclasses.dataclass
class TrainResult:
  steps: int                 # GAN steps completed in total (across resumed runs)
  pretrain_steps: int
  seconds: float             # wall time of this run's training (both phases)
  rois_per_second: float     # RoIs through the GAN train_step per second in this run
  metrics: dict
  resumed_from: int          # GAN step the run started at (0 for a fresh run)
  precision: str = ""        # the policy the run used ("auto" resolved)


def decay_boundaries(opt, steps_per_epoch):
  """The GAN steps at which the rates drop: ``decay_steps``, or ``decay_epochs`` in steps."""
  if opt.decay_steps:
    return list(opt.decay_steps)
  return [int(e * steps_per_epoch) for e in opt.decay_epochs]


def _schedule(base, boundaries, factor):
  if not boundaries:
    return base
  values = [base * factor ** i for i in range(len(boundaries) + 1)]
  return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)


def enable_determinism():
  """Op determinism, one inter-op thread and Grappler's arithmetic optimizer off: with the
  re-traced step function of ``train.deterministic`` runs (STEP_FUNCTION_CALLS), the same seed
  repeats a run bit for bit within a process and across processes on the same machine
  (BUILD_NOTES.md, "Noise floor").

  Op determinism alone is not enough on CPU. Measured here (2-core AMD EPYC, demo-scale GAN step,
  batch 32, 10 steps from the same weights and batches in one process): with several inter-op
  threads the weights differ between repeats; with one they agree in every repeat, for about 20 %
  of the step's speed. Across processes, about one process in seven optimized the combined D + G
  step's graph into a second variant that rounds differently (its first step already differs);
  with the arithmetic optimizer off, every process built the same one. Must run before
  TensorFlow's runtime starts (before the first op or the distribution strategy).
  """
  tf.config.experimental.enable_op_determinism()
  tf.config.threading.set_inter_op_parallelism_threads(1)
  tf.config.optimizer.set_experimental_options({"arithmetic_optimization": False})


def make_optimizers(opt, steps_per_epoch):
  """(G Adam, D Adam or SGD-momentum, pre-training Adam) with the papers' step schedules."""
  boundaries = decay_boundaries(opt, steps_per_epoch)
  g = keras.optimizers.Adam(_schedule(opt.g_learning_rate, boundaries, opt.decay_factor),
                            beta_1=opt.beta_1)
  d_lr = _schedule(opt.d_learning_rate, boundaries, opt.decay_factor)
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


class _FreshStepFunction(keras.callbacks.Callback):
  """Re-traces the model's train function every STEP_FUNCTION_CALLS calls: a new function gets a
  new executor, whose kernels all start as expensive. A few seconds a time."""

  def __init__(self):
    super().__init__()
    self.done = 0

  def on_train_batch_end(self, batch, logs=None):
    self.done += 1
    if self.done % STEP_FUNCTION_CALLS == 0:
      self.model.make_train_function(force=True)  # fit looks the function up at every step


class NonFiniteLossError(FloatingPointError):
  """A loss term became NaN or infinite; the run stopped before checkpointing it."""


class _StopOnNonFinite(keras.callbacks.Callback):
  """Raises at the first non-finite loss term, naming the step and the term. It runs before the
  checkpoint callback and aborts the fit, so the last checkpoint on disk stays the last good one.
  (Under mixed_float16 the loss scaler skips steps with non-finite gradients by itself; the loss
  values it reports stay finite unless the model itself diverges.)"""

  def __init__(self, phase, step_fn, manager):
    super().__init__()
    self.phase, self.step_fn, self.manager = phase, step_fn, manager

  def on_train_batch_end(self, batch, logs=None):
    bad = sorted(k for k, v in (logs or {}).items() if not math.isfinite(float(v)))
    if bad:
      values = ", ".join(f"{k}={float(logs[k])}" for k in bad)
      raise NonFiniteLossError(
          f"{self.phase} step {self.step_fn()}: non-finite loss {values}; stopped, the last "
          f"good checkpoint is "
          f"{(checkpoints_on_disk(self.manager.directory) or ['none (nothing saved yet)'])[-1]}")


def _checkpoint_number(prefix):
  number = prefix.rsplit("-", 1)[-1]
  return int(number) if number.isdigit() else -1


def checkpoints_on_disk(directory: str) -> list:
  """The checkpoint prefixes in ``directory``, oldest first: those its state file lists, the one
  it names as latest, and any whose ``.index`` file is there unlisted (a state file written by
  hand or by another tool naming only the latest, or lost). So a resume never restarts from step
  0 beside a checkpoint, to overwrite it later."""
  state = tf.train.get_checkpoint_state(directory)
  listed = [state.model_checkpoint_path, *state.all_model_checkpoint_paths] if state else []
  present = [index[:-len(".index")] for index in
             tf.io.gfile.glob(os.path.join(directory, f"{CHECKPOINT_NAME}-*.index"))]
  # One path per step number (the state file may spell it absolute); files found win.
  by_number = {_checkpoint_number(path): path for path in [*listed, *present]}
  return [by_number[n] for n in sorted(by_number) if n >= 0]


def restore_latest_good(ckpt, manager):
  """Restores the newest checkpoint that reads back cleanly; a corrupt or truncated one is
  reported with its path and the next older one is tried. Returns the path restored, or None."""
  candidates = checkpoints_on_disk(manager.directory)
  for path in reversed(candidates):
    try:
      ckpt.restore(path).assert_existing_objects_matched()
    except (tf.errors.OpError, ValueError, AssertionError, IndexError) as e:
      print(f"warning: checkpoint {path} cannot be restored ({type(e).__name__}: "
            f"{str(e).splitlines()[0][:200]}); trying the one before", flush=True)
      continue
    return path
  if candidates:
    raise ValueError(f"no checkpoint in {manager.directory} can be restored: "
                     f"{', '.join(candidates)}")
  return None


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


def _check_run_dir(config, out_dir):
  """Writes config.json into a new run directory; in an existing one, the sections that decide
  the checkpoint's variables and the RoIs must match (ValueError naming the fields)."""
  os.makedirs(out_dir, exist_ok=True)
  path = os.path.join(out_dir, config_lib.CONFIG_FILE)
  if os.path.exists(path):
    before = config_lib.load(path)
    changed = [name for section in _FIXED_SECTIONS for name in config_lib.differences(
        getattr(before, section), getattr(config, section), f"{section}.")]
    if changed:
      raise ValueError(f"{path}: the run was started with other settings of {changed}; use a "
                       f"new --out_dir (or the same settings to resume)")
  config_lib.save(config, path)


def train(task, make_dataset, out_dir, steps_per_epoch=None, strategy=None, sample_batch=None):
  """Trains (or resumes) one experiment.

  Args:
    task: a tinyfaces_tf.task.Task (its config and build_models).
    make_dataset: callable(seed, input_context=None) -> an infinite tf.data.Dataset of GAN batch
      dicts, the same stream for the same seed when deterministic. Without an input context the
      batches are global; under a strategy with several replicas it is called through
      ``strategy.distribute_datasets_from_function`` and returns this input pipeline's shard at
      the per-replica batch size. A resumed phase skips the batches it already consumed (the
      input position is the step count in the checkpoint).
    out_dir: run directory; ``config.json``, ``checkpoints/``, ``tb/`` and ``train_result.json``.
      Only the chief writes there; other workers restore from its checkpoints and save into a
      temporary directory of their own (``training/workers.py``).
    steps_per_epoch: RoI batches per epoch (for epoch-based schedules and ``TrainConfig.epochs``).
    strategy: a tf.distribute.Strategy (default: the current one).
    sample_batch: optional batch for TensorBoard SR grids (default: the dataset's first batch).
  Returns:
    (TrainResult, gan). A finished run returns its recorded result and trains nothing.

  The Keras dtype policy is the run's precision inside and restored on return.
  """
  config = task.config
  tc = config.train
  strategy = strategy or tf.distribute.get_strategy()
  if workers.is_chief(strategy):
    _check_run_dir(config, out_dir)
  with precision_lib.policy_scope(tc.precision) as policy:
    keras.utils.set_random_seed(tc.seed)  # weight init follows the seed (a resume restores it)
    with strategy.scope():
      generator, discriminator = task.build_models()
      g_opt, d_opt, pre_opt = make_optimizers(config.optimizer, steps_per_epoch or 1)
      gan = models.TinyFacesGAN(generator, discriminator, config.loss,
                                shared_generator_forward=tc.shared_generator_forward)
      gan.compile(g_optimizer=g_opt, d_optimizer=d_opt, jit_compile=tc.jit_compile)
      pretrainer = models.SRPretrainer(generator)
      pretrainer.compile(optimizer=pre_opt, jit_compile=tc.jit_compile)
      gan.g_optimizer.build(generator.trainable_variables)
      gan.d_optimizer.build(discriminator.trainable_variables)
      pretrainer.optimizer.build(generator.trainable_variables)
    with workers.write_dir(out_dir, strategy) as own_dir:
      result = _run(gan, pretrainer, config, make_dataset, out_dir, own_dir, strategy,
                    steps_per_epoch, sample_batch, policy)
  return result, gan


def distributed_input(strategy, make_dataset, seed: int, steps_done: int):
  """The phase's stream from ``steps_done`` steps on: a plain dataset without a strategy, else
  one input pipeline per worker through ``distribute_datasets_from_function`` (each reads its own
  shard at the per-replica batch; one step takes a batch per local replica from it)."""
  if strategy is tf.distribute.get_strategy() and not tf.distribute.has_strategy():
    return make_dataset(seed).skip(steps_done)  # the default (no-op) strategy

  def dataset_fn(input_context):
    batches_per_step = input_context.num_replicas_in_sync // input_context.num_input_pipelines
    return make_dataset(seed, input_context).skip(steps_done * batches_per_step)

  return strategy.distribute_datasets_from_function(dataset_fn)


def _run(gan, pretrainer, config, make_dataset, out_dir, own_dir, strategy, steps_per_epoch,
         sample_batch, policy):
  tc = config.train
  generator = gan.generator
  chief = own_dir == out_dir
  ckpt = models.make_checkpoint(gan, pretrain_optimizer=pretrainer.optimizer)
  manager = tf.train.CheckpointManager(ckpt, os.path.join(out_dir, "checkpoints"),
                                       max_to_keep=tc.keep_checkpoints,
                                       checkpoint_name=CHECKPOINT_NAME)
  # Every worker resumes from the chief's checkpoints; a non-chief saves into its own directory.
  save_manager = manager if chief else tf.train.CheckpointManager(
      ckpt, os.path.join(own_dir, "checkpoints"), max_to_keep=1, checkpoint_name=CHECKPOINT_NAME)
  restored = restore_latest_good(ckpt, manager)
  if restored:
    logging.info("resumed from %s", restored)
  gan_step = lambda: int(gan.step.numpy())  # .numpy(): int() fails on mirrored variables
  pre_step = lambda: int(pretrainer.optimizer.iterations.numpy())
  total_step = lambda: pre_step() + gan_step()  # checkpoint numbers grow across both phases
  resumed_from = gan_step()
  n_total = total_steps(tc, steps_per_epoch)
  remaining_pre = max(0, tc.pretrain_steps - pre_step()) if generator.trainable_variables else 0
  remaining = max(0, n_total - gan_step())
  result_path = os.path.join(out_dir, RESULT_FILE)
  if not remaining_pre and not remaining and os.path.exists(result_path):
    with open(result_path) as f:
      return TrainResult(**json.load(f))  # a finished run: its own figures, file untouched

  # Each phase reads one stream, seeded by the run's seed; a resumed phase skips the batches its
  # steps already consumed, so (with train.deterministic) a killed-and-resumed run sees exactly
  # the batches of an uninterrupted one. Skipping re-reads those batches: seconds to minutes.
  dataset = distributed_input(strategy, make_dataset, tc.seed, pre_step())
  if chief and sample_batch is None:
    sample_batch = next(iter(make_dataset(tc.seed)))
  chunk = max(1, tc.checkpoint_every)
  # Only where the executor runs the step op by op on the CPU: under XLA the step is one kernel,
  # and the executor never counts GPU kernels as expensive; a re-trace there costs a re-compile.
  retrace = (tc.deterministic and not tc.jit_compile
             and not tf.config.list_logical_devices("GPU"))
  fresh = lambda: [_FreshStepFunction()] if retrace else []
  start = time.time()
  if remaining_pre:
    print(f"MSE pre-training of the generator: steps {pre_step()}..{tc.pretrain_steps}",
          flush=True)
    _fit_in_chunks(pretrainer, dataset, remaining_pre, chunk, pre_step, [
        _StopOnNonFinite("pre-training", pre_step, manager),
        _CheckpointEvery(save_manager, total_step),
        ProgressCallback(tc.pretrain_steps, pre_step(), shown=("g_mse",)), *fresh()])
  dataset = distributed_input(strategy, make_dataset, tc.seed + GAN_STREAM_OFFSET, gan_step())
  gan_start, steps_before = time.time(), gan_step()
  history = {}
  if remaining:
    print(f"GAN training: steps {gan_step()}..{n_total}, batch {tc.batch_size}, {policy}",
          flush=True)
    callbacks = [
        _StopOnNonFinite("GAN", gan_step, manager),
        _CheckpointEvery(save_manager, total_step),
        ProgressCallback(n_total, gan_step(), shown=("d_loss", "g_loss", "g_mse")), *fresh()]
    if chief:  # TensorBoard is the chief's alone
      writer = tf.summary.create_file_writer(os.path.join(out_dir, "tb", "images"))
      callbacks += [keras.callbacks.TensorBoard(os.path.join(out_dir, "tb"), update_freq="epoch"),
                    _SRImages(writer, sample_batch, generator, gan_step)]
    history = _fit_in_chunks(gan, dataset, remaining, chunk, gan_step, callbacks)
  gan_seconds = time.time() - gan_start
  steps_run = gan_step() - steps_before
  result = TrainResult(
      steps=gan_step(), pretrain_steps=pre_step(), seconds=time.time() - start,
      rois_per_second=(steps_run * tc.batch_size / gan_seconds) if steps_run else 0.0,
      metrics={k: float(v[-1]) for k, v in history.items()}, resumed_from=resumed_from,
      precision=policy)
  if chief:
    atomic.write_json(result_path, dataclasses.asdict(result))
  return result


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

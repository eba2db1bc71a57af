"""The multi-task GAN as a keras.Model: one D update then one G update per batch (k = 1)."""
import keras
import tensorflow as tf

from tinyfaces_tf import losses

_TERMS = ("d_loss", "d_adv", "d_cls", "d_reg", "g_loss", "g_mse", "g_adv", "g_cls", "g_reg")


def _unpack(data):
  # fit() hands over (x,) tuples for dict datasets in some code paths.
  return data[0] if isinstance(data, tuple) else data


def _has_refinement(generator):
  config = getattr(generator, "config", None)
  return bool(config is not None and config.kind == "tinyfaces" and config.refinement)


def face_accuracy(cls_logits, labels):
  """Accuracy of the cls head: sigmoid logit > 0 for faces, argmax over K+1 classes otherwise."""
  labels = tf.cast(tf.reshape(labels, [-1]), tf.int32)
  if cls_logits.shape[-1] == 1:
    predicted = tf.cast(tf.reshape(cls_logits, [-1]) > 0.0, tf.int32)
  else:
    predicted = tf.cast(tf.argmax(cls_logits, axis=-1), tf.int32)
  return tf.reduce_mean(tf.cast(tf.equal(predicted, labels), tf.float32))


def _wrap_for_policy(optimizer):
  if (keras.mixed_precision.dtype_policy().name == "mixed_float16"
      and not isinstance(optimizer, keras.optimizers.LossScaleOptimizer)):
    return keras.optimizers.LossScaleOptimizer(optimizer)
  return optimizer


def _replica_scaled(loss):
  # Gradients are summed over replicas: scale so the update is that of the global-batch mean.
  return loss / tf.cast(tf.distribute.get_strategy().num_replicas_in_sync, loss.dtype)


def _logged(results):
  """fit's logs of one step. Across workers Keras 3 averages them with
  ``strategy.reduce(MEAN, axis=0)``, which needs a leading axis (scalars fail there)."""
  strategy = tf.distribute.get_strategy()
  if (tf.distribute.has_strategy()  # replicas in other processes too:
      and strategy.num_replicas_in_sync > len(strategy.extended.worker_devices)):
    return {name: tf.reshape(value, [1]) for name, value in results.items()}
  return results


class _BuiltBeforeFit(keras.Model):
  """A model whose sub-models and optimizers are built before ``fit`` (``training/loop.py``).

  Under a tf.distribute strategy, Keras 3's ``fit`` first draws one batch from the iterator to
  build the model symbolically, and drops it (a stream that a resumed run replays would then be
  one batch off), and under MultiWorkerMirroredStrategy it fails reducing a dict batch. These
  models have nothing left to build, so the draw is skipped.
  """

  def _maybe_symbolic_build(self, iterator=None, data_batch=None):
    del iterator, data_batch


class TinyFacesGAN(_BuiltBeforeFit):
  """Generator + multi-task discriminator trained with journal Eq (10) (G) and Eq (11) (D).

  Batches are dicts ``lr`` [N,16,16,3], ``hr`` [N,64,64,3] (model range), ``label`` [N] and
  ``box_target`` [N,4]. Each network runs in training mode (batch-norm batch statistics) only in its
  own update; the frozen one runs in inference mode, so neither step touches the other's variables
  and G's detection losses come from the D that scores RoIs at test time.

  ``shared_generator_forward``: run G once per step instead of twice. G's weights do not change
  between the D update and the G update (k = 1, same batch), so the G update's forward pass can
  also feed the D update (through a stop-gradient); what changes is that D then sees SR made with
  G's batch statistics rather than its moving averages. Saves one G forward per RoI (about 17% of
  the journal step's FLOPs) and holds G's activations during the D update.
  """

  def __init__(self, generator, discriminator, loss_config=None,
               shared_generator_forward: bool = False, **kwargs):
    super().__init__(**kwargs)
    self.generator = generator
    self.discriminator = discriminator
    self.loss_config = loss_config or losses.LossConfig()
    self.shared_generator_forward = shared_generator_forward
    self.refinement = _has_refinement(generator)
    heads = set(discriminator.output.keys())
    present = [t for t in _TERMS if not (t.endswith("_adv") and "gan_logit" not in heads)
               and not (t.endswith("_reg") and "box_deltas" not in heads)]
    self.trackers = {name: keras.metrics.Mean(name=name) for name in present}
    self.trackers["acc_sr"] = keras.metrics.Mean(name="acc_sr")
    self.trackers["acc_hr"] = keras.metrics.Mean(name="acc_hr")

  def compile(self, g_optimizer, d_optimizer, **kwargs):
    """Takes both optimizers; under mixed_float16 each is wrapped in a LossScaleOptimizer."""
    self.g_optimizer = _wrap_for_policy(g_optimizer)
    self.d_optimizer = _wrap_for_policy(d_optimizer)
    super().compile(optimizer=self.d_optimizer, **kwargs)

  @property
  def metrics(self):
    return list(self.trackers.values())

  @property
  def step(self):
    """Number of completed train steps (D updates every step, also for the weightless SBU G)."""
    return self.d_optimizer.iterations

  def call(self, lr, training=False):
    g_out = self.generator(lr, training=training)
    return {**g_out, **self.discriminator(g_out["sr"], training=training)}

  def _score_both(self, hr, sr, training):
    """One D call on [HR; SR] (one batch: faster, and BN statistics cannot tell the halves apart)."""
    out = self.discriminator(tf.concat([hr, tf.cast(sr, hr.dtype)], axis=0), training=training)
    n = tf.shape(hr)[0]
    return {k: v[:n] for k, v in out.items()}, {k: v[n:] for k, v in out.items()}

  def discriminator_step(self, lr, hr, labels, targets, sr=None):
    """One D update with G frozen: Eq (11). Returns (terms, D outputs on HR, D outputs on SR).
    ``sr``: G's output when the caller already has it (default: G in inference mode)."""
    if sr is None:
      sr = self.generator(lr, training=False)["sr"]
    with tf.GradientTape() as tape:
      d_real, d_fake = self._score_both(hr, sr, training=True)
      d_loss, terms = losses.discriminator_loss(d_real, d_fake, labels, targets, self.loss_config)
      scaled = self.d_optimizer.scale_loss(_replica_scaled(d_loss))
    variables = self.discriminator.trainable_variables
    self.d_optimizer.apply_gradients(zip(tape.gradient(scaled, variables), variables))
    return terms, d_real, d_fake

  def generator_step(self, lr, hr, labels, targets, recorded=None):
    """One G update with D frozen: Eq (10). The weightless SBU generator has nothing to update.
    ``recorded``: (tape, G outputs) of a G forward pass already on that tape."""
    variables = self.generator.trainable_variables
    tape, g_out = recorded or (tf.GradientTape(), None)
    with tape:
      if g_out is None:
        g_out = self._generate(lr)
      d_sr = self.discriminator(g_out["sr"], training=False)
      g_loss, terms = losses.generator_loss(g_out, hr, d_sr, labels, targets, self.loss_config,
                                            self.refinement)
      scaled = self.g_optimizer.scale_loss(_replica_scaled(g_loss))
    if variables:
      self.g_optimizer.apply_gradients(zip(tape.gradient(scaled, variables), variables))
    return terms

  def _generate(self, lr):
    return self.generator(lr, training=bool(self.generator.trainable_variables))

  def train_step(self, data):
    batch = _unpack(data)
    args = (batch["lr"], batch["hr"], batch["label"], batch["box_target"])
    if self.shared_generator_forward:
      tape = tf.GradientTape()
      with tape:
        g_out = self._generate(args[0])
      d_terms, d_real, d_fake = self.discriminator_step(*args, sr=tf.stop_gradient(g_out["sr"]))
      g_terms = self.generator_step(*args, recorded=(tape, g_out))
    else:
      d_terms, d_real, d_fake = self.discriminator_step(*args)  # k = 1: one D update ...
      g_terms = self.generator_step(*args)                      # ... then one G update
    return self._report({**d_terms, **g_terms}, d_real, d_fake, batch["label"])

  def _report(self, terms, d_real, d_fake, labels):
    for name, value in terms.items():
      if name in self.trackers:
        self.trackers[name].update_state(value)
    self.trackers["acc_hr"].update_state(face_accuracy(d_real["cls_logits"], labels))
    self.trackers["acc_sr"].update_state(face_accuracy(d_fake["cls_logits"], labels))
    return _logged({m.name: m.result() for m in self.metrics})

  def test_step(self, data):
    batch = _unpack(data)
    lr, hr, labels, targets = batch["lr"], batch["hr"], batch["label"], batch["box_target"]
    g_out = self.generator(lr, training=False)
    d_real, d_fake = self._score_both(hr, g_out["sr"], training=False)
    _, d_terms = losses.discriminator_loss(d_real, d_fake, labels, targets, self.loss_config)
    _, g_terms = losses.generator_loss(g_out, hr, d_fake, labels, targets, self.loss_config,
                                       self.refinement)
    return self._report({**d_terms, **g_terms}, d_real, d_fake, labels)


class SRPretrainer(_BuiltBeforeFit):
  """The MSE-only generator warm start both papers use ("we first train an MSE-based SR network")."""

  def __init__(self, generator, **kwargs):
    super().__init__(**kwargs)
    self.generator = generator
    self.refinement = _has_refinement(generator)
    self.mse_tracker = keras.metrics.Mean(name="g_mse")

  @property
  def metrics(self):
    return [self.mse_tracker]

  def call(self, lr, training=False):
    return self.generator(lr, training=training)

  def compile(self, optimizer, **kwargs):
    super().compile(optimizer=_wrap_for_policy(optimizer), **kwargs)

  def train_step(self, data):
    batch = _unpack(data)
    with tf.GradientTape() as tape:
      g_out = self.generator(batch["lr"], training=True)
      loss = losses.mse_loss(g_out["upsampled"], g_out["sr"], batch["hr"], self.refinement)
      scaled = self.optimizer.scale_loss(_replica_scaled(loss))
    variables = self.generator.trainable_variables
    self.optimizer.apply_gradients(zip(tape.gradient(scaled, variables), variables))
    self.mse_tracker.update_state(loss)
    return _logged({"g_mse": self.mse_tracker.result()})

  def test_step(self, data):
    batch = _unpack(data)
    g_out = self.generator(batch["lr"], training=False)
    self.mse_tracker.update_state(
        losses.mse_loss(g_out["upsampled"], g_out["sr"], batch["hr"], self.refinement))
    return {"g_mse": self.mse_tracker.result()}


def make_checkpoint(gan, **extra):
  """tf.train.Checkpoint of G, D, both optimizers (their iteration counters are the step)."""
  return tf.train.Checkpoint(generator=gan.generator, discriminator=gan.discriminator,
                             g_optimizer=gan.g_optimizer, d_optimizer=gan.d_optimizer, **extra)

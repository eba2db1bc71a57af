"""Loss terms of journal Eq (4)-(11) and MTGAN Eq (4)-(11), one function per term.

All terms are computed in float32 (inputs are cast), whatever the mixed-precision policy.
Per-RoI quantities are averaged over the N RoIs of the batch, as the equations' 1/N sums do.
"""
import dataclasses

import tensorflow as tf

ADV_LOSSES = ("nonsaturating", "saturating")


REG_NORMALIZERS = ("batch", "positives")


@dataclasses.dataclass(frozen=True)
class LossConfig:
  """Loss weights and ablation switches (journal Eq (10)/(11); MTGAN Eq (4)-(11)).

  Attributes:
    alpha: adversarial weight (journal 4.2, MTGAN 4.2: 0.001).
    beta: classification weight (0.01).
    gamma: regression weight (0.01).
    adv_loss: G's adversarial term: "nonsaturating" -log D(G(x)) (SRGAN's form) or the literal
      Eq (10) "saturating" log(1 - D(G(x))).
    g_adv: the adversarial term in G's loss (False: Table 2 "w/o adv loss").
    g_cls: the classification term in G's loss (False: Table 2 "w/o cls loss").
    g_reg: the regression term in G's loss (False: Table 2 "w/o reg loss").
    reg_normalizer: Eq (7)'s 1/N over all RoIs ("batch") or the mean over faces ("positives").
  """
  alpha: float = 1e-3
  beta: float = 1e-2
  gamma: float = 1e-2
  adv_loss: str = dataclasses.field(default="nonsaturating", metadata={"choices": ADV_LOSSES})
  g_adv: bool = True
  g_cls: bool = True
  g_reg: bool = True
  reg_normalizer: str = dataclasses.field(default="batch",
                                          metadata={"choices": REG_NORMALIZERS})

  def __post_init__(self):
    if self.adv_loss not in ADV_LOSSES:
      raise ValueError(f"loss.adv_loss must be one of {ADV_LOSSES}, got {self.adv_loss!r}")
    if self.reg_normalizer not in REG_NORMALIZERS:
      raise ValueError(f"loss.reg_normalizer must be one of {REG_NORMALIZERS}, got "
                       f"{self.reg_normalizer!r}")
    if min(self.alpha, self.beta, self.gamma) < 0:
      raise ValueError(f"loss weights must be >= 0, got alpha={self.alpha}, beta={self.beta}, "
                       f"gamma={self.gamma}")


def _f32(x):
  return tf.cast(x, tf.float32)


def pixel_mse(prediction, target):
  """Mean squared error over all pixels and channels (one image term of Eq (4))."""
  return tf.reduce_mean(tf.square(_f32(prediction) - _f32(target)))


def mse_loss(upsampled, sr, hr, refinement=True):
  """Eq (4): ||G1(x) - y||^2 + ||G2(G1(x)) - y||^2, each as a per-pixel mean (SRGAN's scale, which
  alpha = 1e-3 was tuned against). Without a refinement network there is one term."""
  loss = pixel_mse(upsampled, hr)
  if refinement:
    loss += pixel_mse(sr, hr)
  return loss


def _bce(logits, target_value):
  logits = _f32(tf.reshape(logits, [-1]))
  labels = tf.fill(tf.shape(logits), tf.constant(target_value, tf.float32))
  return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits))


def discriminator_adversarial_loss(real_logits, fake_logits):
  """D's part of Eq (11): -(log D(y) + log(1 - D(G(x))))."""
  return _bce(real_logits, 1.0) + _bce(fake_logits, 0.0)


def generator_adversarial_loss(fake_logits, kind="nonsaturating"):
  """G's adversarial term. ``saturating`` is Eq (5)/(10) literally: log(1 - D(G(x))) (minimised);
  ``nonsaturating`` is -log D(G(x)), the form SRGAN (which the papers follow) trains with."""
  if kind == "nonsaturating":
    return _bce(fake_logits, 1.0)
  if kind == "saturating":
    # log(1 - sigmoid(z)) = -softplus(z)
    return tf.reduce_mean(-tf.nn.softplus(_f32(tf.reshape(fake_logits, [-1]))))
  raise ValueError(f"unknown adversarial loss {kind!r}; expected one of {ADV_LOSSES}")


def classification_loss(cls_logits, labels):
  """Eq (6) for one image set: sigmoid cross-entropy face/non-face when cls_logits has one column,
  softmax cross-entropy over K+1 classes (MTGAN Eq (6)) otherwise."""
  cls_logits = _f32(cls_logits)
  labels = tf.reshape(labels, [-1])
  if cls_logits.shape[-1] == 1:
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(
        labels=_f32(labels), logits=tf.reshape(cls_logits, [-1])))
  return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
      labels=tf.cast(labels, tf.int32), logits=cls_logits))


def smooth_l1(x):
  """Eq (8): 0.5 x^2 if |x| < 1, |x| - 0.5 otherwise."""
  x = _f32(x)
  absx = tf.abs(x)
  return tf.where(absx < 1.0, 0.5 * tf.square(x), absx - 0.5)


def select_class_deltas(box_deltas, labels):
  """[N, 4] deltas of each RoI's own class from class-specific [N, 4 * C] deltas (MTGAN);
  class-agnostic [N, 4] deltas pass through."""
  box_deltas = _f32(box_deltas)
  if box_deltas.shape[-1] == 4:
    return box_deltas
  per_class = tf.reshape(box_deltas, [tf.shape(box_deltas)[0], -1, 4])
  index = tf.maximum(tf.cast(tf.reshape(labels, [-1]), tf.int32), 0)
  return tf.gather(per_class, index, axis=1, batch_dims=1)


def regression_loss(box_deltas, targets, labels, normalizer="batch"):
  """One image set's term of Eq (7): sum over (x, y, w, h) of SmoothL1(t - v) for RoIs with u >= 1,
  divided by N (Eq (7)'s 1/N) or, with normalizer="positives", by the number of faces."""
  deltas = select_class_deltas(box_deltas, labels)
  mask = _f32(tf.reshape(labels, [-1]) >= 1)
  per_roi = tf.reduce_sum(smooth_l1(deltas - _f32(targets)), axis=-1) * mask
  if normalizer == "positives":
    denom = tf.maximum(tf.reduce_sum(mask), 1.0)
  else:
    denom = tf.cast(tf.shape(per_roi)[0], tf.float32)
  return tf.reduce_sum(per_roi) / denom


def discriminator_loss(d_real, d_fake, labels, box_targets, config):
  """Eq (11). Returns (total, terms) where terms holds each weighted-free component."""
  terms = {}
  total = tf.constant(0.0, tf.float32)
  if "gan_logit" in d_real:
    terms["d_adv"] = discriminator_adversarial_loss(d_real["gan_logit"], d_fake["gan_logit"])
    total += config.alpha * terms["d_adv"]
  terms["d_cls"] = (classification_loss(d_real["cls_logits"], labels) +
                    classification_loss(d_fake["cls_logits"], labels))
  total += config.beta * terms["d_cls"]
  if "box_deltas" in d_real:
    terms["d_reg"] = (
        regression_loss(d_real["box_deltas"], box_targets, labels, config.reg_normalizer) +
        regression_loss(d_fake["box_deltas"], box_targets, labels, config.reg_normalizer))
    total += config.gamma * terms["d_reg"]
  terms["d_loss"] = total
  return total, terms


def generator_loss(g_out, hr, d_fake, labels, box_targets, config, refinement=True):
  """Eq (10): L_mse + alpha * L_adv + beta * L_cls(SR) + gamma * L_reg(SR), each detection term
  switchable (Table 2 ablations). Returns (total, terms)."""
  terms = {"g_mse": mse_loss(g_out["upsampled"], g_out["sr"], hr, refinement)}
  total = terms["g_mse"]
  if "gan_logit" in d_fake:
    terms["g_adv"] = generator_adversarial_loss(d_fake["gan_logit"], config.adv_loss)
    if config.g_adv:
      total += config.alpha * terms["g_adv"]
  terms["g_cls"] = classification_loss(d_fake["cls_logits"], labels)
  if config.g_cls:
    total += config.beta * terms["g_cls"]
  if "box_deltas" in d_fake:
    terms["g_reg"] = regression_loss(d_fake["box_deltas"], box_targets, labels, config.reg_normalizer)
    if config.g_reg:
      total += config.gamma * terms["g_reg"]
  terms["g_loss"] = total
  return total, terms

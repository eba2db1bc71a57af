"""Each loss term against an independent NumPy computation of journal Eq (4)-(11) / MTGAN Eq (6)."""
import numpy as np
import pytest

from tinyfaces_tf import losses

RNG = np.random.default_rng(7)


def np_sigmoid(z):
  return 1.0 / (1.0 + np.exp(-z))


def np_smooth_l1(x):
  return np.where(np.abs(x) < 1, 0.5 * x * x, np.abs(x) - 0.5)


def test_smooth_l1_hand_values():
  # Eq (8): 0.5 * 0.5^2 = 0.125; |-2| - 0.5 = 1.5; 0 -> 0; at |x| = 1 the linear branch: 0.5.
  np.testing.assert_allclose(losses.smooth_l1(np.array([0.5, -2.0, 0.0, 1.0])),
                             [0.125, 1.5, 0.0, 0.5])


def test_mse_loss():
  hr, g1, g2 = (RNG.uniform(-1, 1, (3, 8, 8, 3)).astype(np.float32) for _ in range(3))
  expected = np.mean((g1 - hr) ** 2) + np.mean((g2 - hr) ** 2)
  np.testing.assert_allclose(losses.mse_loss(g1, g2, hr), expected, rtol=1e-5)
  np.testing.assert_allclose(losses.mse_loss(g1, g2, hr, refinement=False),
                             np.mean((g1 - hr) ** 2), rtol=1e-5)


def test_adversarial_losses():
  real = RNG.normal(size=(6, 1)).astype(np.float32)
  fake = RNG.normal(size=(6, 1)).astype(np.float32)
  d_expected = -np.mean(np.log(np_sigmoid(real))) - np.mean(np.log(1 - np_sigmoid(fake)))
  np.testing.assert_allclose(losses.discriminator_adversarial_loss(real, fake), d_expected, rtol=1e-5)
  np.testing.assert_allclose(losses.generator_adversarial_loss(fake, "nonsaturating"),
                             -np.mean(np.log(np_sigmoid(fake))), rtol=1e-5)
  np.testing.assert_allclose(losses.generator_adversarial_loss(fake, "saturating"),
                             np.mean(np.log(1 - np_sigmoid(fake))), rtol=1e-5)
  with pytest.raises(ValueError, match="adversarial"):
    losses.generator_adversarial_loss(fake, "wasserstein")


def test_classification_loss_sigmoid_and_softmax():
  labels = np.array([1, 0, 1, 0])
  logits = RNG.normal(size=(4, 1)).astype(np.float32)
  p = np_sigmoid(logits[:, 0])
  expected = -np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p))
  np.testing.assert_allclose(losses.classification_loss(logits, labels), expected, rtol=1e-5)
  # MTGAN Eq (6): softmax over K + 1 = 5 classes.
  labels = np.array([0, 3, 4, 1])
  logits = RNG.normal(size=(4, 5)).astype(np.float32)
  probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
  expected = -np.mean(np.log(probs[np.arange(4), labels]))
  np.testing.assert_allclose(losses.classification_loss(logits, labels), expected, rtol=1e-5)


def test_regression_loss_masks_background():
  labels = np.array([1, 0, 1, 0, 0])
  deltas = RNG.normal(scale=2, size=(5, 4)).astype(np.float32)
  targets = RNG.normal(size=(5, 4)).astype(np.float32)
  per_roi = np_smooth_l1(deltas - targets).sum(1)
  # Eq (7): 1/N sum_i [u_i >= 1] sum_j SL1(t - v); N = 5 RoIs, only rows 0 and 2 count.
  expected = (per_roi[0] + per_roi[2]) / 5
  np.testing.assert_allclose(losses.regression_loss(deltas, targets, labels), expected, rtol=1e-5)
  np.testing.assert_allclose(losses.regression_loss(deltas, targets, labels, "positives"),
                             (per_roi[0] + per_roi[2]) / 2, rtol=1e-5)
  # Background rows may hold anything: changing them changes nothing.
  deltas[[1, 3, 4]] = 1e3
  np.testing.assert_allclose(losses.regression_loss(deltas, targets, labels), expected, rtol=1e-5)


def test_regression_loss_class_specific_deltas():
  labels = np.array([2, 0, 1])
  deltas = RNG.normal(size=(3, 4 * 3)).astype(np.float32)
  targets = RNG.normal(size=(3, 4)).astype(np.float32)
  own = np.stack([deltas[i, 4 * labels[i]:4 * labels[i] + 4] for i in range(3)])
  per_roi = np_smooth_l1(own - targets).sum(1) * (labels >= 1)
  np.testing.assert_allclose(losses.regression_loss(deltas, targets, labels), per_roi.sum() / 3,
                             rtol=1e-5)


def _d_outputs(n, seed):
  rng = np.random.default_rng(seed)
  return {"gan_logit": rng.normal(size=(n, 1)).astype(np.float32),
          "cls_logits": rng.normal(size=(n, 1)).astype(np.float32),
          "box_deltas": rng.normal(size=(n, 4)).astype(np.float32)}


def test_total_losses_weights_and_switches():
  n = 6
  labels = np.array([1, 0, 1, 1, 0, 0])
  targets = RNG.normal(size=(n, 4)).astype(np.float32)
  real, fake = _d_outputs(n, 1), _d_outputs(n, 2)
  cfg = losses.LossConfig()
  bce = lambda z, y: -np.mean(y * np.log(np_sigmoid(z[:, 0])) + (1 - y) * np.log(1 - np_sigmoid(z[:, 0])))
  reg = lambda t: (np_smooth_l1(t - targets).sum(1) * (labels >= 1)).sum() / n
  d_expected = (1e-3 * (bce(real["gan_logit"], 1) + bce(fake["gan_logit"], 0))
                + 1e-2 * (bce(real["cls_logits"], labels) + bce(fake["cls_logits"], labels))
                + 1e-2 * (reg(real["box_deltas"]) + reg(fake["box_deltas"])))
  d_total, _ = losses.discriminator_loss(real, fake, labels, targets, cfg)
  np.testing.assert_allclose(d_total, d_expected, rtol=1e-5)

  hr = RNG.uniform(-1, 1, (n, 4, 4, 3)).astype(np.float32)
  g_out = {"upsampled": RNG.uniform(-1, 1, hr.shape).astype(np.float32),
           "sr": RNG.uniform(-1, 1, hr.shape).astype(np.float32)}
  mse = np.mean((g_out["upsampled"] - hr) ** 2) + np.mean((g_out["sr"] - hr) ** 2)
  g_expected = (mse + 1e-3 * bce(fake["gan_logit"], 1) + 1e-2 * bce(fake["cls_logits"], labels)
                + 1e-2 * reg(fake["box_deltas"]))
  g_total, terms = losses.generator_loss(g_out, hr, fake, labels, targets, cfg)
  np.testing.assert_allclose(g_total, g_expected, rtol=1e-5)
  off = losses.LossConfig(g_adv=False, g_cls=False, g_reg=False)
  g_total, terms = losses.generator_loss(g_out, hr, fake, labels, targets, off)
  np.testing.assert_allclose(g_total, mse, rtol=1e-5)
  assert "g_cls" in terms  # still reported when switched off


def test_loss_config_validation():
  with pytest.raises(ValueError, match="adv_loss"):
    losses.LossConfig(adv_loss="hinge")

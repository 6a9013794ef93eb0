"""The losses against the official codes' formulas, written out with numpy."""

import numpy as np

from deligan_jax.step import losses


def logsumexp(x, axis):
  top = np.max(x, axis=axis, keepdims=True)
  return np.squeeze(top, axis) + np.log(np.sum(np.exp(x - top), axis=axis))


def softplus(x):
  return np.logaddexp(0.0, x)


def test_bce_losses_match_the_cross_entropy_formulas():
  rng = np.random.default_rng(0)
  real, fake = rng.normal(size=20), rng.normal(size=20)
  sigmoid = lambda x: 1 / (1 + np.exp(-x))
  expected_d = -np.mean(np.log(sigmoid(real))) - np.mean(np.log(1 - sigmoid(fake)))
  np.testing.assert_allclose(losses.discriminator_loss(real, fake), expected_d, rtol=1e-5)
  np.testing.assert_allclose(losses.generator_loss(fake), -np.mean(np.log(sigmoid(fake))),
                             rtol=1e-5)


def test_semi_supervised_losses_match_the_official_cifar_code():
  rng = np.random.default_rng(1)
  lab, unl, gen = (3 * rng.normal(size=(16, 10)) for _ in range(3))
  labels = rng.integers(0, 10, 16)
  # dg_cifar.py: loss_lab, loss_unl and loss_gen, term by term.
  l_lab = lab[np.arange(16), labels]
  l_unl, l_gen = logsumexp(unl, axis=1), logsumexp(gen, axis=1)
  loss_lab = -np.mean(l_lab) + np.mean(logsumexp(lab, axis=1))
  loss_unl = -0.5 * np.mean(l_unl) + 0.5 * np.mean(softplus(l_unl)) + 0.5 * np.mean(softplus(l_gen))
  np.testing.assert_allclose(
      losses.semi_supervised_discriminator_loss(lab, labels, unl, gen), loss_lab + loss_unl,
      rtol=1e-5)
  np.testing.assert_allclose(losses.semi_supervised_generator_loss(gen),
                             -np.mean(softplus(l_gen)), rtol=1e-5)
  np.testing.assert_allclose(losses.real_logit(gen), l_gen, rtol=1e-5)
  one_logit = rng.normal(size=5)
  np.testing.assert_array_equal(losses.real_logit(one_logit), one_logit)

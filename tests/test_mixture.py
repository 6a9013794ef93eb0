"""The mixture prior: reparameterised sampling, assignments, gradients, regulariser."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deligan_jax import mixture


@pytest.fixture
def params():
  return mixture.init(jax.random.key(0), num_components=5, dim=3,
                      sigma_init=mixture.uniform(0.1, 0.5))


def test_init_shapes_and_initialisers():
  p = mixture.init(jax.random.key(1), 50, 30)
  assert p["mu"].shape == p["sigma"].shape == (50, 30)
  assert -1 <= float(p["mu"].min()) < -0.9 and 0.9 < float(p["mu"].max()) <= 1
  np.testing.assert_array_equal(p["sigma"], np.float32(0.2))
  with pytest.raises(ValueError, match="num_components"):
    mixture.init(jax.random.key(1), 0, 3)


def test_sample_is_mu_plus_sigma_eps(params):
  key = jax.random.key(7)
  z, ids = mixture.sample(params, key, 10, noise_kind="normal")
  eps = mixture.noise(jax.random.split(key)[1], (10, 3), "normal")
  np.testing.assert_allclose(z, params["mu"][ids] + params["sigma"][ids] * eps, rtol=1e-6)


def test_batch_assignment_gives_one_sample_per_component(params):
  _, ids = mixture.sample(params, jax.random.key(0), 5)
  np.testing.assert_array_equal(ids, np.arange(5))
  _, ids = mixture.sample(params, jax.random.key(0), 15)
  np.testing.assert_array_equal(np.bincount(ids, minlength=5), [3] * 5)


def test_random_assignment_covers_components_uniformly():
  p = mixture.init(jax.random.key(0), 10, 2)
  n = 20_000
  _, ids = mixture.sample(p, jax.random.key(3), n, assignment="random")
  counts = np.bincount(np.asarray(ids), minlength=10)
  # Each count ~ Binomial(n, 1/10): mean 2000, std 42.4; 5 std bounds.
  assert np.all(np.abs(counts - n / 10) < 5 * np.sqrt(n * 0.1 * 0.9)), counts


def test_one_component(params):
  z, ids = mixture.sample(params, jax.random.key(2), 8, component=3, noise_kind="uniform")
  np.testing.assert_array_equal(ids, 3)
  assert np.all(np.abs(z - params["mu"][3]) <= params["sigma"][3] + 1e-6)


@pytest.mark.parametrize("noise_kind", ["normal", "uniform"])
def test_gradients_equal_the_analytic_ones(params, noise_kind):
  key = jax.random.key(11)
  n = 12
  weights = jax.random.normal(jax.random.key(5), (n, 3))

  def loss(p):
    z, _ = mixture.sample(p, key, n, assignment="random", noise_kind=noise_kind)
    return jnp.sum(weights * z)

  grads = jax.grad(loss)(params)
  ids_key, eps_key = jax.random.split(key)
  ids = np.asarray(mixture.component_ids(ids_key, n, 5, "random"))
  eps = np.asarray(mixture.noise(eps_key, (n, 3), noise_kind))
  # dL/dmu_c = sum over rows of c of w_r; dL/dsigma_c = sum over rows of c of w_r * eps_r.
  expected_mu = np.zeros((5, 3))
  expected_sigma = np.zeros((5, 3))
  np.add.at(expected_mu, ids, np.asarray(weights))
  np.add.at(expected_sigma, ids, np.asarray(weights) * eps)
  np.testing.assert_allclose(grads["mu"], expected_mu, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(grads["sigma"], expected_sigma, rtol=1e-5, atol=1e-6)


def test_sigma_regularizer_value_and_gradient(params):
  sigma = np.asarray(params["sigma"])
  np.testing.assert_allclose(mixture.sigma_regularizer(params), np.mean((1 - sigma) ** 2),
                             rtol=1e-6)
  grad = jax.grad(mixture.sigma_regularizer)(params)
  np.testing.assert_allclose(grad["sigma"], -2 * (1 - sigma) / sigma.size, rtol=1e-5)
  np.testing.assert_array_equal(grad["mu"], 0)


def test_sampling_is_deterministic_in_the_key_and_jittable(params):
  a, _ = mixture.sample(params, jax.random.key(1), 6)
  b, _ = jax.jit(mixture.sample, static_argnums=2)(params, jax.random.key(1), 6)
  c, _ = mixture.sample(params, jax.random.key(2), 6)
  np.testing.assert_allclose(a, b, rtol=1e-6)
  assert not np.allclose(a, c)


def test_bad_arguments_are_refused(params):
  with pytest.raises(ValueError, match="assignment"):
    mixture.sample(params, jax.random.key(0), 4, assignment="round-robin")
  with pytest.raises(ValueError, match="noise"):
    mixture.sample(params, jax.random.key(0), 4, noise_kind="laplace")

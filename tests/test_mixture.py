"""The mixture prior: reparameterised sampling, assignments, gradients, regulariser."""

import warnings

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


# --- checked arguments ----------------------------------------------------------


@pytest.mark.parametrize("component, message", [
    (99, r"component must be in \[0, 5\), got 99"),
    (-1, r"component must be in \[0, 5\), got -1"),
    (2.7, "integer id"),
    (True, "integer id"),
    (np.array([0, 1, 5, 2]), r"component must be in \[0, 5\), got 5"),
    (np.array([0.0, 1.0, 2.0, 3.0]), "must be integers"),
    (np.array([0, 1]), r"\(n,\) = \(4,\)"),
])
def test_component_out_of_range_or_not_an_integer_is_refused(params, component, message):
  with pytest.raises(ValueError, match=message):
    mixture.sample(params, jax.random.key(0), 4, component=component)


def test_component_accepts_per_row_ids_concrete_and_traced(params):
  ids_in = jnp.array([4, 0, 0, 2], jnp.int32)
  z, ids = mixture.sample(params, jax.random.key(3), 4, component=ids_in)
  np.testing.assert_array_equal(ids, ids_in)
  eps = mixture.noise(jax.random.split(jax.random.key(3))[1], (4, 3))
  np.testing.assert_allclose(z, params["mu"][ids_in] + params["sigma"][ids_in] * eps,
                             rtol=1e-6)
  # Traced ids (e.g. class labels inside a jitted step) pass; only n is static.
  z_jit, ids_jit = jax.jit(mixture.sample, static_argnums=2)(params, jax.random.key(3), 4,
                                                             component=ids_in)
  np.testing.assert_array_equal(ids_jit, ids_in)
  np.testing.assert_allclose(z_jit, z, rtol=1e-6)


def test_batch_assignment_with_fewer_rows_than_components_warns_once(params, monkeypatch):
  from deligan_jax.mixture import prior
  monkeypatch.setattr(prior, "_warned_short_batch", False)
  with pytest.warns(UserWarning, match=r"n=3 < 5 components: components 3..4 get no draw"):
    mixture.sample(params, jax.random.key(0), 3)
  with warnings.catch_warnings():
    warnings.filterwarnings("error", message=".*get no draw")
    mixture.sample(params, jax.random.key(0), 3)   # once only
    mixture.sample(params, jax.random.key(0), 3, assignment="random")


# --- dtype and sigma's parameterisation --------------------------------------------


def test_bfloat16_is_kept_by_init_noise_and_sample():
  p = mixture.init(jax.random.key(0), 4, 3, dtype=jnp.bfloat16, learn_weights=True)
  assert {a.dtype for a in jax.tree.leaves(p)} == {jnp.dtype(jnp.bfloat16)}
  for kind in mixture.NOISES:
    assert mixture.noise(jax.random.key(1), (2, 3), kind, jnp.bfloat16).dtype == jnp.bfloat16
    z, _ = mixture.sample(p, jax.random.key(2), 4, "random", kind)
    assert z.dtype == jnp.bfloat16
    assert mixture.log_prob(p, z, kind).dtype == jnp.float32  # densities: float32 at least


@pytest.mark.parametrize("parameterisation", ["log", "softplus"])
def test_positive_parameterisations_give_the_initial_sigma_and_stay_positive(parameterisation):
  p = mixture.init(jax.random.key(0), 4, 3, sigma_init=mixture.uniform(0.01, 2.0),
                   sigma_parameterisation=parameterisation)
  free = mixture.init(jax.random.key(0), 4, 3, sigma_init=mixture.uniform(0.01, 2.0))
  assert set(p) == {"mu", mixture.SIGMA_KEYS[parameterisation]}
  np.testing.assert_allclose(mixture.scale(p), free["sigma"], rtol=1e-5)
  # The same draws, and a gradient step that would flip a free sigma's sign keeps it positive.
  z, _ = mixture.sample(p, jax.random.key(4), 8)
  np.testing.assert_allclose(z, mixture.sample(free, jax.random.key(4), 8)[0], rtol=1e-5)
  raw = mixture.SIGMA_KEYS[parameterisation]
  stepped = {**p, raw: p[raw] - 100.0}
  assert float(mixture.scale(stepped).min()) >= 0.0
  with pytest.raises(ValueError, match="positive initial sigma"):
    mixture.init(jax.random.key(0), 4, 3, sigma_init=mixture.constant(0.0),
                 sigma_parameterisation=parameterisation)


# --- learned weights ----------------------------------------------------------------


def test_learned_weights_draw_components_by_their_weights():
  p = mixture.init(jax.random.key(0), 3, 2, learn_weights=True)
  p = {**p, "logits": jnp.log(jnp.array([0.6, 0.3, 0.1]))}
  n = 20_000
  z, ids = mixture.sample(p, jax.random.key(1), n, assignment="random")
  shares = np.bincount(np.asarray(ids), minlength=3) / n
  np.testing.assert_allclose(shares, [0.6, 0.3, 0.1], atol=5 * np.sqrt(0.25 / n))
  # The straight-through forward pass is exactly the chosen component's code.
  eps = mixture.noise(jax.random.split(jax.random.key(1))[1], (n, 2))
  np.testing.assert_array_equal(z, p["mu"][ids] + p["sigma"][ids] * eps)
  with pytest.raises(ValueError, match="need assignment='random'"):
    mixture.sample(p, jax.random.key(1), 3)


def _fit_weights_1d(upper_share: float, steps: int = 300) -> np.ndarray:
  """Two components fitted to 1-D data by the sorted-sample (Wasserstein-2) loss."""
  optax = pytest.importorskip("optax")
  p = mixture.init(jax.random.key(0), 2, 1, mu_init=lambda key, shape: jnp.array([[-2.0], [2.0]]),
                   sigma_init=mixture.constant(0.3), learn_weights=True)
  opt = optax.adam(0.05)
  n = 256

  def loss(p, key):
    data_key, z_key = jax.random.split(key)
    upper = jax.random.bernoulli(data_key, upper_share, (n,))
    data = jnp.where(upper, 2.0, -2.0) + 0.3 * jax.random.normal(
        jax.random.fold_in(data_key, 1), (n,))
    z, _ = mixture.sample(p, z_key, n, assignment="random")
    return jnp.mean(jnp.square(jnp.sort(z[:, 0]) - jnp.sort(data)))

  @jax.jit
  def step(p, opt_state, key):
    grads = jax.grad(loss)(p, key)
    updates, opt_state = opt.update(grads, opt_state, p)
    return optax.apply_updates(p, updates), opt_state

  opt_state = opt.init(p)
  for i in range(steps):
    p, opt_state = step(p, opt_state, jax.random.key(i + 1))
  return np.asarray(jnp.exp(mixture.log_weights(p)))


def test_learned_weights_fit_unequal_data_and_stay_even_on_even_data():
  """Data 80/20 over two modes: the weights move to about (0.8, 0.2); 50/50 data: stay even."""
  uneven = _fit_weights_1d(0.2)
  assert 0.7 < uneven[0] < 0.9, uneven
  even = _fit_weights_1d(0.5)
  assert 0.4 < even[0] < 0.6, even

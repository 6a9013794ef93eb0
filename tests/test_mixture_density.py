"""The mixture's density: against distrax and TFP, numerical integration, entropy and KL."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from deligan_jax import mixture


def _params(num_components: int, dim: int, learn_weights: bool, seed: int = 0):
  """A mixture with signed sigmas (the free parameterisation) and, if asked, unequal weights."""
  p = mixture.init(jax.random.key(seed), num_components, dim,
                   sigma_init=mixture.uniform(-0.6, 0.6), learn_weights=learn_weights)
  p = {**p, "sigma": jnp.where(jnp.abs(p["sigma"]) < 0.05, 0.3, p["sigma"])}
  if learn_weights:
    p["logits"] = jax.random.normal(jax.random.key(seed + 1), (num_components,))
  return p


@pytest.mark.parametrize("learn_weights", [False, True])
def test_log_prob_is_the_weighted_sum_of_diagonal_normals(learn_weights):
  """A reference in scipy: sum_i w_i prod_d N(z_d; mu_id, |sigma_id|)."""
  p = _params(4, 3, learn_weights)
  z = np.asarray(jax.random.normal(jax.random.key(9), (20, 3)))
  weights = np.asarray(jnp.exp(mixture.log_weights(p)))
  mu, sigma = np.asarray(p["mu"], np.float64), np.abs(np.asarray(p["sigma"], np.float64))
  densities = np.prod(stats.norm.pdf(z[:, None, :], mu[None], sigma[None]), axis=-1)
  np.testing.assert_allclose(mixture.log_prob(p, z), np.log(densities @ weights), rtol=1e-5)
  np.testing.assert_allclose(mixture.component_log_prob(p, z),
                             np.log(densities), rtol=1e-5)


def _reference_mixtures(p, backend):
  weights_logits = mixture.log_weights(p)
  scale = jnp.abs(mixture.scale(p))
  if backend == "distrax":
    distrax = pytest.importorskip("distrax", reason="the test extra's distrax")
    return distrax.MixtureSameFamily(distrax.Categorical(logits=weights_logits),
                                     distrax.MultivariateNormalDiag(p["mu"], scale))
  tfp = pytest.importorskip("tensorflow_probability.substrates.jax",
                            reason="the test extra's tfp-nightly")
  tfd = tfp.distributions
  return tfd.MixtureSameFamily(tfd.Categorical(logits=weights_logits),
                               tfd.MultivariateNormalDiag(loc=p["mu"], scale_diag=scale))


@pytest.mark.parametrize("backend", ["distrax", "tfp"])
@pytest.mark.parametrize("learn_weights", [False, True])
def test_log_prob_agrees_with_mixture_same_family(backend, learn_weights):
  p = _params(50, 30, learn_weights)
  reference = _reference_mixtures(p, backend)
  z, _ = mixture.sample(p, jax.random.key(3), 100, assignment="random")
  z = jnp.concatenate([z, 2.0 * jax.random.normal(jax.random.key(4), (100, 30))])  # tails too
  ours, theirs = mixture.log_prob(p, z), reference.log_prob(z)
  # float32 sums of 30 terms of up to ~1e4 (the far tail); atol where log p crosses 0.
  np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-4)


def test_log_prob_integrates_to_one_in_1d_and_2d():
  """Trapezoidal quadrature over a grid that holds all the mass; boxes too."""
  p1 = _params(3, 1, learn_weights=True)
  grid = np.linspace(-5.0, 5.0, 20_001)
  for kind, tol in (("normal", 1e-5), ("uniform", 2e-3)):  # boxes: a jump per grid cell
    density = np.exp(np.asarray(mixture.log_prob(p1, grid[:, None], kind), np.float64))
    assert abs(np.trapezoid(density, grid) - 1) < tol, kind
  p2 = _params(3, 2, learn_weights=True)
  axis = np.linspace(-4.0, 4.0, 801)
  xx, yy = np.meshgrid(axis, axis, indexing="ij")
  for kind, tol in (("normal", 1e-4), ("uniform", 2e-2)):
    log_p = mixture.log_prob(p2, np.stack([xx.ravel(), yy.ravel()], -1), kind)
    density = np.exp(np.asarray(log_p, np.float64)).reshape(xx.shape)
    total = np.trapezoid(np.trapezoid(density, axis, axis=1), axis)
    assert abs(total - 1) < tol, (kind, total)


def _cell_masses(p, edges: np.ndarray, kind: str) -> np.ndarray:
  """Exact probabilities of the 2-D grid cells: per component a product of 1-D masses."""
  mu = np.asarray(p["mu"], np.float64)[:, None, :]
  s = np.abs(np.asarray(mixture.scale(p), np.float64))[:, None, :]
  low, high = edges[:-1, None], edges[1:, None]
  if kind == "normal":
    mass = stats.norm.cdf(high, mu, s) - stats.norm.cdf(low, mu, s)       # (N, cells, d)
  else:
    overlap = np.minimum(high, mu + s) - np.maximum(low, mu - s)
    mass = np.clip(overlap, 0, None) / (2 * s)
  weights = np.exp(np.asarray(mixture.log_weights(p), np.float64))
  return np.einsum("c,ci,cj->ij", weights, mass[..., 0], mass[..., 1])


@pytest.mark.parametrize("kind", ["normal", "uniform"])
def test_log_prob_and_the_sampler_give_the_exact_masses_of_a_2d_grid(kind):
  """exp(log_prob) over each cell (midpoint rule) and a histogram of the sampler's draws
  both equal the cells' exact masses: the sampler draws from the density log_prob states."""
  p = _params(3, 2, learn_weights=True)
  edges = np.linspace(-2.0, 2.0, 21)
  exact = _cell_masses(p, edges, kind)
  width, sub = edges[1] - edges[0], 20
  points = edges[0] + (np.arange(20 * sub) + 0.5) * width / sub
  xx, yy = np.meshgrid(points, points, indexing="ij")
  fine = np.exp(np.asarray(mixture.log_prob(p, np.stack([xx.ravel(), yy.ravel()], -1), kind)))
  integrated = fine.reshape(20, sub, 20, sub).mean(axis=(1, 3)) * width ** 2
  # Normal: the midpoint rule's error; boxes: their edges cut sub-cells (1/20 of a cell).
  np.testing.assert_allclose(integrated, exact, rtol=0,
                             atol=(1e-3 if kind == "normal" else 0.03) * exact.max())
  n = 200_000
  z, _ = mixture.sample(p, jax.random.key(5), n, assignment="random", noise_kind=kind)
  counts, _, _ = np.histogram2d(*np.asarray(z).T, bins=[edges, edges])
  expected = exact * n
  dense = expected > 20
  z_scores = (counts[dense] - expected[dense]) / np.sqrt(expected[dense])  # Poisson
  assert np.abs(z_scores).max() < 5, np.abs(z_scores).max()
  assert counts.sum() > 0.95 * n


def test_uniform_support_is_the_union_of_boxes():
  p = {"mu": jnp.array([[0.0, 0.0], [3.0, 3.0]]), "sigma": jnp.array([[0.5, -1.0], [1.0, 1.0]])}
  z = jnp.array([[0.49, -0.99], [0.51, 0.0], [3.9, 2.1], [1.5, 1.5]])
  log_p = np.asarray(mixture.log_prob(p, z, "uniform"))
  # Box 0 has area 2 x 0.5 x 2 x 1 = 2, box 1 area 4; weights 1/2.
  np.testing.assert_allclose(log_p[[0, 2]], [np.log(0.5 / 2), np.log(0.5 / 4)], rtol=1e-6)
  assert np.all(np.isneginf(log_p[[1, 3]]))


def test_entropy_and_kl_against_closed_forms():
  """One component: Gaussian entropy and KL in closed form; Monte Carlo within 4 std errors."""
  p = {"mu": jnp.array([[0.5, -1.0]]), "sigma": jnp.array([[0.4, -2.0]])}
  s = np.array([0.4, 2.0])
  exact_entropy = np.sum(0.5 * np.log(2 * np.pi * np.e * s ** 2))
  estimate = mixture.entropy(p, jax.random.key(0), 20_000)
  assert abs(float(estimate) - exact_entropy) < 4 * np.sqrt(2 / 2 / 20_000) + 1e-3
  # KL(N(m, s^2) || N(0, 1)) per dimension: (s^2 + m^2 - 1) / 2 - log s.
  m = np.array([0.5, -1.0])
  exact_kl = np.sum((s ** 2 + m ** 2 - 1) / 2 - np.log(s))
  standard = lambda z: jax.scipy.stats.norm.logpdf(z).sum(-1)  # noqa: E731
  kl = mixture.kl_divergence(p, standard, jax.random.key(1), 20_000)
  assert abs(float(kl) - exact_kl) < 0.05 * exact_kl, (float(kl), exact_kl)
  as_mixture = {"mu": jnp.zeros((1, 2)), "sigma": jnp.ones((1, 2))}
  np.testing.assert_allclose(mixture.kl_divergence(p, as_mixture, jax.random.key(1), 20_000),
                             kl, rtol=1e-5)
  # Of a mixture to itself: 0 (the same draws on both sides).
  q = _params(5, 3, learn_weights=True)
  assert float(mixture.kl_divergence(q, q, jax.random.key(2), 100)) == 0.0


def test_log_prob_gradients_flow_into_every_parameter():
  p = _params(4, 2, learn_weights=True)
  z = jax.random.normal(jax.random.key(0), (16, 2))
  grads = jax.grad(lambda p: jnp.sum(mixture.log_prob(p, z)))(p)
  eps = 1e-3
  for name in ("mu", "sigma", "logits"):
    bumped = {**p, name: p[name].at[(0,) * p[name].ndim].add(eps)}
    numeric = (jnp.sum(mixture.log_prob(bumped, z)) - jnp.sum(mixture.log_prob(p, z))) / eps
    np.testing.assert_allclose(grads[name][(0,) * p[name].ndim], numeric, rtol=2e-2, atol=2e-2)

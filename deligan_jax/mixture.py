"""The DeLiGAN latent prior: a learned mixture of Gaussians (the paper's contribution).

A latent code is drawn by reparameterisation,

    z = mu[i] + sigma[i] * eps,    eps ~ N(0, I)  or  U(-1, 1),

where ``i`` is the mixture component of the sample. The N x d tables ``mu`` and
``sigma`` are ordinary trainable parameters: the generator's loss is
differentiated through ``z`` into them (dz/dmu = 1, dz/dsigma = eps). Component
weights are uniform and fixed.

Two ways of choosing components are supported:

* ``'batch'`` (the official code): row r of a batch uses component ``r mod N``,
  so a batch of N rows holds exactly one sample of every component;
* ``'random'`` (the paper's text): each row draws its component uniformly.

Without a penalty, sigma shrinks towards 0 and the mixture collapses onto its
means; :func:`sigma_regularizer` is the paper's ``mean((1 - sigma)^2)`` term.

Everything here is a pure function of an explicit parameter pytree and an
explicit PRNG key, so it composes with ``jax.grad``, ``jax.jit`` and ``jax.vmap``::

    params = mixture.init(jax.random.key(0), num_components=50, dim=30)
    z, ids = mixture.sample(params, jax.random.key(1), 50)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import jax
import jax.numpy as jnp

Initializer = Callable[[jax.Array, tuple[int, ...]], jax.Array]
Assignment = Literal["batch", "random"]
Noise = Literal["normal", "uniform"]

ASSIGNMENTS = ("batch", "random")
NOISES = ("normal", "uniform")


def constant(value: float) -> Initializer:
  """Initialiser filling every entry with ``value`` (sigma = 0.2 for MNIST)."""
  return lambda key, shape: jnp.full(shape, value, jnp.float32)


def uniform(low: float, high: float) -> Initializer:
  """Initialiser drawing every entry from U(low, high) (mu ~ U(-1, 1))."""
  return lambda key, shape: jax.random.uniform(key, shape, jnp.float32, low, high)


def init(
    key: jax.Array,
    num_components: int,
    dim: int,
    mu_init: Initializer = uniform(-1.0, 1.0),
    sigma_init: Initializer = constant(0.2),
) -> dict[str, jax.Array]:
  """Returns the mixture's parameters ``{'mu': (N, d), 'sigma': (N, d)}``."""
  if num_components < 1 or dim < 1:
    raise ValueError(
        f"mixture needs num_components >= 1 and dim >= 1, got {num_components}, {dim}")
  mu_key, sigma_key = jax.random.split(key)
  shape = (num_components, dim)
  return {"mu": mu_init(mu_key, shape), "sigma": sigma_init(sigma_key, shape)}


def noise(key: jax.Array, shape: tuple[int, ...], kind: Noise = "normal") -> jax.Array:
  """The base noise eps: standard normal or uniform on [-1, 1]."""
  if kind == "normal":
    return jax.random.normal(key, shape, jnp.float32)
  if kind == "uniform":
    return jax.random.uniform(key, shape, jnp.float32, -1.0, 1.0)
  raise ValueError(f"noise must be one of {NOISES}, got {kind!r}")


def component_ids(
    key: jax.Array,
    n: int,
    num_components: int,
    assignment: Assignment = "batch",
    component: int | jax.Array | None = None,
) -> jax.Array:
  """Which component each of ``n`` rows uses, as int32 ids of shape (n,)."""
  if component is not None:
    return jnp.full((n,), component, jnp.int32)
  if assignment == "batch":
    return jnp.arange(n, dtype=jnp.int32) % num_components
  if assignment == "random":
    return jax.random.randint(key, (n,), 0, num_components, jnp.int32)
  raise ValueError(f"assignment must be one of {ASSIGNMENTS}, got {assignment!r}")


def sample(
    params: dict[str, jax.Array],
    key: jax.Array,
    n: int,
    assignment: Assignment = "batch",
    noise_kind: Noise = "normal",
    component: int | jax.Array | None = None,
) -> tuple[jax.Array, jax.Array]:
  """Draws ``n`` latent codes ``z = mu[i] + sigma[i] * eps``.

  Args:
    params: ``{'mu': (N, d), 'sigma': (N, d)}`` from :func:`init`.
    key: PRNG key; the same key gives the same codes.
    n: number of codes.
    assignment: ``'batch'`` (row r uses component r mod N) or ``'random'``.
    noise_kind: distribution of eps, ``'normal'`` or ``'uniform'`` on [-1, 1].
    component: if given, every row uses this one component.

  Returns:
    ``(z, ids)``: codes of shape (n, d), differentiable w.r.t. ``params``, and the
    int32 component id of each row.
  """
  num_components, dim = params["mu"].shape
  ids_key, eps_key = jax.random.split(key)
  ids = component_ids(ids_key, n, num_components, assignment, component)
  eps = noise(eps_key, (n, dim), noise_kind)
  return params["mu"][ids] + params["sigma"][ids] * eps, ids


def sigma_regularizer(params: dict[str, jax.Array]) -> jax.Array:
  """``mean((1 - sigma)^2)`` over all N x d entries; keeps sigma from collapsing."""
  return jnp.mean(jnp.square(1.0 - params["sigma"]))

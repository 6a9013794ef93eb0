"""The mixture's density: log p(z), per component and in all, and Monte Carlo entropy and KL.

    p(z) = sum_i w_i p_i(z),   z = mu_i + sigma_i * eps under component i,

with |sigma| the scale (the official sigma's sign is free) and w the weights
(uniform, or softmax of learned logits). For ``noise_kind='normal'`` each p_i is
N(mu_i, diag(sigma_i^2)). For ``'uniform'`` (eps ~ U(-1, 1)) each p_i is the uniform
density on the box [mu_i - |sigma_i|, mu_i + |sigma_i|]: the mixture is a mixture of
boxes, and its log-density is -inf outside their union (the support), where it has
no gradient. A sigma entry of 0 makes a component degenerate (no density).

Densities are computed in float32 at least, whatever the parameters' dtype.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from deligan_jax.mixture import prior

LogDensity = Callable[[jax.Array], jax.Array]


def component_log_prob(params: dict[str, jax.Array], z: jax.Array,
                       noise_kind: prior.Noise = "normal") -> jax.Array:
  """log p_i(z) of every code under every component: (n, N) for z of shape (n, d)."""
  dtype = jnp.promote_types(params["mu"].dtype, jnp.float32)
  mu = params["mu"].astype(dtype)
  sigma = jnp.abs(prior.scale(params).astype(dtype))
  diff = jnp.asarray(z, dtype)[:, None, :] - mu[None]          # (n, N, d)
  if noise_kind == "normal":
    per_dim = -0.5 * jnp.square(diff / sigma) - jnp.log(sigma) - 0.5 * np.log(2 * np.pi)
    return jnp.sum(per_dim, axis=-1)
  if noise_kind == "uniform":
    inside = jnp.all(jnp.abs(diff) <= sigma, axis=-1)
    return jnp.where(inside, -jnp.sum(jnp.log(2 * sigma), axis=-1), -jnp.inf)
  raise ValueError(f"noise must be one of {prior.NOISES}, got {noise_kind!r}")


def log_prob(params: dict[str, jax.Array], z: jax.Array,
             noise_kind: prior.Noise = "normal") -> jax.Array:
  """log p(z) (n,) of codes z (n, d): logsumexp over components of log w_i + log p_i(z)."""
  return jax.nn.logsumexp(component_log_prob(params, z, noise_kind)
                          + prior.log_weights(params), axis=-1)


def entropy(params: dict[str, jax.Array], key: jax.Array, num_samples: int = 1000,
            noise_kind: prior.Noise = "normal") -> jax.Array:
  """H(p) = -E_p[log p(z)], estimated on ``num_samples`` draws of ``key`` (static).

  Differentiable w.r.t. ``params`` through the reparameterised draws (learned weights:
  the sampler's straight-through estimate).
  """
  z, _ = prior.sample(params, key, num_samples, "random", noise_kind)
  return -jnp.mean(log_prob(params, z, noise_kind))


def kl_divergence(params: dict[str, jax.Array], other: dict[str, jax.Array] | LogDensity,
                  key: jax.Array, num_samples: int = 1000,
                  noise_kind: prior.Noise = "normal",
                  other_noise_kind: prior.Noise | None = None) -> jax.Array:
  """KL(p || q) = E_p[log p(z) - log q(z)], estimated on ``num_samples`` draws of ``key``.

  ``other`` (q) is another mixture's params (its eps: ``other_noise_kind``, default
  ``noise_kind``) or any function from codes (n, d) to log-densities (n,), e.g.
  ``lambda z: jax.scipy.stats.norm.logpdf(z).sum(-1)`` for N(0, I). With uniform eps,
  q must be positive wherever p is, or the estimate is inf.
  """
  if not callable(other):
    other_params, other_kind = other, other_noise_kind or noise_kind
    other = lambda z: log_prob(other_params, z, other_kind)  # noqa: E731
  z, _ = prior.sample(params, key, num_samples, "random", noise_kind)
  return jnp.mean(log_prob(params, z, noise_kind) - other(z))

"""The mixture's parameters and its reparameterised sampler.

Parameters are a dict of arrays; which keys it holds says how it is parameterised:

* ``'mu'`` (N, d), always;
* one sigma entry (N, d): ``'sigma'`` (the official free sign; only |sigma| matters),
  ``'log_sigma'`` (sigma = exp) or ``'inv_softplus_sigma'`` (sigma = softplus); read it
  with :func:`scale`;
* ``'logits'`` (N,) when the component weights are learned (softmax(logits));
  without it the weights are uniform and fixed, as in the paper.

Under ``jax.jit`` the arguments that set shapes or branches are static: ``n``,
``num_components``, ``assignment``, ``noise_kind``, ``dtype``, ``temperature`` and a Python
int ``component``. ``params``, ``key`` and an array of component ids may be traced.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np

Initializer = Callable[[jax.Array, tuple[int, ...]], jax.Array]
Assignment = Literal["batch", "random"]
Noise = Literal["normal", "uniform"]
SigmaParameterisation = Literal["free", "log", "softplus"]

ASSIGNMENTS = ("batch", "random")
NOISES = ("normal", "uniform")
# Parameterisation -> the params key holding sigma's unconstrained value.
SIGMA_KEYS = {"free": "sigma", "log": "log_sigma", "softplus": "inv_softplus_sigma"}
SIGMA_PARAMETERISATIONS = tuple(SIGMA_KEYS)

_warned_short_batch = False


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
    *,
    sigma_parameterisation: SigmaParameterisation = "free",
    learn_weights: bool = False,
    dtype=jnp.float32,
) -> dict[str, jax.Array]:
  """The mixture's parameters: ``{'mu': (N, d), <sigma key>: (N, d)}`` (+ ``'logits'``).

  ``sigma_init`` gives sigma itself; ``'log'`` and ``'softplus'`` store its inverse image
  and need it positive. ``learn_weights`` adds ``'logits'`` (N,), zeros: uniform weights
  that training may change (:func:`sample` says how they get a gradient). ``dtype`` is
  the parameters' (e.g. ``jnp.bfloat16``); :func:`sample` draws eps in it.
  """
  if num_components < 1 or dim < 1:
    raise ValueError(
        f"mixture needs num_components >= 1 and dim >= 1, got {num_components}, {dim}")
  if sigma_parameterisation not in SIGMA_KEYS:
    raise ValueError(f"sigma_parameterisation must be one of {SIGMA_PARAMETERISATIONS}, "
                     f"got {sigma_parameterisation!r}")
  mu_key, sigma_key = jax.random.split(key)
  shape = (num_components, dim)
  sigma = sigma_init(sigma_key, shape)
  if sigma_parameterisation != "free" and not isinstance(sigma, jax.core.Tracer) and not bool(
      jnp.all(sigma > 0)):
    raise ValueError(f"sigma_parameterisation={sigma_parameterisation!r} needs a positive "
                     f"initial sigma, got values down to {float(jnp.min(sigma))}")
  unconstrained = {"free": lambda s: s, "log": jnp.log,
                   # softplus^-1(s) = log(e^s - 1), written to stay finite for small s.
                   "softplus": lambda s: s + jnp.log(-jnp.expm1(-s))}[sigma_parameterisation]
  params = {"mu": mu_init(mu_key, shape).astype(dtype),
            SIGMA_KEYS[sigma_parameterisation]: unconstrained(sigma).astype(dtype)}
  if learn_weights:
    params["logits"] = jnp.zeros((num_components,), dtype)
  return params


def scale(params: dict[str, jax.Array]) -> jax.Array:
  """sigma (N, d) under the parameterisation ``params`` holds; free-sign sigma as stored."""
  if "sigma" in params:
    return params["sigma"]
  if "log_sigma" in params:
    return jnp.exp(params["log_sigma"])
  if "inv_softplus_sigma" in params:
    return jax.nn.softplus(params["inv_softplus_sigma"])
  raise ValueError(f"mixture params hold no sigma ({', '.join(SIGMA_KEYS.values())}); "
                   f"keys: {sorted(params)}")


def log_weights(params: dict[str, jax.Array]) -> jax.Array:
  """log of the (N,) component weights: log_softmax(logits), or log(1/N) when fixed."""
  if "logits" in params:
    return jax.nn.log_softmax(params["logits"].astype(jnp.float32))
  num_components = params["mu"].shape[0]
  return jnp.full((num_components,), -np.log(num_components), jnp.float32)


def noise(key: jax.Array, shape: tuple[int, ...], kind: Noise = "normal",
          dtype=jnp.float32) -> jax.Array:
  """The base noise eps: standard normal or uniform on [-1, 1), in ``dtype``."""
  if kind == "normal":
    return jax.random.normal(key, shape, dtype)
  if kind == "uniform":
    return jax.random.uniform(key, shape, dtype, -1.0, 1.0)
  raise ValueError(f"noise must be one of {NOISES}, got {kind!r}")


def component_ids(
    key: jax.Array,
    n: int,
    num_components: int,
    assignment: Assignment = "batch",
    component: int | jax.Array | None = None,
) -> jax.Array:
  """Which component each of ``n`` rows uses, as int32 ids of shape (n,).

  ``component``: one id for every row (a Python int, checked to lie in
  [0, num_components)), or an (n,) integer array of per-row ids (class conditioning);
  a concrete array is range-checked, a traced one cannot be (JAX clamps
  out-of-range indices). Otherwise ``assignment`` decides: ``'batch'`` gives row r
  component r mod N (with n < N, components n..N-1 get no draw and no gradient: warned
  once), ``'random'`` draws each uniformly.
  """
  if component is not None:
    return _given_ids(component, n, num_components)
  if assignment == "batch":
    if n < num_components:
      _warn_short_batch(n, num_components)
    return jnp.arange(n, dtype=jnp.int32) % num_components
  if assignment == "random":
    return jax.random.randint(key, (n,), 0, num_components, jnp.int32)
  raise ValueError(f"assignment must be one of {ASSIGNMENTS}, got {assignment!r}")


def _given_ids(component, n: int, num_components: int) -> jax.Array:
  if isinstance(component, (bool, np.bool_, float, np.floating)):
    raise ValueError(f"component must be an integer id or an (n,) integer array, got "
                     f"{component!r}")
  ids = jnp.asarray(component)
  if not jnp.issubdtype(ids.dtype, jnp.integer):
    raise ValueError(f"component ids must be integers, got dtype {ids.dtype}")
  if ids.shape not in ((), (n,)):
    raise ValueError(f"component must be one id or an (n,) = ({n},) array of ids, "
                     f"got shape {ids.shape}")
  if not isinstance(ids, jax.core.Tracer):
    values = np.asarray(ids)
    bad = values[(values < 0) | (values >= num_components)]
    if bad.size:
      raise ValueError(f"component must be in [0, {num_components}), got {bad.flat[0]}")
  return jnp.broadcast_to(ids.astype(jnp.int32), (n,))


def _warn_short_batch(n: int, num_components: int) -> None:
  global _warned_short_batch
  if not _warned_short_batch:
    _warned_short_batch = True
    warnings.warn(f"assignment='batch' with n={n} < {num_components} components: components "
                  f"{n}..{num_components - 1} get no draw and no gradient (use n >= "
                  "num_components, or assignment='random')", stacklevel=3)


def sample(
    params: dict[str, jax.Array],
    key: jax.Array,
    n: int,
    assignment: Assignment = "batch",
    noise_kind: Noise = "normal",
    component: int | jax.Array | None = None,
    *,
    temperature: float = 1.0,
) -> tuple[jax.Array, jax.Array]:
  """Draws ``n`` latent codes ``z = mu[i] + sigma[i] * eps``.

  Args:
    params: from :func:`init`.
    key: PRNG key; the same key gives the same codes.
    n: number of codes (static under jit).
    assignment: ``'batch'`` (row r uses component r mod N) or ``'random'``
      (static). Learned weights need ``'random'``.
    noise_kind: distribution of eps, ``'normal'`` or ``'uniform'`` on [-1, 1) (static).
    component: an id every row uses, or an (n,) array of per-row ids
      (:func:`component_ids` checks them); then the weights play no part.
    temperature: of the straight-through Gumbel-softmax that gives learned weights
      their gradient (below); unused otherwise.

  Returns:
    ``(z, ids)``: codes of shape (n, d) in the parameters' dtype, differentiable w.r.t.
    ``params``, and the int32 component id of each row.

  With learned weights (``'logits'``) each row's component is an exact draw from
  softmax(logits) by the Gumbel-max trick, and z is that component's code. The
  gradient w.r.t. the logits is the straight-through Gumbel-softmax estimate: z is
  written as ``sum_c w_c (mu_c + sigma_c eps)`` with w the one-hot draw in the forward
  pass and softmax((logits + gumbel) / temperature) in the backward pass. It is
  biased (less so at lower temperature, at the cost of variance), but it lives wholly
  inside the sampler, so any loss of z trains the weights unchanged, the GAN step
  included; the gradients w.r.t. mu and sigma are those of the fixed-weight sampler.
  """
  mu, sigma = params["mu"], scale(params)
  num_components, dim = mu.shape
  ids_key, eps_key = jax.random.split(key)
  eps = noise(eps_key, (n, dim), noise_kind, mu.dtype)
  if "logits" not in params or component is not None:
    ids = component_ids(ids_key, n, num_components, assignment, component)
    return mu[ids] + sigma[ids] * eps, ids
  if assignment != "random":
    raise ValueError("learned weights (params['logits']) need assignment='random': 'batch' "
                     "gives every component the same number of rows")
  perturbed = log_weights(params) + jax.random.gumbel(ids_key, (n, num_components))
  ids = jnp.argmax(perturbed, axis=-1).astype(jnp.int32)
  hard = jax.nn.one_hot(ids, num_components, dtype=jnp.float32)
  soft = jax.nn.softmax(perturbed / temperature, axis=-1)
  # Forward: exactly the one-hot draw (soft - soft is 0); backward: soft's gradient.
  w = (hard + (soft - jax.lax.stop_gradient(soft))).astype(mu.dtype)
  return w @ mu + (w @ sigma) * eps, ids


def sigma_regularizer(params: dict[str, jax.Array]) -> jax.Array:
  """``mean((1 - sigma)^2)`` over all N x d entries; keeps sigma from collapsing."""
  return jnp.mean(jnp.square(1.0 - scale(params)))

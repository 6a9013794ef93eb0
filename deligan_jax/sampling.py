"""Samples from a model or a trained run: as numpy, drawn as the official code scores them,
or as JAX arrays that can be jitted and differentiated.

Two choices make a sample "as scored" (:func:`draw_as_scored`, numpy): the eps of
``config.latent.sample_noise`` (:func:`deligan_jax.models.for_sampling`) and G's batch norm of
``config.sample_batch_norm``: ``'running'`` averages (inference mode), or ``'batch'``
statistics of batches of the training batch size, as the official CIFAR-10 and sketch
``samplefun``.

:class:`Sampler` is the differentiable route: a pure function of the parameters, whose eps
is the run's training noise unless told otherwise, and which says which it uses.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import numpy as np

from deligan_jax import errors
from deligan_jax import mixture
from deligan_jax import models
from deligan_jax.runs import checkpoints


def draw(model: models.GanModel, state, num: int, seed: int = 0, batch_norm: str = "running",
         batch_size: int = 100, component: int | None = None) -> np.ndarray:
  """``num`` samples (of one ``component`` only, if given).

  ``batch_norm='running'``: G's batch norm on its running averages, in one call.
  ``'batch'``: batches of ``batch_size`` generated in training mode, each normalised by its
  own statistics (with the 'batch' assignment, one row per mixture component); the running
  averages are left as they are.
  """
  key = jax.random.key(seed)
  if batch_norm == "running":
    # 'batch' assignment: at least one row per component, as in training; then keep num.
    rows = (max(num, model.num_components) if model.has_components
            and model.assignment == "batch" and component is None else num)
    return np.asarray(_generate_running(model, state.params, state.batch_stats, key, rows,
                                        component is not None, component or 0))[:num]
  generate = jax.jit(lambda params, stats, batch_key: model.generate(
      params, stats, batch_key, batch_size, train=True, component=component)[0])
  batches = [np.asarray(generate(state.params, state.batch_stats, jax.random.fold_in(key, i)))
             for i in range(-(-num // batch_size))]
  return np.concatenate(batches)[:num]


@functools.partial(jax.jit, static_argnums=(0, 4, 5))
def _generate_running(model, params, batch_stats, key, num, one_component, component):
  # One compiled program, the component an argument: op by op, a generator compiles hundreds
  # of small programs per start and dispatches thousands.
  return model.generate(params, batch_stats, key, num, train=False,
                        component=component if one_component else None)[0]


def draw_components(model: models.GanModel, state, draws: int, seed: int = 0,
                    batch_norm: str = "running", batch_size: int = 100) -> list[np.ndarray]:
  """``draws`` samples of each component, as a list over the components.

  ``batch_norm='batch'`` with the 'batch' assignment (one row per component): ``draws``
  whole batches, each normalised by its own statistics as the official ``samplefun``'s,
  row c of each being component c's draw. Otherwise each component is drawn alone with
  the running averages: a batch of one component normalised by its own statistics would
  be spread out again.
  """
  n = model.num_components
  if batch_norm == "batch" and model.assignment == "batch" and batch_size == n:
    rows = draw(model, state, draws * n, seed, "batch", batch_size)
    by_batch = rows.reshape(draws, n, *rows.shape[1:])
    return [by_batch[:, c] for c in range(n)]
  return [draw(model, state, draws, seed, component=c) for c in range(n)]


def draw_as_scored(model: models.GanModel, config, state, num: int, seed: int = 0,
                   component: int | None = None) -> np.ndarray:
  """``num`` samples with the eps and batch norm that ``config`` scores with."""
  if component is not None and not 0 <= component < model.num_components:
    raise errors.RequestError(f"--component must be in [0, {model.num_components}), "
                              f"got {component}")
  return draw(models.for_sampling(model, config), state, num, seed, config.sample_batch_norm,
              config.batch_size, component)


def with_sigma_scale(model: models.GanModel, state, scale: float):
  """``state`` whose mixture draws with its sigma times ``scale``; 1 leaves it as trained.

  GM-GAN's trade-off at sampling time (Ben-Yosef and Weinshall, 2018): a larger scale
  draws farther from each mean, more diverse and, past some point, worse.
  """
  if not scale > 0:
    raise errors.RequestError(f"--sigma_scale must be positive, got {scale}")
  if scale == 1:
    return state
  if not model.has_mixture:
    raise errors.RequestError(f"--sigma_scale scales a mixture's sigma; a {model.variant!r} "
                              "run has no mixture")
  stored = state.params["mixture"]
  # As a free-sign sigma, whichever parameterisation the run trained: a scaled copy to draw.
  scaled = {key: value for key, value in stored.items()
            if key not in mixture.SIGMA_KEYS.values()}
  scaled["sigma"] = mixture.scale(stored) * scale
  return state.replace(params={**state.params, "mixture": scaled})


def from_run(workdir: str, num: int, seed: int = 0, component: int | None = None,
             step: int | None = None, sigma_scale: float = 1.0) -> np.ndarray:
  """``num`` samples from checkpoint ``step`` (default: the latest) of the run in ``workdir``.

  ``sigma_scale``: see :func:`with_sigma_scale`.
  """
  config, model, state = checkpoints.load_run(workdir, step)
  state = with_sigma_scale(model, state, sigma_scale)
  return draw_as_scored(model, config, state, num, seed, component)


# Sampler noise choices: the run's training eps, the eps its scores and pictures use, or one.
SAMPLER_NOISES = ("training", "as_scored", "normal", "uniform")


@dataclasses.dataclass(frozen=True)
class Sampler:
  """G's samples as a pure JAX function of the parameters: jittable and differentiable.

  Build it from a run with :meth:`of_run`; ``sampler.noise`` says which eps it draws.
  Calling it, ``sampler(params, batch_stats, key, n, component=None)``, returns the
  (n, ...) samples as a JAX array. ``n`` is static under ``jax.jit``
  (``jax.jit(sampler, static_argnames='n')``); ``params`` (G's and the mixture's),
  ``batch_stats``, ``key`` and an array ``component`` may be traced, so
  ``jax.grad`` flows into both G and the mixture::

      config, model, state = deligan_jax.runs.checkpoints.load_run(workdir)
      sampler = deligan_jax.sampling.Sampler.of_run(config, model)
      def loss(m):
        return jnp.mean(sampler(dict(state.params, mixture=m), state.batch_stats, key, 64))
      grads = jax.grad(loss)(state.params["mixture"])

  G's batch norm uses its running averages (inference mode): nothing is updated.
  ``component``: as in :func:`deligan_jax.mixture.sample` (one id or an (n,) id array).
  """
  model: models.GanModel

  @property
  def noise(self) -> str:
    """The eps this sampler draws: ``'normal'`` or ``'uniform'``."""
    return self.model.noise

  @classmethod
  def of_run(cls, config, model: models.GanModel, noise: str = "training") -> Sampler:
    """The sampler of a run's ``config`` and ``model`` (``checkpoints.load_run``).

    ``noise``: ``'training'`` (the default: ``config.latent.noise``, what the run trained
    on), ``'as_scored'`` (the eps :func:`draw_as_scored` and ``eval.py`` use,
    ``config.latent.sample_noise``), or ``'normal'`` / ``'uniform'``.
    """
    if noise not in SAMPLER_NOISES:
      raise errors.RequestError(f"noise must be one of {SAMPLER_NOISES}, got {noise!r}")
    if noise == "training":
      return cls(dataclasses.replace(model, noise=config.latent.noise))
    if noise == "as_scored":
      return cls(models.for_sampling(model, config))
    return cls(dataclasses.replace(model, noise=noise))

  def __call__(self, params, batch_stats, key: jax.Array, n: int,
               component: int | jax.Array | None = None) -> jax.Array:
    return self.model.generate(params, batch_stats, key, n, train=False,
                               component=component)[0]

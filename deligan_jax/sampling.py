"""Samples from a model or a trained run, drawn as the official code draws them to score and show.

Two choices make a sample "as scored": the eps of ``config.latent.sample_noise``
(:func:`deligan_jax.models.for_sampling`) and G's batch norm of ``config.sample_batch_norm``:
``'running'`` averages (inference mode), or ``'batch'`` statistics of batches of the
training batch size, as the official CIFAR-10 and sketch ``samplefun``.
"""

from __future__ import annotations

import functools

import jax
import numpy as np

from deligan_jax import errors
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
    return np.asarray(_generate_running(model, state.params, state.batch_stats, key, num,
                                        component is not None, component or 0))
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
  mixture = state.params["mixture"]
  return state.replace(params={**state.params,
                               "mixture": {**mixture, "sigma": mixture["sigma"] * scale}})


def from_run(workdir: str, num: int, seed: int = 0, component: int | None = None,
             step: int | None = None, sigma_scale: float = 1.0) -> np.ndarray:
  """``num`` samples from checkpoint ``step`` (default: the latest) of the run in ``workdir``.

  ``sigma_scale``: see :func:`with_sigma_scale`.
  """
  config, model, state = checkpoints.load_run(workdir, step)
  state = with_sigma_scale(model, state, sigma_scale)
  return draw_as_scored(model, config, state, num, seed, component)

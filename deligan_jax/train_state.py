"""The training state and the step's static hyperparameters.

A checkpoint is exactly a :class:`TrainState`; :class:`StepConfig` is what the
jitted step (:mod:`deligan_jax.train_step`) closes over. Every random draw of a
run is folded from the state's key with one of the tags below and the batch
index, which is what makes resumed runs draw what uninterrupted ones do.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import flax.struct
import jax
import jax.numpy as jnp

from deligan_jax import balancing
from deligan_jax import optim
from deligan_jax.models import GanModel

Pytree = Any


class TrainState(flax.struct.PyTreeNode):
  """Everything a run needs to continue: a checkpoint is exactly this pytree."""
  step: jax.Array           # batches trained so far
  key: jax.Array            # raw uint32 key data; step keys are folded from it
  params: Pytree            # {'generator', 'discriminator', 'mixture'}
  batch_stats: Pytree       # {'generator', 'discriminator'}
  opt_state: Pytree         # {'generator', 'discriminator', 'mixture'}
  balance: balancing.BalanceState


@dataclasses.dataclass(frozen=True)
class StepConfig:
  """The static hyperparameters of the step."""
  batch_size: int
  learning_rate: float
  mixture_learning_rate: float
  sigma_reg: float
  decay_start_epoch: float | None = None
  decay_end_epoch: float | None = None
  b1: float = 0.5
  b2: float = 0.999
  objective: str = "bce"          # see losses.OBJECTIVES
  augment: str = ""               # DiffAugment policy, e.g. 'color,translation,cutout'
  init_examples: int = 500        # real examples of the data-dependent init pass
  d_batch_norm: str = "separate"  # see config.D_BATCH_NORM
  adam_epsilon: str = "sqrt_v_hat"  # see optim.ADAM_EPSILONS
  eps_draw: str = "per_update"    # see config.EPS_DRAWS
  batch_order: str = "reshuffle"  # see config.BATCH_ORDERS

  @classmethod
  def from_config(cls, config) -> StepConfig:
    o = config.optim
    return cls(
        batch_size=config.batch_size,
        learning_rate=o.lr,
        mixture_learning_rate=o.lr if o.mixture_lr is None else o.mixture_lr,
        sigma_reg=config.latent.sigma_reg,
        decay_start_epoch=o.decay_start_epoch,
        decay_end_epoch=o.decay_end_epoch,
        b1=o.b1,
        b2=o.b2,
        objective=config.objective,
        augment=config.augment,
        init_examples=config.network.init_examples,
        d_batch_norm=config.network.d_batch_norm,
        adam_epsilon=o.adam_epsilon,
        eps_draw=config.latent.eps_draw,
        batch_order=config.batch_order)


def init_state(model: GanModel, rule: balancing.BalanceRule, seed: int,
               examples: jax.Array | Callable[[jax.Array], jax.Array]) -> TrainState:
  """A fresh state: parameters (initialised on real ``examples``), optimisers, rule state.

  ``examples``: an array, or a function of the run's key that returns one.

  The optimisers' hyperparameters (b1, b2) do not change the state's structure,
  so defaults serve; ``jax.eval_shape`` of this (``examples`` may be a
  ``jax.ShapeDtypeStruct``) gives a checkpoint's layout.
  """
  init_key, run_key = jax.random.split(jax.random.key(seed))
  if callable(examples):  # chosen from the run's key (the trainer: its first batches)
    examples = examples(run_key)
  params, batch_stats = model.init(init_key, examples)
  opt_state = {name: optim.adam(0.5, 0.999).init(params[name]) for name in optim.OPTIMISED}
  return TrainState(step=jnp.int32(0), key=jax.random.key_data(run_key), params=params,
                    batch_stats=batch_stats, opt_state=opt_state,
                    balance=balancing.BalanceState.create(rule))


# Tags folded into the state's key: the step draws shuffles, latents and labelled batches;
# a retry draws a new key.
SHUFFLE_TAG, LATENTS_TAG, RESEED_TAG, LABELLED_TAG = 0, 1, 2, 3


def reseed(state: TrainState, attempt: int) -> TrainState:
  """``state`` with the key of retry ``attempt`` (1, 2, ...) from it, for every stacked seed.

  The key depends only on the old key and ``attempt``, so a retry is reproducible.
  """
  def new_key(key_data):
    key = jax.random.fold_in(jax.random.wrap_key_data(key_data), RESEED_TAG)
    return jax.random.key_data(jax.random.fold_in(key, attempt))

  keys = state.key.reshape(-1, state.key.shape[-1])  # one row per seed
  return state.replace(key=jax.vmap(new_key)(keys).reshape(state.key.shape))

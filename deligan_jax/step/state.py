"""The training state: a checkpoint is exactly a :class:`TrainState`.

Every random draw of a run is folded from the state's key with one of the tags below and
the batch index, which is what makes resumed runs draw what uninterrupted ones do.
"""

from __future__ import annotations

from typing import Any, Callable

import flax.struct
import jax
import jax.numpy as jnp

from deligan_jax.step import balancing
from deligan_jax.step import optim
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


def init_state(model: GanModel, rule: balancing.BalanceRule, seed: int,
               examples: jax.Array | Callable[[jax.Array], jax.Array]) -> TrainState:
  """A fresh state: parameters (initialised on real ``examples``), optimisers, rule state.

  ``examples``: an array, or a function of the run's key that returns one.

  The optimisers' hyperparameters (b1, b2) do not change the state's structure,
  so defaults serve; ``jax.eval_shape`` of this (``examples`` may be a
  ``jax.ShapeDtypeStruct``) gives a checkpoint's layout.
  """
  init_key, run_key = jax.random.split(jax.random.key(seed))
  if callable(examples):  # chosen from the run's key (the driver: its first batches)
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

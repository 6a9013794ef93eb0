"""Optimisers and the learning-rate schedule.

G, D and the mixture each get their own Adam (optax). The learning rate is set
once per batch from the epoch, because the schedules of the paper are written in
epochs while the balancing rule makes the number of G and D updates per epoch
vary; ``optax.inject_hyperparams`` lets the step replace it in the state.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

OPTIMISED = ("generator", "discriminator", "mixture")


def adam(b1: float, b2: float) -> optax.GradientTransformation:
  """Adam whose learning rate lives in the optimiser state (set by the step)."""
  return optax.inject_hyperparams(optax.adam)(learning_rate=0.0, b1=b1, b2=b2)


def with_learning_rate(opt_state, learning_rate: jax.Array):
  """The same optimiser state with its learning rate replaced."""
  hyperparams = dict(opt_state.hyperparams, learning_rate=jnp.asarray(learning_rate,
                                                                        jnp.float32))
  return opt_state._replace(hyperparams=hyperparams)


def learning_rate_factor(epoch: jax.Array, decay_start_epoch: float | None,
                         decay_end_epoch: float | None) -> jax.Array:
  """1 until ``decay_start_epoch``, then linear to 0 at ``decay_end_epoch``.

  This is the shape of every schedule in the paper's code, e.g. MNIST's
  ``min(4 - epoch/1000, 3)/3`` is start 1000, end 4000.
  """
  if decay_start_epoch is None or decay_end_epoch is None:
    return jnp.float32(1.0)
  span = decay_end_epoch - decay_start_epoch
  return jnp.clip((decay_end_epoch - epoch) / span, 0.0, 1.0).astype(jnp.float32)

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
# Where Adam's epsilon goes: 'sqrt_v' as TensorFlow's AdamOptimizer (the official toy and
# MNIST code), 'sqrt_v_hat' as optax, 'inside_sqrt_v_hat' as the ``adam_updates`` of the
# official CIFAR-10 and sketch code (nn.py: ``m_hat / sqrt(v_hat + 1e-8)``).
ADAM_EPSILONS = ("sqrt_v", "sqrt_v_hat", "inside_sqrt_v_hat")


def _scale_by_tf_adam(b1, b2, eps: float = 1e-8) -> optax.GradientTransformation:
  """TensorFlow's Adam step: ``sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)``.

  That is optax's ``m_hat / (sqrt(v_hat) + eps / sqrt(1 - b2^t))``: the same but for
  small gradients, where the first steps differ by up to ~30% (eps/sqrt(0.001) at t = 1).
  The state is optax's, so checkpoints have one layout whichever form runs.
  """
  base = optax.scale_by_adam(b1, b2, eps)

  def update(updates, state, params=None):
    del params
    mu = jax.tree.map(lambda m, g: b1 * m + (1 - b1) * g, state.mu, updates)
    nu = jax.tree.map(lambda v, g: b2 * v + (1 - b2) * jnp.square(g), state.nu, updates)
    count = optax.safe_int32_increment(state.count)
    t = count.astype(jnp.float32)
    step = jnp.sqrt(1 - b2 ** t) / (1 - b1 ** t)
    new_updates = jax.tree.map(lambda m, v: step * m / (jnp.sqrt(v) + eps), mu, nu)
    return new_updates, optax.ScaleByAdamState(count=count, mu=mu, nu=nu)

  return optax.GradientTransformation(base.init, update)


def _tf_adam(learning_rate, b1=0.9, b2=0.999, eps=1e-8,
             eps_root=0.0) -> optax.GradientTransformation:
  """As ``optax.adam``, with TensorFlow's epsilon; same signature, so the same state."""
  del eps_root  # always 0: kept so that the injected hyperparameters match optax.adam's
  return optax.chain(_scale_by_tf_adam(b1, b2, eps), optax.scale_by_learning_rate(learning_rate))


def _theano_adam(learning_rate, b1=0.9, b2=0.999, eps=1e-8,
                 eps_root=0.0) -> optax.GradientTransformation:
  """The official nn.py's ``adam_updates``: ``m_hat / sqrt(v_hat + eps)``, epsilon under the root.

  That is optax's ``eps_root`` with ``eps = 0``. The step for a small gradient is
  ``g / sqrt(g^2 + 1e-8)`` at t = 1 instead of ``g / (|g| + 1e-8)``: the two differ
  where ``|g|`` is not far above 1e-4. Same signature as ``optax.adam``, so the same state.
  """
  del eps_root
  return optax.adam(learning_rate, b1, b2, eps=0.0, eps_root=eps)


_ADAMS = {"sqrt_v": _tf_adam, "sqrt_v_hat": optax.adam, "inside_sqrt_v_hat": _theano_adam}


def adam(b1: float, b2: float, epsilon_on: str = "sqrt_v_hat") -> optax.GradientTransformation:
  """Adam whose learning rate lives in the optimiser state (set by the step)."""
  transform = _ADAMS[epsilon_on]
  return optax.inject_hyperparams(transform)(learning_rate=0.0, b1=b1, b2=b2)


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

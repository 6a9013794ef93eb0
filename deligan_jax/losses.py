"""The adversarial losses: binary cross-entropy on discriminator logits."""

import jax
import jax.numpy as jnp


def bce_real(logits: jax.Array) -> jax.Array:
  """Mean BCE against label 1: ``mean(-log sigmoid(logits))``."""
  return jnp.mean(jax.nn.softplus(-logits))


def bce_fake(logits: jax.Array) -> jax.Array:
  """Mean BCE against label 0: ``mean(-log(1 - sigmoid(logits)))``."""
  return jnp.mean(jax.nn.softplus(logits))


def discriminator_loss(real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
  """D's loss: real samples labelled 1, generated samples labelled 0."""
  return bce_real(real_logits) + bce_fake(fake_logits)


def generator_loss(fake_logits: jax.Array) -> jax.Array:
  """The non-saturating generator loss, BCE(D(G(z)), 1); also the balancing probe g."""
  return bce_real(fake_logits)

"""The adversarial losses.

``'bce'`` (toy, MNIST, sketches): binary cross-entropy on D's one logit per sample.
``'semi_supervised'`` (CIFAR-10, Improved-GAN): D has K class logits l(x); "real"
has the logit Z(x) = logsumexp(l(x)), so D(x) = sigmoid(Z(x)); D is also trained
to classify the labelled images.
"""

import jax
import jax.numpy as jnp
import optax

OBJECTIVES = ("bce", "semi_supervised")


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


def real_logit(logits: jax.Array) -> jax.Array:
  """The logit of "real": D's logit itself, or Z(x) = logsumexp of K class logits."""
  return logits if logits.ndim == 1 else jax.nn.logsumexp(logits, axis=-1)


def semi_supervised_discriminator_loss(labelled_logits: jax.Array, labels: jax.Array,
                                       real_logits: jax.Array,
                                       fake_logits: jax.Array) -> jax.Array:
  """Improved-GAN's D loss: cross-entropy on the labels plus the unlabelled loss.

  The unlabelled loss, ``-0.5 mean(Z(real)) + 0.5 mean(softplus(Z(real))) +
  0.5 mean(softplus(Z(fake)))``, is half the BCE loss on Z.
  """
  labelled = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(labelled_logits, labels))
  return labelled + 0.5 * discriminator_loss(real_logit(real_logits), real_logit(fake_logits))


def semi_supervised_generator_loss(fake_logits: jax.Array) -> jax.Array:
  """The official CIFAR code's G loss, ``-mean(softplus(Z(fake)))``."""
  return -jnp.mean(jax.nn.softplus(real_logit(fake_logits)))


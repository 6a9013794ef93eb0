"""Layers of the Improved-GAN networks used for CIFAR-10 and sketches (docs/paper.md §3).

Each is a small Flax module (or function) used through ``init``/``apply``:

* weight normalisation (Salimans & Kingma 2016) for dense, convolution and
  transposed-convolution layers, with data-dependent initialisation: the
  ``init`` pass, run on a real batch, sets the scale and bias so that the
  layer's pre-activations have zero mean and standard deviation ``init_scale``
  per output unit. The scale is trained only with ``train_scale`` (Improved-GAN's
  output layers). Dense layers applied to feature maps act per pixel: that is
  the network-in-network (1x1) layer.
* Gaussian input noise and dropout, active only with ``train=True`` and driven by
  the explicit PRNG streams ``'noise'`` and ``'dropout'`` of ``apply(rngs=...)``.
* global mean pooling.

Minibatch discrimination lives in :mod:`deligan_jax.models.networks` with the other
layer the MNIST network shares.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from deligan_jax.models import conv

# Improved-GAN initialises every weight-normalised direction with N(0, 0.05).
DIRECTION_INIT = nn.initializers.normal(0.05)
_EPSILON = 1e-10
_NORM_EPSILON = 1e-6


def data_dependent_param(module: nn.Module, name: str, shape: tuple[int, ...],
                         initial_value) -> jax.Array:
  """A parameter whose initial value ``initial_value()`` is computed from the init batch.

  Outside ``init`` the value is only needed for its shape (flax checks it).
  """
  return module.param(name, lambda *_: (initial_value() if module.is_initializing()
                                        else jnp.zeros(shape, jnp.float32)))


class _WeightNormalized(nn.Module):
  """``y = scale * (x (*) v / ||v||) + bias`` with ``||v||`` per output unit.

  Subclasses give the linear map ``(*)`` and the shape of ``v`` (output units
  last); the norm runs over every other axis of ``v``.
  """
  features: int
  init_scale: float = 1.0
  # Improved-GAN trains the scale only where it asks (its output layers); elsewhere
  # the scale keeps its data-dependent value and only the direction and bias learn.
  train_scale: bool = False
  dtype: jnp.dtype = jnp.float32

  def _direction_shape(self, in_features: int) -> tuple[int, ...]:
    raise NotImplementedError

  def _linear(self, x: jax.Array, direction: jax.Array) -> jax.Array:
    raise NotImplementedError

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    v = self.param("direction", DIRECTION_INIT, self._direction_shape(x.shape[-1]))
    axes = tuple(range(v.ndim - 1))
    # 1e-6 under the root as in the official nn.py's weight_norm.
    direction = v / jnp.sqrt(_NORM_EPSILON + jnp.sum(jnp.square(v), axis=axes, keepdims=True))
    t = self._linear(x.astype(self.dtype), direction.astype(self.dtype)).astype(jnp.float32)
    batch_axes = tuple(range(t.ndim - 1))

    def inverse_std():  # this batch's, per unit
      return 1.0 / jnp.sqrt(jnp.var(t, axis=batch_axes) + _EPSILON)

    shape = (self.features,)
    scale = data_dependent_param(self, "scale", shape, lambda: self.init_scale * inverse_std())
    bias = data_dependent_param(
        self, "bias", shape, lambda: -jnp.mean(t, axis=batch_axes) * self.init_scale * inverse_std())
    if not self.train_scale:
      scale = jax.lax.stop_gradient(scale)
    return (t * scale + bias).astype(self.dtype)


class WeightNormDense(_WeightNormalized):
  """A weight-normalised dense layer over the last axis.

  On feature maps (B, H, W, C) it is the network-in-network (1x1) layer.
  """

  def _direction_shape(self, in_features):
    return (in_features, self.features)

  def _linear(self, x, direction):
    return x @ direction


class WeightNormConv(_WeightNormalized):
  """A weight-normalised 2-D convolution (NHWC, HWIO direction)."""
  kernel_size: tuple[int, int] = (3, 3)
  strides: tuple[int, int] = (1, 1)
  padding: conv.Padding = "SAME"
  impl: str = "im2col"

  def _direction_shape(self, in_features):
    return (*self.kernel_size, in_features, self.features)

  def _linear(self, x, direction):
    return conv.conv2d(x, direction, self.strides, self.padding, self.impl)


class WeightNormConvTranspose(WeightNormConv):
  """A weight-normalised transposed convolution (as ``flax.linen.ConvTranspose``)."""

  def _linear(self, x, direction):
    return conv.conv_transpose2d(x, direction, self.strides, self.padding, self.impl)


class GaussianNoise(nn.Module):
  """Adds N(0, stddev^2) noise in training mode (PRNG stream ``'noise'``)."""
  stddev: float

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    if not train or self.stddev == 0:
      return x
    return x + self.stddev * jax.random.normal(self.make_rng("noise"), x.shape, x.dtype)


def dropout(rate: float, train: bool) -> nn.Dropout:
  """Dropout in training mode (PRNG stream ``'dropout'``), the identity otherwise."""
  return nn.Dropout(rate, deterministic=not train)


def global_mean_pool(x: jax.Array) -> jax.Array:
  """(B, H, W, C) -> (B, C): the mean over all pixels."""
  return jnp.mean(x, axis=(1, 2))

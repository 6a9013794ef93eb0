"""Generator and discriminator networks of the paper's toy and MNIST experiments.

Every network is a Flax module used through ``init``/``apply`` on explicit
parameter pytrees. Generators map a latent batch ``(B, d)`` to samples;
discriminators map samples to one logit per row, shape ``(B,)``; ``groups``
splits their batch into equal sets that minibatch discrimination keeps apart.
Batch norm keeps its running statistics in the ``batch_stats`` collection:
``train=True`` uses (and updates) batch statistics, ``train=False`` the running
averages.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from deligan_jax import conv

# The official code initialises convolutions with N(0, 0.02) (truncated) and batch
# norm scales with N(1, 0.02); its batch norm keeps running averages with decay 0.9.
CONV_INIT = nn.initializers.truncated_normal(0.02)
DENSE_INIT = nn.initializers.normal(0.02)
# Its plain linear layers use TensorFlow's default, Glorot-uniform.
LINEAR_INIT = nn.initializers.glorot_uniform()
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5


def _bn_scale_init(key, shape, dtype=jnp.float32):
  return 1.0 + 0.02 * jax.random.normal(key, shape, dtype)


def batch_norm(train: bool, axis_name: str | None, name: str, dtype=jnp.float32) -> nn.BatchNorm:
  # Statistics are reduced in float32 whatever the compute dtype (flax's default).
  return nn.BatchNorm(
      use_running_average=not train, momentum=BN_MOMENTUM, epsilon=BN_EPSILON,
      scale_init=_bn_scale_init, axis_name=axis_name, dtype=dtype, name=name)


def leaky_relu(x: jax.Array) -> jax.Array:
  return jax.nn.leaky_relu(x, 0.2)


class MinibatchDiscrimination(nn.Module):
  """Minibatch discrimination (Salimans et al. 2016), appended to the features.

  ``M = x T`` is reshaped to (B, K, C); ``c_b(i, j) = exp(-||M_ib - M_jb||_1)`` and
  ``o(x_i)_b = sum_{j != i} c_b(i, j)``, divided by the sum over all i, j, b when
  ``normalize`` (as the official MNIST code does). Output: ``concat[x, o]``.
  ``T`` is weight-normalised per kernel entry, as in the official code.

  With ``groups > 1`` the batch is ``groups`` equal consecutive sets (real
  samples, then generated ones) and each sample is compared only with its own
  set, as if each set went through the layer alone.
  """
  num_kernels: int
  kernel_dim: int
  normalize: bool = True

  @nn.compact
  def __call__(self, x: jax.Array, groups: int = 1) -> jax.Array:
    x = x.astype(jnp.float32)  # exp(-L1 distance) needs float32 range, whatever the dtype
    features = x.shape[-1]
    theta = self.param("theta", nn.initializers.normal(0.05),
                       (features, self.num_kernels, self.kernel_dim))
    log_scale = self.param("log_scale", nn.initializers.zeros,
                           (self.num_kernels, self.kernel_dim))
    weight = theta * jnp.exp(log_scale) / jnp.sqrt(jnp.sum(jnp.square(theta), axis=0))
    m = jnp.einsum("bf,fkc->bkc", x, weight).reshape(groups, -1, self.num_kernels,
                                                       self.kernel_dim)
    l1 = jnp.sum(jnp.abs(m[:, :, None] - m[:, None, :]), axis=-1)  # (G, n, n, K)
    not_self = 1.0 - jnp.eye(m.shape[1], dtype=x.dtype)[None, :, :, None]
    o = jnp.sum(jnp.exp(-l1) * not_self, axis=2)  # (G, n, K)
    if self.normalize:
      o = o / jnp.sum(o, axis=(1, 2), keepdims=True)
    return jnp.concatenate([x, o.reshape(x.shape[0], -1)], axis=-1)


class ToyGenerator(nn.Module):
  """2-D toy generator: d -> width tanh -> 2 tanh."""
  width: int = 32
  bn_axis_name: str | None = None  # no batch norm; accepted for a uniform interface
  dtype: jnp.dtype = jnp.float32   # compute dtype; parameters stay float32

  @nn.compact
  def __call__(self, z: jax.Array, train: bool) -> jax.Array:
    h = jnp.tanh(nn.Dense(self.width, kernel_init=LINEAR_INIT, dtype=self.dtype)(z))
    return jnp.tanh(nn.Dense(2, kernel_init=LINEAR_INIT, dtype=self.dtype)(h)).astype(jnp.float32)


class ToyDiscriminator(nn.Module):
  """2-D toy discriminator: 2 -> width tanh -> 1 logit."""
  width: int = 32
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool, groups: int = 1) -> jax.Array:
    del train, groups  # per-sample network: no batch norm, nothing across the batch
    h = jnp.tanh(nn.Dense(self.width, kernel_init=LINEAR_INIT, dtype=self.dtype)(x))
    return nn.Dense(1, kernel_init=LINEAR_INIT, dtype=self.dtype)(h)[:, 0].astype(jnp.float32)


class MnistGenerator(nn.Module):
  """MNIST generator (spec §3): dense -> 4x4x4w -> 7x7x2w -> 14x14xw -> 28x28x1, w = 16."""
  width: int = 16
  bn_axis_name: str | None = None
  conv_impl: str = "im2col"
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, z: jax.Array, train: bool) -> jax.Array:
    w, dtype, impl = self.width, self.dtype, self.conv_impl
    h = nn.Dense(4 * 4 * 4 * w, kernel_init=LINEAR_INIT, dtype=dtype)(z)
    h = nn.relu(batch_norm(train, self.bn_axis_name, "bn0", dtype)(h))
    h = h.reshape(z.shape[0], 4, 4, 4 * w)
    # 4 -> 7 needs explicit padding: 'SAME' would give 8.
    h = conv.ConvTranspose(2 * w, (3, 3), (2, 2), padding=((1, 1), (1, 1)),
                           kernel_init=CONV_INIT, impl=impl, dtype=dtype)(h)
    h = nn.relu(batch_norm(train, self.bn_axis_name, "bn1", dtype)(h))
    h = conv.ConvTranspose(w, (5, 5), (2, 2), kernel_init=CONV_INIT, impl=impl, dtype=dtype)(h)
    h = nn.relu(batch_norm(train, self.bn_axis_name, "bn2", dtype)(h))
    h = conv.ConvTranspose(1, (5, 5), (2, 2), kernel_init=CONV_INIT, impl=impl, dtype=dtype)(h)
    return jnp.tanh(h).astype(jnp.float32)


class MnistDiscriminator(nn.Module):
  """MNIST discriminator (spec §3): three strided convs, max-pool, minibatch discrimination."""
  width: int = 16
  mbd_kernels: int = 64
  mbd_dims: int = 5
  conv_impl: str = "im2col"
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool, groups: int = 1) -> jax.Array:
    w, dtype, impl = self.width, self.dtype, self.conv_impl
    h = leaky_relu(conv.Conv(w, (5, 5), (2, 2), kernel_init=CONV_INIT, impl=impl,
                             dtype=dtype)(x))
    h = conv.Conv(2 * w, (5, 5), (2, 2), kernel_init=CONV_INIT, impl=impl, dtype=dtype)(h)
    h = leaky_relu(batch_norm(train, None, "bn1", dtype)(h))
    h = conv.Conv(4 * w, (3, 3), (2, 2), kernel_init=CONV_INIT, impl=impl, dtype=dtype)(h)
    h = leaky_relu(batch_norm(train, None, "bn2", dtype)(h))
    h = nn.max_pool(h, (4, 4), padding="VALID").reshape(x.shape[0], -1)
    h = MinibatchDiscrimination(self.mbd_kernels, self.mbd_dims)(h, groups)
    return nn.Dense(1, kernel_init=DENSE_INIT, dtype=dtype)(h)[:, 0].astype(jnp.float32)


SAMPLE_SHAPES = {"toy": (2,), "mnist": (28, 28, 1)}
GENERATORS = {"toy": ToyGenerator, "mnist": MnistGenerator}
DISCRIMINATORS = {"toy": ToyDiscriminator, "mnist": MnistDiscriminator}

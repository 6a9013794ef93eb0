"""Differentiable augmentation for GANs on limited data (DiffAugment, Zhao et al. 2020).

Every image D sees in training, real or generated, in D's updates and in G's,
goes through the same random, differentiable transformations, so D cannot
memorise the few real images and G's gradients flow back through the
augmentation. A policy is a comma-separated list of

* ``color``: per-image brightness (+U(-0.5, 0.5)), saturation (x U(0, 2)) and
  contrast (x U(0.5, 1.5));
* ``translation``: per-image integer shift of up to 1/8 of the side, zero-filled;
* ``cutout``: per-image zeroed square of half the side, at a random centre.

Images are (B, H, W, C) in [-1, 1]; the empty policy is the identity.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

TRANSLATION_RATIO = 0.125
CUTOUT_RATIO = 0.5


def _per_image(key: jax.Array, x: jax.Array, low: float = 0.0, high: float = 1.0) -> jax.Array:
  return jax.random.uniform(key, (x.shape[0], 1, 1, 1), x.dtype, low, high)


def color(key: jax.Array, x: jax.Array) -> jax.Array:
  brightness_key, saturation_key, contrast_key = jax.random.split(key, 3)
  x = x + _per_image(brightness_key, x, -0.5, 0.5)
  mean = jnp.mean(x, axis=3, keepdims=True)
  x = (x - mean) * _per_image(saturation_key, x, 0.0, 2.0) + mean
  mean = jnp.mean(x, axis=(1, 2, 3), keepdims=True)
  return (x - mean) * _per_image(contrast_key, x, 0.5, 1.5) + mean


def translation(key: jax.Array, x: jax.Array, ratio: float = TRANSLATION_RATIO,
                fill: float = 0.0) -> jax.Array:
  _, height, width, _ = x.shape
  sh, sw = int(height * ratio + 0.5), int(width * ratio + 0.5)
  dy_key, dx_key = jax.random.split(key)
  dy = jax.random.randint(dy_key, (x.shape[0],), -sh, sh + 1)
  dx = jax.random.randint(dx_key, (x.shape[0],), -sw, sw + 1)
  padded = jnp.pad(x, ((0, 0), (sh, sh), (sw, sw), (0, 0)), constant_values=fill)

  def shift(image, oy, ox):  # output pixel (i, j) = input (i + oy, j + ox)
    return lax.dynamic_slice(image, (sh + oy, sw + ox, 0), (height, width, image.shape[-1]))

  return jax.vmap(shift)(padded, dy, dx)


def cutout(key: jax.Array, x: jax.Array, ratio: float = CUTOUT_RATIO) -> jax.Array:
  batch, height, width, _ = x.shape
  size_h, size_w = int(height * ratio + 0.5), int(width * ratio + 0.5)
  y_key, x_key = jax.random.split(key)
  # Centres as in the reference code: the square may reach past the border.
  top = jax.random.randint(y_key, (batch, 1, 1), 0, height + (1 - size_h % 2)) - size_h // 2
  left = jax.random.randint(x_key, (batch, 1, 1), 0, width + (1 - size_w % 2)) - size_w // 2
  rows = jnp.arange(height)[None, :, None]
  cols = jnp.arange(width)[None, None, :]
  inside = ((rows >= top) & (rows < top + size_h) & (cols >= left) & (cols < left + size_w))
  return x * (1.0 - inside[..., None].astype(x.dtype))


AUGMENTATIONS = {"color": color, "translation": translation, "cutout": cutout}


def parse_policy(policy: str) -> tuple[str, ...]:
  """``'color,translation'`` -> ('color', 'translation'); raises on an unknown name."""
  names = tuple(name.strip() for name in policy.split(",") if name.strip())
  unknown = [name for name in names if name not in AUGMENTATIONS]
  if unknown:
    raise ValueError(f"unknown augmentation(s) {unknown}; choose from {list(AUGMENTATIONS)}")
  return names


def apply(key: jax.Array, x: jax.Array, policy: str) -> jax.Array:
  """Applies the policy's augmentations in order, each with its own key."""
  for index, name in enumerate(parse_policy(policy)):
    x = AUGMENTATIONS[name](jax.random.fold_in(key, index), x)
  return x

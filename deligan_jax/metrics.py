"""Scores of generated samples."""

from __future__ import annotations

import numpy as np


def toy_mode_stats(samples: np.ndarray, centres: np.ndarray, std: float,
                   num_std: float = 3.0) -> dict[str, object]:
  """How 2-D samples sit around known mixture modes (isotropic, standard deviation ``std``).

  A sample is "near" a mode when its Euclidean distance to the centre is at
  most ``num_std * std``. Returns the fraction of all samples near each mode
  (``fraction_per_mode``) and near any mode (``fraction_near_any``).
  """
  samples = np.asarray(samples, np.float64)
  centres = np.asarray(centres, np.float64).reshape(-1, 2)
  distances = np.linalg.norm(samples[:, None, :] - centres[None, :, :], axis=-1)
  near = distances <= num_std * std
  return {"fraction_per_mode": near.mean(axis=0).tolist(),
          "fraction_near_any": float(near.any(axis=1).mean())}

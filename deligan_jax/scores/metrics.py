"""Scores of generated samples.

Everything here is a pure function of numpy arrays, computed in float64:

* from classifier probabilities ``(n, classes)``: :func:`inception_score` and the
  DeLiGAN paper's :func:`modified_inception_score`;
* from feature vectors ``(n, d)``: :func:`frechet_distance` (FID),
  :func:`kernel_inception_distance` (KID) and :func:`precision_recall`;
* from 2-D toy samples and the known mixture modes: :func:`toy_mode_stats`;
* from any vectors (pixels or features): :func:`nearest_neighbour_distances`
  within a set, :func:`distinct_count` and :func:`mean_pairwise_distance`, which
  show how many different samples a model really draws.

Malformed input (wrong number of dimensions, mismatched widths, NaN or
infinite values, probabilities whose rows do not sum to 1, too few samples)
raises ``ValueError`` naming the offending argument.
"""

from __future__ import annotations

from collections.abc import Iterator
import math

import numpy as np

PROBABILITY_SUM_TOLERANCE = 1e-3
LOG_FLOOR = 1e-12  # Smallest probability inside log p_l of the m-IS pairwise KL.

# Rows of pairwise distances held at once: 1000 x 10000 float64 is 80 MB.
_ROWS_PER_CHUNK = 1000


def inception_score(probs: np.ndarray, splits: int = 10) -> tuple[float, float]:
  """Inception score (Salimans et al. 2016): mean and standard deviation over splits.

  ``probs`` (n, C) holds p(y|x) for each sample. It is cut into ``splits``
  consecutive parts of (almost) equal size (``np.array_split``); for a part with
  marginal p(y) = mean_x p(y|x),

      IS = exp( mean_x KL(p(y|x) || p(y)) ),
      KL(p || q) = sum_y p(y) log(p(y) / q(y)),   with 0 log 0 = 0.

  Returns (mean, population standard deviation) of IS over the parts.
  """
  probs = _as_probabilities("probs", probs)
  if splits < 1:
    raise ValueError(f"splits must be >= 1, got {splits}")
  if len(probs) < splits:
    raise ValueError(f"probs has {len(probs)} rows, fewer than splits={splits}")
  scores = []
  for part in np.array_split(probs, splits):
    marginal = part.mean(axis=0, keepdims=True)
    kl = (_xlogy(part, part) - _xlogy(part, marginal)).sum(axis=1)
    scores.append(np.exp(kl.mean()))
  return float(np.mean(scores)), float(np.std(scores))


def modified_inception_score(
    probs: np.ndarray) -> tuple[float, float, dict[int, dict[str, object]]]:
  """The DeLiGAN paper's modified inception score (m-IS): diversity within each class.

  Samples are grouped by predicted class c = argmax_y p(y|x). For the n_c
  samples x_1..x_{n_c} predicted c,

      s_c = exp( (1 / n_c^2) sum_{k, l} KL(p(y|x_k) || p(y|x_l)) ),

  over all ordered pairs including k = l, where
  KL(p_k || p_l) = sum_y p_k log p_k - sum_y p_k log max(p_l, LOG_FLOOR), with
  0 log 0 = 0; the floor keeps a zero in p_l finite. Because the second term is
  bilinear, the mean over pairs is mean_k(sum_y p_k log p_k) - (mean_k p_k) .
  (mean_l log max(p_l, LOG_FLOOR)), which needs O(n_c C) memory instead of n_c^2.
  Identical predictions within a class give s_c = 1.

  Returns (mean of s_c, population standard deviation of s_c, per_class), the
  statistics over the classes with at least 2 samples; ``per_class`` maps every
  class 0..C-1 to ``{"count": n_c, "score": s_c}``, with score ``None`` when
  n_c < 2. Raises ``ValueError`` when no class has 2 samples.
  """
  probs = _as_probabilities("probs", probs)
  predicted = probs.argmax(axis=1)
  per_class = {}
  scores = []
  for label in range(probs.shape[1]):
    members = probs[predicted == label]
    score = None
    if len(members) >= 2:
      neg_entropy = _xlogy(members, members).sum(axis=1).mean()
      cross = members.mean(axis=0) @ np.log(np.maximum(members, LOG_FLOOR)).mean(axis=0)
      score = float(np.exp(neg_entropy - cross))
      scores.append(score)
    per_class[label] = {"count": len(members), "score": score}
  if not scores:
    raise ValueError("probs has no predicted class with at least 2 samples")
  return float(np.mean(scores)), float(np.std(scores)), per_class


def modified_inception_score_official_edges(
    per_class: dict[int, dict[str, object]]) -> tuple[float, float]:
  """m-IS as the official code averages it: over every class, however few its samples.

  From :func:`modified_inception_score`'s ``per_class``. The official code's KL mean
  over one sample is 0, so a class predicted once scores exp(0) = 1; over no sample it
  is NaN, so an empty class scores NaN and so do the mean and the std.
  """
  scores = [math.nan if entry["count"] == 0 else 1.0 if entry["count"] == 1 else entry["score"]
            for entry in per_class.values()]
  return float(np.mean(scores)), float(np.std(scores))


def m_is_edge_note(per_class: dict[int, dict[str, object]]) -> str | None:
  """A report's sentence on the classes with fewer than 2 samples, or None when there are none.

  Reports use :func:`modified_inception_score` (those classes left out); the sentence
  gives the official code's value beside it.
  """
  few = [entry["count"] for entry in per_class.values() if entry["count"] < 2]
  if not few:
    return None
  mean, std = modified_inception_score_official_edges(per_class)
  return (f"m-IS leaves out the {len(few)} predicted classes with fewer than 2 samples "
          f"({few.count(1)} with one, {few.count(0)} empty); the official code scores a "
          f"one-sample class 1 and an empty class NaN, which gives {mean:.3f} ± {std:.3f}.")


def frechet_distance(feats_a: np.ndarray, feats_b: np.ndarray) -> float:
  """Fréchet distance between Gaussians fitted to two feature sets (FID, Heusel et al. 2017).

      FID = ||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)),

  with means mu and unbiased covariances S (``np.cov(rowvar=False)``). The trace
  of the matrix square root is sum_i sqrt(lambda_i) over the eigenvalues of the
  symmetric matrix S_a^(1/2) S_b S_a^(1/2), which has the same spectrum as
  S_a S_b; S_a^(1/2) comes from the eigendecomposition of S_a. Negative
  eigenvalues (rounding in a positive semi-definite matrix) are clipped to 0
  and the result is clamped at >= 0.
  """
  feats_a, feats_b = _as_feature_pair("feats_a", feats_a, "feats_b", feats_b, min_rows=2)
  mean_gap = feats_a.mean(axis=0) - feats_b.mean(axis=0)
  cov_a = np.atleast_2d(np.cov(feats_a, rowvar=False))
  cov_b = np.atleast_2d(np.cov(feats_b, rowvar=False))
  root_a = _psd_sqrt(cov_a)
  product = root_a @ cov_b @ root_a
  product_eigenvalues = np.linalg.eigvalsh((product + product.T) / 2)
  trace_sqrt = np.sqrt(np.maximum(product_eigenvalues, 0.0)).sum()
  distance = mean_gap @ mean_gap + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_sqrt
  return float(max(distance, 0.0))


def kernel_inception_distance(feats_a: np.ndarray, feats_b: np.ndarray, num_subsets: int = 100,
                              subset_size: int = 1000, seed: int = 0) -> tuple[float, float]:
  """Kernel inception distance (Binkowski et al. 2018): mean and std of MMD^2 over subsets.

  With the polynomial kernel k(x, y) = (x . y / d + 1)^3, each of
  ``num_subsets`` subsets takes m = min(subset_size, n_a, n_b) rows of each
  set, drawn without replacement by ``np.random.default_rng(seed)`` (rows of a
  then rows of b, subset after subset), and estimates without bias

      MMD^2 = sum_{i != j} k(a_i, a_j) / (m (m - 1))
            + sum_{i != j} k(b_i, b_j) / (m (m - 1))
            - 2 mean_{i, j} k(a_i, b_j).

  Returns (mean, population standard deviation) of MMD^2 over the subsets; the
  estimate can be slightly negative when the sets match.
  """
  feats_a, feats_b = _as_feature_pair("feats_a", feats_a, "feats_b", feats_b, min_rows=2)
  if num_subsets < 1:
    raise ValueError(f"num_subsets must be >= 1, got {num_subsets}")
  if subset_size < 2:
    raise ValueError(f"subset_size must be >= 2, got {subset_size}")
  size = min(subset_size, len(feats_a), len(feats_b))
  dim = feats_a.shape[1]
  rng = np.random.default_rng(seed)
  estimates = []
  for _ in range(num_subsets):
    a = feats_a[rng.choice(len(feats_a), size, replace=False)]
    b = feats_b[rng.choice(len(feats_b), size, replace=False)]
    within_a = (a @ a.T / dim + 1) ** 3
    within_b = (b @ b.T / dim + 1) ** 3
    across = (a @ b.T / dim + 1) ** 3
    off_diagonal = within_a.sum() - np.trace(within_a) + within_b.sum() - np.trace(within_b)
    estimates.append(off_diagonal / (size * (size - 1)) - 2 * across.mean())
  return float(np.mean(estimates)), float(np.std(estimates))


def precision_recall(real_feats: np.ndarray, fake_feats: np.ndarray,
                     k: int = 3) -> tuple[float, float]:
  """Improved precision and recall (Kynkäänniemi et al. 2019).

  The manifold of a set is the union of balls B(x, r_k(x)) over its points,
  r_k(x) being the distance from x to its k-th nearest neighbour in the same
  set, x itself excluded. Then

      precision = fraction of fake points inside the real manifold,
      recall    = fraction of real points inside the fake manifold,

  a point y being inside when ||y - x|| <= r_k(x) for at least one x. Distances
  are computed ``_ROWS_PER_CHUNK`` query rows at a time, so memory grows with
  the size of one set, not the product of both.
  """
  if k < 1:
    raise ValueError(f"k must be >= 1, got {k}")
  real_feats, fake_feats = _as_feature_pair("real_feats", real_feats, "fake_feats", fake_feats,
                                            min_rows=k + 1)
  real_radii = _squared_knn_radii(real_feats, k)
  fake_radii = _squared_knn_radii(fake_feats, k)
  return (_fraction_inside(fake_feats, real_feats, real_radii),
          _fraction_inside(real_feats, fake_feats, fake_radii))


def nearest_reference(queries: np.ndarray,
                      references: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Euclidean distance from each query to its nearest reference, and that reference's index.

  Rows are flattened; non-finite rows give NaN distances rather than an error, so that a
  diverged model's samples are reported, not refused.
  """
  queries = np.asarray(queries, np.float64).reshape(len(queries), -1)
  references = np.asarray(references, np.float64).reshape(len(references), -1)
  distances, indices = np.empty(len(queries)), np.empty(len(queries), np.int64)
  for start, squared in _squared_distance_blocks(queries, references):
    rows = slice(start, start + len(squared))
    indices[rows] = np.argmin(squared, axis=1)
    distances[rows] = np.sqrt(squared[np.arange(len(squared)), indices[rows]])
  return distances, indices


def nearest_neighbour_distances(points: np.ndarray) -> np.ndarray:
  """Euclidean distance from each row of ``points`` to its nearest other row."""
  points = _as_matrix("points", points, min_rows=2)
  return np.sqrt(_squared_knn_radii(points, 1))


def distinct_count(points: np.ndarray, threshold: float) -> int:
  """How many rows remain when rows closer than ``threshold`` count as one.

  Closeness is chained: rows are the nodes of a graph with an edge for every
  pair at Euclidean distance below ``threshold``, and the count is its number of
  connected components, so it does not depend on the order of the rows.
  """
  from scipy.sparse import coo_matrix
  from scipy.sparse.csgraph import connected_components

  points = _as_matrix("points", points)
  if not threshold >= 0:
    raise ValueError(f"threshold must be >= 0, got {threshold}")
  # Merged block by block, each row joined to the first row of its component so far: memory
  # stays one block of pairs even when every pair is close (a collapsed model: n^2 of them).
  n = len(points)
  labels = np.arange(n)
  for start, squared in _squared_distance_blocks(points, points):
    i, j = np.nonzero(squared < threshold ** 2)
    rows, cols = np.concatenate([np.arange(n), start + i]), np.concatenate([labels, j])
    graph = coo_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(n, n))
    component = connected_components(graph, directed=False)[1]
    labels = np.unique(component, return_index=True)[1][component]  # its first row
  return int(len(np.unique(labels)))


def mean_pairwise_distance(points: np.ndarray) -> float:
  """Mean Euclidean distance over the pairs of different rows of ``points``."""
  points = _as_matrix("points", points, min_rows=2)
  total = 0.0
  for start, squared in _squared_distance_blocks(points, points):
    rows = np.arange(len(squared))
    squared[rows, start + rows] = 0.0  # a row's distance to itself, free of rounding
    total += float(np.sqrt(squared).sum())
  n = len(points)
  return total / (n * (n - 1))


def toy_mode_stats(samples: np.ndarray, centres: np.ndarray, std: float,
                   num_std: float = 3.0, min_count: int = 1) -> dict[str, object]:
  """How 2-D samples sit around known mixture modes (isotropic, standard deviation ``std``).

  A sample is "near" a mode when its Euclidean distance to the centre is at
  most ``num_std * std``, and "high quality" when it is near any mode. Returns

  * ``fraction_per_mode``: per mode, the fraction of all samples near it (a
    sample near two overlapping modes counts for both);
  * ``fraction_near_any`` and its alias ``high_quality_fraction``: the fraction
    of all samples near some mode;
  * ``nearest_mode_counts``: per mode, how many high-quality samples have it
    as their nearest mode;
  * ``modes_covered``: how many modes have ``nearest_mode_counts >= min_count``
    (VEEGAN's criterion with min_count = 1);
  * ``mode_kl``: KL(q || uniform) = sum_i q_i log(M q_i) over the M modes,
    q = nearest_mode_counts / their sum, with 0 log 0 = 0; 0 when the
    high-quality samples are spread evenly, ``inf`` when there are none.
  """
  samples = _as_matrix("samples", samples)
  centres = _as_matrix("centres", centres)
  if samples.shape[1] != 2:
    raise ValueError(f"samples must have shape (n, 2), got {samples.shape}")
  if centres.shape[1] != 2:
    raise ValueError(f"centres must have shape (modes, 2), got {centres.shape}")
  if not std > 0:
    raise ValueError(f"std must be positive, got {std}")
  if not num_std > 0:
    raise ValueError(f"num_std must be positive, got {num_std}")
  if min_count < 1:
    raise ValueError(f"min_count must be >= 1, got {min_count}")
  distances = np.linalg.norm(samples[:, None, :] - centres[None, :, :], axis=-1)
  near = distances <= num_std * std
  near_any = near.any(axis=1)
  num_modes = len(centres)
  counts = np.bincount(distances[near_any].argmin(axis=1), minlength=num_modes)
  if counts.sum() == 0:
    mode_kl = float("inf")
  else:
    shares = counts / counts.sum()
    mode_kl = float(_xlogy(shares, num_modes * shares).sum())
  return {"fraction_per_mode": near.mean(axis=0).tolist(),
          "fraction_near_any": float(near_any.mean()),
          "high_quality_fraction": float(near_any.mean()),
          "nearest_mode_counts": counts.tolist(),
          "modes_covered": int((counts >= min_count).sum()),
          "mode_kl": mode_kl}


def _xlogy(x: np.ndarray, y: np.ndarray) -> np.ndarray:
  """x log y elementwise, exactly 0 where x = 0 (whatever y is)."""
  positive = x > 0
  return np.where(positive, x * np.log(np.where(positive, y, 1.0)), 0.0)


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
  """Symmetric square root of a positive semi-definite matrix, negative eigenvalues as 0."""
  eigenvalues, eigenvectors = np.linalg.eigh(matrix)
  return (eigenvectors * np.sqrt(np.maximum(eigenvalues, 0.0))) @ eigenvectors.T


def _squared_distance_blocks(queries: np.ndarray,
                             points: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
  """Yields (first query row, squared distances from the next query rows to all points)."""
  point_norms = np.einsum("ij,ij->i", points, points)
  for start in range(0, len(queries), _ROWS_PER_CHUNK):
    block = queries[start:start + _ROWS_PER_CHUNK]
    squared = block @ points.T
    squared *= -2.0
    squared += np.einsum("ij,ij->i", block, block)[:, None]
    squared += point_norms[None, :]
    yield start, np.maximum(squared, 0.0, out=squared)


def _squared_knn_radii(points: np.ndarray, k: int) -> np.ndarray:
  """Squared distance from each point to its k-th nearest other point of the set."""
  radii = np.empty(len(points))
  for start, squared in _squared_distance_blocks(points, points):
    rows = np.arange(len(squared))
    squared[rows, start + rows] = np.inf  # Excludes the point itself, even among duplicates.
    radii[start:start + len(squared)] = np.partition(squared, k - 1, axis=1)[:, k - 1]
  return radii


def _fraction_inside(queries: np.ndarray, centres: np.ndarray, squared_radii: np.ndarray) -> float:
  """Fraction of queries within the radius of at least one centre."""
  inside = np.empty(len(queries), bool)
  for start, squared in _squared_distance_blocks(queries, centres):
    inside[start:start + len(squared)] = (squared <= squared_radii[None, :]).any(axis=1)
  return float(inside.mean())


def _as_matrix(name: str, array: np.ndarray, min_rows: int = 1) -> np.ndarray:
  """``array`` as a finite float64 (rows, columns) matrix with at least ``min_rows`` rows."""
  matrix = np.asarray(array, np.float64)
  if matrix.ndim != 2:
    raise ValueError(f"{name} must be 2-D (samples, features), got shape {matrix.shape}")
  if matrix.shape[0] < min_rows or matrix.shape[1] < 1:
    raise ValueError(
        f"{name} needs at least {min_rows} rows and 1 column, got shape {matrix.shape}")
  if not np.isfinite(matrix).all():
    raise ValueError(f"{name} contains NaN or infinite values")
  return matrix


def _as_probabilities(name: str, array: np.ndarray) -> np.ndarray:
  """``array`` as a (samples, classes) matrix of non-negative rows summing to 1."""
  probs = _as_matrix(name, array)
  if (probs < 0).any():
    raise ValueError(f"{name} contains negative probabilities")
  worst = np.abs(probs.sum(axis=1) - 1).max()
  if worst > PROBABILITY_SUM_TOLERANCE:
    raise ValueError(f"{name} rows must sum to 1 within {PROBABILITY_SUM_TOLERANCE}, "
                     f"one is off by {worst:.3g}")
  return probs


def _as_feature_pair(name_a: str, a: np.ndarray, name_b: str, b: np.ndarray,
                     min_rows: int) -> tuple[np.ndarray, np.ndarray]:
  """Two feature matrices of the same width, each with at least ``min_rows`` rows."""
  a = _as_matrix(name_a, a, min_rows)
  b = _as_matrix(name_b, b, min_rows)
  if a.shape[1] != b.shape[1]:
    raise ValueError(f"{name_a} and {name_b} must have the same number of features, "
                     f"got {a.shape[1]} and {b.shape[1]}")
  return a, b

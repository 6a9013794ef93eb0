"""Scores against direct computations and known answers."""

import warnings

import numpy as np
import pytest

from deligan_jax.scores import metrics


def test_toy_mode_stats_on_known_points():
  centres = np.array([[0.6, 0.6], [-0.6, -0.6]])
  samples = np.array([[0.6, 0.6], [0.6, 0.6 + 0.44], [0.6, 0.6 + 0.46], [-0.6, -0.6], [0, 0]])
  stats = metrics.toy_mode_stats(samples, centres, std=0.15)
  # 3 std = 0.45: two samples near the first mode, one near the second, two near none.
  assert stats["fraction_per_mode"] == pytest.approx([2 / 5, 1 / 5])
  assert stats["fraction_near_any"] == pytest.approx(3 / 5)


def test_toy_mode_stats_of_the_true_distribution():
  rng = np.random.default_rng(0)
  samples = np.concatenate([rng.normal(0.6, 0.15, (5000, 2)), rng.normal(-0.6, 0.15, (5000, 2))])
  stats = metrics.toy_mode_stats(samples, np.array([[0.6, 0.6], [-0.6, -0.6]]), 0.15)
  # A 2-D standard normal lies within radius 3 with probability 1 - exp(-4.5) = 0.989.
  assert stats["fraction_near_any"] == pytest.approx(1 - np.exp(-4.5), abs=0.005)
  assert stats["fraction_per_mode"] == pytest.approx([0.4944, 0.4944], abs=0.01)


def test_toy_mode_stats_coverage_and_balance_on_known_points():
  centres = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
  # 6 std = 0.6. Mode 0 gets three samples, one of them also within reach of
  # mode 1 but nearer to 0; mode 1 gets one; mode 2 none; one sample is near nothing.
  samples = np.array([[0.0, 0.0], [0.1, 0.1], [0.45, 0.0], [1.0, 0.2], [5.0, 5.0]])
  stats = metrics.toy_mode_stats(samples, centres, std=0.1, num_std=6.0)
  assert stats["fraction_per_mode"] == pytest.approx([3 / 5, 2 / 5, 0])
  assert stats["fraction_near_any"] == stats["high_quality_fraction"] == pytest.approx(4 / 5)
  assert stats["nearest_mode_counts"] == [3, 1, 0]
  assert stats["modes_covered"] == 2
  assert stats["mode_kl"] == pytest.approx(0.75 * np.log(0.75 * 3) + 0.25 * np.log(0.25 * 3))
  assert metrics.toy_mode_stats(samples, centres, 0.1, 6.0, min_count=2)["modes_covered"] == 1


def test_toy_mode_stats_balance_extremes():
  centres = np.array([[0.0, 0.0], [1.0, 0.0]])
  balanced = metrics.toy_mode_stats(np.array([[0.0, 0.0], [1.0, 0.0]]), centres, 0.1)
  assert balanced["mode_kl"] == 0.0
  assert balanced["modes_covered"] == 2
  nothing_near = metrics.toy_mode_stats(np.array([[5.0, 5.0]]), centres, 0.1)
  assert nothing_near["mode_kl"] == np.inf
  assert nothing_near["modes_covered"] == 0
  assert nothing_near["nearest_mode_counts"] == [0, 0]


def _random_probs(rng, n, classes, alpha=0.5):
  """Dirichlet rows with some exact zeros, so 0 log 0 is exercised."""
  probs = rng.dirichlet(np.full(classes, alpha), n)
  probs[rng.random((n, classes)) < 0.2] = 0.0
  probs[:, 0] += 1e-3  # Keeps every row non-empty.
  return probs / probs.sum(axis=1, keepdims=True)


def _kl(p, q, floor=0.0):
  total = 0.0
  for p_y, q_y in zip(p, q):
    if p_y > 0:
      total += p_y * np.log(p_y) - p_y * np.log(max(q_y, floor))
  return total


def test_inception_score_matches_direct_computation():
  probs = _random_probs(np.random.default_rng(1), 23, 5)
  scores = []
  for part in np.array_split(probs, 3):
    marginal = [sum(row[y] for row in part) / len(part) for y in range(5)]
    scores.append(np.exp(sum(_kl(row, marginal) for row in part) / len(part)))
  mean, std = metrics.inception_score(probs, splits=3)
  assert mean == pytest.approx(np.mean(scores), rel=1e-12)
  assert std == pytest.approx(np.std(scores), rel=1e-9)


def test_inception_score_known_answers():
  even_one_hot = np.eye(4)[np.arange(20) % 4]
  assert metrics.inception_score(even_one_hot, splits=1) == pytest.approx((4.0, 0.0))
  identical = np.tile([0.1, 0.6, 0.3], (12, 1))
  assert metrics.inception_score(identical, splits=3) == pytest.approx((1.0, 0.0))


def test_modified_inception_score_matches_direct_computation():
  probs = _random_probs(np.random.default_rng(2), 40, 4)
  predicted = probs.argmax(axis=1)
  expected = {}
  for label in range(4):
    members = [row for row, p in zip(probs, predicted) if p == label]
    total = sum(_kl(p_k, p_l, floor=1e-12) for p_k in members for p_l in members)
    expected[label] = np.exp(total / len(members) ** 2)
  assert min(np.bincount(predicted, minlength=4)) >= 2
  mean, std, per_class = metrics.modified_inception_score(probs)
  assert mean == pytest.approx(np.mean(list(expected.values())), rel=1e-12)
  assert std == pytest.approx(np.std(list(expected.values())), rel=1e-9)
  for label, score in expected.items():
    assert per_class[label]["count"] == np.sum(predicted == label)
    assert per_class[label]["score"] == pytest.approx(score, rel=1e-12)


def test_modified_inception_score_of_identical_predictions_within_classes():
  one_hot = np.eye(4)[[0, 0, 0, 2, 2, 3]]  # Class 1 has no sample, class 3 one.
  mean, std, per_class = metrics.modified_inception_score(one_hot)
  assert (mean, std) == (1.0, 0.0)
  assert per_class == {0: {"count": 3, "score": 1.0}, 1: {"count": 0, "score": None},
                       2: {"count": 2, "score": 1.0}, 3: {"count": 1, "score": None}}
  soft = np.array([[0.7, 0.2, 0.1]] * 5 + [[0.05, 0.05, 0.9]] * 3)
  assert metrics.modified_inception_score(soft)[:2] == pytest.approx((1.0, 0.0), abs=1e-12)


def test_frechet_distance_matches_direct_computation():
  rng = np.random.default_rng(3)
  a = rng.normal(size=(30, 4)) @ rng.normal(size=(4, 4))
  b = rng.normal(0.5, 2.0, size=(25, 4))
  moments = []
  for feats in (a, b):
    mean = sum(feats) / len(feats)
    cov = sum(np.outer(x - mean, x - mean) for x in feats) / (len(feats) - 1)
    moments.append((mean, cov))
  (mean_a, cov_a), (mean_b, cov_b) = moments
  # Tr((S_a S_b)^(1/2)) from the (real, non-negative) eigenvalues of the non-symmetric product.
  trace_sqrt = np.sum(np.sqrt(np.linalg.eigvals(cov_a @ cov_b).real))
  expected = np.sum((mean_a - mean_b) ** 2) + np.trace(cov_a + cov_b) - 2 * trace_sqrt
  assert metrics.frechet_distance(a, b) == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_known_answers():
  rng = np.random.default_rng(4)
  a = rng.normal(size=(200, 8)) @ rng.normal(size=(8, 8))
  assert metrics.frechet_distance(a, a) < 1e-6
  var_a, var_b = np.array([1.0, 2.0, 0.5]), np.array([0.5, 2.0, 1.5])
  mean_gap = np.array([1.0, 0.0, -0.5])
  gaussian_a = rng.normal(size=(20000, 3)) * np.sqrt(var_a)
  gaussian_b = mean_gap + rng.normal(size=(20000, 3)) * np.sqrt(var_b)
  analytic = np.sum(mean_gap ** 2) + np.sum((np.sqrt(var_a) - np.sqrt(var_b)) ** 2)
  assert metrics.frechet_distance(gaussian_a, gaussian_b) == pytest.approx(analytic, rel=0.05)


def test_kernel_inception_distance_matches_direct_computation():
  rng = np.random.default_rng(5)
  a, b = rng.normal(size=(30, 3)), rng.normal(0.3, 1.0, size=(25, 3))

  def kernel(x, y):
    return (sum(x_i * y_i for x_i, y_i in zip(x, y)) / 3 + 1) ** 3

  draws = np.random.default_rng(7)
  estimates = []
  for _ in range(4):
    sa = a[draws.choice(30, 10, replace=False)]
    sb = b[draws.choice(25, 10, replace=False)]
    within = sum(kernel(s[i], s[j])
                 for s in (sa, sb) for i in range(10) for j in range(10) if i != j)
    across = sum(kernel(sa[i], sb[j]) for i in range(10) for j in range(10))
    estimates.append(within / (10 * 9) - 2 * across / 100)
  mean, std = metrics.kernel_inception_distance(a, b, num_subsets=4, subset_size=10, seed=7)
  assert mean == pytest.approx(np.mean(estimates), rel=1e-9)
  assert std == pytest.approx(np.std(estimates), rel=1e-9)


def test_kernel_inception_distance_known_answers():
  rng = np.random.default_rng(6)
  a, b = rng.normal(size=(2000, 8)), rng.normal(size=(2000, 8))
  same, _ = metrics.kernel_inception_distance(a, b, num_subsets=10, subset_size=500)
  assert abs(same) < 0.01
  shifted, _ = metrics.kernel_inception_distance(a, b + 1.0, num_subsets=10, subset_size=500)
  assert shifted > 0.5


def test_precision_recall_matches_direct_computation(monkeypatch):
  monkeypatch.setattr(metrics, "_ROWS_PER_CHUNK", 7)  # Several chunks, the last one partial.
  rng = np.random.default_rng(8)
  real = rng.normal(size=(30, 3))
  fake = np.concatenate([rng.normal(size=(15, 3)), rng.normal(2.0, 0.5, size=(10, 3))])

  def radii(points, k):
    return [sorted(np.linalg.norm(x - y) for j, y in enumerate(points) if j != i)[k - 1]
            for i, x in enumerate(points)]

  def fraction_inside(queries, centres, centre_radii):
    return np.mean([any(np.linalg.norm(q - c) <= r for c, r in zip(centres, centre_radii))
                    for q in queries])

  for k in (1, 3):
    expected = (fraction_inside(fake, real, radii(real, k)),
                fraction_inside(real, fake, radii(fake, k)))
    assert metrics.precision_recall(real, fake, k=k) == pytest.approx(expected, abs=1e-12)
    assert 0 < expected[0] < 1 and 0 < expected[1] < 1


def test_precision_recall_known_answers():
  rng = np.random.default_rng(9)
  real = rng.normal(size=(200, 5))
  assert metrics.precision_recall(real, real.copy()) == (1.0, 1.0)
  precision, recall = metrics.precision_recall(real, rng.normal(50.0, 1.0, size=(150, 5)))
  assert precision == 0.0
  assert recall == 0.0


_PROBS = np.full((6, 3), 1 / 3)
_FEATS = np.random.default_rng(10).normal(size=(6, 2))


@pytest.mark.parametrize("call, argument", [
    (lambda: metrics.inception_score(_PROBS[0]), "probs"),
    (lambda: metrics.inception_score(_PROBS * 1.01), "probs"),
    (lambda: metrics.inception_score(np.where(_PROBS == _PROBS[0, 0], np.nan, 0)), "probs"),
    (lambda: metrics.inception_score(_PROBS, splits=7), "splits"),
    (lambda: metrics.modified_inception_score(np.eye(3)), "probs"),
    (lambda: metrics.modified_inception_score(_PROBS[None]), "probs"),
    (lambda: metrics.frechet_distance(_FEATS, _FEATS[:, :1]), "feats_b"),
    (lambda: metrics.frechet_distance(_FEATS[:1], _FEATS), "feats_a"),
    (lambda: metrics.frechet_distance(_FEATS, np.full((6, 2), np.nan)), "feats_b"),
    (lambda: metrics.kernel_inception_distance(_FEATS, _FEATS, subset_size=1), "subset_size"),
    (lambda: metrics.kernel_inception_distance(_FEATS, _FEATS, num_subsets=0), "num_subsets"),
    (lambda: metrics.kernel_inception_distance(_FEATS[0], _FEATS), "feats_a"),
    (lambda: metrics.precision_recall(_FEATS, _FEATS[:3], k=3), "fake_feats"),
    (lambda: metrics.precision_recall(_FEATS[:, :1], _FEATS), "real_feats"),
    (lambda: metrics.precision_recall(_FEATS, _FEATS, k=0), "k"),
    (lambda: metrics.toy_mode_stats(np.zeros((4, 3)), np.zeros((1, 2)), 0.1), "samples"),
    (lambda: metrics.toy_mode_stats(np.zeros((4, 2)), np.zeros(2), 0.1), "centres"),
    (lambda: metrics.toy_mode_stats(np.zeros((4, 2)), np.zeros((1, 2)), 0.0), "std"),
    (lambda: metrics.toy_mode_stats(np.zeros((4, 2)), np.zeros((1, 2)), 0.1, min_count=0),
     "min_count"),
])
def test_bad_input_raises_naming_the_argument(call, argument):
  with pytest.raises(ValueError, match=rf"\b{argument}\b"):
    call()


def brute_force_distances(points):
  return np.linalg.norm(points[:, None, :] - points[None, :, :], axis=-1)


def test_distinct_count_and_spreads_match_brute_force(monkeypatch):
  monkeypatch.setattr(metrics, "_ROWS_PER_CHUNK", 7)  # several blocks
  rng = np.random.default_rng(0)
  centres = rng.normal(0, 10, (6, 5))
  # Each centre drawn several times with tiny jitter: 6 distinct points among 30 rows.
  points = np.repeat(centres, 5, axis=0) + rng.normal(0, 1e-3, (30, 5))
  distances = brute_force_distances(points)
  np.fill_diagonal(distances, np.inf)
  np.testing.assert_allclose(metrics.nearest_neighbour_distances(points), distances.min(axis=1),
                             atol=1e-9)
  assert metrics.distinct_count(points, 0.1) == 6
  assert metrics.distinct_count(points, 0.0) == 30
  assert metrics.distinct_count(points, 1e6) == 1
  np.fill_diagonal(distances, 0.0)
  assert metrics.mean_pairwise_distance(points) == pytest.approx(distances.sum() / (30 * 29))
  assert metrics.mean_pairwise_distance(np.repeat(centres[:1], 4, axis=0)) == 0.0


def test_distinct_count_chains_close_pairs():
  # 0-1 and 1-2 are closer than the threshold, 0-2 is not: one group, whatever the order.
  line = np.array([[0.0], [0.9], [1.8], [5.0]])
  assert metrics.distinct_count(line, 1.0) == 2
  assert metrics.distinct_count(line[::-1], 1.0) == 2


def test_distinct_count_merges_chains_that_cross_blocks(monkeypatch):
  """Block by block (3 rows each), shuffled chains give the components of the whole graph."""
  from scipy.sparse.csgraph import connected_components
  monkeypatch.setattr(metrics, "_ROWS_PER_CHUNK", 3)
  rng = np.random.default_rng(2)
  # Chains of 1-6 points 0.9 apart, chains 5 apart, rows shuffled.
  starts = np.cumsum(rng.integers(1, 7, 12) * 0.9 + 5.0)
  line = np.concatenate([s + 0.9 * np.arange(rng.integers(1, 7)) for s in starts])
  points = rng.permutation(line)[:, None]
  expected = connected_components(brute_force_distances(points) < 1.0, directed=False)[0]
  assert metrics.distinct_count(points, 1.0) == expected == 12
  assert metrics.distinct_count(np.zeros((10, 3)), 0.5) == 1  # every pair close


def official_m_is(preds, splits=10):
  """The official m-IS (src/modified_inception_scores/.../transfer_cifar10_softmax_b1.py)."""
  argmax = preds.argmax(axis=1)
  scores = []
  with np.errstate(invalid="ignore"), warnings.catch_warnings():
    warnings.simplefilter("ignore", RuntimeWarning)  # the mean over an empty class
    for i in range(splits):
      part = preds[argmax == i]
      logp = np.log(part)
      self = np.sum(part * logp, axis=1)
      cross = np.mean(np.dot(part, np.transpose(logp)), axis=1)
      kl = np.mean(self - cross)
      scores.append(np.exp(kl))
  return np.mean(scores), np.std(scores), scores


def _probs_with_classes(counts, seed=0):
  """Softmax rows whose argmax is class c for counts[c] rows."""
  rng = np.random.default_rng(seed)
  rows = []
  for label, count in enumerate(counts):
    logits = rng.normal(size=(count, len(counts)))
    logits[:, label] += 6.0
    rows.append(logits)
  logits = np.concatenate(rows)
  return np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)


@pytest.mark.parametrize("counts", [(5, 1, 7, 3, 4, 2, 6, 1, 3, 8),    # two one-sample classes
                                    (5, 0, 7, 3, 4, 2, 6, 9, 3, 8)])   # an empty class
def test_m_is_edge_cases_left_out_here_and_scored_as_the_official_code(counts):
  probs = _probs_with_classes(counts)
  want_mean, want_std, want_per_class = official_m_is(probs)
  mean, std, per_class = metrics.modified_inception_score(probs)
  for label, count in enumerate(counts):
    if count >= 2:
      assert per_class[label]["score"] == pytest.approx(want_per_class[label], rel=1e-6)
    else:
      assert per_class[label]["score"] is None
      assert (want_per_class[label] == 1.0) if count == 1 else np.isnan(want_per_class[label])
  kept = [want_per_class[label] for label, count in enumerate(counts) if count >= 2]
  assert (mean, std) == pytest.approx((np.mean(kept), np.std(kept)), rel=1e-6)
  official = metrics.modified_inception_score_official_edges(per_class)
  np.testing.assert_allclose(official, (want_mean, want_std), rtol=1e-6)  # NaN == NaN here
  assert official[0] != pytest.approx(mean)  # the two conventions differ here
  note = metrics.m_is_edge_note(per_class)
  assert note.startswith(f"m-IS leaves out the {sum(c < 2 for c in counts)} predicted classes")
  assert f"gives {official[0]:.3f} ± {official[1]:.3f}" in note


def test_m_is_edge_note_is_absent_when_every_class_has_two_samples():
  _, _, per_class = metrics.modified_inception_score(_probs_with_classes((2,) * 10))
  assert metrics.m_is_edge_note(per_class) is None

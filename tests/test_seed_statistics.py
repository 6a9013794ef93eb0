"""Mean ± sample std over seeds and the bootstrap interval of a difference, on inputs whose answer is known."""

import itertools

import numpy as np
import pytest

from deligan_jax.scores import seed_statistics


def exact_bootstrap_percentiles(a, b, q):
  """Percentiles of the full bootstrap distribution, every resample enumerated."""
  means_a = [np.mean(r) for r in itertools.product(a, repeat=len(a))]
  means_b = [np.mean(r) for r in itertools.product(b, repeat=len(b))]
  differences = np.subtract.outer(means_a, means_b).ravel()
  return np.percentile(differences, q)


def test_interval_matches_the_enumerated_bootstrap_distribution():
  a, b = [2.0, 3.0, 7.0], [1.0, 1.5, 2.0, 4.0]
  exact_low, exact_high = exact_bootstrap_percentiles(a, b, [2.5, 97.5])
  found = seed_statistics.bootstrap_difference(a, b, resamples=40_000)
  assert found.estimate == pytest.approx(4.0 - 2.125)
  # 40000 resamples: the Monte Carlo percentile is within a step of the discrete distribution.
  assert found.low == pytest.approx(exact_low, abs=0.15)
  assert found.high == pytest.approx(exact_high, abs=0.15)


def test_interval_of_many_normal_seeds_is_the_normal_interval():
  rng = np.random.default_rng(1)
  a, b = rng.normal(1.0, 1.0, 400), rng.normal(0.0, 2.0, 400)
  found = seed_statistics.bootstrap_difference(a, b)
  half_width = 1.96 * np.sqrt(a.var() / a.size + b.var() / b.size)
  assert found.estimate == pytest.approx(a.mean() - b.mean())
  assert (found.high - found.low) / 2 == pytest.approx(half_width, rel=0.05)
  assert (found.low + found.high) / 2 == pytest.approx(found.estimate, abs=0.03)
  assert found.excludes_zero  # true difference 1, interval about +-0.22


def test_identical_groups_give_an_interval_around_zero_and_constants_a_point():
  same = seed_statistics.bootstrap_difference([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
  assert same.estimate == 0 and same.low < 0 < same.high and not same.excludes_zero
  point = seed_statistics.bootstrap_difference([5.0, 5.0, 5.0], [2.0, 2.0, 2.0])
  assert (point.estimate, point.low, point.high) == (3.0, 3.0, 3.0)
  assert point.cell() == "+3.000 [+3.000, +3.000] *"


def test_two_seeds_give_an_interval_but_no_finding():
  two = seed_statistics.bootstrap_difference([5.0, 5.2], [2.0, 2.1, 2.2])
  assert two.excludes_zero and not two.is_finding and two.seeds == (2, 3)
  assert two.cell().endswith("] (2 seeds)")
  three = seed_statistics.bootstrap_difference([5.0, 5.2, 5.1], [2.0, 2.1, 2.2])
  assert three.is_finding and three.cell().endswith("] *")


def test_non_finite_seeds_are_left_out_and_reproducible():
  with_nan = seed_statistics.bootstrap_difference([1.0, np.nan, 2.0], [0.0, 1.0])
  without = seed_statistics.bootstrap_difference([1.0, 2.0], [0.0, 1.0])
  assert with_nan == without
  assert np.isnan(seed_statistics.bootstrap_difference([np.inf], [1.0]).estimate)
  assert seed_statistics.mean_std([1.0, 3.0, np.nan]) == (2.0, pytest.approx(np.sqrt(2)))


def test_one_seed_on_either_side_gives_no_interval_and_no_star():
  lone = seed_statistics.bootstrap_difference([1.49], [1.7, 1.8, 1.9])
  assert lone.estimate == pytest.approx(-0.31) and not lone.is_finding
  assert lone.cell() == "-0.310 [no interval: 1 seed]"
  assert seed_statistics.bootstrap_difference([1.49], [1.77]).cell() == (
      "-0.280 [no interval: 1 seed]")
  assert np.isnan(seed_statistics.mean_std([1.49])[1])
  assert seed_statistics.mean_std_cell([1.49]) == "1.490"
  assert seed_statistics.mean_std_cell([1.0, 3.0]) == "2.000 ± 1.414"
  assert seed_statistics.mean_std_cell([np.nan]) == "n/a"


def test_values_below_a_hundredth_keep_two_significant_digits():
  """A collapsed mixture's within-component spread (4e-4) must not print as 0.000."""
  assert seed_statistics.number_cell(0.0004) == "0.00040"
  assert seed_statistics.number_cell(20.296) == "20.296"
  assert seed_statistics.number_cell(0.0) == "0.000"
  assert seed_statistics.number_cell(np.nan) == "n/a"
  assert seed_statistics.mean_std_cell([0.0002, 0.0009]) == "0.00055 ± 0.00049"
  assert seed_statistics.bootstrap_difference([0.0004], [17.5]).cell() == (
      "-17.500 [no interval: 1 seed]")
  assert seed_statistics.bootstrap_difference([0.0004, 0.0004], [0.0001, 0.0001]).cell() == (
      "+0.00030 [+0.00030, +0.00030] (2 seeds)")

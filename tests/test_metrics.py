"""Scores against direct computations and known answers."""

import numpy as np
import pytest

from deligan_jax import metrics


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

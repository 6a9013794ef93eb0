"""The 2-D data sets and the table of benchmarks/toy_points_defaults.py (which chose the
defaults of configs/toy.py:points)."""

import numpy as np

from benchmarks import toy_points_defaults
from deligan_jax.data import points as points_lib
from deligan_jax.scores import metrics


def test_data_sets_fit_the_generator_and_hold_their_modes_in_their_shares():
  for name, (points, centres, std, weights) in toy_points_defaults.datasets(4000).items():
    points_lib.check_generator_range(points, name)   # inside (-1, 1): no refusal
    stats = metrics.toy_mode_stats(points, centres, std)
    assert stats["modes_covered"] == len(centres), name
    assert stats["high_quality_fraction"] > 0.98, name  # 3 std in 2-D hold 98.9%
    shares = np.array(stats["nearest_mode_counts"]) / len(points)
    np.testing.assert_allclose(shares, weights, atol=0.03, err_msg=name)


def test_table_gives_mean_std_and_every_seed():
  rows = [{"data": "ring", "model": "gan", "setting": "official", "seed": s, "modes": 8,
           "modes_covered": c, "high_quality": q} for s, (c, q) in enumerate([(0, 0.0), (8, 0.5),
                                                                            (7, 0.7)])]
  line = toy_points_defaults.table(rows).splitlines()[-1]
  assert line == "| ring | gan | official | 5.0 ± 4.4 of 8 | 40 ± 36 | 0, 8, 7 |"


def test_the_papers_toy_keeps_the_official_settings_and_points_takes_the_measured_ones():
  from configs import toy
  for data in ("bimodal", "unimodal"):
    config = toy.get_config(data)
    assert config.network.linear_init == "uniform_unit_scaling"
    assert config.latent.eps_draw == "per_batch" and config.balance.kind == "count"
  points = toy.get_config("points")
  assert points.network.linear_init == "glorot_uniform" and points.latent.eps_draw == "per_update"
  assert (points.balance.kind, points.balance.inner_updates, points.balance.fixed_d_updates) == (
      "fixed", 2, 1)
  # The benchmark's official arms train under the paper's rule, whatever points' defaults.
  assert toy_points_defaults.official_balance()["balance.kind"] == "count"

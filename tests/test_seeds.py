"""Many seeds in one program: seed s of a vmapped run equals a run with seed s alone."""

import json

import jax
import numpy as np
import pytest

from deligan_jax import sampling, training
from deligan_jax.experiment import Experiment
from deligan_jax.data import points
from tests.conftest import small_config, training_gaps_within_bound


@pytest.mark.parametrize("experiment, variant", [("toy", "bimodal,deligan"),
                                                 ("mnist", "deligan")])
def test_vmapped_seed_equals_single_run(experiment, variant):
  config = small_config(experiment, variant)
  x = (points.toy_points("bimodal", 64) if experiment == "toy" else
       np.random.default_rng(0).uniform(-1, 1, (32, 28, 28, 1)).astype(np.float32))

  def trainer(num_seeds):
    return Experiment.from_config(config).driver(x, num_seeds=num_seeds)

  many = trainer(3)
  stacked, metrics = many.run(many.init_state(10), 6)
  assert metrics["g_loss"].shape == (3, 6)
  one = trainer(1)
  for offset in (0, 2):
    single, single_metrics = one.run(one.init_state(10 + offset), 6)
    seed = jax.tree.map(lambda leaf: leaf[offset], stacked)
    report = training_gaps_within_bound(config, seed, single, x, 6)
    assert report["within_bound"], report
    np.testing.assert_array_equal(metrics["g_updates"][offset], single_metrics["g_updates"])
  assert not np.allclose(stacked.params["mixture"]["mu"][0], stacked.params["mixture"]["mu"][1])


def test_num_seeds_writes_per_seed_runs_and_a_summary(tmp_path):
  config = small_config("toy", "bimodal,deligan")
  config.num_seeds = 3
  config.seed = 4
  state = training.train_and_evaluate(config, str(tmp_path))
  assert state.params["mixture"]["mu"].shape[0] == 3
  for seed in (4, 5, 6):
    run = tmp_path / f"seed_{seed}"
    for name in ("config.json", "metrics.jsonl", "samples.png", "loss_curves.png",
                 "samples/step_0000008.png"):
      assert (run / name).is_file(), (seed, name)
    assert json.loads((run / "config.json").read_text())["seed"] == seed
    assert sampling.from_run(str(run), 8).shape == (8, 2)  # each seed folder is a run
  summary = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  per_seed = [[json.loads(l) for l in (tmp_path / f"seed_{s}" / "metrics.jsonl")
               .read_text().splitlines()] for s in (4, 5, 6)]
  values = [runs[-1]["g_loss"] for runs in per_seed]
  assert summary[-1]["g_loss"] == pytest.approx(np.mean(values))
  assert summary[-1]["g_loss_std"] == pytest.approx(np.std(values, ddof=1))

  config.num_steps = 16  # resume all three seeds
  resumed = training.train_and_evaluate(config, str(tmp_path))
  assert list(np.asarray(resumed.step)) == [16, 16, 16]

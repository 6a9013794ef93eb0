"""Run by tests/test_multidevice.py in a fresh process with 8 simulated CPU devices.

Trains the same small config on a 1-device mesh and on an 8-device mesh and
prints, as JSON, how far the results are apart and the float32 bound on that gap
(``conftest.training_gaps_within_bound``). With ``--wrong_row`` it also trains on
8 devices with one real row replaced, as a sharding
bug that loads the wrong sample would, and reports that gap, to show the bound
catches such a bug.
"""

import json
import sys

import jax
import numpy as np

from deligan_jax.experiment import Experiment
from deligan_jax.step.driver import make_mesh
from deligan_jax.data import points
from tests.conftest import small_config, training_difference, training_gaps_within_bound

NUM_BATCHES = 6


def train(config, x, devices):
  trainer = Experiment.from_config(config).driver(x, make_mesh(devices))
  state, _ = trainer.run(trainer.init_state(0), NUM_BATCHES)
  return state


def main(experiment, variant, *flags):
  config = small_config(experiment, variant)
  if experiment == "toy":
    x = points.toy_points("bimodal", 48)  # 6 batches of 8: every row is trained on
  else:
    x = np.random.default_rng(0).uniform(-1, 1, (32, 28, 28, 1)).astype(np.float32)
  one = train(config, x, jax.devices()[:1])
  eight = train(config, x, jax.devices()[:8])
  report = training_gaps_within_bound(config, one, eight, x, NUM_BATCHES)
  report.update(devices=len(jax.devices()),
                thres_equal=float(one.balance.thres) == float(eight.balance.thres))
  if "--wrong_row" in flags:
    wrong = x.copy()
    wrong[-1] = x[0]  # one device is handed row 0's sample in place of its own
    report["wrong_row_output_diff"] = training_difference(
        config, one, train(config, wrong, jax.devices()[:8]), x)["output_diff"]
  print(json.dumps(report))


if __name__ == "__main__":
  main(*sys.argv[1:])

"""Run by tests/test_multidevice.py in a fresh process with 8 simulated CPU devices.

Trains the same small config on a 1-device mesh and on an 8-device mesh and
prints, as JSON, how far the results are apart (``conftest.training_difference``).
"""

import json
import sys

import jax
import numpy as np

from deligan_jax import balancing, models, train_step
from deligan_jax.data import points
from tests.conftest import small_config, training_difference


def train(config, x, devices, num_batches):
  trainer = train_step.Trainer(models.build(config),
                               balancing.BalanceRule.from_config(config.balance),
                               train_step.StepConfig.from_config(config), x,
                               train_step.make_mesh(devices))
  state, _ = trainer.train(trainer.init_state(0), num_batches)
  return state


def main(experiment, variant):
  config = small_config(experiment, variant)
  if experiment == "toy":
    x = points.toy_points("bimodal", 64)
  else:
    x = np.random.default_rng(0).uniform(-1, 1, (32, 28, 28, 1)).astype(np.float32)
  one = train(config, x, jax.devices()[:1], 6)
  eight = train(config, x, jax.devices()[:8], 6)
  param_gap, output_gap = training_difference(config, one, eight, x)
  print(json.dumps({"devices": len(jax.devices()), "max_abs_diff": param_gap,
                    "output_diff": output_gap,
                    "thres_equal": float(one.balance.thres) == float(eight.balance.thres)}))


if __name__ == "__main__":
  main(*sys.argv[1:])

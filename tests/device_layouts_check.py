"""Run by tests/test_device_layouts.py in a fresh process with 8 simulated CPU devices.

Trains the toy config at the paper's batch of 50 with ``num_seeds`` 1 and 8 on
pools of 1, 2, 4 and 8 devices, and compares every seed with a one-device run
of that seed alone. Prints one JSON line per (devices, num_seeds): the layout,
the idle-devices note, and each seed's ``conftest.training_gaps_within_bound``.
"""

import json
import sys

import jax

from deligan_jax.experiment import Experiment
from deligan_jax.step.driver import make_mesh
from deligan_jax.data import points
from tests.conftest import small_config, training_gaps_within_bound

NUM_BATCHES = 3
BATCH = 50


def trainer(config, x, num_devices, num_seeds):
  return Experiment.from_config(config).driver(x, make_mesh(jax.devices()[:num_devices]), num_seeds)


def main(device_counts, seed_counts):
  config = small_config("toy", "bimodal,deligan", batch_size=BATCH)
  x = points.toy_points("bimodal", NUM_BATCHES * BATCH)  # every row is trained on
  alone = trainer(config, x, 1, 1)
  singles = [alone.run(alone.init_state(seed), NUM_BATCHES)[0]
             for seed in range(max(seed_counts))]
  for num_devices in device_counts:
    for num_seeds in seed_counts:
      run = trainer(config, x, num_devices, num_seeds)
      state, _ = run.run(run.init_state(0), NUM_BATCHES)
      reports = []
      for seed in range(num_seeds):
        one = state if num_seeds == 1 else jax.tree.map(lambda leaf: leaf[seed], state)
        reports.append(training_gaps_within_bound(config, one, singles[seed], x, NUM_BATCHES))
      print(json.dumps({"devices": num_devices, "num_seeds": num_seeds,
                        "layout": [run.layout.seeds, run.layout.data],
                        "state_devices": len(jax.tree.leaves(state)[0].sharding.device_set),
                        "idle_note": run.idle_note, "seeds": reports}), flush=True)


if __name__ == "__main__":
  main(*[[int(n) for n in arg.split(",")] for arg in sys.argv[1:]])

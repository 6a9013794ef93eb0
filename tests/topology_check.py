"""Run by tests/test_topology.py in fresh processes with simulated CPU devices.

``train WORKDIR NUM_SEEDS`` trains the toy config for 8 batches on every device
at hand; ``read WORKDIR NUM_SEEDS`` samples and evaluates each seed's run, then
resumes the run to 12 batches. Both print one JSON line: the device count and,
for each seed folder, the samples that ``sampling.from_run`` draws (and after
``read``, the evaluation's mode count and the logged steps).
"""

import json
import sys

import jax

from deligan_jax import sampling, training
from deligan_jax.runs import checkpoints
from deligan_jax.scores import evaluation
from deligan_jax.runs import metrics_log as run_log
from tests.conftest import small_config


def config_for(num_seeds: int, num_steps: int):
  config = small_config("toy", "bimodal,deligan")
  config.num_seeds = num_seeds
  config.num_steps = num_steps
  return config


def main(mode: str, workdir: str, num_seeds: int) -> None:
  config = config_for(num_seeds, 8)
  if mode == "train":
    training.train_and_evaluate(config, workdir)
  seeds = {}
  for seed_workdir in checkpoints.run_workdirs(config, workdir):
    seeds[seed_workdir] = {"samples": sampling.from_run(seed_workdir, 4).tolist()}
    if mode == "read":
      scores = evaluation.evaluate(seed_workdir, num_samples=64)
      seeds[seed_workdir]["modes_covered"] = scores["modes"]["modes_covered"]
  if mode == "read":
    training.train_and_evaluate(config_for(num_seeds, 12), workdir)
    for seed_workdir in seeds:
      seeds[seed_workdir]["steps"] = [r["step"] for r in run_log.read_metrics(seed_workdir)]
  print(json.dumps({"devices": jax.device_count(), "seeds": seeds}))


if __name__ == "__main__":
  main(sys.argv[1], sys.argv[2], int(sys.argv[3]))

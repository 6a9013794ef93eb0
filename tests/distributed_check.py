"""Run by tests/test_distributed.py: one process of a run over several, or a run alone.

``python -m tests.distributed_check ADDRESS NUM_PROCESSES PROCESS_ID ROOT RUNS`` trains
each of ``RUNS`` (``name:num_seeds:num_steps[:batch_size]`` joined by commas; ``name`` toy or
mnist, the small configs of the other tests) into ``ROOT/<name>_<num_seeds>``;
a run refused with one line is reported with that line.
With ``ADDRESS`` 'none' it is a run of one process on every device at hand;
otherwise this is process ``PROCESS_ID`` of ``NUM_PROCESSES`` meeting at
``ADDRESS``. Prints one JSON line: the process, its devices and the run's
global devices, the shards of the training set this process holds, and each
run's mesh.
"""

import json
import os
import sys

import jax

from deligan_jax import config as config_lib
from deligan_jax import errors
from deligan_jax import training
from deligan_jax.step import distributed
from deligan_jax.data import datasets
from tests.conftest import small_config

# Seconds after which a process that stopped counts as lost; short, so that a test that
# kills one process does not wait JAX's default 100 s for the other to end.
HEARTBEAT_TIMEOUT = 20


def config_for(name: str, num_seeds: int, num_steps: int, address: str | None,
               num_processes: int, process_id: int, batch_size: int = 8):
  config = small_config(name, "bimodal,deligan" if name == "toy" else None, batch_size)
  config.num_seeds = num_seeds
  config.num_steps = num_steps
  if address is not None:
    config.distributed.enabled = True
    config.distributed.coordinator_address = address
    config.distributed.num_processes = num_processes
    config.distributed.process_id = process_id
    config.distributed.initialization_timeout = 60
    config.distributed.heartbeat_timeout = HEARTBEAT_TIMEOUT
  config_lib.validate(config)
  return config


def main(address: str, num_processes: int, process_id: int, root: str, runs: str) -> None:
  address = None if address == "none" else address
  specs = [(name, int(seeds), int(steps), *map(int, batch))
           for name, seeds, steps, *batch in (run.split(":") for run in runs.split(","))]
  configs = [config_for(*spec[:3], address, num_processes, process_id, *spec[3:])
             for spec in specs]
  distributed.initialize(configs[0].distributed)
  report = {"process": jax.process_index(), "processes": jax.process_count(),
            "devices": jax.device_count(), "local_devices": jax.local_device_count(),
            "runs": {}}
  for (name, num_seeds, *_), config in zip(specs, configs):
    workdir = os.path.join(root, f"{name}_{num_seeds}_{config.batch_size}")
    try:
      with distributed.one_line_when_a_process_stops():
        state = training.train_and_evaluate(config, workdir)
    except errors.UserError as error:
      report["runs"][workdir] = {"refused": str(error)}
      continue
    leaf = jax.tree.leaves(state.params)[0]
    x = datasets.load(config.data).x
    report["runs"][workdir] = {
        "mesh": dict(leaf.sharding.mesh.shape) if hasattr(leaf.sharding, "mesh") else None,
        "state_devices": len(leaf.sharding.device_set),
        "local_shards": len(leaf.addressable_shards),
        "train_rows": len(x)}
  print(json.dumps(report), flush=True)


if __name__ == "__main__":
  main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5])

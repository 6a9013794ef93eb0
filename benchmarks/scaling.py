r"""One process with 4 devices against two processes with 2 devices each, same mesh.

  python -m benchmarks.scaling                  # MNIST, paper widths, 2 seeds
  python -m benchmarks.scaling --experiment toy --num_seeds 4

Simulated CPU devices (``--xla_force_host_platform_device_count``) on this
machine: both set-ups run the same ``seeds`` x ``data`` program on 4 devices;
the two processes exchange their collectives through gloo (TCP on localhost)
where one process does them in memory. Each set-up trains ``--dispatches``
timed dispatches of ``--steps_per_dispatch`` batches after one untimed one
(compilation) and reports the time per update and updates per second (all
seeds), with the ratio against one process. It then prints, on paper, the bytes
each update all-reduces over each mesh axis on a v4-32 pod slice (16 chips),
from the parameter counts of the paper-width networks.
"""

import json
import os
import socket
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from absl import flags  # noqa: E402  (after the path above)

FLAGS = flags.FLAGS

DEVICES = 4


def worker(args) -> None:
  """One process of a set-up: trains and prints its timing as JSON (process 0)."""
  import jax  # noqa: PLC0415  (after XLA_FLAGS is set by the parent)

  from deligan_jax.data import datasets
  from deligan_jax.experiment import Experiment
  from deligan_jax.step import distributed
  from tests.conftest import load_config

  config = load_config(args.experiment, "bimodal,deligan" if args.experiment == "toy" else None)
  config.num_seeds = args.num_seeds
  config.steps_per_dispatch = args.steps_per_dispatch
  if args.address:
    config.distributed.enabled = True
    config.distributed.coordinator_address = args.address
    config.distributed.num_processes = args.num_processes
    config.distributed.process_id = args.process_id
    config.distributed.initialization_timeout = 120
  distributed.initialize(config.distributed)
  trainer = Experiment.from_config(config).driver(datasets.load(config.data).x)
  state = trainer.init_state(config.seed)
  state, _ = trainer.run(state, args.steps_per_dispatch)  # compiles
  jax.block_until_ready(state)
  start = time.perf_counter()
  for _ in range(args.dispatches):
    state, metrics = trainer.run(state, args.steps_per_dispatch)
    distributed.fetch(metrics)  # what the training loop waits for after each dispatch
  seconds = time.perf_counter() - start
  updates = args.dispatches * args.steps_per_dispatch * trainer.rule.inner_updates
  if distributed.is_primary():
    print(json.dumps({"layout": [trainer.layout.seeds, trainer.layout.data],
                      "seconds_per_update": seconds / updates,
                      "updates_per_second": updates * args.num_seeds / seconds}), flush=True)


def run_setup(args, num_processes: int) -> dict:
  env = dict(os.environ, PYTHONPATH=REPO, XLA_FLAGS=(
      f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count="
      f"{DEVICES // num_processes}").strip())
  address = ""
  if num_processes > 1:
    with socket.socket() as s:
      s.bind(("localhost", 0))
      address = f"localhost:{s.getsockname()[1]}"
  common = [sys.executable, os.path.abspath(__file__), "--worker", f"--experiment={args.experiment}",
            f"--num_seeds={args.num_seeds}", f"--dispatches={args.dispatches}",
            f"--steps_per_dispatch={args.steps_per_dispatch}",
            f"--num_processes={num_processes}", f"--address={address}"]
  processes = [subprocess.Popen([*common, f"--process_id={k}"], cwd=REPO, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for k in range(num_processes)]
  outputs = [p.communicate() for p in processes]
  for p, (_, err) in zip(processes, outputs):
    if p.returncode:
      sys.exit(f"a process of the {num_processes}-process set-up failed:\n{err[-3000:]}")
  return json.loads(outputs[0][0].strip().splitlines()[-1])


def parameter_counts(name: str):
  """Parameters of each network at the config's (paper) widths, and the config."""
  import jax  # noqa: PLC0415

  from deligan_jax.experiment import Experiment  # noqa: PLC0415
  from tests.conftest import load_config  # noqa: PLC0415

  config = load_config(name)
  state = Experiment.from_config(config).abstract_state()
  return {net: sum(leaf.size for leaf in jax.tree.leaves(params))
          for net, params in state.params.items()}, config


def on_paper() -> None:
  """Bytes each update all-reduces per mesh axis on a v4-32 slice, paper batch of 50."""
  from deligan_jax.step import device_layout  # noqa: PLC0415

  print("\nOn paper: a v4-32 pod slice (4 hosts x 4 chips; each v4 chip is one JAX device: "
        "16 devices), float32 gradients")
  print("| config | seeds x data (num_seeds) | G+mixture params | D params | data axis: "
        "all-reduced per G update | per D update | seeds axis |")
  print("| --- | --- | --- | --- | --- | --- | --- |")
  for name in ("mnist", "cifar10"):
    counts, config = parameter_counts(name)
    g = counts.get("generator", 0) + counts.get("mixture", 0)
    d = counts["discriminator"]
    for num_seeds in (1, 8):
      layout = device_layout.Layout.plan(16, num_seeds, config.batch_size)
      # A ring all-reduce over n devices sends 2 (n - 1) / n of the buffer from each device.
      factor = 2 * (layout.data - 1) / layout.data
      print(f"| {name} | {layout.seeds} x {layout.data} ({num_seeds}) | {g:,} | {d:,} | "
            f"{4 * g / 1e6:.2f} MB ({factor * 4 * g / 1e6:.2f} MB sent a device) | "
            f"{4 * d / 1e6:.2f} MB ({factor * 4 * d / 1e6:.2f} MB sent a device) | 0 |")


def define_flags() -> None:
  flags.DEFINE_enum("experiment", "mnist", ("mnist", "toy"), "The experiment's config.")
  # 2: the paper's batch of 50 splits over 2 devices, so 1 seed would leave 2 of 4 idle
  # (refused across processes).
  flags.DEFINE_integer("num_seeds", 2, "Seeds trained together.", lower_bound=1)
  flags.DEFINE_integer("dispatches", 3, "Timed dispatches.", lower_bound=1)
  flags.DEFINE_integer("steps_per_dispatch", 5, "Batches per dispatch.", lower_bound=1)
  flags.DEFINE_bool("paper_only", False, "Only the v4-32 figures.")
  # Set by the parent for the processes it starts.
  flags.DEFINE_bool("worker", False, "One process of a set-up.")
  flags.DEFINE_string("address", "", "The coordinator of a set-up's processes.")
  flags.DEFINE_integer("num_processes", 1, "Processes of the set-up.")
  flags.DEFINE_integer("process_id", 0, "This process.")


def main(argv) -> None:
  del argv
  args = FLAGS
  if args.worker:
    worker(args)
    return
  if not args.paper_only:
    figures = {n: run_setup(args, n) for n in (1, 2)}
    base = figures[1]
    print(f"{args.experiment}, num_seeds={args.num_seeds}, {args.dispatches} x "
          f"{args.steps_per_dispatch} batches timed, {DEVICES} simulated CPU devices "
          f"on {os.cpu_count()} cores")
    print("| set-up | seeds x data | s / update | updates / s | vs 1 x 4 |")
    print("| --- | --- | --- | --- | --- |")
    for n, f in figures.items():
      print(f"| {n} process{'es' if n > 1 else ''} x {DEVICES // n} devices | "
            f"{f['layout'][0]} x {f['layout'][1]} | {f['seconds_per_update']:.4f} | "
            f"{f['updates_per_second']:.1f} | "
            f"{base['seconds_per_update'] / f['seconds_per_update']:.2f} |")
  on_paper()


if __name__ == "__main__":
  from deligan_jax import cli  # noqa: E402  (after the path above)
  cli.run(main, define_flags)

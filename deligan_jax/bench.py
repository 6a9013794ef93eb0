r"""Benchmarks the train step: time per balanced update, compile time, peak memory.

  python bench.py --config configs/mnist.py
  python bench.py --config configs/mnist.py --quick --json

Two ways of dispatching are measured for each batch size:

* ``fused``: ``steps_per_dispatch`` batches x ``inner_updates`` balanced updates
  per device call (how ``train.py`` runs);
* ``per_update``: one balanced update (probe + G or D step) per device call,
  the host looping, as a naive implementation would.

With ``--train_sizes`` it measures instead how the cost of an update depends
on the size of the training set (fused, the config's batch and first dtype), and
prints each size's time relative to the first:

  python bench.py --config configs/toy.py --train_sizes=400,1000000
  python bench.py --config configs/mnist.py --train_sizes=500,60000
  python bench.py --config configs/cifar10.py --train_sizes=2000,50000

Speed does not depend on the pixel values, so the bench trains on random
images of the config's shape (for full CIFAR-10 too, whatever is on disk). With ``batch`` assignment the number of mixture
components follows the batch size. Times are medians over ``--repeats`` calls
after a warm-up; ``us_per_update`` is wall time per balanced update.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import time

import jax
import numpy as np
from absl import app
from absl import flags
from ml_collections import config_flags

from deligan_jax import balancing
from deligan_jax import models
from deligan_jax import networks
from deligan_jax import train_step

FLAGS = flags.FLAGS


def define_flags() -> None:
  """The command line; defined by the entry point, not on import (absl flags are global)."""
  config_flags.DEFINE_config_file("config", None, "Experiment config file (path[:arg]).")
  flags.DEFINE_list("batch_sizes", None, "Batch sizes to measure (default: the config's, x4, x16).")
  flags.DEFINE_list("dtypes", ["float32", "bfloat16"],
                    "Compute dtypes of the fused measurement (per-update uses the first).")
  flags.DEFINE_integer("repeats", 5, "Timed calls per measurement (the median is reported).")
  flags.DEFINE_list("train_sizes", None,
                    "Training-set sizes to compare (time per update relative to the first).")
  flags.DEFINE_bool("quick", False, "Fewer, shorter measurements (under 2 minutes on a CPU).")
  flags.DEFINE_bool("json", False, "Print one JSON object per measurement instead of a table.")
  flags.mark_flags_as_required(["config"])


def peak_memory_bytes() -> int | None:
  """The device's peak allocation, where the backend reports it (not on CPU)."""
  stats = jax.local_devices()[0].memory_stats() or {}
  return stats.get("peak_bytes_in_use")


def _compiled(config, batch_size: int, mode: str, batches_per_call: int, dtype: str,
              train_size: int | None = None):
  """The compiled fused step of ``config`` at one batch size and dtype, its state and stats."""
  config = config.copy_and_resolve_references()
  with config.unlocked():
    config.batch_size = batch_size
    config.network.dtype = dtype
    if config.latent.assignment == "batch":
      config.latent.num_components = batch_size
  rule = balancing.BalanceRule.from_config(config.balance)
  if mode == "per_update":
    rule = dataclasses.replace(rule, inner_updates=1)
  shape = networks.SAMPLE_SHAPES[config.network.name]
  train_size = train_size or max(10 * batch_size, 500)
  rng = np.random.default_rng(0)
  train_x = rng.uniform(-1, 1, (train_size, *shape)).astype(np.float32)
  labels = rng.integers(0, 10, train_size) if config.objective == "semi_supervised" else None
  trainer = train_step.Trainer(models.build(config), rule,
                               train_step.StepConfig.from_config(config), train_x,
                               train_step.make_mesh(), train_labels=labels)
  state = trainer.init_state(config.seed)
  start = time.perf_counter()
  compiled = trainer.lower(state, batches_per_call).compile()
  compile_s = time.perf_counter() - start
  state, _ = compiled(state)  # warm-up
  jax.block_until_ready(state)
  return compiled, state, {
      "model": config.model,
      "network": config.network.name,
      "batch_size": batch_size,
      "mode": mode,
      "dtype": dtype,
      "updates_per_call": batches_per_call * rule.inner_updates,
      "compile_s": compile_s,
      "device": f"{jax.devices()[0].device_kind} x{jax.device_count()}",
      "backend": jax.default_backend(),
      "conv_impl": dict(trainer.model.generator.network_kwargs).get("conv_impl", "-"),
  }


def _timed_call(compiled, state):
  start = time.perf_counter()
  state, _ = compiled(state)
  jax.block_until_ready(state)
  return state, time.perf_counter() - start


def _timing(row: dict, seconds: list[float]) -> dict:
  per_call = statistics.median(seconds)
  updates = row["updates_per_call"]
  return {**row, "us_per_update": 1e6 * per_call / updates, "updates_per_s": updates / per_call}


def measure(config, batch_size: int, mode: str, batches_per_call: int, repeats: int,
            dtype: str) -> dict:
  """Compiles and times one dispatch mode at one batch size and compute dtype."""
  compiled, state, row = _compiled(config, batch_size, mode, batches_per_call, dtype)
  seconds = []
  for _ in range(repeats):
    state, elapsed = _timed_call(compiled, state)
    seconds.append(elapsed)
  return _timing({**row, "peak_memory_bytes": peak_memory_bytes()}, seconds)


def measure_train_sizes(config, train_sizes: list[int], batches_per_call: int, repeats: int,
                        dtype: str) -> list[dict]:
  """Time per fused update for each training-set size, and its ratio to the first size's.

  The sizes' calls alternate, so that a slow spell of a shared machine hits all alike.
  """
  runs = [_compiled(config, config.batch_size, "fused", batches_per_call, dtype, n)
          for n in train_sizes]
  states = [state for _, state, _ in runs]
  seconds = [[] for _ in runs]
  for _ in range(repeats):
    for k, (compiled, _, _) in enumerate(runs):
      states[k], elapsed = _timed_call(compiled, states[k])
      seconds[k].append(elapsed)
  rows = [_timing({**row, "train_size": n}, s)
          for n, (_, _, row), s in zip(train_sizes, runs, seconds)]
  for row in rows:
    row["ratio_to_first"] = row["us_per_update"] / rows[0]["us_per_update"]
  return rows


def run(config, batch_sizes: list[int], dtypes: list[str], quick: bool, repeats: int):
  """Yields the measurements: per batch size, fused per dtype, then per-update."""
  fused_batches = 4 if quick else config.steps_per_dispatch
  for batch_size in batch_sizes:
    for dtype in dtypes:
      yield measure(config, batch_size, "fused", fused_batches, repeats, dtype)
    yield measure(config, batch_size, "per_update", 1, 5 * repeats, dtypes[0])


def format_row(m: dict) -> str:
  memory = "-" if m["peak_memory_bytes"] is None else f"{m['peak_memory_bytes'] / 2**20:.0f}"
  return (f"| {m['batch_size']} | {m['mode']} | {m['dtype']} | {m['us_per_update'] / 1000:.2f} | "
          f"{m['updates_per_s']:.0f} | {m['compile_s']:.1f} | {memory} |")


def format_size_row(m: dict) -> str:
  return (f"| {m['train_size']} | {m['batch_size']} | {m['us_per_update'] / 1000:.3f} | "
          f"{m['updates_per_s']:.0f} | {m['ratio_to_first']:.3f} |")


def main(argv):
  del argv
  config = FLAGS.config
  repeats = 3 if FLAGS.quick else FLAGS.repeats
  if FLAGS.train_sizes:
    rows = measure_train_sizes(config, [int(n) for n in FLAGS.train_sizes],
                               4 if FLAGS.quick else config.steps_per_dispatch, repeats,
                               FLAGS.dtypes[0])
    if not FLAGS.json:
      print(f"{config.model} on {config.network.name}, {rows[0]['device']} "
            f"({rows[0]['backend']}), {FLAGS.dtypes[0]}")
      print("| training samples | batch | ms/update | updates/s | time / first size's |")
      print("| --- | --- | --- | --- | --- |")
    for row in rows:
      print(json.dumps(row) if FLAGS.json else format_size_row(row), flush=True)
    return
  if FLAGS.batch_sizes:
    batch_sizes = [int(b) for b in FLAGS.batch_sizes]
  else:
    batch_sizes = [config.batch_size] if FLAGS.quick else [config.batch_size * k
                                                           for k in (1, 4, 16)]
  if not FLAGS.json:
    print(f"{config.model} on {config.network.name}, {jax.devices()[0].device_kind} "
          f"x{jax.device_count()} ({jax.default_backend()})")
    print("| batch | dispatch | dtype | ms/update | updates/s | compile s | peak MiB |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
  for measurement in run(config, batch_sizes, FLAGS.dtypes, FLAGS.quick, repeats):
    print(json.dumps(measurement) if FLAGS.json else format_row(measurement), flush=True)


if __name__ == "__main__":
  define_flags()
  app.run(main)

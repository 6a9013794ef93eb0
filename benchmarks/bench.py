r"""Benchmarks the train step: time per balanced update, compile time, peak memory.

  python bench.py --config configs/mnist.py
  python bench.py --config configs/mnist.py --quick --json

Two ways of dispatching are measured for each batch size:

* ``fused``: ``steps_per_dispatch`` batches x ``inner_updates`` balanced updates
  per device call (how ``train.py`` runs);
* ``per_update``: one balanced update (probe + G or D step) per device call,
  the host looping, as a naive implementation would.

With ``--scaling`` it measures instead how the cost of an update depends on
the size of the training set: for each dataset named, the experiment config's
training set (the paper's) against a full one, fused, at the config's batch and
the first dtype, with the time ratio, its target and compile seconds of each:

  python bench.py --scaling=toy,mnist,cifar10

toy: 400 points against 1,000,000; mnist: 500 images against 60000
(``data.per_class=0``); cifar10: 2000 against 50000. The image data is read
from ``DELIGAN_DATA_DIR``; a CIFAR-10 copy with fewer than 50000 training images
(some batches only) is tiled up to 50000, which the output says: the cost of an
update does not depend on the pixel values.

Otherwise speed does not depend on the pixel values either, so the bench trains
on random images of the config's shape. With ``batch`` assignment the number of mixture
components follows the batch size. Times are medians over ``--repeats`` calls
after a warm-up; ``us_per_update`` is wall time per balanced update.

Where PyTorch is installed (``pip install .[bench]``), the MNIST DeLiGAN model
is also timed in PyTorch eager (:mod:`benchmarks.torch_peer`: the same
networks, mixture, losses, Adam and streak rule, with the probe read on the
host), in the same process, and every row reports ``vs_torch``: its time per
update over PyTorch's at the same batch size (below 1 is faster).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import statistics
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from absl import app
from absl import flags
from ml_collections import config_flags

from deligan_jax.data import datasets
from deligan_jax import cli
from deligan_jax import errors
from deligan_jax import models
from deligan_jax.models import networks
from deligan_jax.experiment import Experiment

FLAGS = flags.FLAGS

# The scaling bench's datasets: configs/<file>.py's training set (the paper's) against the full
# one these data fields give, and the most the time per update may grow between them.
SCALING = {"toy": ("toy", {"num_points": 1_000_000}, 1.5),
           "mnist": ("mnist", {"per_class": 0}, 1.2),
           "cifar10": ("cifar10", {"num_train": 0}, 1.2)}
CIFAR10_TRAIN_IMAGES = 50_000  # full CIFAR-10's training set


def define_flags() -> None:
  """The command line; defined by the entry point, not on import (absl flags are global)."""
  config_flags.DEFINE_config_file("config", None, "Experiment config file (path[:arg]).")
  flags.DEFINE_list("batch_sizes", None, "Batch sizes to measure (default: the config's, x4, x16).")
  flags.DEFINE_list("dtypes", ["float32", "bfloat16"],
                    "Compute dtypes of the fused measurement (per-update uses the first).")
  flags.DEFINE_integer("repeats", 5, "Timed calls per measurement (the median is reported).")
  flags.DEFINE_list("scaling", None, f"Datasets ({', '.join(SCALING)}) whose paper-sized "
                    "training set is timed against a full one (--config is then not needed).")
  flags.DEFINE_bool("quick", False, "Fewer, shorter measurements (under 2 minutes on a CPU).")
  flags.DEFINE_bool("torch", True, "Also time the PyTorch eager peer, where torch is installed.")
  flags.DEFINE_integer("torch_threads", None,
                       "PyTorch's intra-op threads (default: its own choice, one per core).")
  flags.DEFINE_bool("json", False, "Print one JSON object per measurement instead of a table.")


def peak_memory_bytes() -> int | None:
  """The device's peak allocation, where the backend reports it (not on CPU)."""
  stats = jax.local_devices()[0].memory_stats() or {}
  return stats.get("peak_bytes_in_use")


def _resized(config, batch_size: int, dtype: str = "float32"):
  config = config.copy_and_resolve_references()
  with config.unlocked():
    config.batch_size = batch_size
    config.network.dtype = dtype
    if config.latent.assignment == "batch":
      config.latent.num_components = batch_size
  return config


def _random_images(config, batch_size: int) -> np.ndarray:
  shape = networks.SAMPLE_SHAPES[config.network.name]
  return np.random.default_rng(0).uniform(-1, 1, (max(10 * batch_size, 500), *shape)).astype(
      np.float32)


def has_torch_peer(config) -> bool:
  """Whether PyTorch is installed and the peer exists for this config (the MNIST DeLiGAN step)."""
  return (importlib.util.find_spec("torch") is not None and config.network.name == "mnist"
          and config.model == "deligan" and config.balance.kind == "streak"
          and not config.augment)


@dataclasses.dataclass
class Candidate:
  """One thing to time: ``call()`` runs ``updates`` balanced updates and waits for them."""
  row: dict
  call: Callable[[], None]
  updates: int


def torch_candidate(config, batch_size: int, batches: int) -> Candidate:
  """The PyTorch eager peer (float32, host-side loop) at one batch size."""
  import torch  # pylint: disable=import-outside-toplevel
  from benchmarks import torch_peer  # pylint: disable=import-outside-toplevel
  config = _resized(config, batch_size)
  peer = torch_peer.Peer(config, _random_images(config, batch_size))
  row = {"batch_size": batch_size, "mode": "torch_eager", "dtype": "float32",
         "compile_s": None, "peak_memory_bytes": None,
         "device": f"cpu, {torch.get_num_threads()} threads",
         "backend": f"torch {torch.__version__}", "conv_impl": "-"}
  return Candidate(row, lambda: peer.train(batches), batches * peer.rule.inner_updates)


def jax_candidate(config, batch_size: int, mode: str, batches_per_call: int,
                  dtype: str, train_set: datasets.Dataset | None = None) -> Candidate:
  """Compiles one dispatch mode of the JAX step at one batch size and compute dtype.

  ``per_update``: one update per device call, ``batches_per_call`` calls from the host.
  ``train_set``: what it trains on (default: random images of the config's shape).
  """
  config = _resized(config, batch_size, dtype)
  experiment = Experiment.from_config(config)
  if mode == "per_update":
    experiment = dataclasses.replace(
        experiment, rule=dataclasses.replace(experiment.rule, inner_updates=1))
  if train_set is None:
    train_x = _random_images(config, batch_size)
    labels = np.random.default_rng(1).integers(0, 10, len(train_x))  # CIFAR-10's classes
  else:
    train_x, labels = train_set.x, train_set.labels
  labels = labels if config.objective == "semi_supervised" else None
  trainer = experiment.driver(train_x, train_labels=labels)
  state = trainer.init_state(config.seed)
  start = time.perf_counter()
  per_update = mode == "per_update"
  compiled = trainer.lower(state, 1 if per_update else batches_per_call).compile()
  compile_s = time.perf_counter() - start

  def call():
    nonlocal state
    for _ in range(batches_per_call if per_update else 1):
      state, _ = compiled(state, trainer.train_set)
    jax.block_until_ready(state)

  row = {"batch_size": batch_size, "mode": mode, "dtype": dtype, "compile_s": compile_s,
         "peak_memory_bytes": None,
         "device": f"{jax.devices()[0].device_kind} x{jax.device_count()}",
         "backend": jax.default_backend(),
         "conv_impl": dict(trainer.model.generator.network_kwargs).get("conv_impl", "-"),
         "hlo": compiled.as_text()}
  return Candidate(row, call, batches_per_call * experiment.rule.inner_updates)


def time_alternately(candidates: list[Candidate], repeats: int) -> list[float]:
  """Median seconds per update of each candidate, their calls interleaved.

  On a shared machine the load changes from second to second; interleaving
  (in alternating order) exposes every candidate to the same load, so their
  ratios hold even where the absolute times do not.
  """
  for candidate in candidates:
    candidate.call()  # warm-up
  seconds = [[] for _ in candidates]
  for repeat in range(repeats):
    order = range(len(candidates)) if repeat % 2 == 0 else reversed(range(len(candidates)))
    for i in order:
      start = time.perf_counter()
      candidates[i].call()
      seconds[i].append((time.perf_counter() - start) / candidates[i].updates)
  return [statistics.median(s) for s in seconds]


def mbd_seconds(config, batch_size: int, repeats: int) -> float:
  """Minibatch discrimination alone (forward and gradient) on a real+generated D batch.

  It compares every pair of samples, so it grows as B²; the rest of the step as B.
  """
  discriminator = models.build(config).discriminator
  layer = networks.MinibatchDiscrimination(discriminator.mbd_kernels, discriminator.mbd_dims,
                                           data_init=config.network.name != "mnist")
  width = (2 if config.network.name == "cifar10" else 4) * discriminator.width  # its trunk's
  features = jax.random.normal(jax.random.key(0), (2 * batch_size, width))
  variables = layer.init(jax.random.key(1), features, groups=2)
  grad = jax.jit(jax.grad(lambda x: jnp.sum(layer.apply(variables, x, groups=2))))
  jax.block_until_ready(grad(features))
  seconds = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(grad(features))
    seconds.append(time.perf_counter() - start)
  return statistics.median(seconds)


def scaling_sets(name: str):
  """The experiment config of ``SCALING[name]`` and its (paper, full) training sets.

  A partial CIFAR-10 copy is tiled up to the full set's size (the returned note says so).
  """
  file, full_fields, _ = SCALING[name]
  config = importlib.import_module(f"configs.{file}").get_config()
  paper = datasets.load(config.data)
  full_data = config.data.copy_and_resolve_references()
  full_data.update(full_fields)
  full = datasets.load(full_data)
  note = ""
  if name == "cifar10" and len(full.x) < CIFAR10_TRAIN_IMAGES:
    note = f"{CIFAR10_TRAIN_IMAGES} tiled from the {len(full.x)} images present"
    full = full._replace(x=np.resize(full.x, (CIFAR10_TRAIN_IMAGES, *full.x.shape[1:])),
                         labels=np.resize(full.labels, CIFAR10_TRAIN_IMAGES))
  return config, (paper, full), note


def measure_scaling(name: str, quick: bool, repeats: int, dtype: str) -> list[dict]:
  """Time per fused update on the paper's and the full training set of ``name``, and their ratio."""
  config, train_sets, note = scaling_sets(name)
  batches_per_call = 4 if quick else config.steps_per_dispatch
  candidates = [jax_candidate(config, config.batch_size, "fused", batches_per_call, dtype,
                              train_set) for train_set in train_sets]
  seconds = time_alternately(candidates, repeats)
  target = SCALING[name][2]
  return [{**{k: v for k, v in c.row.items() if k != "hlo"}, "data": name,
           "train_size": len(train_set.x), "note": note if full else "",
           "updates_per_call": c.updates, "us_per_update": 1e6 * per_update,
           "updates_per_s": 1 / per_update, "ratio_to_paper": per_update / seconds[0],
           "target": target if full else None,
           "within_target": per_update / seconds[0] <= target if full else None}
          for full, (train_set, c, per_update) in enumerate(zip(train_sets, candidates, seconds))]


def run(config, batch_sizes: list[int], dtypes: list[str], quick: bool, repeats: int,
        with_torch: bool):
  """Yields the measurements of each batch size: fused per dtype, per-update, PyTorch's.

  With ``with_torch``, each row gets ``vs_torch``, its time over PyTorch's.
  """
  fused_batches = 4 if quick else config.steps_per_dispatch
  for batch_size in batch_sizes:
    candidates = [jax_candidate(config, batch_size, "fused", fused_batches, dtype)
                  for dtype in dtypes]
    candidates.append(jax_candidate(config, batch_size, "per_update", 5, dtypes[0]))
    if with_torch:
      candidates.append(torch_candidate(config, batch_size, 2 if quick else 10))
    seconds = time_alternately(candidates, repeats)
    mbd_ms = 1e3 * mbd_seconds(_resized(config, batch_size), batch_size, 5 * repeats)
    for candidate, per_update in zip(candidates, seconds):
      row = {k: v for k, v in candidate.row.items() if k != "hlo"}
      if row["backend"] == jax.default_backend():
        row["peak_memory_bytes"] = peak_memory_bytes()
      yield {"model": config.model, "network": config.network.name, **row,
             "updates_per_call": candidate.updates, "us_per_update": 1e6 * per_update,
             "updates_per_s": 1 / per_update,
             "vs_torch": per_update / seconds[-1] if with_torch else None,
             "mbd_ms": mbd_ms}


def format_row(m: dict) -> str:
  memory = "-" if m["peak_memory_bytes"] is None else f"{m['peak_memory_bytes'] / 2**20:.0f}"
  compile_s = "-" if m["compile_s"] is None else f"{m['compile_s']:.1f}"
  vs_torch = "-" if m["vs_torch"] is None else f"{m['vs_torch']:.2f}"
  return (f"| {m['batch_size']} | {m['mode']} | {m['dtype']} | {m['us_per_update'] / 1000:.2f} | "
          f"{m['updates_per_s']:.0f} | {vs_torch} | {m['mbd_ms']:.2f} | {compile_s} | {memory} |")


def format_scaling_row(m: dict) -> str:
  samples = f"{m['train_size']} ({m['note']})" if m["note"] else str(m["train_size"])
  target = ("" if m["target"] is None else
            f"<= {m['target']} ({'met' if m['within_target'] else 'MISSED'})")
  return (f"| {m['data']} | {samples} | {m['batch_size']} | {m['us_per_update'] / 1000:.3f} | "
          f"{m['updates_per_s']:.0f} | {m['ratio_to_paper']:.3f} | {target} | "
          f"{m['compile_s']:.1f} |")


def print_scaling(names: list[str], quick: bool, repeats: int, dtype: str,
                  as_json: bool) -> None:
  """The scaling table (or JSON rows); a bad name or missing data ends it in one line."""
  unknown = sorted(set(names) - set(SCALING))
  if unknown:
    raise errors.RequestError(f"--scaling: unknown datasets {unknown}; use some of "
                              f"{list(SCALING)}")
  if not as_json:
    print(f"{jax.devices()[0].device_kind} x{jax.device_count()} ({jax.default_backend()}), "
          f"{dtype}")
    print("| data | training samples | batch | ms/update | updates/s | time / paper size's "
          "| target | compile s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
  for name in names:
    rows = measure_scaling(name, quick, repeats, dtype)
    for row in rows:
      print(json.dumps(row) if as_json else format_scaling_row(row), flush=True)


def main(argv):
  del argv
  config = FLAGS.config
  if FLAGS.scaling:
    print_scaling(FLAGS.scaling, FLAGS.quick, 3 if FLAGS.quick else FLAGS.repeats,
                  FLAGS.dtypes[0], FLAGS.json)
    return
  if config is None:
    raise app.UsageError("--config is required (except with --scaling)")
  if FLAGS.batch_sizes:
    batch_sizes = [int(b) for b in FLAGS.batch_sizes]
  else:
    batch_sizes = [config.batch_size] if FLAGS.quick else [config.batch_size * k
                                                           for k in (1, 4, 16)]
  repeats = 3 if FLAGS.quick else FLAGS.repeats
  if not FLAGS.json:
    print(f"{config.model} on {config.network.name}, {jax.devices()[0].device_kind} "
          f"x{jax.device_count()} ({jax.default_backend()})")
    print("| batch | dispatch | dtype | ms/update | updates/s | x torch | MBD ms | compile s "
          "| peak MiB |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
  torch_peer = FLAGS.torch and has_torch_peer(config)
  if torch_peer and FLAGS.torch_threads:
    import torch  # pylint: disable=import-outside-toplevel
    torch.set_num_threads(FLAGS.torch_threads)
  for measurement in run(config, batch_sizes, FLAGS.dtypes, FLAGS.quick, repeats, torch_peer):
    print(json.dumps(measurement) if FLAGS.json else format_row(measurement), flush=True)


if __name__ == "__main__":
  cli.run(main, define_flags)

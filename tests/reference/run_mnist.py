"""Runs the reference port of the official MNIST script on MNIST-500 and records its balance.

  PYTHONPATH=. python tests/reference/run_mnist.py --workdir /work/runs/ref_mnist \
      --data_dir /work/shared/data/mnist --num_batches 2000

Writes ``balance.jsonl`` (per ``--window`` batches: G and D update counts, thres at the end
of the window, mean probe g), ``samples_<batch>.png`` (7x7 grid, inference mode, as the
script samples) every ``--sample_every`` batches, and ``balance.png``. Keeps checkpoints in
``<workdir>/checkpoints`` every ``--checkpoint_every`` batches and on SIGTERM/SIGINT; run the
same command again to resume exactly from the newest one.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys

import numpy as np

from deligan_jax.runs import plots
from deligan_jax.data import dataset as dataset_lib
from deligan_jax.data import mnist
from tests.reference import checkpoints
from tests.reference import dg_mnist_tf

RUN_ARGS = ("model", "d_batch_norm", "window")  # must not change on resume


def mnist_500(data_dir: str) -> np.ndarray:
  """The script's data: the last 50 training images of each digit, (500, 784) in [-1, 1]."""
  images, labels = mnist.load_mnist(data_dir, source="files")
  images, _ = dataset_lib.last_per_class(images, labels, 50)
  return dataset_lib.to_model_scale(images).reshape(-1, 28 * 28)


def save_balance_plot(windows: list[dict], path: str) -> None:
  records = [{"step": w["batch"], "d_fraction": w["d_updates"] / (w["d_updates"] + w["g_updates"]),
              "thres": w["thres"], "g_loss": w["probe"]} for w in windows]
  plots.save_loss_curves(records, path, keys=("g_loss", "thres", "d_fraction"))


def read_windows(log_path: str, upto: int) -> list[dict]:
  """The logged windows up to batch ``upto`` (later ones were logged after the checkpoint)."""
  if not os.path.exists(log_path):
    return []
  with open(log_path) as f:
    windows = [json.loads(line) for line in f if line.strip()]
  return [w for w in windows if w["batch"] <= upto]


class BalanceLog:
  """Sums each window's per-batch records into a ``balance.jsonl`` line and re-plots."""

  def __init__(self, workdir: str, window: int, windows: list[dict], pending: list[dict]):
    self.path = os.path.join(workdir, "balance.jsonl")
    self.plot_path = os.path.join(workdir, "balance.png")
    self.window, self.windows, self.pending = window, windows, pending
    with open(self.path, "w") as f:  # drops lines written after the checkpoint resumed from
      f.writelines(json.dumps(w) + "\n" for w in windows)

  def add(self, counter: int, record: dict) -> None:
    self.pending.append(record)
    if counter % self.window:
      return
    summary = {"batch": counter,
               "g_updates": sum(r["g_updates"] for r in self.pending),
               "d_updates": sum(r["d_updates"] for r in self.pending),
               "thres": record["thres"],
               "probe": float(np.mean([r["probe"] for r in self.pending]))}
    self.windows.append(summary)
    self.pending.clear()
    with open(self.path, "a") as f:
      f.write(json.dumps(summary) + "\n")
    print(json.dumps(summary), flush=True)
    save_balance_plot(self.windows, self.plot_path)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--data_dir", required=True)
  parser.add_argument("--num_batches", type=int, default=2000)
  parser.add_argument("--window", type=int, default=100)
  parser.add_argument("--sample_every", type=int, default=1000)
  parser.add_argument("--checkpoint_every", type=int, default=500)
  parser.add_argument("--model", default="deligan", choices=("deligan", "gan"))
  parser.add_argument("--d_batch_norm", default="separate", choices=("separate", "joint"))
  parser.add_argument("--seed", type=int, default=None,
                      help="seeds TF's initialisers (default: unseeded, as the script)")
  args = parser.parse_args()
  os.makedirs(args.workdir, exist_ok=True)
  data = mnist_500(args.data_dir)
  reference = dg_mnist_tf.MnistReference(model=args.model, d_batch_norm=args.d_batch_norm,
                                         seed=args.seed)
  loop = dg_mnist_tf.ScriptLoop(reference, data)
  saved = checkpoints.RunCheckpoints(reference, os.path.join(args.workdir, "checkpoints"))
  run_args = {name: getattr(args, name) for name in RUN_ARGS}
  extra = saved.restore_latest(loop)
  if extra is not None:
    if extra["run_args"] != run_args:
      sys.exit(f"error: {args.workdir} holds a run with {extra['run_args']}, not {run_args}; "
               "use those or a new --workdir")
    print(f"resumed from batch {loop.counter}", flush=True)
  log = BalanceLog(args.workdir, args.window,
                   read_windows(os.path.join(args.workdir, "balance.jsonl"), loop.counter),
                   [] if extra is None else extra["pending"])
  display_eps = np.random.RandomState(123).normal(0, 1, [50, 30]).astype(np.float32)

  def save():
    saved.save(loop, {"run_args": run_args, "pending": log.pending})

  def after_batch(counter, record):
    log.add(counter, record)
    if counter % args.sample_every == 0 or counter == args.num_batches:
      samples = reference.sample(display_eps).reshape(-1, 28, 28, 1)[:49]
      plots.save_image_grid(samples, os.path.join(args.workdir, f"samples_{counter:06d}.png"),
                            columns=7)
    if counter % args.checkpoint_every == 0:
      save()

  received = []
  for signum in (signal.SIGINT, signal.SIGTERM):
    signal.signal(signum, lambda signum, frame: received.append(signal.Signals(signum).name))
  loop.run(args.num_batches, after_batch, stop=lambda: bool(received))
  save()
  if received:
    sys.exit(f"{received[0]}: saved a checkpoint at batch {loop.counter} in {args.workdir}; "
             "run the same command again to resume from it")


if __name__ == "__main__":
  main()

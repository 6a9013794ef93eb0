"""Runs the reference port of the official MNIST script on MNIST-500 and records its balance.

  PYTHONPATH=. python tests/reference/run_mnist.py --workdir /work/runs/ref_mnist \
      --data_dir /work/shared/data/mnist --num_batches 2000

Writes ``balance.jsonl`` (per 100 batches: G and D update counts, thres at the end of the
window, mean probe g), ``samples_<batch>.png`` (7x7 grid, inference mode, as the script
samples) every ``--sample_every`` batches, and ``balance.png``. Runs from scratch (the port
keeps no checkpoints).
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np

from deligan_jax import plots
from deligan_jax.data import common as data_common
from deligan_jax.data import mnist
from tests.reference import dg_mnist_tf


def mnist_500(data_dir: str) -> np.ndarray:
  """The script's data: the last 50 training images of each digit, (500, 784) in [-1, 1]."""
  images, labels = mnist.load_mnist(data_dir, source="files")
  images, _ = data_common.last_per_class(images, labels, 50)
  return data_common.to_model_scale(images).reshape(-1, 28 * 28)


def save_balance_plot(windows: list[dict], path: str) -> None:
  records = [{"step": w["batch"], "d_fraction": w["d_updates"] / (w["d_updates"] + w["g_updates"]),
              "thres": w["thres"], "g_loss": w["probe"]} for w in windows]
  plots.save_loss_curves(records, path, keys=("g_loss", "thres", "d_fraction"))


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--data_dir", required=True)
  parser.add_argument("--num_batches", type=int, default=2000)
  parser.add_argument("--window", type=int, default=100)
  parser.add_argument("--sample_every", type=int, default=500)
  parser.add_argument("--model", default="deligan", choices=("deligan", "gan"))
  parser.add_argument("--d_batch_norm", default="separate", choices=("separate", "joint"))
  parser.add_argument("--seed", type=int, default=None,
                      help="seeds TF's initialisers (default: unseeded, as the script)")
  args = parser.parse_args()
  os.makedirs(args.workdir, exist_ok=True)
  data = mnist_500(args.data_dir)
  reference = dg_mnist_tf.MnistReference(model=args.model, d_batch_norm=args.d_batch_norm,
                                         seed=args.seed)
  display_eps = np.random.RandomState(123).normal(0, 1, [50, 30]).astype(np.float32)
  window, windows = [], []
  log_path = os.path.join(args.workdir, "balance.jsonl")
  open(log_path, "w").close()

  def log(counter, record):
    window.append(record)
    if counter % args.window == 0:
      summary = {"batch": counter,
                 "g_updates": sum(r["g_updates"] for r in window),
                 "d_updates": sum(r["d_updates"] for r in window),
                 "thres": record["thres"],
                 "probe": float(np.mean([r["probe"] for r in window]))}
      windows.append(summary)
      window.clear()
      with open(log_path, "a") as f:
        f.write(json.dumps(summary) + "\n")
      print(json.dumps(summary), flush=True)
      save_balance_plot(windows, os.path.join(args.workdir, "balance.png"))
    if counter % args.sample_every == 0 or counter == args.num_batches:
      samples = reference.sample(display_eps).reshape(-1, 28, 28, 1)[:49]
      plots.save_image_grid(samples, os.path.join(args.workdir, f"samples_{counter:06d}.png"),
                            columns=7)

  dg_mnist_tf.train(reference, data, args.num_batches, log)


if __name__ == "__main__":
  main()

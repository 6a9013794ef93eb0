"""G and D update fractions per window, the project's run next to the reference port's.

  PYTHONPATH=. python tests/reference/compare_balance.py \
      --metrics /work/runs/mnist_full/metrics.jsonl \
      --balance /work/runs/ref_mnist_40k/balance.jsonl --out_dir /work/runs/ref_mnist_40k

Reads the project's ``metrics.jsonl`` (``g_updates``/``d_updates``/``thres`` per log line) and
the reference runner's ``balance.jsonl`` (the same per 100 batches), sums both into windows of
``--window`` batches, prints a table (G and D fractions, thres at the window's end; '-' where
a run has not finished that window) and writes ``compare_balance.png`` into ``--out_dir``.
"""

from __future__ import annotations

import argparse
import json
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

RUNS = ("project", "reference")


def read_counts(path: str, step_key: str) -> dict[int, dict]:
  """Batch -> {g_updates, d_updates, thres}; a batch logged twice (a resumed run) keeps the last."""
  counts = {}
  with open(path) as f:
    for line in f:
      record = json.loads(line)
      if "g_updates" in record:
        counts[record[step_key]] = {k: record[k] for k in ("g_updates", "d_updates", "thres")}
  return counts


def windows(counts: dict[int, dict], window: int) -> dict[int, dict]:
  """Window end -> summed counts, D fraction and thres, for the windows fully logged."""
  summed = {}
  for batch in sorted(counts):
    end = -(-batch // window) * window
    entry = summed.setdefault(end, {"g_updates": 0, "d_updates": 0, "last": 0})
    entry["g_updates"] += counts[batch]["g_updates"]
    entry["d_updates"] += counts[batch]["d_updates"]
    entry["last"], entry["thres"] = batch, counts[batch]["thres"]
  return {end: dict(e, d_fraction=e["d_updates"] / (e["g_updates"] + e["d_updates"]))
          for end, e in summed.items() if e["last"] == end}


def table(per_run: dict[str, dict[int, dict]], window: int) -> str:
  header = "| batches | " + " | ".join(f"{run} G | {run} D | {run} thres" for run in RUNS) + " |"
  lines = [header, "|" + "---|" * (1 + 3 * len(RUNS))]
  for end in sorted(set().union(*per_run.values())):
    cells = []
    for run in RUNS:
      w = per_run[run].get(end)
      cells += (["-"] * 3 if w is None else
                [f"{1 - w['d_fraction']:.3f}", f"{w['d_fraction']:.3f}", f"{w['thres']:.3f}"])
    lines.append(f"| {end - window + 1}-{end} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


def save_plot(per_run: dict[str, dict[int, dict]], path: str) -> None:
  fig, axes = plt.subplots(2, 1, figsize=(7, 5), sharex=True)
  for run in RUNS:
    ends = sorted(per_run[run])
    axes[0].plot(ends, [per_run[run][e]["d_fraction"] for e in ends], "o-", ms=3, label=run)
    axes[1].plot(ends, [per_run[run][e]["thres"] for e in ends], "o-", ms=3, label=run)
  axes[0].set_ylabel("D's share of updates")
  axes[0].set_ylim(bottom=0)
  axes[1].set_ylabel("thres (window end)")
  axes[1].set_xlabel("batch (end of window)")
  for ax in axes:
    ax.grid(alpha=0.3)
    ax.legend()
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--metrics", required=True, help="the project run's metrics.jsonl")
  parser.add_argument("--balance", required=True, help="the reference run's balance.jsonl")
  parser.add_argument("--out_dir", required=True)
  parser.add_argument("--window", type=int, default=1000)
  args = parser.parse_args()
  for path in (args.metrics, args.balance):
    if not os.path.exists(path):
      parser.exit(1, f"error: {path} does not exist\n")
  per_run = {"project": windows(read_counts(args.metrics, "step"), args.window),
             "reference": windows(read_counts(args.balance, "batch"), args.window)}
  print(table(per_run, args.window))
  os.makedirs(args.out_dir, exist_ok=True)
  save_plot(per_run, os.path.join(args.out_dir, "compare_balance.png"))


if __name__ == "__main__":
  main()

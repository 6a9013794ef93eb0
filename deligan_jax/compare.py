r"""Trains and evaluates several models over several seeds, and tabulates them.

  python -m deligan_jax.compare --config configs/mnist.py \
      --models gan,gan++,ensemble,nx,moe,deligan --seeds 5 --workdir runs/compare_mnist
  python -m deligan_jax.compare --config configs/toy.py:bimodal --models gan,deligan \
      --seeds 5 --workdir runs/compare_toy --config.num_steps=8000

Each model trains all its seeds in one program (``num_seeds``) under
``WORKDIR/<model>/``; every seed is then evaluated (``eval.py``). Written into
``WORKDIR``: ``comparison.md`` (mean ± std over seeds), ``comparison.json`` (every
seed's numbers) and ``comparison.png``. Config overrides apply to every model.
``--paper_protocol`` adds the paper's Inception-based columns for CIFAR-10 and sketches
(``paper_scores``; its 50000 samples unless ``--num_samples``) and their real-image floors.
"""

from __future__ import annotations

import json
import os

import numpy as np
from absl import flags
from ml_collections import config_flags

from deligan_jax import checkpoints
from deligan_jax import cli
from deligan_jax import evaluation
from deligan_jax import paper_scores
from deligan_jax import plots
from deligan_jax import training
from deligan_jax.models import MODELS

FLAGS = flags.FLAGS


def define_flags() -> None:
  """The command line; defined by the entry point, not on import (absl flags are global)."""
  config_flags.DEFINE_config_file("config", None, "Experiment config file (path[:arg]).")
  flags.DEFINE_list("models", list(MODELS), "Models to compare.")
  flags.DEFINE_integer("seeds", 3, "Seeds per model.", lower_bound=1)
  flags.DEFINE_string("workdir", None, "Where runs, evaluations and the table go.")
  flags.DEFINE_integer("num_samples", None, "Samples scored per seed (eval.py's default).")
  flags.DEFINE_string("cache_dir", None, "Where the evaluation classifier is cached.")
  flags.DEFINE_integer("classifier_steps", 2000, "Training steps of the evaluation classifier.")
  flags.DEFINE_bool("paper_protocol", False, "CIFAR-10, sketches: add the paper protocol's "
                    "Inception-based scores (slow on a CPU: 0.2-1 s per sample).")
  flags.mark_flags_as_required(["config", "workdir"])


# (key in a seed's scores, column title, higher is better)
IMAGE_COLUMNS = (("m_is", "m-IS", True), ("is", "IS", True), ("fid", "FID", False),
                 ("kid", "KID", False), ("precision", "precision", True),
                 ("recall", "recall", True), ("copies", "near-copies %", False))
PAPER_COLUMNS = (("m_is_paper", "m-IS, paper protocol", True),
                 ("fid_inception", "Inception FID vs test", False),
                 ("kid_inception", "Inception KID vs test", False))
TOY_COLUMNS = (("high_quality", "samples within 3 std %", True),
               ("modes_covered", "modes covered", True), ("mode_kl", "mode KL", False))


def seed_scores(results: dict) -> dict[str, float]:
  """The compared numbers of one evaluated seed."""
  if "modes" in results:
    modes = results["modes"]
    return {"high_quality": 100 * modes["high_quality_fraction"],
            "modes_covered": modes["modes_covered"], "mode_kl": modes["mode_kl"]}
  scores = {"m_is": results["modified_inception_score"][0],
            "is": results["inception_score"][0], "fid": results["fid"],
            "kid": results["kid"][0], "precision": results["precision"],
            "recall": results["recall"],
            "copies": 100 * results["memorisation"]["fraction_closer_than_test_p1"]}
  if "paper_protocol" in results:
    paper = results["paper_protocol"]
    scores.update(m_is_paper=paper["modified_inception_score"][0],
                  fid_inception=paper["fid_vs_test"], kid_inception=paper["kid_vs_test"][0])
  return scores


def compare(config, models: list[str], seeds: int, workdir: str,
            num_samples: int | None = None, cache: str | None = None,
            classifier_steps: int = 2000, paper_protocol: bool = False) -> dict:
  """Trains and evaluates every model; returns ``{model: [scores of each seed]}``."""
  unknown = sorted(set(models) - set(MODELS))
  if unknown:
    raise cli.RequestError(f"--models: unknown {unknown}; choose from {MODELS}")
  scores, floors = {}, None
  for model in models:
    model_config = config.copy_and_resolve_references()
    model_config.model = model
    model_config.num_seeds = seeds
    run_dir = os.path.join(workdir, model)
    training.train_and_evaluate(model_config, run_dir)
    results = [evaluation.evaluate(d, num_samples, cache, classifier_steps=classifier_steps,
                                   paper_protocol=paper_protocol)
               for d in checkpoints.run_workdirs(model_config, run_dir)]
    scores[model] = [seed_scores(r) for r in results]
    if "paper_protocol" in results[0]:
      floors = paper_scores.floors_line(results[0]["paper_protocol"])  # same for every run
  first = next(iter(scores.values()))[0]
  columns = (TOY_COLUMNS if "high_quality" in first else
             IMAGE_COLUMNS + (PAPER_COLUMNS if "m_is_paper" in first else ()))
  with open(os.path.join(workdir, "comparison.json"), "w") as f:
    json.dump(scores, f, indent=2)
  with open(os.path.join(workdir, "comparison.md"), "w") as f:
    f.write(table(scores, columns, seeds, config) + (f"\n{floors}\n" if floors else ""))
  plots.save_comparison(scores, columns, os.path.join(workdir, "comparison.png"))
  return scores


def table(scores: dict, columns, seeds: int, config) -> str:
  """Markdown: one row per model, mean ± std over seeds; arrows say which way is better."""
  header = " | ".join(f"{title} {'↑' if higher else '↓'}" for _, title, higher in columns)
  lines = [f"{config.data.name}, {config.num_steps} batches per run, {seeds} seeds each "
           "(mean ± std over seeds).", "", f"| model | {header} |",
           "|" + " --- |" * (len(columns) + 1)]
  for model, runs in scores.items():
    cells = []
    for key, _, _ in columns:
      values = np.array([run[key] for run in runs], np.float64)
      finite = values[np.isfinite(values)]
      cell = f"{finite.mean():.3f} ± {finite.std():.3f}" if finite.size else "n/a"
      if finite.size < values.size:  # e.g. mode KL when no sample is near any mode
        cell += f" ({values.size - finite.size} of {values.size} seeds: not finite)"
      cells.append(cell)
    lines.append(f"| {model} | " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


def main(argv):
  del argv
  compare(FLAGS.config, FLAGS.models, FLAGS.seeds, FLAGS.workdir, FLAGS.num_samples,
          FLAGS.cache_dir, FLAGS.classifier_steps, FLAGS.paper_protocol)
  with open(os.path.join(FLAGS.workdir, "comparison.md")) as f:
    print(f.read())


if __name__ == "__main__":
  define_flags()
  cli.run(main)

r"""Trains and evaluates several models over several seeds, and tabulates them.

  python -m deligan_jax.cli.compare --config configs/mnist.py \
      --models gan,gan++,ensemble,nx,moe,deligan --seeds 5 --workdir runs/compare_mnist
  python -m deligan_jax.cli.compare --config configs/toy.py:bimodal --models gan,deligan \
      --seeds 5 --workdir runs/compare_toy --config.num_steps=8000

Each model trains all its seeds in one program (``num_seeds``) under
``WORKDIR/<model>/``; every seed is then evaluated (``eval.py``). Written into
``WORKDIR``: ``comparison.md`` (mean ± std over seeds), ``comparison.json`` (every
seed's numbers) and ``comparison.png``. Config overrides apply to every model.
``--paper_protocol`` adds the paper's Inception-based columns for CIFAR-10 and sketches
(``paper_scores``; the official sample count unless ``--num_samples``) and their real-image floors.

Runs trained and evaluated another way (other overrides per arm, one ``train.py``
per seed) are tabulated alike: one folder per arm under ``WORKDIR``::

  python -m deligan_jax.cli.compare --tabulate --workdir runs/mnist500 \
      --models gan,deligan,deligan_forced

The tables give every seed's values and, for each pair of arms, the difference
of means with its 95% bootstrap interval over seeds (``seed_statistics``).
"""

from __future__ import annotations

import os
import shlex

from absl import flags
from ml_collections import config_flags

from deligan_jax import cli
from deligan_jax import errors
from deligan_jax import training
from deligan_jax.models import MODELS
from deligan_jax.runs import checkpoints
from deligan_jax.runs import disk_full
from deligan_jax.scores import compare
from deligan_jax.scores import evaluation
from deligan_jax.study import plan

FLAGS = flags.FLAGS


def define_flags() -> None:
  """The command line; defined by the entry point, not on import (absl flags are global)."""
  config_flags.DEFINE_config_file("config", None, "Experiment config file (path[:arg]).")
  flags.DEFINE_list("models", list(MODELS), "Models to compare.")
  flags.DEFINE_integer("seeds", 3, "Seeds per model.", lower_bound=1)
  flags.DEFINE_string("workdir", None, "Where runs, evaluations and the table go.")
  flags.DEFINE_integer("num_samples", None, "Samples scored per seed (eval.py's default).")
  flags.DEFINE_string("cache_dir", None, "Where the evaluation classifier is cached.")
  flags.DEFINE_integer("classifier_steps", evaluation.CLASSIFIER_STEPS,
                       "Training steps of the evaluation classifier.")
  flags.DEFINE_bool("paper_protocol", False, "CIFAR-10, sketches: add the paper protocol's "
                    "Inception-based scores (slow on a CPU: 0.2-1 s per sample).")
  flags.DEFINE_bool("tabulate", False, "Only tabulate the evaluated runs already in --workdir "
                    "(one folder per arm, --models: which and in what order; default all).")
  flags.mark_flags_as_required(["workdir"])


def train_and_compare(config, models: list[str], seeds: int, workdir: str,
            num_samples: int | None = None, cache: str | None = None,
            classifier_steps: int = evaluation.CLASSIFIER_STEPS,
            paper_protocol: bool = False) -> dict:
  """Trains and evaluates every model, then :func:`tabulate`; returns its scores."""
  unknown = sorted(set(models) - set(MODELS))
  if unknown:
    raise errors.RequestError(f"--models: unknown {unknown}; choose from {MODELS}")
  for model in models:
    model_config = config.copy_and_resolve_references()
    model_config.model = model
    model_config.num_seeds = seeds
    run_dir = os.path.join(workdir, model)
    training.train_and_evaluate(model_config, run_dir)
    for seed_dir in checkpoints.run_workdirs(model_config, run_dir):
      evaluation.evaluate(seed_dir, num_samples, cache, classifier_steps=classifier_steps,
                          paper_protocol=paper_protocol)
  return compare.tabulate(workdir, models)


def main(argv):
  del argv
  if FLAGS.tabulate:
    if plan.is_study(FLAGS.workdir):
      raise errors.RequestError(
          f"{FLAGS.workdir} is a study's folder (its runs score into eval_steps/): tabulate it "
          f"with python -m deligan_jax.cli.study --workdir {shlex.quote(FLAGS.workdir)} "
          "--tabulate")
    compare.tabulate(FLAGS.workdir, FLAGS.models if FLAGS["models"].present else None)
  elif FLAGS.config is None:
    raise errors.RequestError("--config is required (or --tabulate to tabulate runs already "
                              "evaluated in --workdir)")
  else:
    train_and_compare(FLAGS.config, FLAGS.models, FLAGS.seeds, FLAGS.workdir,
                      FLAGS.num_samples, FLAGS.cache_dir, FLAGS.classifier_steps,
                      FLAGS.paper_protocol)
  with open(os.path.join(FLAGS.workdir, "comparison.md")) as f:
    print(f.read())


def run() -> None:
  cli.run(main, define_flags,
          again=lambda: disk_full.TABLES_WRITTEN_AGAIN if FLAGS.tabulate else
          "each run resumes from its last complete checkpoint, and "
          + disk_full.TABLES_WRITTEN_AGAIN)


if __name__ == "__main__":
  run()

r"""Scores over training: each arm's seeds evaluated at chosen checkpoints, with a band over seeds.

``WORKDIR`` holds one folder per arm, each with ``seed_<k>`` run folders (or one
run), as :mod:`deligan_jax.scores.compare` lays them out. Every seed's checkpoint of
each step is scored by :func:`evaluation.evaluate` (outputs under the run's
``eval_steps/<step>/``; an evaluation already there is reused if scored alike, so an
interrupted trajectory resumes, and so is the run's own ``eval.json`` where ``eval.py``
scored that step). Written into ``WORKDIR``: ``trajectory.json`` (every value),
``trajectory.md`` (mean ± std per arm and step) and ``trajectory.png``: the scores at
each step, next to D's share of updates and the mixture's mean |sigma| over the whole
run from ``metrics.jsonl``, each a mean over seeds with a band of ± one std (geometric,
on a log axis, for :data:`LOG_SCALE`), and real test images' values as dashed lines.
The command line: :mod:`deligan_jax.cli.trajectory`.
"""

from __future__ import annotations

import json
import os

import numpy as np
from absl import logging

from deligan_jax import errors
from deligan_jax.runs import atomic_files
from deligan_jax.runs import checkpoints
from deligan_jax.runs import metrics_log as run_log
from deligan_jax.runs import plots
from deligan_jax.scores import compare
from deligan_jax.scores import evaluation
from deligan_jax.scores import seed_statistics

# Training curves read from metrics.jsonl, averaged over bins of this many batches.
CURVES = (("d_fraction", "D's share of updates"),
          ("sigma_mean", "mixture mean |sigma| (geometric over seeds)"))
CURVE_BIN = 1000
# Plotted on a log axis, with a geometric mean over seeds: they span decades (5000 distinct
# samples against one per mixture component; sigma from 0.2 to 1e-5).
LOG_SCALE = ("distinct", "component_spread", "sigma_mean")
# The evaluation seed: every checkpoint's samples drawn from the same noise, as eval.py's are.
SAMPLE_SEED = 0


def evaluation_at(run_dir: str, step: int, num_samples: int | None,
                  cache: str | None, sigma_scale: float = 1.0) -> dict | None:
  """The evaluation (eval.json's dict) of one run at ``step``; None if it has no such checkpoint.

  An evaluation already written (the run's own ``eval.json``, or one under
  :func:`evaluation.step_dir`) serves only if it scored that step with the same
  sample count, seed, classifier and sigma scale; otherwise the checkpoint is scored
  again. ``sigma_scale``: see :func:`evaluation.evaluate`.
  """
  count = sample_count(run_dir, num_samples)
  found = stored_evaluation(run_dir, step, count, sigma_scale)
  if found is not None:
    return found[1]
  checkpointer = checkpoints.Checkpointer(run_dir)
  try:
    present = step in checkpointer.all_steps()
  finally:
    checkpointer.close()
  if not present:
    return None
  evaluation.evaluate(run_dir, count, cache, seed=SAMPLE_SEED, paper_protocol=False, step=step,
                      sigma_scale=sigma_scale)
  # As stored (non-finite values null), the same whether scored now or reused.
  with open(os.path.join(evaluation.output_dir(run_dir, step, sigma_scale),
                         evaluation.RESULTS)) as f:
    return json.load(f)


def sample_count(run_dir: str, num_samples: int | None) -> int:
  """``num_samples``, or how many eval.py scores for this run by default."""
  return num_samples or evaluation.default_sample_count(checkpoints.read_config(run_dir),
                                                        paper_protocol=False)


def stored_evaluation(run_dir: str, step: int, count: int,
                      sigma_scale: float = 1.0) -> tuple[str, dict] | None:
  """The folder and evaluation (eval.json's dict) already written of ``step`` as
  :func:`evaluation_at` scores it: the run's own outputs (eval.py's), then
  :func:`evaluation.step_dir`'s; None if neither holds it."""
  for folder in (evaluation.output_dir(run_dir, None, sigma_scale),
                 evaluation.output_dir(run_dir, step, sigma_scale)):
    results = _scored_alike(os.path.join(folder, evaluation.RESULTS), step, count, sigma_scale)
    if results is not None:
      return folder, results
  return None


def _stored_results(run_dir: str, step: int, num_samples: int | None) -> dict | None:
  stored = stored_evaluation(run_dir, step, sample_count(run_dir, num_samples))
  return None if stored is None else stored[1]


def _scored_alike(path: str, step: int, count: int, sigma_scale: float = 1.0) -> dict | None:
  """The evaluation at ``path`` if it scored ``step`` as :func:`evaluation_at` would.

  That is from ``count`` samples of SAMPLE_SEED at ``sigma_scale`` and, for images,
  with the default evaluation classifier.
  """
  if not os.path.isfile(path):
    return None
  with open(path) as f:
    results = json.load(f)
  if results.get("sigma_scale", 1.0) != sigma_scale:  # evaluations before scales were: 1
    return None
  wanted = {"step": step, "num_samples": count, "sample_seed": SAMPLE_SEED}
  if "modes" not in results:  # image data: scored through a classifier
    wanted["classifier_steps"] = evaluation.CLASSIFIER_STEPS
    if "within_class" not in results and "skipped_without_test_images" not in results:
      return None  # scored before the diversity within a class was: scored again
  return results if all(results.get(k) == v for k, v in wanted.items()) else None


def binned_curve(records: list[dict], key: str, bin_size: int = CURVE_BIN) -> dict[int, float]:
  """``{end batch of a bin: mean of key over the bin's log records}``."""
  bins: dict[int, list[float]] = {}
  for record in records:
    if key in record and record[key] is not None:
      end = -(-record["step"] // bin_size) * bin_size
      bins.setdefault(end, []).append(record[key])
  return {end: float(np.mean(values)) for end, values in sorted(bins.items())}


def trajectory(workdir: str, arms: list[str] | None, steps: list[int],
               num_samples: int | None = None, cache: str | None = None,
               score: bool = True) -> dict:
  """Scores every arm's seeds at ``steps``; writes trajectory.json/.md/.png; returns the data.

  ``score=False``: reads the evaluations already written and scores nothing (a study's
  runs, which score themselves, tabulated while some still train). Returns
  ``{'scores': {arm: {step: {seed: scores}}}, 'curves': {arm: {key: {seed: {batch:
  value}}}}, 'real': {key: real test images' value}}``, seeds named by their run folders;
  a seed without a step's checkpoint (or, reading, its evaluation) is left out of that step.
  """
  if arms is None:
    arms = sorted(d for d in os.listdir(workdir) if os.path.isdir(os.path.join(workdir, d))
                  and compare.seed_dirs(os.path.join(workdir, d)))
  if not arms:
    raise errors.RequestError(f"{workdir} holds no run folders")
  scores, curves, real = {}, {}, {}
  for arm in arms:
    runs = [run for run in compare.seed_dirs(os.path.join(workdir, arm))
            if checkpoints.is_run(run)]
    if not runs:
      raise errors.RequestError(f"{os.path.join(workdir, arm)} holds no runs")
    scores[arm] = {}
    for step in steps:
      found = {os.path.basename(run): evaluation_at(run, step, num_samples, cache) if score
               else _stored_results(run, step, num_samples) for run in runs}
      scores[arm][step] = {seed: compare.seed_scores(results)
                           for seed, results in found.items() if results is not None}
      if not real:  # the same test images whichever run scored them
        real = next((compare.real_scores(r) for r in found.values() if r is not None), {})
      if len(scores[arm][step]) < len(runs):
        logging.warning("%s: %d of %d seeds have no %s of batch %d yet", arm,
                        len(runs) - len(scores[arm][step]), len(runs),
                        "checkpoint" if score else "evaluation", step)
    records = {os.path.basename(run): run_log.read_metrics(run) for run in runs}
    curves[arm] = {key: {seed: binned_curve(r, key) for seed, r in records.items()}
                   for key, _ in CURVES}
  columns = _columns(scores)
  data = {"scores": scores, "curves": curves, "real": real}
  atomic_files.write_atomic(os.path.join(workdir, "trajectory.json"),
                            json.dumps(run_log.json_safe(data), indent=2))
  atomic_files.write_atomic(os.path.join(workdir, "trajectory.md"), table(scores, columns))
  plots.save_trajectory(scores, columns, curves, CURVES,
                        os.path.join(workdir, "trajectory.png"), real, LOG_SCALE)
  return data


def _columns(scores: dict) -> list[tuple[str, str, bool]]:
  seen = {key for by_step in scores.values() for runs in by_step.values()
          for run in runs.values() for key, value in run.items()
          if value is not None and np.isfinite(value)}
  return [c for c in compare.TOY_COLUMNS + compare.IMAGE_COLUMNS if c[0] in seen]


def table(scores: dict, columns) -> str:
  """Markdown: one row per arm and step, mean ± std over the seeds scored there."""
  titles = [f"{title} {'↑' if higher else '↓'}" for _, title, higher in columns]
  lines = ["Mean ± sample std over seeds at each checkpoint (seeds scored in brackets).", "",
           f"| model | batch | {' | '.join(titles)} |", "|" + " --- |" * (len(columns) + 2)]
  for arm, by_step in scores.items():
    for step, runs in by_step.items():
      if not runs:
        continue
      cells = [seed_statistics.mean_std_cell([run.get(key, np.nan) for run in runs.values()])
               for key, _, _ in columns]
      lines.append(f"| {arm} ({len(runs)}) | {step} | " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"

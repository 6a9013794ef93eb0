"""Several models over several seeds, tabulated: every seed's scores and the differences.

:func:`deligan_jax.cli.compare.train_and_compare` trains each model's seeds in one program
(``num_seeds``) under ``WORKDIR/<model>/`` and evaluates every seed (``eval.py``). Written into
``WORKDIR``: ``comparison.md`` (mean ± std over seeds), ``comparison.json`` (every
seed's numbers) and ``comparison.png``. Runs trained and evaluated another way (other
overrides per arm, one ``train.py`` per seed) are tabulated alike: one folder per arm.

The tables give every seed's values and, for each pair of arms, the difference of means
with its 95% bootstrap interval over seeds (:mod:`deligan_jax.scores.seed_statistics`).
The command line: :mod:`deligan_jax.cli.compare`.
"""

from __future__ import annotations

import json
import os

import numpy as np

from deligan_jax import errors
from deligan_jax.runs import atomic_files
from deligan_jax.runs import checkpoints
from deligan_jax.runs import metrics_log as run_log
from deligan_jax.runs import plots
from deligan_jax.scores import evaluation
from deligan_jax.scores import paper_protocol as paper_scores
from deligan_jax.scores import seed_statistics

# (key in a seed's scores, column title, higher is better)
IMAGE_COLUMNS = (("m_is", "m-IS", True), ("is", "IS", True), ("fid", "FID", False),
                 ("kid", "KID", False), ("precision", "precision", True),
                 ("recall", "recall", True), ("copies", "near-copies %", False),
                 ("classes", "classes covered", True), ("distinct", "distinct samples", True),
                 ("spread", "spread of 100 draws", True),
                 ("component_spread", "spread within a component", True),
                 ("within_class", "within-class diversity ÷ real, pixels", True),
                 ("within_class_features", "within-class diversity ÷ real, features", True),
                 ("within_class_classes", "classes in the within-class score", True))
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
  if "classes_covered" in results:
    scores.update(classes=results["classes_covered"])
  if "within_class" in results:
    scores.update(within_class=results["within_class"]["pixels"],
                  within_class_features=results["within_class"]["features"],
                  within_class_classes=results["within_class"]["classes_qualified"])
  if "diversity" in results:
    spread = results["diversity"]
    scores.update(distinct=spread["distinct_samples"],
                  spread=spread["spread_samples"],
                  component_spread=spread.get("spread_within_component", float("nan")))
  if "paper_protocol" in results:
    paper = results["paper_protocol"]
    scores.update(m_is_paper=paper["modified_inception_score"][0],
                  fid_inception=paper["fid_vs_test"], kid_inception=paper["kid_vs_test"][0])
  return scores


def real_scores(results: dict) -> dict[str, float]:
  """The same scores for real test images, where one evaluation gives them (image data only)."""
  if "real_test_inception_score" not in results:
    return {}
  real = {"m_is": results["real_test_modified_inception_score"][0],
          "is": results["real_test_inception_score"][0]}
  if "within_class" in results:  # a ratio to the real images' own figure
    real.update(within_class=1.0, within_class_features=1.0)
  if "diversity" in results:
    spread = results["diversity"]
    real.update(distinct=spread["distinct_real"], spread=spread["spread_real"],
                component_spread=spread["spread_real_within_class"])
  return {key: value for key, value in real.items()
          if value is not None and np.isfinite(value)}


def seed_dirs(arm_dir: str) -> list[str]:
  """The runs of one arm: its ``seed_<k>`` folders in seed order, else the arm itself if a run."""
  arm_dir = os.path.normpath(arm_dir)  # a run's name is its folder's: 'gan/' names 'gan'
  seeds = sorted((d for d in os.listdir(arm_dir) if d.startswith("seed_")),
                 key=lambda d: int(d.removeprefix("seed_")))
  if seeds:
    return [os.path.join(arm_dir, d) for d in seeds]
  return [arm_dir] if checkpoints.is_run(arm_dir) else []


def evaluated_seeds(arm_dir: str) -> dict[str, dict]:
  """``{run folder's name: its eval.json}`` of each evaluated run of one arm (:func:`seed_dirs`)."""
  results = {}
  for run in seed_dirs(arm_dir):
    path = os.path.join(run, evaluation.RESULTS)
    if os.path.isfile(path):
      with open(path) as f:
        results[os.path.basename(run)] = json.load(f)
  if not results:
    raise errors.RequestError(f"{arm_dir} holds no evaluated run ({evaluation.RESULTS}); run "
                              "eval.py on its seeds first")
  return results


def tabulate(workdir: str, arms: list[str] | None = None) -> dict:
  """Tables of every arm's evaluated seeds under ``workdir``; returns ``{arm: {seed: scores}}``.

  An arm is a folder of ``workdir`` (a model trained by ``deligan_jax.cli.compare``, or any run
  trained another way, e.g. with other config overrides) holding one evaluated
  run or ``seed_<k>`` folders of them. ``arms`` (default: every folder holding
  an evaluation, sorted) also sets the order of the differences.
  Writes ``comparison.md``, ``comparison.json`` and ``comparison.png``.
  """
  if arms is None:
    arms = sorted(d for d in os.listdir(workdir) if os.path.isdir(os.path.join(workdir, d))
                  and _holds_evaluations(os.path.join(workdir, d)))
  if not arms:
    raise errors.RequestError(f"{workdir} holds no evaluated runs")
  return write_tables({arm: evaluated_seeds(os.path.join(workdir, arm)) for arm in arms},
                      workdir)


def write_tables(results: dict[str, dict[str, dict]], out_dir: str,
                 baselines: tuple[str, ...] = (), stem: str = "comparison") -> dict:
  """``STEM.md``, ``STEM.json`` and ``STEM.png`` of ``{arm: {seed: eval.json's dict}}``.

  Differences are of every pair of arms, or of each arm against each of ``baselines``.
  Returns ``{arm: {seed: scores}}``.
  """
  scores = {arm: {seed: seed_scores(r) for seed, r in runs.items()}
            for arm, runs in results.items()}
  first = next(iter(next(iter(results.values())).values()))
  columns = [c for c in (TOY_COLUMNS if "modes" in first else IMAGE_COLUMNS + PAPER_COLUMNS)
             if any(c[0] in s for runs in scores.values() for s in runs.values())]
  # Missing or non-finite (stored as null) values are NaN.
  scores = {arm: {seed: {key: float("nan") if s.get(key) is None else s[key]
                         for key, _, _ in columns} for seed, s in runs.items()}
            for arm, runs in scores.items()}
  scored_at = {arm: {seed: (r["step"], r["num_samples"], r.get("sample_seed"),
                            r.get("sample_noise")) for seed, r in runs.items()}
               for arm, runs in results.items()}
  atomic_files.write_atomic(os.path.join(out_dir, f"{stem}.json"),
                            json.dumps(run_log.json_safe(scores), indent=2))
  floors = (paper_scores.floors_line(first["paper_protocol"]) if "paper_protocol" in first
            else None)
  atomic_files.write_atomic(os.path.join(out_dir, f"{stem}.md"),
                            report(scores, columns, scored_at, first.get("dataset", ""), baselines)
                            + (f"\n{floors}\n" if floors else ""))
  plots.save_comparison({arm: list(runs.values()) for arm, runs in scores.items()}, columns,
                        os.path.join(out_dir, f"{stem}.png"))
  return scores


def _holds_evaluations(path: str) -> bool:
  return any(os.path.isfile(os.path.join(d, evaluation.RESULTS)) for d in seed_dirs(path))


def report(scores: dict, columns, scored_at: dict, dataset: str = "",
           baselines: tuple[str, ...] = ()) -> str:
  """Markdown: mean ± std per arm, every seed's values, and each pair's difference.

  ``scores``: ``{arm: {seed: {key: value}}}``; ``scored_at``: ``{arm: {seed:
  (batch, sample count, sample seed, sample noise)}}``, which heads the tables, or
  warns when the seeds differ in it (their means then pool unlike runs). Differences
  are later arm minus earlier arm (or each arm minus each of ``baselines``, each pair once),
  with the 95% percentile-bootstrap interval over seeds
  (:func:`seed_statistics.bootstrap_difference`); a star marks a finding
  (:attr:`seed_statistics.Difference.is_finding`).
  """
  settings = {at for runs in scored_at.values() for at in runs.values()}  # may hold None
  batches = "/".join(str(b) for b in sorted({at[0] for at in settings}))
  counts = "/".join(str(n) for n in sorted({at[1] for at in settings}))
  header = f"{dataset} runs at batch {batches}, {counts} samples scored per seed".lstrip()
  titles = [f"{title} {'↑' if higher else '↓'}" for _, title, higher in columns]
  rule = "|" + " --- |" * (len(columns) + 1)
  lines = [f"{header}; mean ± sample std over seeds.", ""]
  if len(settings) > 1:
    lines += ["**Unlike runs pooled:** the seeds were not all scored at one batch with one sample "
              "count, sample seed and noise (see the seed table and each eval.json); finish and "
              "evaluate them alike before reading the differences.", ""]
  lines += [f"| model | {' | '.join(titles)} |", rule]
  for arm, runs in scores.items():
    cells = []
    for key, _, _ in columns:
      values = np.array([run[key] for run in runs.values()], np.float64)
      cell = seed_statistics.mean_std_cell(values)
      bad = int(np.sum(~np.isfinite(values)))
      if 0 < bad < values.size:  # e.g. mode KL when no sample is near any mode
        cell += f" ({bad} of {values.size} seeds: not finite)"
      cells.append(cell)
    lines.append(f"| {arm} ({len(runs)} seed{'s' if len(runs) != 1 else ''}) | " + " | ".join(cells) + " |")
  lines += ["", "Every seed:", "", f"| model | seed | batch | samples | {' | '.join(titles)} |",
            "|" + " --- |" * (len(columns) + 4)]
  for arm, runs in scores.items():
    for seed, run in runs.items():
      batch, count = scored_at[arm][seed][:2]
      lines.append(f"| {arm} | {seed} | {batch} | {count} | "
                   + " | ".join(seed_statistics.number_cell(run[key]) for key, _, _ in columns)
                   + " |")
  arms = list(scores)
  if baselines:
    pairs = []
    for baseline in baselines:
      pairs += [(arm, baseline) for arm in arms
                if arm != baseline and (baseline, arm) not in pairs]
  else:
    pairs = [(later, earlier) for i, earlier in enumerate(arms) for later in arms[i + 1:]]
  if pairs:
    lines += ["", "Differences of means (row's first model minus its second) with the 95% "
              f"bootstrap interval over seeds; * marks an interval that excludes 0 with at "
              f"least {seed_statistics.MIN_SEEDS} seeds per arm:", "",
              f"| difference | {' | '.join(titles)} |", rule]
    for later, earlier in pairs:
      cells = [seed_statistics.bootstrap_difference(
                   [run[key] for run in scores[later].values()],
                   [run[key] for run in scores[earlier].values()]).cell()
               for key, _, _ in columns]
      lines.append(f"| {later} − {earlier} | " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"

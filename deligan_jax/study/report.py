"""A study's runs tabulated against its baseline arm, drawn, and its selection rule applied.

Reads evaluations already written (:func:`trajectory.stored_evaluation`), for the trajectory
too, and scores nothing: each run's own command scores them, so a study may be tabulated
while some of its runs still train. Written into the study's folder: ``study.md`` (every
seed, mean ± std per arm, each arm's difference from the baseline, and from the arms of
``also_compared_with``, with its 95% bootstrap interval over seeds, and the selection
rule's outcome where the study states one), ``study.json`` (every seed's numbers),
``study.png`` (bars), ``quality_diversity.png`` (FID against the diversity within a class,
one point per arm, a sigma-scaled arm's rows on a tagged line from its point),
``components.png`` (each arm's first seed's draws of its first ten components) and the
trajectory over the scored checkpoints (``trajectory.md``/``.png``). Scaled arms (a DeLiGAN
arm sampled with sigma times s) are rows of their own, ``<arm>_sigma_x<s>``, scored at the
last checkpoint only.
"""

from __future__ import annotations

import math
import os

import numpy as np
from absl import logging

from deligan_jax.runs import atomic_files
from deligan_jax.runs import checkpoints
from deligan_jax.runs import plots
from deligan_jax.scores import compare
from deligan_jax.scores import trajectory
from deligan_jax.study import plan

TABLES = "study"
COMPONENTS_PICTURE = "eval_components.png"


def scale_label(arm: str, scale: float) -> str:
  return f"{arm}_sigma_x{scale:g}"


def rows(study: plan.Study) -> list[tuple[str, str, float]]:
  """``(label, arm, sigma scale)`` of every tabulated row, the scaled arms last."""
  return [(arm, arm, 1.0) for arm in study.arms] + [
      (scale_label(arm, scale), arm, scale)
      for arm in study.sigma_scale_arms for scale in study.sigma_scales]


def last_step(study: plan.Study, arm: str) -> int:
  return study.run_config(arm, study.seeds[0]).num_steps


def collect(study: plan.Study, workdir: str,
            last_steps: dict[str, int]) -> dict[str, dict[str, tuple[str, dict]]]:
  """``{label: {seed folder: (folder, eval.json's dict) of its evaluation at the arm's last
  batch (``last_steps``)}}``, scored runs only."""
  found, missing = {}, []
  for label, arm, scale in rows(study):
    runs = {}
    for seed in study.seeds_of(arm):
      run = plan.run_dir(workdir, arm, seed)
      if not checkpoints.is_run(run):
        continue
      count = trajectory.sample_count(run, study.num_samples or None)
      stored = trajectory.stored_evaluation(run, last_steps[arm], count, scale)
      if stored is not None:
        runs[f"seed_{seed}"] = stored
    if runs:
      found[label] = runs
    else:
      missing.append(f"{label} (batch {last_steps[arm]})")
  if found and missing:  # the tables leave them out
    logging.warning("not scored yet: %s", ", ".join(missing))
  return found


def write(study: plan.Study, workdir: str) -> dict | None:
  """Every table and picture of the study from the runs scored so far; returns the scores,
  or None (writing nothing) while no run is scored."""
  last_steps = {arm: last_step(study, arm) for arm in study.arms}
  found = collect(study, workdir, last_steps)
  if not found:
    return None
  results = {label: {seed: stored[1] for seed, stored in runs.items()}
             for label, runs in found.items()}
  baselines = tuple(arm for arm in (study.baseline, *study.also_compared_with) if arm in results)
  scores = compare.write_tables(results, workdir, baselines, stem=TABLES)
  image_data = "modes" not in next(iter(next(iter(results.values())).values()))
  selection = select(study, scores) if image_data else None
  if selection:
    tables = os.path.join(workdir, f"{TABLES}.md")
    with open(tables) as f:
      text = f.read()
    atomic_files.write_atomic(tables, f"{text}\n{selection_lines(study, selection)}\n")
  if image_data:
    # Each arm's curve in order of scale, the arm itself at 1.
    scaled = {arm: {label: f"σ×{scale:g}" for label, row_arm, scale in
                    sorted(rows(study), key=lambda row: row[2]) if row_arm == arm}
              for arm in study.sigma_scale_arms}
    plots.save_quality_diversity(
        {label: ([s["within_class"] for s in runs.values()], [s["fid"] for s in runs.values()])
         for label, runs in scores.items()},
        os.path.join(workdir, "quality_diversity.png"),
        "diversity within a class ÷ real test images' (pixels)", "FID vs test set",
        variants=scaled, variants_label="the arm, its sigma scaled at sampling")
    first = {label: next(iter(runs.items())) for label, runs in found.items()}
    pictures = {f"{label} ({seed})": os.path.join(folder, COMPONENTS_PICTURE)
                for label, (seed, (folder, _)) in first.items()}
    pictures = {title: path for title, path in pictures.items() if os.path.isfile(path)}
    if pictures:
      plots.save_panels(pictures, os.path.join(workdir, "components.png"))
  steps = sorted({*study.steps, *last_steps.values()})
  trajectory.trajectory(workdir, [arm for arm in study.arms if arm in results], steps,
                        study.num_samples or None, score=False)
  return scores


def select(study: plan.Study, scores: dict) -> dict | None:
  """The arm the study's rule picks, from the arms' means over seeds.

  The rule: the highest mean ``selection_score`` among the arms whose mean FID is at most
  ``selection_max_fid_ratio`` times the baseline arm's. None for a study without a rule
  or without the baseline's FID.
  """
  if not study.selection_score:
    return None
  means = {label: {key: float(np.nanmean([s[key] for s in runs.values()]))
                   if any(math.isfinite(s[key]) for s in runs.values()) else math.nan
                   for key in ("fid", study.selection_score)}
           for label, runs in scores.items()}
  if study.baseline not in means or not math.isfinite(means[study.baseline]["fid"]):
    return None
  limit = study.selection_max_fid_ratio * means[study.baseline]["fid"]
  eligible = {label: m for label, m in means.items()
              if m["fid"] <= limit and math.isfinite(m[study.selection_score])}
  if not eligible:
    return {"selected": None, "fid_limit": limit, "means": means}
  best = max(eligible, key=lambda label: eligible[label][study.selection_score])
  return {"selected": best, "fid_limit": limit, "means": means}


def selection_lines(study: plan.Study, selection: dict) -> str:
  rule = (f"Selection rule: the highest mean `{study.selection_score}` among the arms whose mean "
          f"FID is at most {study.selection_max_fid_ratio:g} x the baseline's "
          f"(`{study.baseline}`: FID <= {selection['fid_limit']:.1f}).")
  if selection["selected"] is None:
    return f"{rule}\n\nNo arm qualifies."
  chosen = selection["means"][selection["selected"]]
  return (f"{rule}\n\n**Selected: `{selection['selected']}`** ({study.selection_score} "
          f"{chosen[study.selection_score]:.3f}, FID {chosen['fid']:.1f}).")

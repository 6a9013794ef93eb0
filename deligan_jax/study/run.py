"""One run of a study: trained (or resumed) on one pinned core, then scored where it is not yet.

Every evaluation goes to the run's ``eval_steps/<batch>/`` (a sigma scale's to
``sigma_scale_<s>/`` in it), as ``trajectory`` writes them, so a run continued later
(a longer schedule) keeps the scores of this study's last batch.
"""

from __future__ import annotations

import os

from deligan_jax import errors
from deligan_jax import training
from deligan_jax.runs import checkpoints
from deligan_jax.scores import trajectory
from deligan_jax.study import plan


def finished(run: str, num_steps: int) -> bool:
  """Whether ``run`` holds a checkpoint of batch ``num_steps`` or later."""
  if not checkpoints.is_run(run):
    return False
  checkpointer = checkpoints.Checkpointer(run)
  try:
    latest = checkpointer.latest_step()
  finally:
    checkpointer.close()
  return latest is not None and latest >= num_steps


def train_and_score(study: plan.Study, workdir: str, arm: str, seed: int) -> None:
  """Trains ``(arm, seed)`` to its last batch unless done; scores each of its checkpoints.

  Scored: the study's ``steps`` below the last batch, the last batch, and the last
  batch at each sigma scale of the arm; an evaluation already there is kept.
  """
  config = study.run_config(arm, seed)
  run = plan.run_dir(workdir, arm, seed)
  if not finished(run, config.num_steps):
    training.train_and_evaluate(config, run)
  steps = sorted({*study.steps, config.num_steps})
  count = study.num_samples or None
  for step in steps:
    if trajectory.evaluation_at(run, step, count, None) is None:
      raise errors.RequestError(f"{run} holds no checkpoint of batch {step} to score; keep it "
                              "with checkpoint_every and keep_checkpoints")
  if arm in study.sigma_scale_arms:
    for scale in study.sigma_scales:
      trajectory.evaluation_at(run, config.num_steps, count, None, sigma_scale=scale)
  scales = (f" and at sigma x {', '.join(f'{s:g}' for s in study.sigma_scales)}"
            if arm in study.sigma_scale_arms else "")
  print(f"{arm} seed {seed}: trained to batch {config.num_steps}, scored at batches "
        f"{', '.join(map(str, steps))}{scales}", flush=True)

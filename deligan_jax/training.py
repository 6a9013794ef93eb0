"""The training loop: config -> data -> state -> fused steps -> metrics, checkpoints, pictures.

Everything a run writes lands in its workdir::

  config.json        the resolved config (what ``sample``/resume read back)
  metrics.jsonl      one record per ``log_every`` batches
  tensorboard/       the same scalars as TensorBoard events
  samples/           sample grids (images) or scatter plots (toy) during training
  checkpoints/       orbax checkpoints of the whole train state (last k kept)
  samples.png, loss_curves.png   the final pictures

Running again with the same workdir resumes from the latest checkpoint.
"""

from __future__ import annotations

import os

import jax
import ml_collections
import numpy as np
import tqdm

from deligan_jax import balancing
from deligan_jax import checkpoints
from deligan_jax import config as config_lib
from deligan_jax import input_pipeline
from deligan_jax import models
from deligan_jax import plots
from deligan_jax import run_log
from deligan_jax import train_step

# Fields that may change between a run and its resumption (budget, logging, paths).
RESUMABLE_CHANGES = ("num_steps", "log_every", "sample_every", "checkpoint_every",
                     "keep_checkpoints", "num_plot_samples", "steps_per_dispatch",
                     "data.dir", "data.source", "data.tfds_data_dir")


def _prepare_workdir(config: ml_collections.ConfigDict, workdir: str) -> None:
  """Creates the workdir and records the config; refuses one of another run."""
  os.makedirs(os.path.join(workdir, "samples"), exist_ok=True)
  path = os.path.join(workdir, checkpoints.CONFIG_FILE)
  if os.path.exists(path):
    with open(path) as f:
      previous = config_lib.from_json(f.read())
    old = config_lib.flatten(previous.to_dict())
    new = config_lib.flatten(config.to_dict())
    changed = sorted(k for k in set(old) | set(new)
                     if old.get(k) != new.get(k) and k not in RESUMABLE_CHANGES)
    if changed:
      raise config_lib.ConfigError(
          f"workdir {workdir} holds a run with a different config "
          f"({', '.join(f'{k}: {old.get(k)!r} -> {new.get(k)!r}' for k in changed)}); "
          "use a new --workdir or the same config")
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    f.write(config_lib.to_json(config))
  os.replace(tmp, path)


def plot_samples(model: models.GanModel, state: train_step.TrainState, config,
                 real: np.ndarray, path: str) -> None:
  """A 7x7-style grid of generated images, or generated beside real points (toy)."""
  key = jax.random.key(config.seed)  # the same latents at every step, for comparison
  samples, _ = model.generate(state.params, state.batch_stats, key, config.num_plot_samples,
                              train=False)
  samples = np.asarray(jax.device_get(samples))
  title = f"{config.model}, batch {int(state.step)}"
  if samples.ndim == 2:
    plots.save_toy_scatter(samples, real, path, title)
  else:
    plots.save_image_grid(samples, path)


def _summarise(window: list[dict]) -> dict[str, float]:
  """Means over the batches of one log window; update counts are summed."""
  keys = window[0].keys()
  stacked = {k: np.concatenate([np.atleast_1d(m[k]) for m in window]) for k in keys}
  out = {}
  for key, values in stacked.items():
    if key in ("g_updates", "d_updates"):
      out[key] = int(values.sum())
    elif np.all(np.isnan(values)):
      out[key] = float("nan")
    else:
      out[key] = float(np.nanmean(values))
  return out


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> train_step.TrainState:
  """Trains ``config`` in ``workdir`` (resuming if it holds a checkpoint); returns the state."""
  config_lib.validate(config)
  _prepare_workdir(config, workdir)

  dataset = input_pipeline.load(config.data)
  model = models.build(config)
  rule = balancing.BalanceRule.from_config(config.balance)
  trainer = train_step.Trainer(model, rule, train_step.StepConfig.from_config(config),
                               dataset.x, train_step.make_mesh())
  checkpointer = checkpoints.Checkpointer(workdir, config.keep_checkpoints)
  state = trainer.init_state(config.seed)
  if checkpointer.latest_step() is not None:
    state = checkpointer.restore(state)
  start = int(state.step)
  writer = run_log.MetricWriter(workdir, start)

  updates_per_batch = rule.inner_updates
  progress = tqdm.tqdm(total=config.num_steps * updates_per_batch,
                       initial=start * updates_per_batch, unit="upd", unit_scale=False,
                       desc=f"{config.model} ({workdir})", dynamic_ncols=True, smoothing=0.1)
  window: list[dict] = []
  try:
    while int(state.step) < config.num_steps:
      batches = min(config.steps_per_dispatch, config.num_steps - int(state.step))
      state, metrics = trainer.train(state, batches)
      window.append(jax.device_get(metrics))
      step = int(state.step)
      progress.update(batches * updates_per_batch)
      if step % config.log_every == 0 or step == config.num_steps:
        summary = _summarise(window)
        window = []
        writer.write(step, summary)
        progress.set_postfix(g=f"{summary['g_loss']:.3f}", thres=f"{summary['thres']:.3f}")
      if step % config.sample_every == 0:
        plot_samples(model, state, config, dataset.x,
                     os.path.join(workdir, "samples", f"step_{step:07d}.png"))
      if step % config.checkpoint_every == 0 or step == config.num_steps:
        checkpointer.save(state)
  finally:
    progress.close()
    writer.close()
    checkpointer.close()

  plot_samples(model, state, config, dataset.x, os.path.join(workdir, "samples.png"))
  records = run_log.read_metrics(workdir)
  if records:
    plots.save_loss_curves(records, os.path.join(workdir, "loss_curves.png"))
  return state

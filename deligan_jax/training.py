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

import contextlib
import os
import signal
import threading

import jax
import jax.numpy as jnp
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
                     "distributed", "data.dir", "data.source", "data.tfds_data_dir")


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
  out = {}
  for key in window[0]:
    values = np.concatenate([np.atleast_1d(m[key]) for m in window])
    if key in ("g_updates", "d_updates"):
      out[key] = int(values.sum())
    elif np.all(np.isnan(values)):
      out[key] = float("nan")
    else:
      out[key] = float(np.nanmean(values))
  return out


def _across_seeds(summaries: list[dict[str, float]]) -> dict[str, float]:
  """Mean and standard deviation over seeds of each summarised metric."""
  out = {}
  for key in summaries[0]:
    values = np.array([s[key] for s in summaries], np.float64)
    finite = values[np.isfinite(values)]
    out[key] = float(finite.mean()) if finite.size else float("nan")
    out[f"{key}_std"] = float(finite.std()) if finite.size else float("nan")
  return out


class _Run:
  """One seed's workdir: its config, metric writer and checkpoints."""

  def __init__(self, config: ml_collections.ConfigDict, workdir: str):
    self.config = config
    self.workdir = workdir
    _prepare_workdir(config, workdir)
    self.checkpointer = checkpoints.Checkpointer(workdir, config.keep_checkpoints)
    self.writer = None

  def start_logging(self, step: int) -> None:
    self.writer = run_log.MetricWriter(self.workdir, step)

  def close(self) -> None:
    if self.writer is not None:
      self.writer.close()
    self.checkpointer.close()


def _seed_runs(config: ml_collections.ConfigDict, workdir: str) -> list[_Run]:
  """The workdir of each seed: ``workdir`` itself, or ``workdir/seed_<s>`` for several.

  Each seed's folder is a complete single-seed run (its own config.json with
  ``num_seeds=1``), so ``sample``, evaluation and resumption work on it alone.
  """
  if config.num_seeds == 1:
    return [_Run(config, workdir)]
  _prepare_workdir(config, workdir)
  runs = []
  for offset, seed_workdir in enumerate(checkpoints.run_workdirs(config, workdir)):
    seed_config = config.copy_and_resolve_references()
    seed_config.seed = config.seed + offset
    seed_config.num_seeds = 1
    runs.append(_Run(seed_config, seed_workdir))
  return runs


def _seed(state: train_step.TrainState, index: int, num_seeds: int) -> train_step.TrainState:
  return state if num_seeds == 1 else jax.tree.map(lambda leaf: leaf[index], state)


def _restore(runs: list[_Run], state: train_step.TrainState) -> train_step.TrainState:
  """The latest step that every seed has a checkpoint of, or ``state`` if none has one."""
  steps = [run.checkpointer.latest_step() for run in runs]
  if all(step is None for step in steps):
    return state
  if any(step is None for step in steps):
    missing = [run.workdir for run, step in zip(runs, steps) if step is None]
    raise ValueError(f"some seeds of this run have checkpoints and {missing} have none; "
                     "move the incomplete seed folders away or use a new --workdir")
  step = min(steps)
  if len(runs) == 1:
    return runs[0].checkpointer.restore(state, step)
  restored = [run.checkpointer.restore(_seed(state, k, len(runs)), step)
              for k, run in enumerate(runs)]
  return jax.tree.map(lambda *leaves: jnp.stack(leaves), *restored)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> train_step.TrainState:
  """Trains ``config`` in ``workdir`` (resuming if it holds a checkpoint); returns the state.

  With ``config.num_seeds > 1`` the returned state is stacked over seeds.
  """
  config_lib.validate(config)
  runs = _seed_runs(config, workdir)
  num_seeds = config.num_seeds

  dataset = input_pipeline.load(config.data)
  model = models.build(config)
  rule = balancing.BalanceRule.from_config(config.balance)
  semi_supervised = config.objective == "semi_supervised"
  # The semi-supervised D is also a classifier: its test accuracy is logged.
  test_set = input_pipeline.load_test(config.data) if semi_supervised else None
  trainer = train_step.Trainer(model, rule, train_step.StepConfig.from_config(config),
                               dataset.x, train_step.make_mesh(), num_seeds,
                               train_labels=dataset.labels if semi_supervised else None)
  try:
    state = _restore(runs, trainer.init_state(config.seed))
    start = int(_seed(state, 0, num_seeds).step)
    for run in runs:
      run.start_logging(start)
    summary_writer = run_log.MetricWriter(workdir, start) if num_seeds > 1 else None
    try:
      state = _loop(config, trainer, runs, summary_writer, state, dataset.x, workdir, test_set)
    finally:
      if summary_writer is not None:
        summary_writer.close()
  finally:
    for run in runs:
      run.close()

  for k, run in enumerate(runs):
    plot_samples(model, _seed(state, k, num_seeds), run.config, dataset.x,
                 os.path.join(run.workdir, "samples.png"))
  for path in {run.workdir for run in runs} | {workdir}:
    records = run_log.read_metrics(path)
    if records:
      plots.save_loss_curves(records, os.path.join(path, "loss_curves.png"))
  return state


class Interrupted(Exception):
  """Training stopped on SIGINT/SIGTERM after saving a checkpoint at ``step``."""

  def __init__(self, signal_name: str, step: int, workdir: str):
    super().__init__(f"{signal_name}: saved a checkpoint at batch {step} in {workdir}; run the "
                     "same command again to resume from it")
    self.step = step


class NonFinite(Exception):
  """A loss or parameter became NaN/inf; the latest checkpoint is the last good state."""


def _check_finite(metrics: dict, step: int, batches: int, workdir: str) -> None:
  """Raises :class:`NonFinite` naming the first bad batch and quantity of a dispatch."""
  for key, quantity in (("finite_losses", "a loss"), ("finite_params", "a parameter")):
    finite = np.asarray(metrics.pop(key)).reshape(-1, batches).all(axis=0)
    if not finite.all():
      bad = step - batches + int(np.argmin(finite)) + 1
      raise NonFinite(f"{quantity} became NaN or infinite at batch {bad}; nothing after the "
                      f"latest checkpoint in {workdir} was saved. Resume from it with another "
                      "seed (a new --workdir) or a smaller learning rate")


@contextlib.contextmanager
def _signals_recorded():
  """Records SIGINT/SIGTERM instead of dying mid-dispatch; yields the list of names seen."""
  received: list[str] = []
  previous = {}

  def record(signum, frame):
    del frame
    received.append(signal.Signals(signum).name)

  if threading.current_thread() is threading.main_thread():  # signals reach only that one
    for signum in (signal.SIGINT, signal.SIGTERM):
      previous[signum] = signal.signal(signum, record)
  try:
    yield received
  finally:
    for signum, handler in previous.items():
      signal.signal(signum, handler)


def _loop(config, trainer, runs, summary_writer, state, real, workdir, test_set=None):
  """Dispatches fused steps until ``num_steps``; logs, plots and checkpoints on the way.

  With a ``test_set``, each log record also holds D's accuracy on it.

  SIGINT or SIGTERM ends the loop at the next dispatch boundary with a
  checkpoint of that step (:class:`Interrupted`).
  """
  num_seeds = len(runs)
  updates_per_batch = trainer.rule.inner_updates
  step = int(_seed(state, 0, num_seeds).step)
  progress = tqdm.tqdm(total=config.num_steps * updates_per_batch * num_seeds,
                       initial=step * updates_per_batch * num_seeds, unit="upd",
                       desc=f"{config.model} x{num_seeds}" if num_seeds > 1 else config.model,
                       dynamic_ncols=True, smoothing=0.1)
  window: list[dict] = []
  with _signals_recorded() as received, progress:
    while step < config.num_steps:
      batches = min(config.steps_per_dispatch, config.num_steps - step)
      state, metrics = trainer.train(state, batches)
      metrics = jax.device_get(metrics)
      step += batches
      _check_finite(metrics, step, batches, workdir)
      window.append(metrics)
      progress.update(batches * updates_per_batch * num_seeds)
      if step % config.log_every == 0 or step == config.num_steps:
        summaries = [_summarise([_seed(m, k, num_seeds) for m in window])
                     for k in range(num_seeds)]
        window = []
        if test_set is not None:
          for k, summary in enumerate(summaries):
            predictions = trainer.classify(_seed(state, k, num_seeds), test_set.x)
            summary["test_accuracy"] = float(np.mean(predictions == test_set.labels))
        for run, summary in zip(runs, summaries):
          run.writer.write(step, summary)
        if summary_writer is not None:
          summary_writer.write(step, _across_seeds(summaries))
        progress.set_postfix(g=f"{summaries[0]['g_loss']:.3f}",
                             thres=f"{summaries[0]['thres']:.3f}")
      if step % config.sample_every == 0:
        for k, run in enumerate(runs):
          plot_samples(trainer.model, _seed(state, k, num_seeds), run.config, real,
                       os.path.join(run.workdir, "samples", f"step_{step:07d}.png"))
      if step % config.checkpoint_every == 0 or step == config.num_steps or received:
        for k, run in enumerate(runs):
          run.checkpointer.save(_seed(state, k, num_seeds))
      if received and step < config.num_steps:
        raise Interrupted(received[0], step, workdir)
  return state

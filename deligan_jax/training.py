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

import collections
import contextlib
import functools
import os
import signal
import threading

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import tqdm

from deligan_jax import config as config_lib
from deligan_jax import experiment as experiment_lib
from deligan_jax import models
from deligan_jax import sampling
from deligan_jax.data import datasets
from deligan_jax.errors import DataError
from deligan_jax.models import networks
from deligan_jax.runs import checkpoints
from deligan_jax.runs import lock
from deligan_jax.runs import metrics_log
from deligan_jax.runs import plots
from deligan_jax.step import stall
from deligan_jax.runs import workdir as workdir_lib
from deligan_jax.scores import seed_statistics
from deligan_jax.step import distributed
from deligan_jax.step import state as state_lib


def _check_data(config: ml_collections.ConfigDict, x: np.ndarray) -> None:
  """Refuses training samples of another shape than the configured networks take."""
  wanted = networks.SAMPLE_SHAPES[config.network.name]
  if x.shape[1:] != wanted:
    raise DataError(
        f"data.name={config.data.name!r} gives samples of shape {x.shape[1:]}, but the "
        f"{config.network.name!r} networks (network.name) take {wanted}")


def plot_samples(model: models.GanModel, state: state_lib.TrainState, config,
                 real: np.ndarray, path: str) -> None:
  """A 7x7-style grid of generated images, or generated beside real points (toy)."""
  variables = distributed.for_primary((state.params, state.batch_stats))
  if variables is None:
    return  # process 0 draws it
  state = state.replace(params=variables[0], batch_stats=variables[1])
  # The same latents at every step, for comparison.
  samples = sampling.draw_as_scored(model, config, state, config.num_plot_samples,
                                   seed=config.seed)
  title = f"{config.model}, batch {int(state.step)}"
  if samples.ndim == 2:
    plots.save_toy_scatter(samples, real, path, title)
  else:
    plots.save_image_grid(samples, path)


def _summarise(window: list[dict]) -> dict[str, float]:
  """Means over the batches of one log window; update counts are summed.

  ``d_fraction``, D's share of the window's updates (forced D updates count as
  D's), shows a stalled balance (0: D frozen; 1: G frozen).
  """
  out = {}
  for key in window[0]:
    values = np.concatenate([np.atleast_1d(m[key]) for m in window])
    if any(key in keys for keys in stall.UPDATE_COUNTS.values()):
      out[key] = int(values.sum())
    elif np.all(np.isnan(values)):
      out[key] = float("nan")
    else:
      out[key] = float(np.nanmean(values))
  if "d_updates" in out:
    d_updates = stall.updates_of("D", out)
    out["d_fraction"] = d_updates / max(d_updates + stall.updates_of("G", out), 1)
  return out


def _across_seeds(summaries: list[dict[str, float]]) -> dict[str, float]:
  """Mean and sample standard deviation over seeds of each summarised metric."""
  out = {}
  for key in summaries[0]:
    out[key], out[f"{key}_std"] = seed_statistics.mean_std([s[key] for s in summaries])
  return out


class _Run:
  """One seed's workdir: its config, metric writer and checkpoints."""

  def __init__(self, config: ml_collections.ConfigDict, workdir: str):
    self.config = config
    self.workdir = workdir
    self.checkpointer = checkpoints.Checkpointer(workdir, checkpoints.Retention.of(config))

  def close(self) -> None:
    self.checkpointer.close()


def _seed_runs(config: ml_collections.ConfigDict, workdir: str) -> list[_Run]:
  """The workdir of each seed: ``workdir`` itself, or ``workdir/seed_<s>`` for several.

  Each seed's folder is a complete single-seed run (its own config.json with
  ``num_seeds=1``), so ``sample``, evaluation and resumption work on it alone.
  """
  if config.num_seeds == 1:
    return [_Run(config, workdir)]
  runs = []
  for offset, seed_workdir in enumerate(checkpoints.run_workdirs(config, workdir)):
    seed_config = config.copy_and_resolve_references()
    seed_config.seed = config.seed + offset
    seed_config.num_seeds = 1
    runs.append(_Run(seed_config, seed_workdir))
  return runs


def _seed(state: state_lib.TrainState, index: int, num_seeds: int) -> state_lib.TrainState:
  return state if num_seeds == 1 else _take_seed(state, index)


@functools.partial(jax.jit, static_argnums=1)
def _take_seed(state: state_lib.TrainState, index: int) -> state_lib.TrainState:
  # One program rather than an eager slice per leaf: eager slices interleaved with the
  # collectives of a mesh spanning processes can hang (gloo on CPU).
  return jax.tree.map(lambda leaf: leaf[index], state)


@jax.jit
def _stack_seeds(*states: state_lib.TrainState) -> state_lib.TrainState:
  # One program, as _take_seed; compiled once, not at every restore.
  return jax.tree.map(lambda *leaves: jnp.stack(leaves), *states)


def _restore(runs: list[_Run], state: state_lib.TrainState) -> state_lib.TrainState:
  """The latest step that every seed has an intact checkpoint of, or ``state`` if none has one.

  Newer checkpoints (damaged ones, passed over) are moved aside, not deleted,
  so that this run can save those steps again.
  """
  steps = [run.checkpointer.resume_step() for run in runs]
  if all(step is None for step in steps):
    return state
  if any(step is None for step in steps):
    missing = [run.workdir for run, step in zip(runs, steps) if step is None]
    raise checkpoints.CheckpointError(
        f"some seeds of this run have checkpoints and {missing} have none; move the "
        "incomplete seed folders away or use a new --workdir")
  step = min(steps)
  restored = [run.checkpointer.restore(_seed(state, k, len(runs)), step)
              for k, run in enumerate(runs)]
  for run in runs:
    run.checkpointer.set_aside_newer(step)
  if len(runs) == 1:
    return restored[0]
  return _stack_seeds(*restored)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> state_lib.TrainState:
  """Trains ``config`` in ``workdir`` (resuming if it holds a checkpoint); returns the state.

  Every check (config, workdir, data, checkpoint) runs before the first write,
  so bad input leaves an existing workdir as it was. With ``config.num_seeds >
  1`` the returned state is stacked over seeds.
  """
  config_lib.validate(config)
  runs = _seed_runs(config, workdir)
  with contextlib.ExitStack() as cleanup:
    for run in runs:
      cleanup.callback(run.close)
    configs = {workdir: config} | {run.workdir: run.config for run in runs}
    for path, run_config in configs.items():
      workdir_lib.check(run_config, path)
    dataset = datasets.load(config.data)
    _check_data(config, dataset.x)
    experiment = experiment_lib.Experiment.from_config(config)
    model = experiment.model
    semi_supervised = config.objective == "semi_supervised"
    # The semi-supervised D is also a classifier: its test accuracy is logged.
    test_set = datasets.load_test(config.data) if semi_supervised else None
    driver = experiment.driver(dataset.x,
                               train_labels=dataset.labels if semi_supervised else None)
    if driver.idle_note:
      logging.warning(driver.idle_note)
    # From here on this run may write: another one on the same workdir is refused.
    claim = cleanup.enter_context(lock.owned(workdir))
    state = _restore(runs, driver.init_state(config.seed))
    claim()
    if distributed.is_primary():
      for path, run_config in configs.items():
        workdir_lib.record_config(run_config, path)
    state = _train_with_reseeds(config, driver, runs, state, dataset.x, workdir, test_set)

    for k, run in enumerate(runs):
      plot_samples(model, _seed(state, k, config.num_seeds), run.config, dataset.x,
                   os.path.join(run.workdir, "samples.png"))
    for path in configs if distributed.is_primary() else ():
      records = metrics_log.read_metrics(path)
      if records:
        plots.save_loss_curves(records, os.path.join(path, "loss_curves.png"))
  return state


def _train_with_reseeds(config, driver, runs, state, real, workdir, test_set=None):
  """:func:`_dispatch_loop` until ``num_steps``, with ``config.on_non_finite='reseed'`` retried.

  A retry restores the last good checkpoint and replaces its key with one
  derived from it and from the number of retries from that checkpoint, so an
  interrupted and resumed run retries with the same keys. Each retry is
  recorded in metrics.jsonl; after ``config.max_reseeds`` retries (in this
  process) :class:`NonFinite` is raised after all.
  """
  reseeds = 0
  retries = collections.Counter()  # retries from each checkpoint's step
  reseeded = None
  while True:
    step = distributed.batch_reached(state)
    # Process 0 writes the metrics of a run over several processes.
    writer = metrics_log.MetricWriter if distributed.is_primary() else metrics_log.NoWriter
    writers = [writer(run.workdir, step) for run in runs]
    summary_writer = writer(workdir, step) if len(runs) > 1 else None
    opened = writers + ([summary_writer] if summary_writer else [])
    try:
      if reseeded:
        for writer in opened:
          writer.write(step, reseeded)
      return _dispatch_loop(config, driver, runs, writers, summary_writer, state, real, workdir,
                   test_set)
    except NonFinite as error:
      if config.on_non_finite == "stop" or reseeds == config.max_reseeds:
        raise NonFinite(error.quantity, error.step, workdir,
                        reseeds if config.on_non_finite == "reseed" else None) from None
      reseeds += 1
      state = _restore(runs, driver.init_state(config.seed))
      good = distributed.batch_reached(state)
      retries[good] += 1
      state = state_lib.reseed(state, retries[good])
      reseeded = {"reseed": retries[good], "non_finite_batch": error.step}
      logging.warning("%s became NaN or infinite at batch %d; continuing from batch %d with "
                      "new randomness (retry %d from there; reseed %d of at most %d)",
                      error.quantity, error.step, good, retries[good], reseeds,
                      config.max_reseeds)
    finally:
      for writer in opened:
        writer.close()


class Interrupted(Exception):
  """Training stopped on SIGINT/SIGTERM after saving a checkpoint at ``step``."""

  def __init__(self, signal_name: str, step: int, workdir: str):
    super().__init__(f"{signal_name}: saved a checkpoint at batch {step} in {workdir}; run the "
                     "same command again to resume from it")
    self.step = step


class Stalled(Exception):
  """``config.stall.action='stop'``: the balance stalled; a checkpoint of ``step`` was saved."""

  def __init__(self, message: str, step: int, workdir: str):
    super().__init__(f"stopped at batch {step}, checkpoint saved in {workdir}: {message}")
    self.step = step


class NonFinite(Exception):
  """A loss or parameter became NaN/inf at batch ``step``; the latest checkpoint is good.

  ``reseeds`` is how many retries ``on_non_finite='reseed'`` made, None without it.
  """

  def __init__(self, quantity: str, step: int, workdir: str, reseeds: int | None = None):
    advice = ("Run again with --config.on_non_finite=reseed to continue from it with new "
              "randomness" if reseeds is None else
              f"Gave up after {reseeds} reseeds (config.max_reseeds)")
    super().__init__(f"{quantity} became NaN or infinite at batch {step}; nothing after the "
                     f"latest checkpoint in {workdir} was saved. {advice}, or use a new "
                     "--workdir with a smaller learning rate")
    self.quantity = quantity
    self.step = step


def _check_finite(metrics: dict, step: int, batches: int, workdir: str) -> None:
  """Raises :class:`NonFinite` naming the first bad batch and quantity of a dispatch."""
  for key, quantity in (("finite_losses", "a loss"), ("finite_params", "a parameter")):
    finite = np.asarray(metrics.pop(key)).reshape(-1, batches).all(axis=0)
    if not finite.all():
      raise NonFinite(quantity, step - batches + int(np.argmin(finite)) + 1, workdir)


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


def _dispatch_loop(config, driver, runs, writers, summary_writer, state, real, workdir,
          test_set=None):
  """Dispatches fused steps until ``num_steps``; logs, plots and checkpoints on the way.

  With a ``test_set``, each log record also holds D's accuracy on it.

  SIGINT or SIGTERM ends the loop at the next dispatch boundary with a
  checkpoint of that step (:class:`Interrupted`).
  """
  num_seeds = len(runs)
  updates_per_batch = driver.rule.inner_updates
  step = distributed.batch_reached(state)
  progress = tqdm.tqdm(total=config.num_steps * updates_per_batch * num_seeds,
                       disable=not distributed.is_primary(),  # one bar for the run
                       initial=step * updates_per_batch * num_seeds, unit="upd",
                       desc=f"{config.model} x{num_seeds}" if num_seeds > 1 else config.model,
                       dynamic_ncols=True, smoothing=0.1)
  window: list[dict] = []
  watch = stall.StallWatch(config.stall.windows, config.stall.probe_tolerance, num_seeds)
  stalled = None
  with _signals_recorded() as received, progress:
    while step < config.num_steps:
      batches = min(config.steps_per_dispatch, config.num_steps - step)
      state, metrics = driver.run(state, batches)
      metrics = distributed.fetch(metrics)
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
            predictions = driver.classify(_seed(state, k, num_seeds), test_set.x)
            summary["test_accuracy"] = float(np.mean(predictions == test_set.labels))
        for writer, summary in zip(writers, summaries):
          writer.write(step, summary)
        if summary_writer is not None:
          summary_writer.write(step, _across_seeds(summaries))
        for k, network in enumerate(watch.observe(summaries)):
          if network:
            stalled = stall.message(network, summaries[k], config.stall.windows,
                                    config.stall.windows * config.log_every, runs[k].config.seed)
            logging.warning("%s", stalled)
            writers[k].write(step, {"stalled": network, "stalled_windows": config.stall.windows})
        progress.set_postfix(g=f"{summaries[0]['g_loss']:.3f}",
                             thres=f"{summaries[0]['thres']:.3f}",
                             **({"stalled": watch.label()} if any(watch.stalled) else {}))
      if step % config.sample_every == 0:
        for k, run in enumerate(runs):
          plot_samples(driver.model, _seed(state, k, num_seeds), run.config, real,
                       os.path.join(run.workdir, "samples", f"step_{step:07d}.png"))
      stop_stalled = stalled is not None and config.stall.action == "stop"
      # A signal to one process of a run stops them all at the same batch.
      signalled = distributed.any_process(bool(received))
      if (step % config.checkpoint_every == 0 or step == config.num_steps or signalled
          or stop_stalled):
        for k, run in enumerate(runs):
          run.checkpointer.save(_seed(state, k, num_seeds))
      if signalled and step < config.num_steps:
        raise Interrupted(received[0] if received else "a signal to another process", step,
                          workdir)
      if stop_stalled and step < config.num_steps:
        raise Stalled(stalled, step, workdir)
  return state

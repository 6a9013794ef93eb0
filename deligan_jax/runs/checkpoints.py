"""Saving and restoring a run's :class:`~deligan_jax.step.state.TrainState` (orbax).

A checkpoint is the whole train state (parameters, batch statistics, optimiser
states, balancing state, step and key), so a resumed run continues exactly.
orbax writes each checkpoint to a temporary directory and renames it when
complete, so a partial write (a killed process, a full disk) is never taken for
the latest checkpoint. Each complete checkpoint then gets a SHA-256 manifest
(:mod:`deligan_jax.runs.checksums`), checked before it is restored: a checkpoint
damaged later (a truncated or altered file) is named and passed over for the
newest intact one, and nothing is deleted.
"""

from __future__ import annotations

import dataclasses
import os
import shutil

from absl import logging
import jax
import orbax.checkpoint as ocp

from deligan_jax import config as config_lib
from deligan_jax import experiment as experiment_lib
from deligan_jax import models
from deligan_jax.errors import CheckpointError
from deligan_jax.runs import checksums
from deligan_jax.step import distributed
from deligan_jax.runs.workdir import CONFIG_FILE, is_run
from deligan_jax.step import state as train_state

CHECKPOINT_DIR = "checkpoints"
PARTIAL_SUFFIX = ".orbax-checkpoint-tmp"  # orbax's name for a checkpoint being written
SET_ASIDE_DIR = "set_aside_checkpoints"  # where resumption moves the checkpoints it passes over


def _shapes(tree) -> dict[str, tuple[int, ...]]:
  """Each leaf's shape by its path, for stored metadata and states alike."""
  return {jax.tree_util.keystr(path, simple=True, separator="/"): tuple(leaf.shape)
          for path, leaf in jax.tree_util.tree_leaves_with_path(tree)}


@dataclasses.dataclass(frozen=True)
class Retention:
  """Which checkpoints a run keeps: the newest, and the last ``keep`` of its scheduled
  saves (every ``every``-th batch, and batch ``last``).

  A save off the schedule (on a signal or a stall) is kept while it is the newest and
  never takes a scheduled checkpoint's place, so the scheduled checkpoints a
  trajectory reads are there however often the run was interrupted. An orbax
  preservation policy.
  """
  keep: int
  every: int
  last: int

  @classmethod
  def of(cls, config) -> Retention:
    return cls(config.keep_checkpoints, config.checkpoint_every, config.num_steps)

  def kept(self, steps) -> set[int]:
    steps = list(steps)
    scheduled = sorted(s for s in steps if s % self.every == 0 or s == self.last)
    return set(scheduled[-self.keep:]) | ({max(steps)} if steps else set())

  def should_preserve(self, checkpoints, *, context) -> list[bool]:
    del context  # the policy needs only the steps
    kept = self.kept([c.step for c in checkpoints])
    return [c.step in kept for c in checkpoints]


class Checkpointer:
  """Train states under ``workdir/checkpoints``, those of ``retention`` kept (all without).

  Reading writes nothing: the folder appears with the first save.
  """

  def __init__(self, workdir: str, retention: Retention | None = None):
    # Synchronous saves: when save returns the checkpoint is complete, and a failed
    # write is reported at its own step.
    self._workdir = workdir
    self._manager = ocp.CheckpointManager(
        os.path.abspath(os.path.join(workdir, CHECKPOINT_DIR)),
        item_handlers=ocp.StandardCheckpointHandler(),
        options=ocp.CheckpointManagerOptions(preservation_policy=retention, create=False,
                                             enable_async_checkpointing=False))

  def all_steps(self) -> list[int]:
    return sorted(self._manager.all_steps())

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def save(self, state: train_state.TrainState) -> None:
    step = distributed.batch_reached(state)
    try:
      # Every process of a run writes its shards; process 0 then the manifest.
      self._manager.save(step, args=ocp.args.StandardSave(state))
      distributed.primary_only(lambda: checksums.write_manifest(self._step_dir(step)),
                               f"manifest {self._step_dir(step)}")
    except OSError as e:
      raise CheckpointError(
          f"could not write checkpoint {step} to {self._manager.directory} ({e}); the latest "
          f"complete checkpoint is still {self._manager.latest_step()}. Free space (or fix the "
          "folder) and run the same command again to resume from it") from e

  def _step_dir(self, step: int) -> str:
    return os.path.join(self._manager.directory, str(step))

  def resume_step(self) -> int | None:
    """:meth:`latest_intact_step`, for the run that owns the workdir (holds its lock).

    First removes the partial checkpoints (``<step>.orbax-checkpoint-tmp``) that a write
    cut short (a full disk, a killed process) left: no write of them is under way, and
    the complete ones before them are what resumption needs.
    """
    partial = [name for name in os.listdir(self._manager.directory)
               if name.endswith(PARTIAL_SUFFIX)] \
        if distributed.is_primary() and os.path.isdir(self._manager.directory) else []
    for name in partial:
      shutil.rmtree(os.path.join(self._manager.directory, name))
      logging.warning("removed %s, a checkpoint whose write did not finish",
                      os.path.join(self._manager.directory, name))
    return self.latest_intact_step()

  def latest_intact_step(self) -> int | None:
    """The newest checkpoint whose files match their checksums; None when there is none.

    Each newer, damaged one is named in one warning line. When every checkpoint
    is damaged, that is a CheckpointError rather than a fresh start.
    """
    damaged = []
    for step in sorted(self._manager.all_steps(), reverse=True):
      damage = checksums.find_damage(self._step_dir(step))
      if damage is None:
        for bad_step, bad in damaged:
          logging.warning("checkpoint %d in %s is damaged: %s; using checkpoint %d instead",
                          bad_step, self._manager.directory, bad, step)
        return step
      damaged.append((step, damage))
    if damaged:
      raise CheckpointError(
          f"every checkpoint in {self._manager.directory} is damaged "
          f"({'; '.join(f'{step}: {damage}' for step, damage in damaged)}); nothing was "
          "deleted. Move the checkpoints folder away to start over, or use a new --workdir")
    return None

  def set_aside_newer(self, step: int) -> None:
    """Moves the checkpoints newer than ``step`` to ``workdir/set_aside_checkpoints``.

    They are the damaged ones that resumption from ``step`` passed over (or, with
    several seeds, steps that not every seed reached). Resumption saves these
    steps again, which orbax would skip while they are present; moving keeps
    their bytes for inspection.
    """
    newer_steps = [s for s in self._manager.all_steps() if s > step]
    if not distributed.is_primary():
      newer_steps = []  # process 0 moves them
    for newer in newer_steps:
      target = os.path.join(self._workdir, SET_ASIDE_DIR, str(newer))
      suffix = 1
      while os.path.exists(target):
        target = os.path.join(self._workdir, SET_ASIDE_DIR, f"{newer}.{suffix}")
        suffix += 1
      os.makedirs(os.path.dirname(target), exist_ok=True)
      shutil.move(self._step_dir(newer), target)
      logging.warning("moved checkpoint %d, newer than checkpoint %d that this run resumes "
                      "from, to %s (nothing is deleted)", newer, step, target)
    distributed.barrier(f"set aside {self._manager.directory}")
    self._manager.reload()

  def restore(self, like: train_state.TrainState,
              step: int | None = None) -> train_state.TrainState:
    """Restores ``step`` (default: the newest intact one) into the structure of ``like``."""
    step = self.latest_intact_step() if step is None else step
    damage = checksums.find_damage(self._step_dir(step))
    if damage is not None:
      raise CheckpointError(f"checkpoint {step} in {self._manager.directory} is damaged: "
                            f"{damage}; nothing was deleted")
    try:
      stored = _shapes(self._manager.item_metadata(step).tree)
    except Exception as e:  # pylint: disable=broad-except
      # Only a checkpoint without a manifest gets here damaged; orbax fails in many ways.
      raise CheckpointError(f"checkpoint {step} in {self._manager.directory} cannot be read "
                            f"({type(e).__name__}: {e}); it may be damaged") from e
    wanted = _shapes(like)
    if stored != wanted:
      names = sorted(set(stored) | set(wanted), key=lambda n: (not n.startswith("params"), n))
      differences = [f"{name}: {stored.get(name, 'absent')} there, {wanted.get(name, 'absent')} "
                     "here" for name in names if stored.get(name) != wanted.get(name)]
      raise CheckpointError(
          f"checkpoint {step} in {self._manager.directory} was written by another model config "
          f"({len(differences)} arrays differ; {'; '.join(differences[:3])}). Use the config "
          "that wrote it, or a new --workdir")
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
    return self._manager.restore(step, args=ocp.args.StandardRestore(abstract))

  def close(self) -> None:
    self._manager.close()


def run_workdirs(config, workdir: str) -> list[str]:
  """Where each seed's run lives: ``workdir`` itself, or ``workdir/seed_<s>`` for several seeds."""
  if config.num_seeds == 1:
    return [workdir]
  return [os.path.join(workdir, f"seed_{config.seed + k}") for k in range(config.num_seeds)]


def on_this_device(abstract_state):
  """``abstract_state`` placed whole on this process's first device.

  orbax restores each array with the sharding it is given, and without one
  with the sharding it was saved with, which names devices (a 4-device run's
  mesh) that another machine may not have.
  """
  device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  return jax.tree.map(lambda leaf: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=device),
                      abstract_state)


def read_config(workdir: str):
  """The config a run recorded in its workdir."""
  config_path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.exists(config_path):
    raise FileNotFoundError(f"{workdir} holds no {CONFIG_FILE}: is it a training workdir?")
  with open(config_path) as f:
    return config_lib.from_json(f.read())


def load_run(workdir: str,
             step: int | None = None) -> tuple[object, models.GanModel, train_state.TrainState]:
  """The config, model and train state (at ``step``, default the latest) of a run."""
  config = read_config(workdir)
  if config.num_seeds > 1:
    raise FileNotFoundError(f"{workdir} holds {config.num_seeds} seeds; pass one of its "
                            f"seed folders ({', '.join(run_workdirs(config, workdir))}) as "
                            "the workdir")
  experiment = experiment_lib.Experiment.from_config(config)
  model = experiment.model
  like = on_this_device(experiment.abstract_state())
  checkpointer = Checkpointer(workdir)
  try:
    if checkpointer.latest_step() is None:
      raise FileNotFoundError(f"{workdir} holds no checkpoint yet")
    if step is not None and step not in checkpointer.all_steps():
      raise CheckpointError(f"{workdir} holds no checkpoint of batch {step}; it holds "
                            f"{checkpointer.all_steps()}")
    state = checkpointer.restore(like, step)
  finally:
    checkpointer.close()
  return config, model, state

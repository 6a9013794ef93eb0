"""Saving and restoring a run's :class:`~deligan_jax.train_step.TrainState` (orbax).

A checkpoint is the whole train state (parameters, batch statistics, optimiser
states, balancing state, step and key), so a resumed run continues exactly.
orbax writes each checkpoint to a temporary directory and renames it when
complete, so a partial write is never taken for the latest checkpoint.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp

from deligan_jax import balancing
from deligan_jax import config as config_lib
from deligan_jax import models
from deligan_jax import networks
from deligan_jax import train_step

CHECKPOINT_DIR = "checkpoints"
CONFIG_FILE = "config.json"


class Checkpointer:
  """Keeps the last ``max_to_keep`` train states under ``workdir/checkpoints``."""

  def __init__(self, workdir: str, max_to_keep: int | None = None):
    self._manager = ocp.CheckpointManager(
        os.path.abspath(os.path.join(workdir, CHECKPOINT_DIR)),
        options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True))

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def save(self, state: train_step.TrainState) -> None:
    self._manager.save(int(state.step), args=ocp.args.StandardSave(state))

  def restore(self, like: train_step.TrainState,
              step: int | None = None) -> train_step.TrainState:
    """Restores ``step`` (default latest) into the structure and sharding of ``like``."""
    step = self._manager.latest_step() if step is None else step
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
    try:
      return self._manager.restore(step, args=ocp.args.StandardRestore(abstract))
    except (ValueError, KeyError, TypeError) as e:
      raise ValueError(
          f"checkpoint {step} in {self._manager.directory} does not match this config's "
          f"model (was it written by another config?): {e}") from e

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()


def run_workdirs(config, workdir: str) -> list[str]:
  """Where each seed's run lives: ``workdir`` itself, or ``workdir/seed_<s>`` for several seeds."""
  if config.num_seeds == 1:
    return [workdir]
  return [os.path.join(workdir, f"seed_{config.seed + k}") for k in range(config.num_seeds)]


def load_run(workdir: str) -> tuple[object, models.GanModel, train_step.TrainState]:
  """The config, model and latest train state of a finished or running run."""
  config_path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.exists(config_path):
    raise FileNotFoundError(f"{workdir} holds no {CONFIG_FILE}: is it a training workdir?")
  with open(config_path) as f:
    config = config_lib.from_json(f.read())
  if config.num_seeds > 1:
    raise FileNotFoundError(f"{workdir} holds {config.num_seeds} seeds; pass one of its "
                            f"seed folders ({', '.join(run_workdirs(config, workdir))}) as "
                            "the workdir")
  model = models.build(config)
  rule = balancing.BalanceRule.from_config(config.balance)
  shape = (config.network.init_examples, *networks.SAMPLE_SHAPES[config.network.name])
  like = jax.eval_shape(lambda: train_step.init_state(model, rule, 0, jnp.zeros(shape)))
  checkpointer = Checkpointer(workdir)
  try:
    if checkpointer.latest_step() is None:
      raise FileNotFoundError(f"{workdir} holds no checkpoint yet")
    state = checkpointer.restore(like)
  finally:
    checkpointer.close()
  return config, model, state

"""A run's workdir: its default name, the checks before a run may write there, its config.json."""

from __future__ import annotations

import os

import ml_collections

from deligan_jax import config as config_lib
from deligan_jax.errors import ConfigError, WorkdirError
from deligan_jax.runs import atomic_files

CONFIG_FILE = "config.json"  # the resolved config: what sampling, scoring and resumption read

DEFAULT_ROOT = "runs"


def is_run(folder: str) -> bool:
  """Whether ``folder`` holds a run: one that has started writes its config.json first."""
  return os.path.isfile(os.path.join(folder, CONFIG_FILE))


def default_workdir(config_file: str, config: ml_collections.ConfigDict) -> str:
  """``runs/<config file>[_<data>]_<recipe>``, e.g. runs/mnist_deligan, runs/toy_bimodal_gan.

  Named from what the config argument chose rather than from its spelling, so
  ``toy.py``, ``toy.py:deligan`` and ``toy.py:bimodal,deligan`` (one config)
  share a folder and the same command resumes the same run. The data name is
  left out when the config file is named after it (mnist.py trains on mnist). The
  recipe is the model's name unless the config names a recipe of its own
  (``mnist.py:deligan_diverse`` goes to runs/mnist_deligan_diverse, not to the
  official recipe's runs/mnist_deligan).
  """
  stem = os.path.splitext(os.path.basename(config_file.split(":", 1)[0]))[0]
  parts = [stem]
  data = config.data.name.removeprefix(f"{stem}_")
  if data != stem:
    parts.append(data)
  parts.append(config.recipe or config.model)
  return os.path.join(DEFAULT_ROOT, "_".join(parts))


# Fields that may change between a run and its resumption (budget, logging, paths, names).
RESUMABLE_CHANGES = ("recipe", "num_steps", "log_every", "sample_every", "checkpoint_every",
                     "keep_checkpoints", "num_plot_samples", "steps_per_dispatch",
                     "data.dir", "data.source", "data.tfds_data_dir",
                     "on_non_finite", "max_reseeds", "stall.windows", "stall.probe_tolerance",
                     "stall.action", "latent.sample_noise")


def check(config: ml_collections.ConfigDict, workdir: str) -> None:
  """Refuses a workdir that cannot be written or that holds a run of another config.

  Only reads, so that a refused workdir is left exactly as it was.
  """
  existing = os.path.abspath(workdir)
  while not os.path.exists(existing):
    existing = os.path.dirname(existing)
  if not os.path.isdir(existing):
    raise WorkdirError(f"workdir {workdir} cannot be created: {existing} is a file")
  if not os.access(existing, os.W_OK | os.X_OK):
    raise WorkdirError(f"workdir {workdir} cannot be written: {existing} is not writable "
                       "for this user; choose another --workdir or fix its permissions")
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.exists(path):
    return
  with open(path) as f:
    try:
      previous = config_lib.from_json(f.read())
    except ConfigError as e:
      raise ConfigError(f"{path} is not a config this version can read: {e}") from e
  old = config_lib.flatten(previous.to_dict())
  new = config_lib.flatten(config.to_dict())
  changed = sorted(k for k in set(old) | set(new)
                   if old.get(k) != new.get(k) and k not in RESUMABLE_CHANGES
                   and not k.startswith("distributed."))  # how many hosts run it
  if changed:
    raise ConfigError(
        f"workdir {workdir} holds a run with a different config "
        f"({', '.join(f'{k}: {old.get(k)!r} -> {new.get(k)!r}' for k in changed)}); "
        "use a new --workdir or the same config")


def record_config(config: ml_collections.ConfigDict, workdir: str) -> None:
  """Creates the workdir and writes its config.json, what ``sample`` and resumption read."""
  os.makedirs(os.path.join(workdir, "samples"), exist_ok=True)
  atomic_files.write_atomic(os.path.join(workdir, CONFIG_FILE), config_lib.to_json(config))

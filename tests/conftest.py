"""Shared fixtures: small configs of the real experiments, and the shared data folder."""

import importlib.util
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def load_config(name: str, arg: str | None = None):
  """``configs/<name>.py`` with ``arg``, as ``--config configs/<name>.py:arg`` loads it."""
  spec = importlib.util.spec_from_file_location(name, REPO / "configs" / f"{name}.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


def small_config(name: str, arg: str | None = None, batch_size: int = 8):
  """A config of the real networks, shrunk to run in seconds on a CPU."""
  config = load_config(name, arg)
  config.batch_size = batch_size
  config.latent.num_components = batch_size
  config.num_steps = 8
  config.steps_per_dispatch = 4
  config.log_every = 4
  config.sample_every = 8
  config.checkpoint_every = 4
  config.num_plot_samples = 2 * batch_size
  if name == "mnist":
    config.latent.dim = 6
    config.network.generator_width = 4
    config.network.discriminator_width = 4
    config.network.mbd_kernels = 5
    config.network.mbd_dims = 3
    config.data.per_class = 4
  return config


@pytest.fixture
def mnist_dir():
  """The real MNIST idx files; tests that need them skip when they are absent."""
  path = Path(os.environ.get("DELIGAN_DATA_DIR", SHARED_DATA)) / "mnist"
  if not (path / "train-images-idx3-ubyte.gz").exists():
    pytest.skip(f"MNIST idx files not found in {path} (set DELIGAN_DATA_DIR)")
  return str(path)

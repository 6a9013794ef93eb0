"""Shared fixtures: small configs of the real experiments, and the shared data folder."""

import importlib.util
import os
from pathlib import Path

import jax
import numpy as np
import pytest

from deligan_jax import models

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
  if name != "toy":
    config.latent.dim = 6
    config.network.generator_width = 4
    config.network.discriminator_width = 4
    config.network.mbd_kernels = 5
    config.network.mbd_dims = 3
    config.network.init_examples = 16
    config.data.per_class = 4
  return config


def examples(shape, n: int = 16, seed: int = 0) -> np.ndarray:
  """A batch of stand-in real samples in [-1, 1] for ``model.init``."""
  return np.random.default_rng(seed).uniform(-1, 1, (n, *shape)).astype(np.float32)


@pytest.fixture
def mnist_dir():
  """The real MNIST idx files; tests that need them skip when they are absent."""
  path = Path(os.environ.get("DELIGAN_DATA_DIR", SHARED_DATA)) / "mnist"
  if not (path / "train-images-idx3-ubyte.gz").exists():
    pytest.skip(f"MNIST idx files not found in {path} (set DELIGAN_DATA_DIR)")
  return str(path)


# The MNIST networks' layers followed by batch norm (networks.MnistGenerator/Discriminator).
PRE_BATCH_NORM = {"Conv_1", "Conv_2", "Dense_0", "ConvTranspose_0", "ConvTranspose_1"}


def training_difference(config, a, b, x) -> tuple[float, float]:
  """How far two trained states are apart: (largest parameter gap, largest output gap).

  The bias of a layer followed by batch norm has a gradient of exactly zero in
  exact arithmetic (batch norm subtracts it again), so in floats it is rounding
  noise that Adam scales up to steps of size lr; it cannot change any output,
  so it is left out. Outputs are compared in training mode, where batch
  statistics cancel those biases exactly.
  """
  a, b = jax.device_get(a), jax.device_get(b)
  gaps = [float(np.max(np.abs(u - v)))
          for (path, u), v in zip(jax.tree_util.tree_leaves_with_path(a.params),
                                  jax.tree.leaves(b.params))
          if u.size and not (config.network.name == "mnist" and _before_batch_norm(path))]
  model = models.build(config)
  key = jax.random.key(42)
  outputs = []
  for state in (a, b):
    fake, _ = model.generate(state.params, state.batch_stats, key, config.batch_size, True)
    logits, _ = model.discriminate(state.params, state.batch_stats, x[:config.batch_size], True)
    outputs.append((fake, logits))
  return max(gaps), max(float(np.max(np.abs(u - v))) for u, v in zip(*outputs))


def _before_batch_norm(path) -> bool:
  names = [getattr(k, "key", None) for k in path]
  return names[-1] == "bias" and names[-2] in PRE_BATCH_NORM

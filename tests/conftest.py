"""Shared fixtures: small configs of the real experiments, and the shared data folder."""

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

# One XLA compilation cache for the whole test session, set before jax is imported so
# that this process, pytest-xdist's workers and every subprocess a test starts (they
# inherit the environment) share it: many tests compile the same small programs (one
# config trained, resumed, sampled). A fresh folder each session, so results never
# depend on an earlier run; a folder the caller names is used as is and kept.
_OWN_COMPILATION_CACHE = "JAX_COMPILATION_CACHE_DIR" not in os.environ
if _OWN_COMPILATION_CACHE:
  os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="deligan_jax_tests_xla_")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")

# Tests run small programs once, so LLVM's optimisation of the compiled code costs more than
# it saves: at level 0 a test compiles about twice as fast (tests/test_models.py's
# [gan-cifar10]: 45.6 -> 20.2 CPU seconds). XLA's own graph passes (fusion, layout) still run,
# so what is tested is the program the package runs, less its machine-code polish. Timing
# belongs to benchmarks/, which does not use these flags.
TEST_XLA_FLAGS = "--xla_backend_optimization_level=0"

# The tests' machine is the one they describe, whatever the developer's shell sets: XLA's
# flags are the tests' own (a developer's --xla_force_host_platform_device_count would give
# every test that many devices), and JAX runs on the CPU (the tolerances are float32's on a
# CPU; a GPU's default matmul precision is lower).
# A test's subprocess (which imports this module too) keeps the flags the test gave it.
if os.environ.get("DELIGAN_TEST_FLAGS_SET") != "1":
  os.environ["XLA_FLAGS"] = TEST_XLA_FLAGS
  os.environ["DELIGAN_TEST_FLAGS_SET"] = "1"
os.environ["JAX_PLATFORMS"] = "cpu"

import jax  # noqa: E402  (after the cache settings above)
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


def eight_device_env() -> dict[str, str]:
  """The environment of a subprocess that sees 8 simulated CPU devices."""
  flags = f"{os.environ['XLA_FLAGS']} --xla_force_host_platform_device_count=8"
  return dict(os.environ, PYTHONPATH=str(REPO), XLA_FLAGS=flags)


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


def pytest_unconfigure(config):
  if _OWN_COMPILATION_CACHE and not hasattr(config, "workerinput"):  # not an xdist worker
    shutil.rmtree(os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)


FLOAT32_EPS = float(np.finfo(np.float32).eps)


def reordering_bound(config, x: np.ndarray, num_batches: int, scale: float) -> float:
  """The largest gap float32 sums added in another order can open over a training run.

  Splitting the batch over devices changes nothing but the order in which sums over
  the batch (and over a feature map's positions) are added. A float32 sum of n terms
  taken in another order differs by at most (n - 1) * eps times the sum of the terms'
  magnitudes (Higham, Accuracy and Stability of Numerical Algorithms, section 4.2).
  Each balanced update can add one such error to the values it changes, and over a
  few small-lr updates the errors add up rather than grow, so after U updates values
  of size ``scale`` differ by at most U * n * eps * scale. n is the longest such sum:
  the batch times the pixels of one sample, since no feature map here is larger than
  the input (for 2-D points, the batch). A sharding bug (statistics per shard, a wrong
  row on one device, another random draw) moves values by a sizeable part of their
  scale instead, far above this bound (``tests/multidevice_equivalence.py`` shows it
  for a wrong row).
  """
  reduction_length = config.batch_size * int(np.prod(x.shape[1:-1]))
  num_updates = num_batches * config.balance.inner_updates
  return num_updates * reduction_length * FLOAT32_EPS * scale


# The MNIST networks' layers followed by batch norm (networks.MnistGenerator/Discriminator).
PRE_BATCH_NORM = {"Conv_1", "Conv_2", "Dense_0", "ConvTranspose_0", "ConvTranspose_1"}


def training_difference(config, a, b, x) -> dict[str, float]:
  """How far two trained states are apart, and the scale of what is compared.

  Returns the largest parameter gap and output gap, and the largest magnitude of
  those parameters and outputs (``param_scale``, ``output_scale``).

  The bias of a layer followed by batch norm has a gradient of exactly zero in
  exact arithmetic (batch norm subtracts it again), so in floats it is rounding
  noise that Adam scales up to steps of size lr; it cannot change any output,
  so it is left out. Outputs are compared in training mode, where batch
  statistics cancel those biases exactly.
  """
  a, b = jax.device_get(a), jax.device_get(b)
  compared = [(u, v) for (path, u), v in zip(jax.tree_util.tree_leaves_with_path(a.params),
                                             jax.tree.leaves(b.params))
              if u.size and not (config.network.name == "mnist" and _before_batch_norm(path))]
  model = models.build(config)
  # Compiled whole: op by op, each operation would compile alone, in every test process.
  generate = jax.jit(model.generate, static_argnums=(3, 4))
  discriminate = jax.jit(model.discriminate, static_argnums=(3,))
  key = jax.random.key(42)
  outputs = []
  for state in (a, b):
    fake, _ = generate(state.params, state.batch_stats, key, config.batch_size, True)
    logits, _ = discriminate(state.params, state.batch_stats, x[:config.batch_size], True)
    outputs.append((fake, logits))
  compared_outputs = list(zip(*outputs))
  return {"param_diff": _largest(u - v for u, v in compared),
          "param_scale": _largest(u for u, _ in compared),
          "output_diff": _largest(u - v for u, v in compared_outputs),
          "output_scale": _largest(u for u, _ in compared_outputs)}


def training_gaps_within_bound(config, a, b, x, num_batches: int) -> dict:
  """``training_difference`` of two states with ``reordering_bound`` for each gap."""
  report = training_difference(config, a, b, x)
  report["param_bound"] = reordering_bound(config, x, num_batches, report["param_scale"])
  report["output_bound"] = reordering_bound(config, x, num_batches, report["output_scale"])
  report["within_bound"] = (report["param_diff"] < report["param_bound"] and
                            report["output_diff"] < report["output_bound"])
  return report


def _largest(arrays) -> float:
  return max(float(np.max(np.abs(a))) for a in arrays)


def _before_batch_norm(path) -> bool:
  names = [getattr(k, "key", None) for k in path]
  return names[-1] == "bias" and names[-2] in PRE_BATCH_NORM

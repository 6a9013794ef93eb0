"""The training step's matmul precision: float32 on every device unless asked otherwise."""

import jax
import numpy as np

from deligan_jax import training
from tests.conftest import small_config


def test_matmul_precision_is_the_step_s_and_a_cpu_computes_the_same_either_way(tmp_path):
  """'highest' (the default) puts HIGHEST on the step's dot products, so a GPU runs float32
  rather than TF32; on a CPU, which computes float32 either way, the runs are equal."""
  from deligan_jax import experiment as experiment_lib
  states = {}
  for precision in ("highest", "default"):
    config = small_config("toy", "bimodal,deligan")
    config.network.matmul_precision = precision
    states[precision] = training.train_and_evaluate(config, str(tmp_path / precision))
    driver = experiment_lib.Experiment.from_config(config).driver(np.zeros((16, 2), np.float32))
    text = driver.lower(driver.init_state(0), 1).as_text()
    assert f"precision = [{precision.upper()}, {precision.upper()}]" in text
  for a, b in zip(jax.tree.leaves(states["highest"].params),
                  jax.tree.leaves(states["default"].params)):
    np.testing.assert_array_equal(a, b)

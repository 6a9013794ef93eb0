"""Toy MLPs of any depth, width and hidden activation; point sets outside the generator's range."""

import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from deligan_jax import config as config_lib
from deligan_jax import models
from deligan_jax.models import networks
from deligan_jax.data import datasets
from deligan_jax.data.dataset import DataError
from tests.conftest import examples, small_config


def kernel_shapes(params):
  return [params[f"Dense_{i}"]["kernel"].shape for i in range(len(params))]


def test_default_toy_networks_are_the_papers():
  config = small_config("toy", "gan")
  params, _ = models.build(config).init(jax.random.key(0), examples((2,)))
  assert kernel_shapes(params["generator"]["network"]) == [(2, 32), (32, 2)]
  assert kernel_shapes(params["discriminator"]) == [(2, 32), (32, 1)]
  # tanh hidden units: the generator equals the one-layer tanh MLP written out.
  z = np.random.default_rng(0).normal(size=(5, 2)).astype(np.float32)
  g = params["generator"]["network"]
  expected = jnp.tanh(jnp.tanh(z @ g["Dense_0"]["kernel"] + g["Dense_0"]["bias"])
                      @ g["Dense_1"]["kernel"] + g["Dense_1"]["bias"])
  got = networks.ToyGenerator().apply({"params": g}, z, train=False)
  np.testing.assert_allclose(got, expected, rtol=1e-6)


@pytest.mark.parametrize("linear_init, bound", [
    ("uniform_unit_scaling", lambda fan_in, fan_out: math.sqrt(3 / fan_in)),  # TF 0.10's
    ("glorot_uniform", lambda fan_in, fan_out: math.sqrt(6 / (fan_in + fan_out))),
])
def test_toy_kernels_start_uniform_within_the_initialisers_bound(linear_init, bound):
  """The official toy's layers use get_variable's default, TF 0.10's uniform_unit_scaling:
  U(+-1.22) for the 2-input layers, where Glorot gives U(+-0.42)."""
  config = small_config("toy", "deligan")
  config.network.linear_init = linear_init
  params, _ = models.build(config).init(jax.random.key(0), examples((2,)))
  for network in (params["generator"]["network"], params["discriminator"]):
    for layer in network.values():
      kernel = np.asarray(layer["kernel"])
      limit = bound(*kernel.shape)
      assert np.abs(kernel).max() <= limit
      assert np.abs(kernel).max() > 0.8 * limit  # not a narrower distribution
      np.testing.assert_array_equal(layer["bias"], 0)


def test_the_toy_config_starts_as_the_official_code_and_mnist_keeps_glorot():
  assert small_config("toy", "deligan").network.linear_init == "uniform_unit_scaling"
  assert small_config("mnist", "deligan").network.linear_init == "glorot_uniform"


def test_deeper_wider_relu_toy_networks():
  """Four hidden layers of 400 ReLU units, as in mode-collapse benchmarks."""
  config = small_config("toy", "deligan")
  config.network.toy_hidden_layers = 4
  config.network.generator_width = config.network.discriminator_width = 400
  config.network.toy_activation = "relu"
  config_lib.validate(config)
  model = models.build(config)
  params, stats = model.init(jax.random.key(0), examples((2,)))
  assert kernel_shapes(params["generator"]["network"]) == \
      [(2, 400), (400, 400), (400, 400), (400, 400), (400, 2)]
  d = params["discriminator"]
  assert kernel_shapes(d) == [(2, 400), (400, 400), (400, 400), (400, 400), (400, 1)]
  x = np.random.default_rng(1).uniform(-1, 1, (6, 2)).astype(np.float32)
  h = x
  for i in range(4):
    h = jnp.maximum(h @ d[f"Dense_{i}"]["kernel"] + d[f"Dense_{i}"]["bias"], 0)
  expected = (h @ d["Dense_4"]["kernel"] + d["Dense_4"]["bias"])[:, 0]
  logits, _ = model.discriminate(params, stats, x, False, key=jax.random.key(2))
  np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-6)
  samples, _ = model.generate(params, stats, jax.random.key(3), 8, False)
  assert samples.shape == (8, 2) and np.all(np.abs(samples) < 1)


@pytest.mark.parametrize("field, value, match", [
    ("toy_hidden_layers", 0, "network.toy_hidden_layers: must be positive"),
    ("toy_activation", "sigmoid", "network.toy_activation: must be one of"),
    ("linear_init", "he_normal", "network.linear_init: must be one of"),
])
def test_bad_toy_network_fields_are_refused(field, value, match):
  config = small_config("toy", "gan")
  config.network[field] = value
  with pytest.raises(config_lib.ConfigError, match=match):
    config_lib.validate(config)


def test_points_outside_the_generators_range_are_refused(tmp_path):
  inside = np.random.default_rng(0).uniform(-1, 1, (50, 2)).astype(np.float32)
  np.save(tmp_path / "inside.npy", inside)
  np.save(tmp_path / "outside.npy", 37.2 * inside)
  data = ml_collections.ConfigDict({"name": "points", "path": str(tmp_path / "inside.npy")})
  np.testing.assert_array_equal(datasets.load(data).x, inside)
  data.path = str(tmp_path / "outside.npy")
  largest = float(np.abs(np.load(tmp_path / "outside.npy")).max())
  divisor = math.ceil(largest / 0.9 * 100) / 100
  with pytest.raises(DataError, match=rf"outside \[-1, 1\].*points / {divisor}") as refused:
    datasets.load(data)
  assert np.abs(np.load(tmp_path / "outside.npy") / divisor).max() <= 0.9
  assert f"up to {largest:.4g}" in str(refused.value)

"""The Improved-GAN layers: weight norm and its data-dependent init, noise, dropout, NIN, pooling."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deligan_jax.models import layers
from deligan_jax.models import networks

KEY = jax.random.key(0)


def _batch(shape, seed=1):
  return 3.0 * jax.random.normal(jax.random.key(seed), shape) + 2.0


WEIGHT_NORMED = [
    (layers.WeightNormDense(7), (64, 5)),
    (layers.WeightNormDense(7), (16, 4, 4, 5)),  # per pixel: the NIN layer
    (layers.WeightNormConv(6, kernel_size=(3, 3), strides=(2, 2)), (16, 8, 8, 3)),
    (layers.WeightNormConvTranspose(4, kernel_size=(5, 5), strides=(2, 2)), (16, 4, 4, 3)),
]


@pytest.mark.parametrize("layer, shape", WEIGHT_NORMED)
@pytest.mark.parametrize("init_scale", [1.0, 0.1])
def test_data_dependent_init_normalises_the_init_batch(layer, shape, init_scale):
  layer = layer.clone(init_scale=init_scale)
  x = _batch(shape)
  variables = layer.init(KEY, x)
  y = np.asarray(layer.apply(variables, x)).reshape(-1, layer.features)
  np.testing.assert_allclose(y.mean(axis=0), 0.0, atol=1e-4)
  np.testing.assert_allclose(y.std(axis=0), init_scale, rtol=1e-3)
  # Another batch is not normalised: the statistics are frozen into the parameters.
  other = np.asarray(layer.apply(variables, _batch(shape, seed=2) * 2)).reshape(-1, layer.features)
  assert np.max(np.abs(other.std(axis=0) - init_scale)) > 0.1 * init_scale


@pytest.mark.parametrize("layer, shape", WEIGHT_NORMED)
def test_weight_norm_output_ignores_the_direction_length(layer, shape):
  x = _batch(shape)
  variables = layer.init(KEY, x)

  def scaled(factor):
    return jax.tree_util.tree_map_with_path(
        lambda path, leaf: leaf * factor if path[-1].key == "direction" else leaf, variables)

  # Lengths whose squared norm dwarfs the 1e-6 under the norm's root (official nn.py).
  np.testing.assert_allclose(layer.apply(scaled(30.0), x), layer.apply(scaled(7.5), x),
                             rtol=1e-4, atol=1e-5)


def test_nin_is_a_dense_layer_on_every_pixel():
  layer = layers.WeightNormDense(6)
  maps = _batch((4, 3, 5, 8))
  variables = layer.init(KEY, maps)
  per_pixel = layer.apply(variables, maps.reshape(-1, 8)).reshape(4, 3, 5, 6)
  np.testing.assert_allclose(layer.apply(variables, maps), per_pixel, rtol=1e-5, atol=1e-5)


def test_gaussian_noise_is_keyed_and_off_outside_training():
  layer = layers.GaussianNoise(0.2)
  x = jnp.ones((1000, 8))
  assert layer.apply({}, x, train=False) is x
  a = layer.apply({}, x, train=True, rngs={"noise": jax.random.key(1)})
  b = layer.apply({}, x, train=True, rngs={"noise": jax.random.key(1)})
  c = layer.apply({}, x, train=True, rngs={"noise": jax.random.key(2)})
  np.testing.assert_array_equal(a, b)
  assert not np.allclose(a, c)
  assert abs(float(jnp.std(a - x)) - 0.2) < 0.01
  with pytest.raises(Exception, match="noise"):
    layer.apply({}, x, train=True)  # no key, no noise: never silently deterministic


def test_dropout_is_keyed_and_off_outside_training():
  x = jnp.ones((1000, 8))
  on = layers.dropout(0.5, train=True)
  a = on.apply({}, x, rngs={"dropout": jax.random.key(1)})
  b = on.apply({}, x, rngs={"dropout": jax.random.key(1)})
  np.testing.assert_array_equal(a, b)
  assert set(np.unique(np.asarray(a))) == {0.0, 2.0}  # kept units scaled by 1 / (1 - rate)
  assert abs(float(jnp.mean(a == 0)) - 0.5) < 0.02
  np.testing.assert_array_equal(layers.dropout(0.5, train=False).apply({}, x), x)


def test_global_mean_pool():
  x = _batch((2, 3, 4, 5))
  np.testing.assert_allclose(layers.global_mean_pool(x), x.mean(axis=(1, 2)), rtol=1e-6)


@pytest.mark.parametrize("num_kernels", [3, 50])
def test_minibatch_discrimination_kernels_and_data_init(num_kernels):
  layer = networks.MinibatchDiscrimination(num_kernels, 5, data_init=True)
  x = _batch((40, 12))
  variables = layer.init(KEY, x)
  out = np.asarray(layer.apply(variables, x))
  assert out.shape == (40, 12 + num_kernels)
  np.testing.assert_array_equal(out[:, :12], x)
  # The init batch's minibatch features are centred per kernel ...
  np.testing.assert_allclose(out[:, 12:].mean(axis=0), 0.0, atol=1e-5)
  # ... and each kernel is scaled so that half the mean nearest-neighbour L1 distance is 1.
  p = variables["params"]
  theta = np.asarray(p["theta"])
  weight = theta / np.sqrt((theta ** 2).sum(axis=0)) * np.exp(np.asarray(p["log_scale"]))
  m = np.einsum("bf,fkc->bkc", np.asarray(x), weight)
  l1 = np.abs(m[:, None] - m[None, :]).sum(-1) + 1e9 * np.eye(40)[:, :, None]
  np.testing.assert_allclose(0.5 * l1.min(axis=1).mean(axis=0), 1.0, rtol=1e-4)


@pytest.mark.parametrize("train_scale", [False, True])
def test_only_output_layers_train_their_scale(train_scale):
  layer = layers.WeightNormDense(4, train_scale=train_scale)
  x = _batch((32, 5))
  params = layer.init(KEY, x)["params"]
  grads = jax.grad(lambda p: jnp.sum(layer.apply({"params": p}, x) ** 3))(params)
  assert bool(jnp.any(grads["scale"] != 0)) == train_scale
  assert bool(jnp.any(grads["direction"] != 0)) and bool(jnp.any(grads["bias"] != 0))


@pytest.mark.parametrize("name, channels", [("cifar10", 3), ("sketches", 1)])
def test_cifar_and_sketch_weights_start_as_the_scripts_normal_0_05(name, channels):
  """dg_cifar.py and dg_sketches.py draw every weight (dense, deconvolution, convolution,
  weight-normalised directions, minibatch discrimination's) from Lasagne's Normal(0.05):
  mean 0, std 0.05. Checked on every weight tensor of the paper-width networks."""
  from deligan_jax import experiment as experiment_lib
  from tests.conftest import load_config
  model = experiment_lib.Experiment.from_config(load_config(name, "deligan")).model
  examples = jax.random.uniform(jax.random.key(0), (16, 32, 32, channels), minval=-1, maxval=1)
  params, _ = model.init(jax.random.key(1), examples)
  weights = {jax.tree_util.keystr(path): np.asarray(leaf, np.float64)
             for path, leaf in jax.tree_util.tree_flatten_with_path(
                 {"generator": params["generator"], "discriminator": params["discriminator"]})[0]
             if jax.tree_util.keystr(path).endswith(("['kernel']", "['direction']",
                                                      "['theta']"))}
  assert len(weights) >= 8
  for path, w in weights.items():
    # Sampling error of a std over n draws is about std / sqrt(2n); 6 of those, or 2 %.
    tolerance = max(6 * 0.05 / np.sqrt(2 * w.size), 0.001)
    assert abs(w.std() - 0.05) < tolerance, (path, w.std(), w.size)
    assert abs(w.mean()) < 6 * 0.05 / np.sqrt(w.size), (path, w.mean())

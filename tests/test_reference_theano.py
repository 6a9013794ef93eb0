"""The CIFAR-10 and sketch experiments against the PyTensor transcription of the official
Theano code (tests/reference/improved_gan_nn_pytensor.py and the two scripts' ports).

Tolerances (float32) are stated where they are used, with their reason.
"""

from __future__ import annotations

import types

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from deligan_jax import config as config_lib
from deligan_jax import conv
from deligan_jax import evaluation
from deligan_jax import networks
from deligan_jax import optim
from deligan_jax import train_state
from deligan_jax import train_step
from deligan_jax.data import common as data_common
from deligan_jax.models import build
from tests.conftest import small_config

pytensor = pytest.importorskip("pytensor")
from tests.reference import improved_gan_nn_pytensor as nn_ref  # noqa: E402

pytestmark = pytest.mark.reference


def _function(inputs, outputs, updates=None):
  return pytensor.function(inputs, outputs, updates=updates, mode=nn_ref.MODE)


def test_transposed_convolution_matches_theano_half_border_alignment():
  """Deconv2DLayer = conv_transpose2d with the generator's padding, kernel (in, out, h, w) -> HWIO.

  Both sum the same 25 * 3 products per output in another order: 1e-5 absolute on outputs of
  magnitude ~10.
  """
  rng = np.random.default_rng(0)
  x = rng.normal(size=(2, 3, 8, 8)).astype(np.float32)
  w = rng.normal(size=(3, 4, 5, 5)).astype(np.float32)
  layer = nn_ref.Deconv2DLayer(nn_ref.InputLayer((2, 3, 8, 8)), (2, 4, 16, 16), (5, 5),
                               nonlinearity=None)
  layer.W.set_value(w)
  image = pytensor.tensor.tensor4()
  theirs = _function([image], nn_ref.get_output(layer, image))(x)
  ours = conv.conv_transpose2d(jnp.asarray(x.transpose(0, 2, 3, 1)),
                               jnp.asarray(w.transpose(2, 3, 0, 1)), (2, 2),
                               networks._HALF_TRANSPOSE_5X5_STRIDE2)
  np.testing.assert_allclose(np.asarray(ours).transpose(0, 3, 1, 2), theirs, atol=1e-5)
  shifted = conv.conv_transpose2d(jnp.asarray(x.transpose(0, 2, 3, 1)),
                                  jnp.asarray(w.transpose(2, 3, 0, 1)), (2, 2), "SAME")
  assert np.abs(np.asarray(shifted).transpose(0, 3, 1, 2) - theirs).max() > 1.0


def test_adam_matches_the_official_adam_updates():
  """optim.adam('inside_sqrt_v_hat') against nn.py's adam_updates over 4 steps, lr 0.1.

  Gradients span 1e-5 .. 3, where the epsilon's place matters (g / sqrt(g^2 + 1e-8)).
  Both compute in float32, where ``1 - 0.999^t`` carries the rounding of 0.999 (1.3e-5
  relative at t = 1) in whichever order each side evaluates it: up to ~1e-5 relative on a
  step of at most lr = 0.1, so 5e-6 absolute after 4 steps.
  """
  rng = np.random.default_rng(1)
  start = rng.normal(size=6).astype(np.float32)
  targets = (np.array([1e-5, -3e-5, 1e-4, 0.3, -1.0, 3.0], np.float32) * 0.5)
  param = pytensor.shared(start.copy())
  cost = pytensor.tensor.sum(param * targets)  # gradient = targets, every step
  step = _function([], [], updates=nn_ref.adam_updates([param], cost, lr=0.1, mom1=0.5))
  adam = optim.adam(0.5, 0.999, "inside_sqrt_v_hat")
  ours = jnp.asarray(start)
  state = optim.with_learning_rate(adam.init(ours), 0.1)
  for _ in range(4):
    step()
    updates, state = adam.update(jnp.asarray(targets), state, ours)
    ours = optax.apply_updates(ours, updates)
    np.testing.assert_allclose(np.asarray(ours), param.get_value(), rtol=0, atol=5e-6)
  optax_form = optim.adam(0.5, 0.999, "sqrt_v_hat")
  plain = optax.apply_updates(jnp.asarray(start), optax_form.update(
      jnp.asarray(targets), optim.with_learning_rate(optax_form.init(jnp.asarray(start)), 0.1),
      jnp.asarray(start))[0])
  first = optax.apply_updates(jnp.asarray(start), adam.update(
      jnp.asarray(targets), optim.with_learning_rate(adam.init(jnp.asarray(start)), 0.1),
      jnp.asarray(start))[0])
  assert abs(float(plain[0] - first[0])) > 0.01  # at |g| = 5e-6 the two forms differ


def test_cifar_subset_is_the_official_selection_index_for_index():
  """The project's subset against the script's own lines, on images whose pixels are their index."""
  from tests.reference import dg_cifar_pytensor
  n = 5000
  index = np.arange(n)
  images = np.zeros((n, 32, 32, 3), np.uint8)
  images[..., 0], images[..., 1] = (index % 256)[:, None, None], (index // 256)[:, None, None]
  labels = (index % 10).astype(np.int32)
  official_x = (-127.5 + images.transpose(0, 3, 1, 2).astype(np.float32)) / 128.  # cifar10_data
  theirs, their_labels, _, _ = dg_cifar_pytensor.select_training_subset(official_x, labels)
  ours, our_labels = data_common.random_subset(images, labels, 2000, 1)
  ours = data_common.to_model_scale(ours, "cifar10")
  decode = lambda x: np.rint(x[:, 0, 0, :2] * 128 + 127.5).astype(int) @ np.array([1, 256])
  np.testing.assert_array_equal(decode(ours), decode(theirs.transpose(0, 2, 3, 1)))
  np.testing.assert_array_equal(our_labels, their_labels)
  np.testing.assert_array_equal(ours, theirs.transpose(0, 2, 3, 1))  # the scale, exactly


def test_fixed_batch_order_repeats_epoch_zero_and_reshuffle_does_not():
  key = jax.random.key(3)
  orders = {}
  for batch_order in config_lib.BATCH_ORDERS:
    step_config = train_state.StepConfig(batch_size=5, learning_rate=1e-3,
                                         mixture_learning_rate=1e-3, sigma_reg=0.0,
                                         batch_order=batch_order)
    trainer = types.SimpleNamespace(config=step_config, num_samples=20)
    orders[batch_order] = [np.concatenate([
        np.asarray(train_step.Trainer._batch_indices(trainer, key, epoch, position))
        for position in range(4)]) for epoch in range(3)]
  for epoch_order in orders["fixed"] + orders["reshuffle"]:
    assert sorted(epoch_order) == list(range(20))  # every sample once per epoch
  assert all((order == orders["fixed"][0]).all() for order in orders["fixed"])
  np.testing.assert_array_equal(orders["fixed"][0], orders["reshuffle"][0])
  assert (orders["reshuffle"][1] != orders["reshuffle"][0]).any()


def test_samples_for_scoring_use_batch_statistics_when_asked():
  """'batch': each batch of batch_size from G in training mode, as the official samplefun."""
  config = small_config("sketches", "deligan", batch_size=4)
  model = build(config)
  params, batch_stats = model.init(jax.random.key(0), np.zeros((4, 32, 32, 1), np.float32))
  # Running averages away from their initial values, so that the two modes differ.
  batch_stats = jax.tree.map(lambda leaf: leaf + 0.5, batch_stats)
  state = types.SimpleNamespace(params=params, batch_stats=batch_stats)
  samples = evaluation.generate_samples(model, state, 10, seed=2, batch_norm="batch",
                                        batch_size=4)
  key = jax.random.key(2)
  expected = np.concatenate([np.asarray(model.generate(
      params, batch_stats, jax.random.fold_in(key, i), 4, train=True)[0]) for i in range(3)])
  np.testing.assert_allclose(samples, expected[:10], atol=1e-6)
  running = evaluation.generate_samples(model, state, 10, seed=2)
  assert np.abs(running - samples).max() > 0.01

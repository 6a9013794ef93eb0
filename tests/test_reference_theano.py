"""The CIFAR-10 and sketch experiments against the PyTensor transcription of the official
Theano code (tests/reference/improved_gan_nn_pytensor.py and the two scripts' ports).

Tolerances (float32) are stated where they are used, with their reason.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from deligan_jax import conv
from deligan_jax import networks
from deligan_jax import optim

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

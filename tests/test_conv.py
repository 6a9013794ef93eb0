"""im2col convolutions equal XLA's, in values and in gradients."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deligan_jax.models import conv

# (input HxW, in channels, kernel, stride, padding, out channels): the MNIST layers and more.
CASES = [
    (28, 1, 5, 2, "SAME", 16),
    (14, 16, 5, 2, "SAME", 32),
    (7, 32, 3, 2, "SAME", 64),
    (9, 3, 3, 1, "VALID", 4),
    (8, 2, 4, 3, ((2, 1), (0, 3)), 5),
    (7, 2, 2, 3, "VALID", 3),              # stride > kernel: phases no tap reads
]
TRANSPOSE_CASES = [
    (4, 64, 3, 2, ((1, 1), (1, 1)), 32),   # MNIST 4 -> 7
    (7, 32, 5, 2, "SAME", 16),             # MNIST 7 -> 14
    (14, 16, 5, 2, "SAME", 1),             # MNIST 14 -> 28
    (5, 3, 3, 1, "VALID", 4),
    (6, 3, 4, 3, "SAME", 2),
    (4, 3, 2, 3, "VALID", 2),              # stride > kernel: output phases no tap reaches
]


def inputs(size, c_in, k, c_out):
  x = jax.random.normal(jax.random.key(0), (3, size, size, c_in))
  kernel = jax.random.normal(jax.random.key(1), (k, k, c_in, c_out)) / k
  return x, kernel


@pytest.mark.parametrize("op, size, c_in, k, stride, padding, c_out",
                         [(conv.conv2d, *case) for case in CASES] +
                         [(conv.conv_transpose2d, *case) for case in TRANSPOSE_CASES])
def test_im2col_equals_xla_in_values_and_gradients(op, size, c_in, k, stride, padding, c_out):
  x, kernel = inputs(size, c_in, k, c_out)
  fn = lambda impl: lambda x, w: op(x, w, (stride, stride), padding, impl)
  want, got = fn("xla")(x, kernel), fn("im2col")(x, kernel)
  assert got.shape == want.shape
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
  cotangent = jax.random.normal(jax.random.key(2), want.shape)
  grads = [jax.vjp(fn(impl), x, kernel)[1](cotangent) for impl in ("xla", "im2col")]
  for want_grad, got_grad in zip(*grads):
    np.testing.assert_allclose(got_grad, want_grad, rtol=1e-4, atol=1e-4)


def test_modules_match_flax_layers_with_the_same_parameters():
  x = jax.random.normal(jax.random.key(0), (2, 7, 7, 8))
  for ours, theirs in ((conv.Conv(6, (3, 3), (2, 2)), nn.Conv(6, (3, 3), (2, 2))),
                       (conv.ConvTranspose(6, (5, 5), (2, 2)),
                        nn.ConvTranspose(6, (5, 5), (2, 2)))):
    variables = theirs.init(jax.random.key(1), x)
    variables = jax.tree.map(lambda v: v + 0.1, variables)  # a non-zero bias too
    np.testing.assert_allclose(ours.apply(variables, x), theirs.apply(variables, x),
                               rtol=1e-4, atol=1e-5)


def test_bad_padding_is_refused():
  with pytest.raises(ValueError, match="padding"):
    conv.conv_transpose2d(jnp.zeros((1, 4, 4, 1)), jnp.zeros((3, 3, 1, 1)), (2, 2), "FULL")

"""DiffAugment: the identity when off, the documented transformations, gradients flow through."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deligan_jax.step import augment

KEY = jax.random.key(0)
FULL = "color,translation,cutout"


def _images(n=6, size=16, channels=3, seed=1):
  return jax.random.uniform(jax.random.key(seed), (n, size, size, channels), minval=-1, maxval=1)


def test_empty_policy_is_the_identity():
  x = _images()
  assert augment.apply(KEY, x, "") is x
  with pytest.raises(ValueError, match="unknown augmentation"):
    augment.apply(KEY, x, "color,rotate")


def test_translation_shifts_each_image_with_zero_fill():
  x = np.asarray(_images(size=16)) + 5.0  # no zeros in the content
  out = np.asarray(augment.translation(KEY, jnp.asarray(x)))
  for image, shifted in zip(x, out):
    matches = []
    for dy, dx in itertools.product(range(-2, 3), repeat=2):
      expected = np.zeros_like(image)
      src = image[max(dy, 0):16 + min(dy, 0), max(dx, 0):16 + min(dx, 0)]
      expected[max(-dy, 0):max(-dy, 0) + src.shape[0], max(-dx, 0):max(-dx, 0) + src.shape[1]] = src
      matches.append(np.array_equal(shifted, expected))
    assert sum(matches) == 1  # exactly one shift of at most 16/8 = 2 pixels


def test_cutout_zeroes_one_square_of_half_the_side():
  x = jnp.ones((50, 16, 16, 1))
  out = np.asarray(augment.cutout(KEY, x))[..., 0]
  for image in out:
    rows, cols = np.nonzero(image == 0)
    assert rows.max() - rows.min() + 1 <= 8 and cols.max() - cols.min() + 1 <= 8
    assert len(rows) == (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
    assert set(np.unique(image)) == {0.0, 1.0}
  assert np.mean(out == 0) > 0.15  # most squares lie mostly inside (8 x 8 of 16 x 16 = 25 %)


def test_color_changes_images_independently_and_keeps_shape():
  x = _images()
  out = augment.color(KEY, x)
  assert out.shape == x.shape
  assert not np.allclose(out, x)
  # The brightness shift differs between images.
  shift = np.asarray(jnp.mean(out - x, axis=(1, 2, 3)))
  assert np.std(shift) > 1e-3


@pytest.mark.parametrize("policy", ["color", "translation", "cutout", FULL])
def test_gradients_flow_through_the_augmentation(policy):
  # For a fixed key every augmentation is affine in the images, so the
  # gradient of <w, aug(x)> must predict any finite difference exactly.
  x, w, direction = _images(seed=1), _images(seed=2), _images(seed=3)
  f = lambda images: jnp.sum(w * augment.apply(KEY, images, policy))
  grad = jax.grad(f)(x)
  assert float(jnp.sum(jnp.abs(grad))) > 0
  eps = 1e-2
  np.testing.assert_allclose((f(x + eps * direction) - f(x)) / eps, jnp.sum(grad * direction),
                             rtol=1e-3)


def test_same_key_same_augmentation_and_jit_agrees():
  x = _images()
  a = augment.apply(KEY, x, FULL)
  b = jax.jit(augment.apply, static_argnums=2)(KEY, x, FULL)
  np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
  assert not np.allclose(a, augment.apply(jax.random.key(9), x, FULL))

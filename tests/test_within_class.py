"""The diversity within a class, on inputs whose value is known."""

import itertools

import ml_collections
import numpy as np
import pytest

from deligan_jax.data import datasets
from deligan_jax.scores import classifier
from deligan_jax.scores import within_class


def one_hot(labels, classes=3):
  return np.eye(classes)[labels]


def test_ratio_is_the_mean_over_qualifying_classes_of_brute_force_pairwise_distances():
  rng = np.random.default_rng(0)
  real_labels = np.repeat([0, 1, 2], 30)
  labels = np.concatenate([np.repeat([0, 1], 20), [2] * 9])  # class 2: 9 samples, left out
  pixels, real = rng.normal(size=(len(labels), 4, 4)), rng.normal(size=(90, 4, 4)) * 2
  features, real_features = rng.normal(size=(len(labels), 3)), rng.normal(size=(90, 3))

  def brute(x):
    x = x.reshape(len(x), -1)
    return np.mean([np.linalg.norm(a - b) for a, b in itertools.permutations(x, 2)])

  score = within_class.within_class_diversity(pixels, one_hot(labels), features, real,
                                              one_hot(real_labels), real_features)
  expected = [brute(pixels[labels == c]) / brute(real[real_labels == c]) for c in (0, 1)]
  assert score["pixels"] == pytest.approx(np.mean(expected), rel=1e-9)
  expected = [brute(features[labels == c]) / brute(real_features[real_labels == c])
              for c in (0, 1)]
  assert score["features"] == pytest.approx(np.mean(expected), rel=1e-9)
  assert score["classes_qualified"] == 2
  assert score["per_class"]["2"] == {"count": 9, "real_count": 30, "qualified": False}


def test_copies_of_one_image_per_class_give_zero_and_the_real_images_one_without_data():
  rng = np.random.default_rng(2)
  labels = np.repeat([0, 1, 2], 40)
  real, real_features = rng.normal(size=(120, 6, 6)), rng.normal(size=(120, 8))
  same = within_class.within_class_diversity(real, one_hot(labels), real_features, real,
                                             one_hot(labels), real_features)
  first = np.array([np.flatnonzero(labels == c)[0] for c in labels])  # its class's first
  copies = within_class.within_class_diversity(real[first], one_hot(labels),
                                               real_features[first], real, one_hot(labels),
                                               real_features)
  assert (same["pixels"], same["features"], same["classes_qualified"]) == (1.0, 1.0, 3)
  # Zero up to the rounding of |a|^2 + |b|^2 - 2ab in the distance formula.
  assert copies["pixels"] == pytest.approx(0, abs=1e-6)
  assert copies["features"] == pytest.approx(0, abs=1e-6)
  assert copies["classes_qualified"] == 3


def test_only_the_first_hundred_of_a_class_count():
  rng = np.random.default_rng(1)
  pixels = rng.normal(size=(150, 5))
  pixels[100:] *= 50  # rows past the first 100 would change the spread
  probs = one_hot(np.zeros(150, int), 1)
  score = within_class.within_class_diversity(pixels, probs, pixels, pixels[:100], probs[:100],
                                              pixels[:100])
  assert score["pixels"] == pytest.approx(1.0) and score["per_class"]["0"]["count"] == 150


def test_no_qualifying_class_gives_nan():
  x = np.zeros((5, 2))
  score = within_class.within_class_diversity(x, one_hot(np.zeros(5, int)), x, x,
                                              one_hot(np.zeros(5, int)), x)
  assert np.isnan(score["pixels"]) and score["classes_qualified"] == 0


@pytest.fixture
def mnist_test_predictions(mnist_dir):
  """The first 2000 real MNIST test digits and the shipped classifier's view of them."""
  test = datasets.load_test(ml_collections.ConfigDict(
      {"name": "mnist", "dir": mnist_dir, "source": "auto", "per_class": 50,
       "tfds_data_dir": None}))
  x = test.x[:2000]
  probs, features = classifier.shipped_mnist().predict(x)
  return x, probs, features


def test_real_test_digits_give_one_and_copies_of_one_digit_give_zero(mnist_test_predictions):
  x, probs, features = mnist_test_predictions
  real = within_class.within_class_diversity(x, probs, features, x, probs, features)
  assert real["pixels"] == 1.0 and real["features"] == 1.0 and real["classes_qualified"] == 10
  copies = np.repeat(x[:1], 500, axis=0)
  copy_probs, copy_features = np.repeat(probs[:1], 500, axis=0), np.repeat(features[:1], 500, 0)
  collapsed = within_class.within_class_diversity(copies, copy_probs, copy_features, x, probs,
                                                  features)
  # Zero up to the rounding of |a|^2 + |b|^2 - 2ab in the distance formula.
  assert collapsed["pixels"] == pytest.approx(0, abs=1e-6)
  assert collapsed["features"] == pytest.approx(0, abs=1e-6)
  assert collapsed["classes_qualified"] == 1
  # Other real digits than the reference's are about as varied: near 1, not exactly.
  other = slice(1000, 2000)
  half = within_class.within_class_diversity(x[other], probs[other], features[other],
                                             x[:1000], probs[:1000], features[:1000])
  assert 0.9 < half["pixels"] < 1.1 and 0.85 < half["features"] < 1.15

"""The evaluation classifiers and the image scores of CIFAR-10 and sketches, at tiny budgets."""

import re

import jax
import ml_collections
import numpy as np
import pytest

from deligan_jax.scores import classifier
from deligan_jax.scores import evaluation
from deligan_jax.data import datasets
from tests.test_image_data import dot, shared, write_cifar_batch, write_png


def colour_batches(folder, seed: int) -> None:
  """An easy CIFAR-10 task: class c (0, 1, 2) lights colour channel c, over noise."""
  rng = np.random.default_rng(seed)
  folder.mkdir()
  for name, n in (("data_batch_3", 90), ("test_batch", 30)):
    labels = np.arange(n) % 3
    images = rng.integers(0, 120, (n, 32, 32, 3), dtype=np.uint8)
    images[np.arange(n), :, :, labels] += 120
    write_cifar_batch(folder / name, images, labels)


@pytest.fixture
def colour_config(tmp_path):
  colour_batches(tmp_path / "cifar-10-batches-py", seed=0)
  return ml_collections.ConfigDict({"name": "cifar10", "dir": str(tmp_path)})


def test_classifier_learns_an_easy_task_and_is_cached(colour_config, tmp_path):
  cache = str(tmp_path / "cache")
  trained = classifier.train_classifier(colour_config, cache, steps=30, batch_size=16)
  assert trained.test_accuracy >= 0.9  # chance is 1/3
  assert trained.name == "cifar10-cnn" and len(trained.class_names) == 10
  images = np.random.default_rng(1).uniform(-1, 1, (5, 32, 32, 3))
  probs, features = trained.predict(images, batch_size=2)
  assert probs.shape == (5, 10) and features.shape == (5, 128)
  np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)

  cached = classifier.train_classifier(colour_config, cache, steps=30, batch_size=16)
  assert cached.test_accuracy == trained.test_accuracy
  np.testing.assert_array_equal(cached.predict(images, batch_size=2)[0], probs)
  names = sorted(p.name for p in (tmp_path / "cache").iterdir())
  assert len(names) == 2 and all(
      re.fullmatch(r"cifar10_10classes-[0-9a-f]{8}_n90_cnn_steps30_seed0\.(json|msgpack)", n)
      for n in names), names


def test_sketch_classifier_cache_depends_on_categories(tmp_path):
  png = tmp_path / "png"
  for category, row in (("top", 10), ("bottom", 80), ("left", 40)):
    for i in range(8):
      write_png(png / category / f"{i}.png", dot(row, 20 + 6 * i))
  cache = tmp_path / "cache"
  for categories in (("top", "bottom"), ("bottom", "top"), ()):
    config = ml_collections.ConfigDict({"name": "sketches", "dir": str(png),
                                        "categories": categories})
    trained = classifier.train_classifier(config, str(cache), steps=3, batch_size=8)
    assert trained.class_names == (categories or ("bottom", "left", "top"))
    assert trained.predict(np.zeros((2, 32, 32, 1)))[0].shape == (2, len(trained.class_names))
  assert len(list(cache.glob("sketches_*.json"))) == 3


def test_shift_and_flip_moves_pixels_only():
  images = -np.ones((64, 9, 9, 1), np.float32)
  images[:, 4, 3] = 1.0
  moved = np.asarray(classifier._shift_and_flip(jax.random.key(0), images, 2 / 9))
  rows, cols = np.nonzero(moved[..., 0] > 0)[1:]
  assert (moved > 0).sum() == 64 and set(moved.ravel()) == {-1.0, 1.0}
  assert np.all(np.abs(rows - 4) <= 2)
  # Unflipped, the pixel sits within 2 of column 3; flipped, within 2 of column 5.
  assert np.all((np.abs(cols - 3) <= 2) | (np.abs(cols - 5) <= 2))
  assert len(set(zip(rows, cols))) > 10


def test_image_scores_of_test_images_beat_noise(colour_config, tmp_path):
  cache = str(tmp_path / "cache")
  real = datasets.load_test(colour_config).x
  noise = np.random.default_rng(0).uniform(-1, 1, real.shape).astype(np.float32)
  scores = {name: evaluation.image_scores(x, colour_config, cache, classifier_steps=30)
            for name, x in (("real", real), ("noise", noise))}
  for key in ("inception_score", "modified_inception_score", "m_is_per_class", "fid", "kid",
              "precision", "recall", "classifier_test_accuracy", "class_names"):
    assert key in scores["real"], key
  assert scores["real"]["inception_score"][0] > 2.5  # three classes, evenly
  assert scores["real"]["inception_score"][0] > scores["noise"]["inception_score"][0] + 1
  assert scores["real"]["fid"] < scores["noise"]["fid"]
  assert scores["real"]["real_test_inception_score"] == scores["real"]["inception_score"]


@pytest.mark.slow
@pytest.mark.parametrize("name, subdir", [("cifar10", "cifar10"),
                                          ("sketches", "sketches/tu_berlin")])
def test_image_scores_on_the_shared_data(name, subdir, tmp_path):
  """Slow (a minute each): the fast suite covers the scores, real test images against noise,
  in ``test_image_scores_of_test_images_beat_noise``, and the shared data with its 10 and 40
  classes in ``tests/test_image_data.py::test_shared_cifar10`` and ``test_shared_sketches``."""
  config = ml_collections.ConfigDict({"name": name, "dir": str(shared(subdir)),
                                      "categories": ()})
  real = datasets.load_test(config).x
  noise = np.random.default_rng(0).uniform(-1, 1, real.shape).astype(np.float32)
  real_scores, noise_scores = (
      evaluation.image_scores(x, config, str(tmp_path), classifier_steps=40)
      for x in (real, noise))
  assert real_scores["inception_score"][0] > noise_scores["inception_score"][0]
  assert real_scores["fid"] < noise_scores["fid"]
  assert len(real_scores["class_names"]) == (10 if name == "cifar10" else 40)


@pytest.mark.slow
@pytest.mark.parametrize("name, subdir, accuracy", [("cifar10", "cifar10", 0.62),
                                                    ("sketches", "sketches/tu_berlin", 0.7)])
def test_full_classifiers(name, subdir, accuracy, tmp_path):
  """2000 steps reached 0.671 (CIFAR-10, 4000 training images) and 0.749 (40 sketch classes)."""
  config = ml_collections.ConfigDict({"name": name, "dir": str(shared(subdir)),
                                      "categories": ()})
  trained = classifier.train_classifier(config, str(tmp_path))
  assert trained.test_accuracy >= accuracy, trained.test_accuracy

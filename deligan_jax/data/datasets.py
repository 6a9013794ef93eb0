"""The entry points: the training set or a labelled split that a data config names."""

import os
from typing import Any

from absl import logging
import numpy as np

from deligan_jax.data import cifar10, embedded, mnist, points, sketches
from deligan_jax.data.dataset import (DATA_DIR_ENV, SPLITS, DataError, Dataset, config_field,
                                     last_per_class, random_subset, to_model_scale)

IMAGE_DATASETS = ("mnist", "cifar10", "sketches")
DATASET_NAMES = ("toy_unimodal", "toy_bimodal", "points", *IMAGE_DATASETS)


def load(data_config: Any) -> Dataset:
  """Loads the training set that a data config (e.g. a ConfigDict) names.

  Fields: `name` (one of DATASET_NAMES); `num_points`, `seed` (toy data);
  `path` (points); `dir`, `source`, `tfds_data_dir` (mnist, cifar10);
  `per_class` (mnist); `num_train`, `subset_seed` (cifar10); `dir`,
  `categories` (sketches, which train on every sketch of the categories).
  Absent optional fields take their defaults.
  """
  name = config_field(data_config, "name")
  if name in ("toy_unimodal", "toy_bimodal"):
    x = points.toy_points(
        name.removeprefix("toy_"),
        num_points=config_field(data_config, "num_points", 400),
        seed=config_field(data_config, "seed", 0),
    )
    return Dataset(x=x, labels=None, name=name)
  if name == "points":
    path = config_field(data_config, "path")
    if not path:
      raise DataError("data.path is empty; name='points' needs a .npy file")
    x = points.load_points(path)
    points.check_generator_range(x, path)
    return Dataset(x=x, labels=None, name=name)
  if _takes_mnist500(data_config):
    logging.warning("MNIST: no data folder is set, so training on the paper's 500 images shipped "
                    "with the package (%s), the images the full files give; scores that compare "
                    "with the test images need a data folder", embedded.MNIST500_PATH)
    images, labels = embedded.load_mnist500()
    return Dataset(to_model_scale(images), labels, name, mnist.MNIST_CLASSES)
  images, labels, class_names = _labelled_images(
      data_config, "all" if name == "sketches" else "train")
  if name == "mnist":
    images, labels = last_per_class(
        images, labels, config_field(data_config, "per_class", mnist.MNIST_PER_CLASS_DEFAULT))
  elif name == "cifar10":
    images, labels = random_subset(
        images, labels, config_field(data_config, "num_train", cifar10.CIFAR10_NUM_TRAIN_DEFAULT),
        config_field(data_config, "subset_seed", cifar10.CIFAR10_SUBSET_SEED_DEFAULT))
  return Dataset(to_model_scale(images, name), labels, name, class_names)


def _takes_mnist500(data_config: Any) -> bool:
  """Whether the shipped subset stands in: MNIST's paper subset, asked of no folder.

  Those are the images that tensorflow-datasets' MNIST gives after the same selection
  (tests/test_offline.py), so it is not asked: no download, no TensorFlow import. A
  configured folder (data.dir or DELIGAN_DATA_DIR) that lacks the files stays an error,
  and other subsets than the paper's still come from tensorflow-datasets.
  """
  return (config_field(data_config, "name") == "mnist"
          and config_field(data_config, "source", "auto") == "auto"
          and not config_field(data_config, "dir", None) and not os.environ.get(DATA_DIR_ENV)
          and config_field(data_config, "per_class", mnist.MNIST_PER_CLASS_DEFAULT)
          == embedded.MNIST500_PER_CLASS)


def load_split(data_config: Any, split: str) -> Dataset:
  """A whole labelled split of an image dataset, for the evaluation classifier.

  'train': every training image (no paper subset; sketches: the first 3/4 of
  each category); 'test': the held-out images (MNIST's 10000, CIFAR-10's
  test_batch, the last 1/4 of each sketch category). Flipped sketches are in
  both.
  """
  name = config_field(data_config, "name")
  if name not in IMAGE_DATASETS:
    raise DataError(
        f"data.name={name!r} has no {split} split for evaluation; only the image "
        f"datasets {list(IMAGE_DATASETS)} have one"
    )
  if split not in SPLITS:
    raise DataError(f"unknown split {split!r}; use one of {list(SPLITS)}")
  images, labels, class_names = _labelled_images(data_config, split)
  return Dataset(to_model_scale(images, name), labels, name, class_names)


def load_test(data_config: Any) -> Dataset:
  """The real evaluation set of an image dataset: `load_split(data_config, 'test')`."""
  return load_split(data_config, "test")


def _labelled_images(
    data_config: Any, split: str
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
  """uint8 images, labels and class names of a split of an image dataset."""
  name = config_field(data_config, "name")
  data_dir = config_field(data_config, "dir", None)
  if name == "sketches":
    return sketches.load_sketches(data_dir, tuple(config_field(data_config, "categories", ())), split)
  loaders = {"mnist": (mnist.load_mnist, mnist.MNIST_CLASSES),
             "cifar10": (cifar10.load_cifar10, cifar10.CIFAR10_CLASSES)}
  if name not in loaders:
    raise DataError(f"unknown data.name {name!r}; use one of {list(DATASET_NAMES)}")
  loader, class_names = loaders[name]
  images, labels = loader(data_dir, config_field(data_config, "source", "auto"), split,
                          config_field(data_config, "tfds_data_dir", None))
  return images, labels, class_names

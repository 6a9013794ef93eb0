"""The Dataset record and what every data source shares to build one: finding the data
folder, the paper's subsets, the model's pixel scale, reading data config fields."""

import os
from typing import Any, NamedTuple

import numpy as np
from deligan_jax.errors import DataError

DATA_DIR_ENV = "DELIGAN_DATA_DIR"
SPLITS = ("train", "test")
SOURCES = ("auto", "files", "tfds")


class Dataset(NamedTuple):
  """A training (or evaluation) set.

  x: float32 samples; (n, 2) for point sets, (n, h, w, c) in [-1, 1] for
    images: (28, 28, 1) MNIST, (32, 32, 3) CIFAR-10, (32, 32, 1) sketches.
  labels: int32 (n,) class labels, or None when the data has none.
  name: the data config name it was loaded from.
  class_names: the name of each label value; empty when there are no labels.
  """

  x: np.ndarray
  labels: np.ndarray | None
  name: str
  class_names: tuple[str, ...] = ()


def resolve_data_dir(configured: str | None, subdir: str) -> str | None:
  """Finds a dataset folder from the config or the DELIGAN_DATA_DIR variable.

  The configured directory wins over the environment variable. Either may be
  the dataset folder itself or a root holding `subdir/` (e.g.
  DELIGAN_DATA_DIR=../shared/data with subdir 'mnist').

  Returns:
    The dataset folder, or None when neither is set.
  """
  if configured:
    directory, origin = configured, "data.dir"
  elif os.environ.get(DATA_DIR_ENV):
    directory, origin = os.environ[DATA_DIR_ENV], DATA_DIR_ENV
  else:
    return None
  directory = os.path.expanduser(directory)
  if not os.path.isdir(directory):
    raise DataError(
        f"{origin} points at {directory}, which is not a directory; set it to "
        f"an existing folder (or to a root holding {subdir}/)"
    )
  nested = os.path.join(directory, subdir)
  return nested if os.path.isdir(nested) else directory


def to_model_scale(images: np.ndarray, name: str = "") -> np.ndarray:
  """uint8 images (n, h, w) or (n, h, w, c) -> float32 (n, h, w, c) in [-1, 1] for the networks.

  ``x / 127.5 - 1``; for ``name='cifar10'`` the official CIFAR-10 loader's ``(x - 127.5) / 128``.
  """
  if name == "cifar10":
    scaled = (images.astype(np.float32) - 127.5) / 128.0
  else:
    scaled = images.astype(np.float32) / 127.5 - 1.0
  return scaled[..., None] if images.ndim == 3 else scaled


def last_per_class(
    images: np.ndarray, labels: np.ndarray, per_class: int | None
) -> tuple[np.ndarray, np.ndarray]:
  """The paper's training subset: the last `per_class` examples of each class.

  Matches the official code's `x[y == c][-per_class:]`: classes in ascending
  order, each class's examples in dataset order, concatenated class by class.
  `per_class` None or 0 returns the inputs unchanged.
  """
  if len(images) != len(labels):
    raise DataError(f"{len(images)} images but {len(labels)} labels")
  if not per_class:
    return images, labels
  if per_class < 0:
    raise DataError(f"data.per_class must be >= 0 or None, got {per_class}")
  chosen = []
  for c in np.unique(labels):
    members = np.flatnonzero(labels == c)
    if len(members) < per_class:
      raise DataError(
          f"class {c} has only {len(members)} examples but data.per_class is "
          f"{per_class}; lower data.per_class"
      )
    chosen.append(members[-per_class:])
  indices = np.concatenate(chosen)
  return images[indices], labels[indices]


def random_subset(
    images: np.ndarray, labels: np.ndarray, num: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
  """The paper's CIFAR-10 subset: the first `num` of a seeded permutation.

  As the official script draws it: ``rng = RandomState(seed)``, two ``rng.randint(2**15)``
  (its Theano and Lasagne seeds), then ``rng.permutation(n)[:num]``, in permutation
  order; `num` 0 returns the inputs unchanged.
  """
  if num < 0:
    raise DataError(f"data.num_train must be >= 0, got {num}")
  if not num:
    return images, labels
  if num > len(images):
    raise DataError(
        f"data.num_train is {num} but only {len(images)} training images are "
        "available; lower data.num_train (0 takes them all) or add training batches"
    )
  rng = np.random.RandomState(seed)
  rng.randint(2**15)
  rng.randint(2**15)
  chosen = rng.permutation(len(images))[:num]
  return images[chosen], labels[chosen]


_REQUIRED = object()


def config_field(config: Any, name: str, default: Any = _REQUIRED) -> Any:
  """Reads `config.<name>`; a missing required field is a DataError."""
  try:
    return getattr(config, name)
  except (AttributeError, KeyError):
    # ConfigDict raises AttributeError for unknown fields; mappings KeyError.
    if default is _REQUIRED:
      raise DataError(f"the data config has no field {name!r}; add data.{name}") from None
    return default

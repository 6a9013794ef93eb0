"""CIFAR-10 from the python-version batch pickles or tensorflow-datasets."""

import os
import pickle
from typing import Any

import numpy as np

from deligan_jax.data.dataset import DATA_DIR_ENV, DataError
from deligan_jax.data.labelled import ImageSource, checked_images, load_labelled

CIFAR10_NUM_TRAIN_DEFAULT = 2000  # The paper trains on 2000 random CIFAR-10 images.
CIFAR10_SUBSET_SEED_DEFAULT = 1   # ... chosen by a seed-1 permutation.
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck")

_CIFAR10_FOLDER = "cifar-10-batches-py"
_CIFAR10_FILES = {"train": tuple(f"data_batch_{i}" for i in range(1, 6)),
                  "test": ("test_batch",)}


def load_cifar10(
    data_dir: str | None = None,
    source: str = "auto",
    split: str = "train",
    tfds_data_dir: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
  """Loads a CIFAR-10 split in the order of the original python batches.

  Args:
    data_dir: the `cifar-10-batches-py` folder, its parent, or a root holding
      `cifar10/`; None falls back to DELIGAN_DATA_DIR.
    source: 'files', 'tfds' or 'auto', as for `load_mnist`.
    split: 'train' (the data batches present, in order; 50000 images when
      all five are there) or 'test' (test_batch, 10000 images).
    tfds_data_dir: where tfds keeps its prepared data.

  Returns:
    uint8 images (n, 32, 32, 3) and int32 labels (n,).
  """
  return load_labelled(_CIFAR10, data_dir, source, split, tfds_data_dir)


def _cifar10_paths(directory: str, split: str) -> list[str]:
  """The split's batch files present in `directory` or its batches folder."""
  nested = os.path.join(directory, _CIFAR10_FOLDER)
  folder = nested if os.path.isdir(nested) else directory
  paths = (os.path.join(folder, name) for name in _CIFAR10_FILES[split])
  return [path for path in paths if os.path.isfile(path)]


def _cifar10_missing(directory: str, split: str) -> str | None:
  if _cifar10_paths(directory, split):
    return None
  wanted = " or ".join(_CIFAR10_FILES[split])
  return f"neither {directory} nor {os.path.join(directory, _CIFAR10_FOLDER)} holds {wanted}"


def _load_cifar10_files(directory: str, split: str) -> tuple[np.ndarray, np.ndarray]:
  batches = [read_cifar10_batch(path) for path in _cifar10_paths(directory, split)]
  return np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches])


class _ArraysOnlyUnpickler(pickle.Unpickler):
  """Unpickles only plain data and numpy arrays.

  A pickle can call any importable function while it loads; a CIFAR batch
  needs only these, so a tampered file cannot run code.
  """

  _ALLOWED = {
      ("numpy", "ndarray"), ("numpy", "dtype"),
      ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
      ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
      # How protocol 2 stores bytes (Python 2 names as written, then Python 3's).
      ("_codecs", "encode"), ("__builtin__", "bytes"), ("builtins", "bytes"),
  }

  def find_class(self, module: str, name: str) -> Any:
    if (module, name) not in self._ALLOWED:
      raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
    return super().find_class(module, name)


def read_cifar10_batch(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
  """Reads one python-version CIFAR-10 batch file (e.g. `data_batch_1`).

  The file is a pickled dict with b'data', uint8 (n, 3072) rows (the red
  plane, then green, then blue, each 32x32 row-major), and b'labels'.

  Returns:
    uint8 images (n, 32, 32, 3) and int32 labels (n,).
  """
  path = os.fspath(path)
  try:
    with open(path, "rb") as f:
      batch = _ArraysOnlyUnpickler(f, encoding="bytes").load()
  except Exception as e:  # pylint: disable=broad-except
    # A damaged pickle can fail in many ways (EOFError, UnpicklingError, ...).
    raise DataError(
        f"CIFAR-10 batch {path} cannot be unpickled ({type(e).__name__}: {e}); "
        "fetch the python version (cifar-10-python.tar.gz) again"
    ) from e
  if not isinstance(batch, dict) or not {b"data", b"labels"} <= batch.keys():
    found = f"a dict with keys {sorted(batch)}" if isinstance(batch, dict) else type(batch).__name__
    raise DataError(
        f"CIFAR-10 batch {path} holds {found}; a python-version batch is a dict "
        "with b'data' and b'labels'"
    )
  data = batch[b"data"]
  if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 \
      or data.shape[1] != 3 * 32 * 32:
    found = (f"shape {data.shape} and dtype {data.dtype}" if isinstance(data, np.ndarray)
             else type(data).__name__)
    raise DataError(
        f"CIFAR-10 batch {path}: b'data' has {found}; it must be uint8 (n, 3072), "
        "one 32x32 RGB image per row"
    )
  images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
  return checked_images(_CIFAR10, images, np.asarray(batch[b"labels"]), path)


def _cifar10_from_tfds(examples: dict, _: str) -> tuple[np.ndarray, np.ndarray]:
  # tfds stores CIFAR-10 in hashed order, but its ids ('train_00042') count
  # the examples in file order.
  order = np.argsort(examples["id"])
  return examples["image"][order], examples["label"][order]


_CIFAR10 = ImageSource(
    title="CIFAR-10",
    subdir="cifar10",
    image_shape=(32, 32, 3),
    num_classes=len(CIFAR10_CLASSES),
    setup_hint=(
        f"set --config.data.dir or {DATA_DIR_ENV} to the {_CIFAR10_FOLDER} folder "
        "of the python version of CIFAR-10 (data_batch_1 ... data_batch_5, "
        "test_batch; some training batches may be missing) or its parent"
    ),
    missing=_cifar10_missing,
    read_files=_load_cifar10_files,
    tfds_name="cifar10",
    from_tfds=_cifar10_from_tfds,
)

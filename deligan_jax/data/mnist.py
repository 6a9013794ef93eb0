"""MNIST from idx files (plain or `.gz`), a Keras `mnist.npz` or tensorflow-datasets."""

import gzip
import math
import os
import struct
import zipfile
import zlib

import numpy as np

from deligan_jax.data.dataset import DATA_DIR_ENV, DataError
from deligan_jax.data.labelled import ImageSource, checked_images, load_labelled

MNIST_PER_CLASS_DEFAULT = 50  # The paper trains on 50 images per digit.
MNIST_CLASSES = tuple(map(str, range(10)))

_MNIST_FILE_PREFIX = {"train": "train", "test": "t10k"}
_MNIST_NPZ = "mnist.npz"

_IDX_UBYTE = 0x08  # idx type code for unsigned bytes, the only one MNIST uses.


def read_idx(path: str | os.PathLike) -> np.ndarray:
  """Reads an idx file (plain, or gzip-compressed when named `*.gz`).

  The magic number is two zero bytes, a type code (only 0x08, unsigned byte,
  is supported) and the number of dimensions; each dimension follows as a
  big-endian uint32, then the payload.

  Returns:
    uint8 array whose shape is the header's dimensions.
  """
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise DataError(f"idx file {path} not found")
  opener = gzip.open if path.endswith(".gz") else open
  try:
    with opener(path, "rb") as f:
      data = f.read()
  except (OSError, EOFError, zlib.error) as e:
    # Damaged gzip data raises BadGzipFile (an OSError), EOFError or zlib.error.
    raise DataError(
        f"idx file {path} cannot be read ({type(e).__name__}: {e}); if it is a "
        "damaged download, fetch it again"
    ) from e

  if len(data) < 4:
    raise DataError(f"idx file {path} is truncated: it has no 4-byte header")
  zeros, type_code, ndim = struct.unpack(">HBB", data[:4])
  if zeros != 0 or type_code != _IDX_UBYTE or ndim < 1:
    raise DataError(
        f"idx file {path} has bad magic number 0x{data[:4].hex()}; expected "
        f"0x0000{_IDX_UBYTE:02x}NN (unsigned bytes, NN >= 1 dimensions, e.g. "
        "0x00000803 = 2051 for images, 0x00000801 = 2049 for labels): "
        "is this an idx file?"
    )
  header_size = 4 + 4 * ndim
  if len(data) < header_size:
    raise DataError(
        f"idx file {path} is truncated: its header needs {header_size} bytes, "
        f"found {len(data)}"
    )
  shape = struct.unpack(f">{ndim}I", data[4:header_size])
  expected, found = math.prod(shape), len(data) - header_size
  if found != expected:
    problem = "truncated" if found < expected else "too long"
    raise DataError(
        f"idx file {path} is {problem}: expected {expected} bytes, found "
        f"{found} after the header for shape {shape}; fetch the file again"
    )
  return np.frombuffer(data, np.uint8, offset=header_size).reshape(shape).copy()


def load_mnist(
    data_dir: str | None = None,
    source: str = "auto",
    split: str = "train",
    tfds_data_dir: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
  """Loads an MNIST split in the order of the original idx files.

  Args:
    data_dir: folder with the MNIST files, or a root holding `mnist/`; None
      falls back to DELIGAN_DATA_DIR.
    source: 'files', 'tfds', or 'auto': the files when the folder holds
      them, else tensorflow-datasets. Files that are present but damaged
      raise rather than fall back, so a broken download is not hidden.
    split: 'train' (60000 images) or 'test' (10000 images).
    tfds_data_dir: where tfds keeps its prepared data; None uses tfds's
      default (~/tensorflow_datasets).

  Returns:
    uint8 images (n, 28, 28) and int32 labels (n,).
  """
  return load_labelled(_MNIST, data_dir, source, split, tfds_data_dir)


def _mnist_idx_paths(directory: str, split: str) -> tuple[str, str] | None:
  """Paths of the split's (images, labels) idx files, `.gz` or plain."""
  prefix = _MNIST_FILE_PREFIX[split]
  paths = []
  for kind in ("images-idx3", "labels-idx1"):
    base = os.path.join(directory, f"{prefix}-{kind}-ubyte")
    path = next((p for p in (base + ".gz", base) if os.path.isfile(p)), None)
    if path is None:
      return None
    paths.append(path)
  return paths[0], paths[1]


def _mnist_missing(directory: str, split: str) -> str | None:
  if _mnist_idx_paths(directory, split) or os.path.isfile(os.path.join(directory, _MNIST_NPZ)):
    return None
  prefix = _MNIST_FILE_PREFIX[split]
  return (
      f"{directory} holds neither {prefix}-images-idx3-ubyte.gz + "
      f"{prefix}-labels-idx1-ubyte.gz (or their uncompressed versions) nor "
      f"{_MNIST_NPZ}"
  )


def _load_mnist_files(directory: str, split: str) -> tuple[np.ndarray, np.ndarray]:
  """Loads a split from idx files, falling back to mnist.npz."""
  idx_paths = _mnist_idx_paths(directory, split)
  if idx_paths is not None:
    images, labels = (read_idx(p) for p in idx_paths)
    origin = f"{idx_paths[0]} / {idx_paths[1]}"
  else:
    origin = os.path.join(directory, _MNIST_NPZ)
    images, labels = _read_mnist_npz(origin, split)
  return checked_images(_MNIST, images, labels, origin)


def _read_mnist_npz(path: str, split: str) -> tuple[np.ndarray, np.ndarray]:
  """Reads `x_<split>` and `y_<split>` from a Keras-style mnist.npz."""
  keys = (f"x_{split}", f"y_{split}")
  try:
    with np.load(path, allow_pickle=False) as archive:
      present = archive.files
      arrays = [archive[k] for k in keys if k in present]
  except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
    raise DataError(
        f"{path} is not a readable .npz archive ({type(e).__name__}: {e}); "
        "fetch it again"
    ) from e
  if len(arrays) != len(keys):
    raise DataError(
        f"{path} lacks {[k for k in keys if k not in present]} (it has "
        f"{present}); a Keras mnist.npz holds x_train, y_train, x_test, y_test"
    )
  return arrays[0], arrays[1]


def _mnist_from_tfds(examples: dict, split: str) -> tuple[np.ndarray, np.ndarray]:
  """Undoes tfds's storage order so tfds and 'files' agree exactly.

  tfds's MNIST builder keys each example by its index in the idx file, and
  tfds writes a split sorted by the md5 hash of (split name + key) (see
  tensorflow_datasets/core/hashing.py and shuffle.py). Recomputing those
  hashes gives the file index of every stored example.
  """
  from tensorflow_datasets.core import hashing

  labels = examples["label"]
  hasher = hashing.Hasher(split)
  file_index_of_record = sorted(range(len(labels)), key=hasher.hash_key)
  record_of_file_index = np.argsort(file_index_of_record)
  return examples["image"][record_of_file_index, ..., 0], labels[record_of_file_index]


_MNIST = ImageSource(
    title="MNIST",
    subdir="mnist",
    image_shape=(28, 28),
    num_classes=10,
    setup_hint=(
        f"set --config.data.dir or {DATA_DIR_ENV} to a folder holding the four "
        "MNIST idx files (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
        "t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz) or mnist.npz"
    ),
    missing=_mnist_missing,
    read_files=_load_mnist_files,
    tfds_name="mnist",
    from_tfds=_mnist_from_tfds,
)

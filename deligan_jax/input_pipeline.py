"""Data sources for DeLiGAN: toy 2-D Gaussians, user point sets and MNIST.

Everything here returns plain numpy arrays; no JAX is needed. Every bad input
raises `DataError`, whose message names the file or field at fault and says
how to fix it. Nothing is ever written into a data directory.

MNIST comes from one of two sources:

* 'files': a folder holding the standard idx files
  (`train-images-idx3-ubyte.gz`, ...; uncompressed names also work) or a
  Keras-style `mnist.npz`.
* 'tfds': tensorflow-datasets. Offline, tfds builds MNIST from the same idx
  `.gz` files when the folder is passed as `DownloadConfig.manual_dir`: its
  download manager uses any file in `manual_dir` whose name is registered in
  tfds's url_checksums, and still checks the file's SHA-256. tfds stores the
  examples in a hashed order; `_tfds_to_file_order` restores the idx file
  order, so both sources give identical arrays.
"""

import gzip
import math
import os
import struct
import zipfile
import zlib
from typing import Any, NamedTuple

import numpy as np

DATA_DIR_ENV = "DELIGAN_DATA_DIR"


def _read_only(array: np.ndarray) -> np.ndarray:
  array.flags.writeable = False  # A shared constant: callers must not edit it.
  return array


# name -> (mode centres (k, 2), per-axis standard deviation).
TOY_MODES = {
    "unimodal": (_read_only(np.array([[0.0, 0.0]])), 0.3),
    "bimodal": (_read_only(np.array([[0.6, 0.6], [-0.6, -0.6]])), 0.15),
}

DATASET_NAMES = ("toy_unimodal", "toy_bimodal", "points", "mnist")
MNIST_SPLITS = ("train", "test")
MNIST_SOURCES = ("auto", "files", "tfds")
MNIST_PER_CLASS_DEFAULT = 50  # The paper trains on 50 images per digit.

_MNIST_IMAGE_SHAPE = (28, 28)
_MNIST_NUM_CLASSES = 10
_MNIST_FILE_PREFIX = {"train": "train", "test": "t10k"}
_MNIST_NPZ = "mnist.npz"

_IDX_UBYTE = 0x08  # idx type code for unsigned bytes, the only one MNIST uses.

_SETUP_HINT = (
    f"set --config.data.dir or {DATA_DIR_ENV} to a folder holding the four "
    "MNIST idx files (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
    "t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz) or mnist.npz"
)


class DataError(ValueError):
  """A data file, folder or data config field is missing or malformed."""


class Dataset(NamedTuple):
  """A training set.

  x: float32 samples; (n, 2) for point sets, (n, 28, 28, 1) in [-1, 1] for
    MNIST.
  labels: int32 (n,) class labels, or None when the data has none.
  name: the data config name it was loaded from.
  """

  x: np.ndarray
  labels: np.ndarray | None
  name: str


# ---------------------------------------------------------------------------
# 2-D point sets.


def toy_points(kind: str, num_points: int = 400, seed: int = 0) -> np.ndarray:
  """Samples the paper's toy data: an equal mixture of `TOY_MODES[kind]`.

  Points come in blocks, one mode after the other (for 'bimodal' and 400
  points: 200 around (0.6, 0.6), then 200 around (-0.6, -0.6)); when
  `num_points` does not split evenly, the first modes get one extra point.

  Returns:
    float32 array (num_points, 2).
  """
  if kind not in TOY_MODES:
    raise DataError(
        f"unknown toy data kind {kind!r}; use one of {sorted(TOY_MODES)}"
    )
  if num_points < 1:
    raise DataError(f"num_points must be at least 1, got {num_points}")
  centres, std = TOY_MODES[kind]
  rng = np.random.default_rng(seed)
  counts = [len(block) for block in np.array_split(np.arange(num_points), len(centres))]
  blocks = [
      centre + std * rng.standard_normal((count, 2))
      for centre, count in zip(centres, counts)
  ]
  return np.concatenate(blocks).astype(np.float32)


def load_points(path: str | os.PathLike) -> np.ndarray:
  """Loads a user point set: a `.npy` file holding an (N, 2) array, N >= 1.

  Any real dtype is accepted, integers included (integer coordinates are
  still points); bool, complex and non-numeric arrays are rejected.

  Returns:
    float32 array (N, 2).
  """
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise DataError(
        f"points file {path} not found; set data.path to an existing .npy file"
    )
  if not path.endswith(".npy"):
    raise DataError(
        f"points file {path} is not a .npy file; save the (N, 2) array with "
        "numpy.save"
    )
  try:
    points = np.load(path, allow_pickle=False)
  except (OSError, ValueError, EOFError) as e:
    raise DataError(
        f"points file {path} is not a readable .npy array ({e}); save a plain "
        "float (N, 2) array with numpy.save"
    ) from e
  if points.dtype.kind not in "fiu":  # float, signed or unsigned integer
    raise DataError(
        f"points file {path} holds dtype {points.dtype}; it needs float (or "
        "integer) coordinates"
    )
  if points.ndim != 2 or points.shape[1] != 2 or points.shape[0] < 1:
    raise DataError(
        f"points file {path} holds an array of shape {points.shape}; it needs "
        "shape (N, 2) with N >= 1, one row per 2-D point"
    )
  if not np.all(np.isfinite(points)):
    raise DataError(
        f"points file {path} holds NaN or infinite values; remove those rows"
    )
  return points.astype(np.float32)


# ---------------------------------------------------------------------------
# idx files and the data folder.


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


# ---------------------------------------------------------------------------
# MNIST.


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
  if source not in MNIST_SOURCES:
    raise DataError(
        f"unknown MNIST source {source!r}; set data.source to one of "
        f"{list(MNIST_SOURCES)}"
    )
  if split not in MNIST_SPLITS:
    raise DataError(
        f"unknown MNIST split {split!r}; use one of {list(MNIST_SPLITS)}"
    )
  directory = resolve_data_dir(data_dir, "mnist")
  if source == "files":
    if directory is None:
      raise DataError(f"data.source='files' needs a data folder: {_SETUP_HINT}")
    return _load_mnist_files(directory, split)
  if source == "tfds":
    return _load_mnist_tfds(split, tfds_data_dir, manual_dir=directory)

  if directory is not None and _mnist_files_present(directory, split):
    return _load_mnist_files(directory, split)
  if directory is None:
    files_reason = f"no data folder is set (data.dir and {DATA_DIR_ENV} are empty)"
  else:
    files_reason = _missing_files_message(directory, split)
  try:
    return _load_mnist_tfds(split, tfds_data_dir, manual_dir=directory)
  except DataError as tfds_error:
    raise DataError(
        f"cannot load MNIST. Fix either: (1) {_SETUP_HINT}; or (2) install "
        "tensorflow (pip install tensorflow-cpu) and have internet access so "
        "tensorflow-datasets can download MNIST. Reasons: local files: "
        f"{files_reason}. tensorflow-datasets: {tfds_error}"
    ) from tfds_error


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


def _mnist_files_present(directory: str, split: str) -> bool:
  return _mnist_idx_paths(directory, split) is not None or os.path.isfile(
      os.path.join(directory, _MNIST_NPZ)
  )


def _missing_files_message(directory: str, split: str) -> str:
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
  elif os.path.isfile(os.path.join(directory, _MNIST_NPZ)):
    images, labels = _read_mnist_npz(os.path.join(directory, _MNIST_NPZ), split)
    origin = os.path.join(directory, _MNIST_NPZ)
  else:
    raise DataError(f"{_missing_files_message(directory, split)}; {_SETUP_HINT}")
  return _checked_mnist(images, labels, origin)


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


def _checked_mnist(
    images: np.ndarray, labels: np.ndarray, origin: str
) -> tuple[np.ndarray, np.ndarray]:
  """Checks MNIST shapes, dtypes and label range; returns int32 labels."""
  if images.dtype != np.uint8 or images.shape[1:] != _MNIST_IMAGE_SHAPE:
    raise DataError(
        f"{origin}: images have shape {images.shape} and dtype {images.dtype}; "
        "MNIST images are uint8 (n, 28, 28)"
    )
  if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
    raise DataError(
        f"{origin}: labels have shape {labels.shape} and dtype {labels.dtype}; "
        "MNIST labels are integers (n,)"
    )
  if len(images) != len(labels):
    raise DataError(
        f"{origin}: {len(images)} images but {len(labels)} labels; the image "
        "and label files must belong to the same split"
    )
  if labels.size and not 0 <= labels.min() <= labels.max() < _MNIST_NUM_CLASSES:
    raise DataError(
        f"{origin}: labels range over [{labels.min()}, {labels.max()}]; MNIST "
        f"labels are 0..{_MNIST_NUM_CLASSES - 1}"
    )
  return images, labels.astype(np.int32)


def _load_mnist_tfds(
    split: str, tfds_data_dir: str | None, manual_dir: str | None
) -> tuple[np.ndarray, np.ndarray]:
  """Loads a split with tensorflow-datasets, in idx file order.

  When `manual_dir` holds the four idx `.gz` files, tfds builds MNIST from
  them without internet (it still verifies their checksums); otherwise it
  downloads them. Prepared data goes to `tfds_data_dir`, never `manual_dir`.
  """
  try:
    import tensorflow  # noqa: F401  # tfds needs it to build and read MNIST.
  except ImportError as e:
    raise DataError(
        f"tensorflow-datasets needs TensorFlow, which is not importable ({e}): "
        "pip install tensorflow-cpu, or use data.source='files'"
    ) from e
  try:
    import tensorflow_datasets as tfds
  except ImportError as e:
    raise DataError(
        f"tensorflow-datasets is not importable ({e}): pip install "
        "tensorflow-datasets, or use data.source='files'"
    ) from e

  # tfds can fail in many ways (network, checksums, disk), so any error from
  # it becomes a DataError that keeps the cause.
  try:
    builder = tfds.builder("mnist", data_dir=tfds_data_dir)
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=manual_dir)
    )
    images, labels = tfds.as_numpy(
        builder.as_dataset(split=split, batch_size=-1, as_supervised=True)
    )
  except DataError:
    raise
  except Exception as e:  # pylint: disable=broad-except
    raise DataError(
        f"tensorflow-datasets could not load MNIST {split!r} "
        f"({type(e).__name__}: {e})"
    ) from e
  images, labels = _tfds_to_file_order(images[..., 0], labels, split)
  return _checked_mnist(images, labels, f"tensorflow-datasets mnist {split!r}")


def _tfds_to_file_order(
    images: np.ndarray, labels: np.ndarray, split: str
) -> tuple[np.ndarray, np.ndarray]:
  """Undoes tfds's storage order so tfds and 'files' agree exactly.

  tfds's MNIST builder keys each example by its index in the idx file, and
  tfds writes a split sorted by the md5 hash of (split name + key) (see
  tensorflow_datasets/core/hashing.py and shuffle.py). Recomputing those
  hashes gives the file index of every stored example.
  """
  from tensorflow_datasets.core import hashing

  hasher = hashing.Hasher(split)
  file_index_of_record = sorted(range(len(labels)), key=hasher.hash_key)
  record_of_file_index = np.argsort(file_index_of_record)
  return images[record_of_file_index], labels[record_of_file_index]


def to_model_scale(images: np.ndarray) -> np.ndarray:
  """uint8 (n, 28, 28) pixels -> float32 (n, 28, 28, 1) in [-1, 1], as the networks take them."""
  return (images.astype(np.float32) / 127.5 - 1.0)[..., None]


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


# ---------------------------------------------------------------------------
# Entry point.


def load(data_config: Any) -> Dataset:
  """Loads the training set that a data config (e.g. a ConfigDict) names.

  Fields: `name` (one of DATASET_NAMES); `num_points`, `seed` (toy data);
  `path` (points); `dir`, `source`, `per_class`, `tfds_data_dir` (mnist).
  Absent optional fields take their defaults.
  """
  name = _field(data_config, "name")
  if name in ("toy_unimodal", "toy_bimodal"):
    x = toy_points(
        name.removeprefix("toy_"),
        num_points=_field(data_config, "num_points", 400),
        seed=_field(data_config, "seed", 0),
    )
    return Dataset(x=x, labels=None, name=name)
  if name == "points":
    path = _field(data_config, "path")
    if not path:
      raise DataError("data.path is empty; name='points' needs a .npy file")
    return Dataset(x=load_points(path), labels=None, name=name)
  if name == "mnist":
    images, labels = load_mnist(
        data_dir=_field(data_config, "dir", None),
        source=_field(data_config, "source", "auto"),
        split="train",
        tfds_data_dir=_field(data_config, "tfds_data_dir", None),
    )
    images, labels = last_per_class(
        images, labels, _field(data_config, "per_class", MNIST_PER_CLASS_DEFAULT)
    )
    return Dataset(x=to_model_scale(images), labels=labels, name=name)
  raise DataError(
      f"unknown data.name {name!r}; use one of {list(DATASET_NAMES)}"
  )


_REQUIRED = object()


def _field(config: Any, name: str, default: Any = _REQUIRED) -> Any:
  """Reads `config.<name>`; a missing required field is a DataError."""
  try:
    return getattr(config, name)
  except (AttributeError, KeyError):
    # ConfigDict raises AttributeError for unknown fields; mappings KeyError.
    if default is _REQUIRED:
      raise DataError(f"the data config has no field {name!r}; add data.{name}") from None
    return default

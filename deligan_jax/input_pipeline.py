"""Data sources for DeLiGAN: toy 2-D Gaussians, user point sets, MNIST, CIFAR-10, sketches.

Everything here returns plain numpy arrays; no JAX is needed. Every bad input
raises `DataError`, whose message names the file or field at fault and says
how to fix it. Nothing is ever written into a data directory.

MNIST and CIFAR-10 come from one of two sources:

* 'files': a folder holding the standard files. MNIST: the idx files
  (`train-images-idx3-ubyte.gz`, ...; uncompressed names also work) or a
  Keras-style `mnist.npz`. CIFAR-10: the python-version pickles of
  `cifar-10-batches-py` (`data_batch_1` ... `data_batch_5`, `test_batch`);
  any subset of the training batches works.
* 'tfds': tensorflow-datasets. Offline, tfds builds MNIST from the same idx
  `.gz` files when the folder is passed as `DownloadConfig.manual_dir`: its
  download manager uses any file in `manual_dir` whose name is registered in
  tfds's url_checksums, and still checks the file's SHA-256. tfds stores the
  examples in a hashed order; both datasets are put back in file order, so
  both sources give identical arrays.

Sketches (TU-Berlin) come from a folder of per-category PNG folders only.
"""

import gzip
import math
import os
import pickle
import struct
import zipfile
import zlib
from typing import Any, Callable, NamedTuple

import numpy as np
from PIL import Image

DATA_DIR_ENV = "DELIGAN_DATA_DIR"


def _read_only(array: np.ndarray) -> np.ndarray:
  array.flags.writeable = False  # A shared constant: callers must not edit it.
  return array


# name -> (mode centres (k, 2), per-axis standard deviation).
TOY_MODES = {
    "unimodal": (_read_only(np.array([[0.0, 0.0]])), 0.3),
    "bimodal": (_read_only(np.array([[0.6, 0.6], [-0.6, -0.6]])), 0.15),
}

IMAGE_DATASETS = ("mnist", "cifar10", "sketches")
DATASET_NAMES = ("toy_unimodal", "toy_bimodal", "points", *IMAGE_DATASETS)
SPLITS = ("train", "test")
SOURCES = ("auto", "files", "tfds")
SKETCH_SPLITS = ("all", "train", "test")
MNIST_PER_CLASS_DEFAULT = 50  # The paper trains on 50 images per digit.
CIFAR10_NUM_TRAIN_DEFAULT = 2000  # The paper trains on 2000 random CIFAR-10 images.
CIFAR10_SUBSET_SEED_DEFAULT = 1   # ... chosen by a seed-1 permutation.
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck")
SKETCH_SIZE = 32

_MNIST_FILE_PREFIX = {"train": "train", "test": "t10k"}
_MNIST_NPZ = "mnist.npz"
_CIFAR10_FOLDER = "cifar-10-batches-py"
_CIFAR10_FILES = {"train": tuple(f"data_batch_{i}" for i in range(1, 6)),
                  "test": ("test_batch",)}
_SKETCHES_SUBDIR = os.path.join("sketches", "tu_berlin")
# The shared TU-Berlin files are 150x150 (one is still 1111x1111); larger
# sketches are shrunk to this first so that the 3x3 dilation thickens every
# sketch's strokes by the same fraction of its size.
_SKETCH_WORK_SIZE = 150
# Pixels darker than this are strokes. The originals have solid black strokes
# on white paper, but shrinking them to 150x150 (as the shared set's publisher
# did) turned the strokes into thin grey lines, mostly between 128 and 250: a
# midpoint threshold (128) keeps only a dotted trace of them, while anything
# clearly darker than the paper keeps every line whole.
_STROKE_THRESHOLD = 224

_IDX_UBYTE = 0x08  # idx type code for unsigned bytes, the only one MNIST uses.


class DataError(ValueError):
  """A data file, folder or data config field is missing or malformed."""


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
# Labelled image datasets with a 'files' and a 'tfds' source.


class _ImageSource(NamedTuple):
  """How one labelled image dataset is found, read and checked."""

  title: str                  # the dataset's name in messages
  subdir: str                 # its folder under a data root
  image_shape: tuple[int, ...]
  num_classes: int
  setup_hint: str             # how to provide the files
  missing: Callable[[str, str], str | None]  # (folder, split) -> why the files are absent
  read_files: Callable[[str, str], tuple[np.ndarray, np.ndarray]]
  tfds_name: str
  # (tfds examples as a dict of arrays, split) -> (images, labels) in file order.
  from_tfds: Callable[[dict, str], tuple[np.ndarray, np.ndarray]]


def _load_labelled(
    spec: _ImageSource,
    data_dir: str | None,
    source: str,
    split: str,
    tfds_data_dir: str | None,
) -> tuple[np.ndarray, np.ndarray]:
  """Loads a split of `spec`'s dataset from its files or tensorflow-datasets."""
  if source not in SOURCES:
    raise DataError(
        f"unknown {spec.title} source {source!r}; set data.source to one of "
        f"{list(SOURCES)}"
    )
  if split not in SPLITS:
    raise DataError(
        f"unknown {spec.title} split {split!r}; use one of {list(SPLITS)}"
    )
  directory = resolve_data_dir(data_dir, spec.subdir)
  if source == "files":
    if directory is None:
      raise DataError(f"data.source='files' needs a data folder: {spec.setup_hint}")
    reason = spec.missing(directory, split)
    if reason is not None:
      raise DataError(f"{reason}; {spec.setup_hint}")
    return spec.read_files(directory, split)
  if source == "tfds":
    return _load_tfds(spec, split, tfds_data_dir, manual_dir=directory)

  if directory is None:
    files_reason = f"no data folder is set (data.dir and {DATA_DIR_ENV} are empty)"
  else:
    files_reason = spec.missing(directory, split)
    if files_reason is None:
      return spec.read_files(directory, split)
  try:
    return _load_tfds(spec, split, tfds_data_dir, manual_dir=directory)
  except DataError as tfds_error:
    raise DataError(
        f"cannot load {spec.title}. Fix either: (1) {spec.setup_hint}; or (2) "
        "install tensorflow (pip install tensorflow-cpu) and have internet "
        f"access so tensorflow-datasets can download {spec.title}. Reasons: "
        f"local files: {files_reason}. tensorflow-datasets: {tfds_error}"
    ) from tfds_error


def _checked_images(
    spec: _ImageSource, images: np.ndarray, labels: np.ndarray, origin: str
) -> tuple[np.ndarray, np.ndarray]:
  """Checks shapes, dtypes and label range; returns int32 labels."""
  if images.dtype != np.uint8 or images.shape[1:] != spec.image_shape:
    raise DataError(
        f"{origin}: images have shape {images.shape} and dtype {images.dtype}; "
        f"{spec.title} images are uint8 (n, {', '.join(map(str, spec.image_shape))})"
    )
  if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
    raise DataError(
        f"{origin}: labels have shape {labels.shape} and dtype {labels.dtype}; "
        f"{spec.title} labels are integers (n,)"
    )
  if len(images) != len(labels):
    raise DataError(
        f"{origin}: {len(images)} images but {len(labels)} labels; the image "
        "and label files must belong to the same split"
    )
  if labels.size and not 0 <= labels.min() <= labels.max() < spec.num_classes:
    raise DataError(
        f"{origin}: labels range over [{labels.min()}, {labels.max()}]; "
        f"{spec.title} labels are 0..{spec.num_classes - 1}"
    )
  return images, labels.astype(np.int32)


def _load_tfds(
    spec: _ImageSource, split: str, tfds_data_dir: str | None, manual_dir: str | None
) -> tuple[np.ndarray, np.ndarray]:
  """Loads a split with tensorflow-datasets, in the order of the original files.

  When `manual_dir` holds the original download files, tfds builds the
  dataset from them without internet (it still verifies their checksums);
  otherwise it downloads them. Prepared data goes to `tfds_data_dir`, never
  `manual_dir`.
  """
  try:
    import tensorflow  # noqa: F401  # tfds needs it to build and read datasets.
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
    builder = tfds.builder(spec.tfds_name, data_dir=tfds_data_dir)
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=manual_dir)
    )
    examples = tfds.as_numpy(builder.as_dataset(split=split, batch_size=-1))
  except Exception as e:  # pylint: disable=broad-except
    raise DataError(
        f"tensorflow-datasets could not load {spec.title} {split!r} "
        f"({type(e).__name__}: {e})"
    ) from e
  images, labels = spec.from_tfds(examples, split)
  return _checked_images(spec, images, labels, f"tensorflow-datasets {spec.tfds_name} {split!r}")


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
  return _load_labelled(_MNIST, data_dir, source, split, tfds_data_dir)


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
  return _checked_images(_MNIST, images, labels, origin)


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


_MNIST = _ImageSource(
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


# ---------------------------------------------------------------------------
# CIFAR-10.


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
  return _load_labelled(_CIFAR10, data_dir, source, split, tfds_data_dir)


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
  return _checked_images(_CIFAR10, images, np.asarray(batch[b"labels"]), path)


def _cifar10_from_tfds(examples: dict, _: str) -> tuple[np.ndarray, np.ndarray]:
  # tfds stores CIFAR-10 in hashed order, but its ids ('train_00042') count
  # the examples in file order.
  order = np.argsort(examples["id"])
  return examples["image"][order], examples["label"][order]


_CIFAR10 = _ImageSource(
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


# ---------------------------------------------------------------------------
# Sketches (TU-Berlin).


def load_sketches(
    data_dir: str | None = None,
    categories: tuple[str, ...] = (),
    split: str = "all",
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
  """Loads TU-Berlin sketches, preprocessed as in spec §3, with their flips.

  Args:
    data_dir: the `png` folder of per-category folders (`png/<category>/<id>.png`,
      the layout of TU-Berlin's sketches_png.zip), its parent, or a root
      holding `sketches/tu_berlin/`; None falls back to DELIGAN_DATA_DIR.
    categories: the category folders to load, in label order; empty takes
      every category found, sorted by name.
    split: 'all', or the evaluation classifier's split of every category by
      numeric id: 'train' the first 3/4 of its ids, 'test' the rest.

  Returns:
    uint8 images (2n, 32, 32), white strokes on black, category by category
    and by numeric id within one, then the same n images flipped left-right
    in the same order; int32 labels (2n,), the index into the returned
    category names.
  """
  if split not in SKETCH_SPLITS:
    raise DataError(f"unknown sketch split {split!r}; use one of {list(SKETCH_SPLITS)}")
  folder = _sketch_folder(data_dir)
  available = sorted(e.name for e in os.scandir(folder) if e.is_dir())
  if not available:
    raise DataError(
        f"{folder} holds no category folders; point data.dir at a folder of "
        "per-category PNG folders (png/<category>/<id>.png)"
    )
  chosen = tuple(categories) or tuple(available)
  unknown = [c for c in chosen if c not in available]
  if unknown:
    raise DataError(
        f"data.categories names {unknown}, which {folder} does not hold; "
        f"available categories: {', '.join(available)}"
    )
  if len(set(chosen)) != len(chosen):
    raise DataError(f"data.categories repeats a category: {list(chosen)}")
  images, labels = [], []
  for label, category in enumerate(chosen):
    paths = _sketch_paths(os.path.join(folder, category))
    cut = 3 * len(paths) // 4
    paths = {"all": paths, "train": paths[:cut], "test": paths[cut:]}[split]
    images += [preprocess_sketch(_read_grey_png(path)) for path in paths]
    labels += [label] * len(paths)
  if not images:
    raise DataError(
        f"the {split!r} split of categories {list(chosen)} is empty; a test split "
        "needs categories with at least 2 sketches"
    )
  images, labels = np.stack(images), np.array(labels, np.int32)
  return (np.concatenate([images, images[:, :, ::-1]]), np.concatenate([labels, labels]),
          chosen)


def preprocess_sketch(grey: np.ndarray) -> np.ndarray:
  """One sketch, uint8 (h, w) with dark strokes on white, as spec §3 prepares it.

  Threshold (a pixel is a stroke when darker than 224), invert, dilate 3x3,
  then shrink to 32x32 by area averaging.

  Returns:
    uint8 (32, 32), white strokes on black.
  """
  if max(grey.shape) > _SKETCH_WORK_SIZE:
    grey = np.asarray(Image.fromarray(grey).resize((_SKETCH_WORK_SIZE,) * 2, Image.BOX))
  strokes = grey < _STROKE_THRESHOLD
  # Dilation thickens the 1-2 pixel strokes so that they survive the shrink
  # to 32x32 instead of fading to faint grey.
  padded = np.pad(strokes, 1)
  height, width = strokes.shape
  thick = np.zeros_like(strokes)
  for dy in range(3):
    for dx in range(3):
      thick |= padded[dy:dy + height, dx:dx + width]
  white_on_black = Image.fromarray(thick.astype(np.uint8) * 255)
  return np.asarray(white_on_black.resize((SKETCH_SIZE, SKETCH_SIZE), Image.BOX))


def _sketch_folder(data_dir: str | None) -> str:
  directory = resolve_data_dir(data_dir, _SKETCHES_SUBDIR)
  if directory is None:
    raise DataError(
        f"sketches need a data folder: set --config.data.dir or {DATA_DIR_ENV} to "
        "a TU-Berlin png folder (png/<category>/<id>.png) or its parent"
    )
  nested = os.path.join(directory, "png")
  return nested if os.path.isdir(nested) else directory


def _sketch_paths(category_dir: str) -> list[str]:
  """A category's PNG files, by numeric id (names that are not numbers last)."""
  names = [name for name in os.listdir(category_dir) if name.lower().endswith(".png")]
  if not names:
    raise DataError(
        f"category folder {category_dir} holds no .png files; remove it or add sketches"
    )

  def by_id(name: str) -> tuple[bool, int, str]:
    stem = name[:-4]
    return (not stem.isdigit(), int(stem) if stem.isdigit() else 0, stem)

  return [os.path.join(category_dir, name) for name in sorted(names, key=by_id)]


def _read_grey_png(path: str) -> np.ndarray:
  try:
    with Image.open(path) as image:
      return np.asarray(image.convert("L"))
  except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
    # Pillow reports damaged files as any of these.
    raise DataError(
        f"sketch {path} cannot be read as an image ({type(e).__name__}: {e}); "
        "replace or remove the file"
    ) from e


# ---------------------------------------------------------------------------
# Subsets, scaling and the entry points.


def to_model_scale(images: np.ndarray) -> np.ndarray:
  """uint8 images (n, h, w) or (n, h, w, c) -> float32 (n, h, w, c) in [-1, 1] for the networks."""
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

  `np.random.RandomState(seed).permutation(n)[:num]`, in permutation order;
  `num` 0 returns the inputs unchanged.
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
  chosen = np.random.RandomState(seed).permutation(len(images))[:num]
  return images[chosen], labels[chosen]


def load(data_config: Any) -> Dataset:
  """Loads the training set that a data config (e.g. a ConfigDict) names.

  Fields: `name` (one of DATASET_NAMES); `num_points`, `seed` (toy data);
  `path` (points); `dir`, `source`, `tfds_data_dir` (mnist, cifar10);
  `per_class` (mnist); `num_train`, `subset_seed` (cifar10); `dir`,
  `categories` (sketches, which train on every sketch of the categories).
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
  images, labels, class_names = _labelled_images(
      data_config, "all" if name == "sketches" else "train")
  if name == "mnist":
    images, labels = last_per_class(
        images, labels, _field(data_config, "per_class", MNIST_PER_CLASS_DEFAULT))
  elif name == "cifar10":
    images, labels = random_subset(
        images, labels, _field(data_config, "num_train", CIFAR10_NUM_TRAIN_DEFAULT),
        _field(data_config, "subset_seed", CIFAR10_SUBSET_SEED_DEFAULT))
  return Dataset(to_model_scale(images), labels, name, class_names)


def load_split(data_config: Any, split: str) -> Dataset:
  """A whole labelled split of an image dataset, for the evaluation classifier.

  'train': every training image (no paper subset; sketches: the first 3/4 of
  each category); 'test': the held-out images (MNIST's 10000, CIFAR-10's
  test_batch, the last 1/4 of each sketch category). Flipped sketches are in
  both.
  """
  name = _field(data_config, "name")
  if name not in IMAGE_DATASETS:
    raise DataError(
        f"data.name={name!r} has no {split} split for evaluation; only the image "
        f"datasets {list(IMAGE_DATASETS)} have one"
    )
  if split not in SPLITS:
    raise DataError(f"unknown split {split!r}; use one of {list(SPLITS)}")
  images, labels, class_names = _labelled_images(data_config, split)
  return Dataset(to_model_scale(images), labels, name, class_names)


def load_test(data_config: Any) -> Dataset:
  """The real evaluation set of an image dataset: `load_split(data_config, 'test')`."""
  return load_split(data_config, "test")


def _labelled_images(
    data_config: Any, split: str
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
  """uint8 images, labels and class names of a split of an image dataset."""
  name = _field(data_config, "name")
  data_dir = _field(data_config, "dir", None)
  if name == "sketches":
    return load_sketches(data_dir, tuple(_field(data_config, "categories", ())), split)
  loaders = {"mnist": (load_mnist, tuple(map(str, range(10)))),
             "cifar10": (load_cifar10, CIFAR10_CLASSES)}
  if name not in loaders:
    raise DataError(f"unknown data.name {name!r}; use one of {list(DATASET_NAMES)}")
  loader, class_names = loaders[name]
  images, labels = loader(data_dir, _field(data_config, "source", "auto"), split,
                          _field(data_config, "tfds_data_dir", None))
  return images, labels, class_names


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

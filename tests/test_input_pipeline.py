"""Tests for deligan_jax.data: toy data, point files, idx/npz MNIST and tfds."""

import gzip
import importlib.util
import os
import re
import struct
import sys
from pathlib import Path

import ml_collections
import numpy as np
import pytest

from deligan_jax.data import datasets, labelled, quiet_tensorflow
from deligan_jax.data.dataset import DATA_DIR_ENV, DataError, Dataset, last_per_class, resolve_data_dir
from deligan_jax.data.mnist import load_mnist, read_idx
from deligan_jax.data.points import TOY_MODES, load_points, toy_points
from tests.test_training import run_cli

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
TRAIN_LABEL_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_GZ_NAMES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                  "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
needs_tfds = pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ("tensorflow", "tensorflow_datasets")),
    reason="tensorflow or tensorflow-datasets is not installed")


def idx_bytes(array: np.ndarray) -> bytes:
  """An idx file's bytes: magic (ubyte, ndim), big-endian dims, payload."""
  array = np.asarray(array, np.uint8)
  header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
  return header + array.tobytes()


def write_idx(path: Path, array: np.ndarray) -> Path:
  data = idx_bytes(array)
  path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
  return path


def tiny_mnist(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
  rng = np.random.default_rng(seed)
  images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
  labels = np.arange(n, dtype=np.uint8) % 10
  return images, labels


@pytest.fixture
def tiny_idx_dir(tmp_path):
  """A folder with the four idx .gz files: 30 train and 20 test images."""
  splits = {"train": tiny_mnist(30, 0), "t10k": tiny_mnist(20, 1)}
  for prefix, (images, labels) in splits.items():
    write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", images)
    write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", labels)
  return tmp_path, splits


@pytest.fixture
def real_mnist_dir():
  """The shared MNIST idx files (DELIGAN_DATA_DIR, else ../shared/data); skips when absent."""
  root = Path(os.environ.get(DATA_DIR_ENV) or SHARED_DATA)
  for path in (root / "mnist", root):
    if all((path / name).is_file() for name in MNIST_GZ_NAMES):
      return str(path)
  pytest.skip(f"the four MNIST idx .gz files are not in {root} or {root / 'mnist'}")


@pytest.fixture
def no_data_dir_env(monkeypatch):
  monkeypatch.delenv(DATA_DIR_ENV, raising=False)


# --- toy data -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["unimodal", "bimodal"])
def test_toy_points_shape_dtype_and_seeding(kind):
  points = toy_points(kind, num_points=400, seed=3)
  assert points.shape == (400, 2) and points.dtype == np.float32
  np.testing.assert_array_equal(points, toy_points(kind, num_points=400, seed=3))
  assert not np.array_equal(points, toy_points(kind, num_points=400, seed=4))


def test_toy_bimodal_halves_sit_on_their_modes():
  points = toy_points("bimodal", num_points=400, seed=0)
  centres, std = TOY_MODES["bimodal"]
  for half, centre in zip((points[:200], points[200:]), centres):
    np.testing.assert_allclose(half.mean(axis=0), centre, atol=0.05)
    np.testing.assert_allclose(half.std(axis=0), std, rtol=0.15)


def test_toy_unimodal_spread():
  points = toy_points("unimodal", num_points=4000, seed=0)
  np.testing.assert_allclose(points.mean(axis=0), [0.0, 0.0], atol=0.05)
  np.testing.assert_allclose(points.std(axis=0), 0.3, rtol=0.05)


def test_toy_odd_count_and_bad_inputs():
  assert toy_points("bimodal", num_points=5).shape == (5, 2)
  with pytest.raises(DataError, match="unknown toy data kind 'trimodal'"):
    toy_points("trimodal")
  with pytest.raises(DataError, match="num_points must be at least 1"):
    toy_points("bimodal", num_points=0)


def test_toy_modes_are_read_only():
  with pytest.raises(ValueError):
    TOY_MODES["bimodal"][0][0, 0] = 1.0


# --- point files ----------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float16, np.int64])
def test_load_points_round_trip(tmp_path, dtype):
  points = np.array([[0.5, -1.0], [2.0, 3.0], [1.0, 0.0]], dtype=dtype)
  np.save(tmp_path / "p.npy", points)
  loaded = load_points(tmp_path / "p.npy")
  assert loaded.dtype == np.float32
  np.testing.assert_array_equal(loaded, points.astype(np.float32))


@pytest.mark.parametrize("name, content, message", [
    ("p.npy", None, "not found"),
    ("p.txt", np.zeros((3, 2)), "not a .npy file"),
    ("p.npy", b"this is not numpy", "not a readable .npy array"),
    ("p.npy", np.array([{"a": 1}], dtype=object), "not a readable .npy array"),
    ("p.npy", np.zeros((3, 2), dtype=bool), "dtype bool"),
    ("p.npy", np.zeros((3, 2), dtype=np.complex64), "dtype complex64"),
    ("p.npy", np.zeros((3, 3)), r"shape \(3, 3\)"),
    ("p.npy", np.zeros(6), r"shape \(6,\)"),
    ("p.npy", np.zeros((0, 2)), r"shape \(0, 2\)"),
    ("p.npy", np.array([[0.0, np.nan]]), "NaN or infinite"),
    ("p.npy", np.array([[np.inf, 0.0]]), "NaN or infinite"),
])
def test_load_points_rejects_bad_files(tmp_path, name, content, message):
  path = tmp_path / name
  if isinstance(content, bytes):
    path.write_bytes(content)
  elif content is not None:
    with open(path, "wb") as f:
      np.save(f, content, allow_pickle=True)
  with pytest.raises(DataError, match=message) as info:
    load_points(path)
  assert str(path) in str(info.value)


# --- idx files ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["a-idx3-ubyte", "a-idx3-ubyte.gz"])
def test_read_idx_plain_and_gzip(tmp_path, name):
  images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
  loaded = read_idx(write_idx(tmp_path / name, images))
  assert loaded.dtype == np.uint8
  np.testing.assert_array_equal(loaded, images)
  labels = read_idx(write_idx(tmp_path / f"labels-{name}", np.array([7, 0, 9])))
  np.testing.assert_array_equal(labels, [7, 0, 9])


def test_read_idx_magic_numbers(tmp_path):
  path = write_idx(tmp_path / "images", np.zeros((1, 28, 28)))
  assert struct.unpack(">I", path.read_bytes()[:4])[0] == 2051
  path = write_idx(tmp_path / "labels", np.zeros(5))
  assert struct.unpack(">I", path.read_bytes()[:4])[0] == 2049


def test_read_idx_rejects_wrong_magic(tmp_path):
  data = bytearray(idx_bytes(np.zeros((2, 2))))
  data[2] = 0x0D  # float type code
  (tmp_path / "f").write_bytes(bytes(data))
  with pytest.raises(DataError, match="bad magic number 0x00000d02"):
    read_idx(tmp_path / "f")
  (tmp_path / "g").write_bytes(b"\x1f\x8b\x08\x00" + bytes(8))
  with pytest.raises(DataError, match="bad magic number"):
    read_idx(tmp_path / "g")


def test_read_idx_rejects_truncated_or_long_payload(tmp_path):
  data = idx_bytes(np.zeros((2, 3, 4)))
  (tmp_path / "short.gz").write_bytes(gzip.compress(data[:-5]))
  with pytest.raises(DataError, match="truncated: expected 24 bytes, found 19"):
    read_idx(tmp_path / "short.gz")
  (tmp_path / "long").write_bytes(data + b"\x00")
  with pytest.raises(DataError, match="too long: expected 24 bytes, found 25"):
    read_idx(tmp_path / "long")
  (tmp_path / "header").write_bytes(data[:10])
  with pytest.raises(DataError, match="truncated: its header needs 16 bytes, found 10"):
    read_idx(tmp_path / "header")


def test_read_idx_rejects_corrupt_gzip(tmp_path):
  compressed = gzip.compress(idx_bytes(np.arange(200).reshape(10, 20)))
  (tmp_path / "notgz.gz").write_bytes(b"plain bytes, not gzip")
  (tmp_path / "cut.gz").write_bytes(compressed[: len(compressed) // 2])
  damaged = bytearray(compressed)
  damaged[12:20] = b"\xff" * 8
  (tmp_path / "damaged.gz").write_bytes(bytes(damaged))
  for name in ("notgz.gz", "cut.gz", "damaged.gz"):
    with pytest.raises(DataError, match=f"idx file .*{re.escape(name)} cannot be read"):
      read_idx(tmp_path / name)


def test_read_idx_missing_file(tmp_path):
  with pytest.raises(DataError, match="not found"):
    read_idx(tmp_path / "nothing.gz")


# --- data folders ---------------------------------------------------------------------------


def test_resolve_data_dir(tmp_path, monkeypatch, no_data_dir_env):
  assert resolve_data_dir(None, "mnist") is None
  (tmp_path / "mnist").mkdir()
  monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
  assert resolve_data_dir(None, "mnist") == str(tmp_path / "mnist")
  assert resolve_data_dir(str(tmp_path / "mnist"), "mnist") == str(tmp_path / "mnist")
  other = tmp_path / "other"
  other.mkdir()
  assert resolve_data_dir(str(other), "mnist") == str(other)  # config wins over env


def test_resolve_data_dir_rejects_missing_dirs(tmp_path, monkeypatch):
  with pytest.raises(DataError, match=re.escape(f"data.dir points at {tmp_path / 'nope'}")):
    resolve_data_dir(str(tmp_path / "nope"), "mnist")
  monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "gone"))
  with pytest.raises(DataError, match=f"{DATA_DIR_ENV} points at"):
    resolve_data_dir(None, "mnist")


# --- MNIST from files -----------------------------------------------------------------------


@pytest.mark.parametrize("split, prefix", [("train", "train"), ("test", "t10k")])
def test_load_mnist_idx_files(tiny_idx_dir, split, prefix):
  directory, splits = tiny_idx_dir
  images, labels = load_mnist(str(directory), source="files", split=split)
  assert images.dtype == np.uint8 and labels.dtype == np.int32
  np.testing.assert_array_equal(images, splits[prefix][0])
  np.testing.assert_array_equal(labels, splits[prefix][1])


def test_load_mnist_uncompressed_idx_via_env_root(tmp_path, monkeypatch):
  images, labels = tiny_mnist(12, 2)
  (tmp_path / "mnist").mkdir()
  write_idx(tmp_path / "mnist" / "train-images-idx3-ubyte", images)
  write_idx(tmp_path / "mnist" / "train-labels-idx1-ubyte", labels)
  monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
  loaded_images, loaded_labels = load_mnist(source="files")
  np.testing.assert_array_equal(loaded_images, images)
  np.testing.assert_array_equal(loaded_labels, labels)


def test_load_mnist_npz(tmp_path):
  (x_train, y_train), (x_test, y_test) = tiny_mnist(30, 0), tiny_mnist(10, 1)
  np.savez(tmp_path / "mnist.npz", x_train=x_train, y_train=y_train, x_test=x_test,
           y_test=y_test)
  images, labels = load_mnist(str(tmp_path), source="files", split="test")
  np.testing.assert_array_equal(images, x_test)
  np.testing.assert_array_equal(labels, y_test)
  assert labels.dtype == np.int32


def test_load_mnist_npz_errors(tmp_path):
  np.savez(tmp_path / "mnist.npz", x_train=np.zeros((2, 28, 28), np.uint8))
  with pytest.raises(DataError, match=r"lacks \['y_train'\]"):
    load_mnist(str(tmp_path), source="files")
  (tmp_path / "mnist.npz").write_bytes(b"PK\x03\x04 broken")
  with pytest.raises(DataError, match="not a readable .npz archive"):
    load_mnist(str(tmp_path), source="files")


def test_load_mnist_files_checks_contents(tmp_path):
  images, labels = tiny_mnist(10, 0)
  write_idx(tmp_path / "train-images-idx3-ubyte.gz", images)
  write_idx(tmp_path / "train-labels-idx1-ubyte.gz", labels[:9])
  with pytest.raises(DataError, match="10 images but 9 labels"):
    load_mnist(str(tmp_path), source="files")
  write_idx(tmp_path / "train-labels-idx1-ubyte.gz", labels + 5)
  with pytest.raises(DataError, match=r"labels range over \[5, 14\]"):
    load_mnist(str(tmp_path), source="files")
  write_idx(tmp_path / "train-images-idx3-ubyte.gz", np.zeros((10, 32, 32)))
  with pytest.raises(DataError, match=r"shape \(10, 32, 32\)"):
    load_mnist(str(tmp_path), source="files")


def test_load_mnist_files_missing(tmp_path, no_data_dir_env):
  with pytest.raises(DataError, match="holds neither train-images-idx3-ubyte.gz"):
    load_mnist(str(tmp_path), source="files")
  with pytest.raises(DataError, match="needs a data folder: set --config.data.dir or"):
    load_mnist(source="files")


def test_load_mnist_rejects_bad_arguments(tiny_idx_dir):
  directory, _ = tiny_idx_dir
  with pytest.raises(DataError, match="unknown MNIST source 'web'"):
    load_mnist(str(directory), source="web")
  with pytest.raises(DataError, match="unknown MNIST split 'valid'"):
    load_mnist(str(directory), split="valid")


def test_load_mnist_auto_prefers_files(tiny_idx_dir, monkeypatch):
  directory, splits = tiny_idx_dir
  monkeypatch.setattr(labelled, "load_tfds", pytest.fail)
  images, _ = load_mnist(str(directory), source="auto")
  np.testing.assert_array_equal(images, splits["train"][0])


def test_load_mnist_auto_without_any_source(tmp_path, monkeypatch, no_data_dir_env):
  def tfds_fails(*args, **kwargs):
    raise DataError("tensorflow-datasets could not load MNIST (offline)")

  monkeypatch.setattr(labelled, "load_tfds", tfds_fails)
  for data_dir in (None, str(tmp_path)):
    with pytest.raises(DataError) as info:
      load_mnist(data_dir, source="auto")
    message = str(info.value)
    assert "--config.data.dir" in message and DATA_DIR_ENV in message
    assert "tensorflow-datasets" in message and "pip install tensorflow-cpu" in message
    assert "(offline)" in message
  assert f"{tmp_path} holds neither" in message


def test_load_tfds_without_tensorflow(monkeypatch, no_data_dir_env):
  monkeypatch.setitem(sys.modules, "tensorflow", None)  # makes `import tensorflow` fail
  with pytest.raises(DataError, match="needs TensorFlow.*pip install tensorflow-cpu"):
    load_mnist(source="tfds")


# --- the paper's subset ---------------------------------------------------------------------


def test_last_per_class_takes_the_last_of_each_class_in_order():
  labels = np.array([2, 0, 1, 0, 2, 1, 0, 2, 1, 1], dtype=np.int32)
  images = np.arange(10) * 10
  subset_images, subset_labels = last_per_class(images, labels, 2)
  np.testing.assert_array_equal(subset_labels, [0, 0, 1, 1, 2, 2])
  np.testing.assert_array_equal(subset_images, [30, 60, 80, 90, 40, 70])


@pytest.mark.parametrize("per_class", [None, 0])
def test_last_per_class_keeps_everything(per_class):
  images, labels = np.arange(4), np.array([1, 0, 1, 0])
  subset_images, subset_labels = last_per_class(images, labels, per_class)
  np.testing.assert_array_equal(subset_images, images)
  np.testing.assert_array_equal(subset_labels, labels)


def test_last_per_class_errors():
  labels = np.array([0, 0, 1])
  with pytest.raises(DataError, match="class 1 has only 1 examples but data.per_class is 2"):
    last_per_class(np.arange(3), labels, 2)
  with pytest.raises(DataError, match="must be >= 0"):
    last_per_class(np.arange(3), labels, -1)
  with pytest.raises(DataError, match="3 images but 2 labels"):
    last_per_class(np.arange(3), labels[:2], 1)


# --- the real MNIST files -------------------------------------------------------------------


def test_real_mnist_files(real_mnist_dir):
  x_train, y_train = load_mnist(real_mnist_dir, source="files", split="train")
  x_test, y_test = load_mnist(real_mnist_dir, source="files", split="test")
  assert x_train.shape == (60000, 28, 28) and y_train.shape == (60000,)
  assert x_test.shape == (10000, 28, 28) and y_test.shape == (10000,)
  assert np.bincount(y_train).tolist() == TRAIN_LABEL_COUNTS

  images, labels = last_per_class(x_train, y_train, 50)
  assert images.shape == (500, 28, 28)
  np.testing.assert_array_equal(labels, np.repeat(np.arange(10), 50))
  expected = np.concatenate([x_train[y_train == c][-50:] for c in range(10)])
  np.testing.assert_array_equal(images, expected)


@needs_tfds
def test_real_mnist_tfds_offline_matches_files(real_mnist_dir, tmp_path, monkeypatch):
  before = sorted(os.listdir(real_mnist_dir))
  for split in ("train", "test"):
    images, labels = load_mnist(real_mnist_dir, source="tfds", split=split,
                                   tfds_data_dir=str(tmp_path / "tfds"))
    file_images, file_labels = load_mnist(real_mnist_dir, source="files", split=split)
    assert images.dtype == np.uint8 and labels.dtype == np.int32
    # tfds stores examples in hashed order; the loader restores the idx file order.
    np.testing.assert_array_equal(images, file_images)
    np.testing.assert_array_equal(labels, file_labels)
  assert sorted(os.listdir(real_mnist_dir)) == before  # nothing written into the data dir
  assert (tmp_path / "tfds" / "mnist").is_dir()


@needs_tfds
@pytest.mark.parametrize("users_level", [None, "0"])
def test_tensorflow_is_imported_without_its_start_up_notes_unless_asked(users_level):
  """With oneDNN on, importing TensorFlow writes absl's and oneDNN's notes to stderr; the
  user sees them only when they set TF_CPP_MIN_LOG_LEVEL (here to show everything)."""
  script = ("import os\nfrom deligan_jax.data import quiet_tensorflow\n"
            "quiet_tensorflow.import_tfds()\nprint(os.environ['TF_CPP_MIN_LOG_LEVEL'])")
  result = run_cli("-c", script, env={"TF_ENABLE_ONEDNN_OPTS": "1",
                                      "TF_CPP_MIN_LOG_LEVEL": users_level})
  assert result.returncode == 0, result.stderr[-3000:]
  assert result.stdout.split() == [users_level or quiet_tensorflow.ERRORS_ONLY]
  notes = ("oneDNN custom operations are on" in result.stderr,
           "absl::InitializeLog()" in result.stderr)
  assert notes == ((False, False) if users_level is None else (True, True)), result.stderr


# --- load() ---------------------------------------------------------------------------------


def data_config(**fields) -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(fields)


@pytest.mark.parametrize("name, kind", [("toy_unimodal", "unimodal"), ("toy_bimodal", "bimodal")])
def test_load_toy(name, kind):
  dataset = datasets.load(data_config(name=name, num_points=100, seed=5))
  assert isinstance(dataset, Dataset)
  assert dataset.name == name and dataset.labels is None
  np.testing.assert_array_equal(dataset.x, toy_points(kind, num_points=100, seed=5))


def test_load_toy_defaults():
  dataset = datasets.load(data_config(name="toy_bimodal"))
  np.testing.assert_array_equal(dataset.x, toy_points("bimodal", 400, 0))


def test_load_points(tmp_path):
  np.save(tmp_path / "p.npy", np.ones((7, 2)))
  dataset = datasets.load(data_config(name="points", path=str(tmp_path / "p.npy")))
  assert dataset.x.shape == (7, 2) and dataset.labels is None and dataset.name == "points"
  with pytest.raises(DataError, match="data.path is empty"):
    datasets.load(ml_collections.ConfigDict({"name": "points", "path": ""}))
  with pytest.raises(DataError, match="no field 'path'"):
    datasets.load(data_config(name="points"))


def test_load_mnist_config(tiny_idx_dir):
  directory, splits = tiny_idx_dir
  config = data_config(name="mnist", dir=str(directory), source="files", per_class=2)
  dataset = datasets.load(config)  # no tfds_data_dir field: treated as None
  assert dataset.name == "mnist"
  assert dataset.x.shape == (20, 28, 28, 1) and dataset.x.dtype == np.float32
  assert dataset.labels.dtype == np.int32
  images, labels = last_per_class(*splits["train"], 2)
  np.testing.assert_array_equal(dataset.labels, labels)
  np.testing.assert_allclose(dataset.x[..., 0], images / 127.5 - 1.0, atol=1e-6)
  assert dataset.x.min() >= -1.0 and dataset.x.max() <= 1.0


def test_load_mnist_config_with_placeholders(tiny_idx_dir, monkeypatch):
  """The repo's base config: dir/tfds_data_dir are None placeholders, dir comes from the env."""
  from ml_collections import config_dict

  directory, _ = tiny_idx_dir
  monkeypatch.setenv(DATA_DIR_ENV, str(directory))
  config = data_config(name="mnist", dir=config_dict.placeholder(str), source="auto",
                       per_class=3, tfds_data_dir=config_dict.placeholder(str))
  dataset = datasets.load(config)
  np.testing.assert_array_equal(dataset.labels, np.repeat(np.arange(10), 3))


def test_load_rejects_unknown_name():
  with pytest.raises(DataError, match="unknown data.name 'cifar'.*toy_unimodal.*mnist"):
    datasets.load(data_config(name="cifar"))

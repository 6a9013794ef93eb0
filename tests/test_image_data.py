"""Tests for the CIFAR-10 and sketch sources of deligan_jax.data."""

import os
import pickle
from pathlib import Path

import ml_collections
import numpy as np
import pytest
from PIL import Image

from deligan_jax.data import datasets, labelled
from deligan_jax.data.cifar10 import CIFAR10_CLASSES, load_cifar10, read_cifar10_batch
from deligan_jax.data.dataset import DATA_DIR_ENV, DataError, random_subset
from deligan_jax.data.sketches import load_sketches, preprocess_sketch
from tests.conftest import SHARED_DATA

CIFAR_TRAIN_LABEL_COUNTS = [396, 366, 420, 384, 422, 393, 414, 385, 407, 413]


def shared(subdir: str) -> Path:
  """A folder of the shared data (DELIGAN_DATA_DIR, else ../shared/data); skips when absent."""
  path = Path(os.environ.get(DATA_DIR_ENV) or SHARED_DATA) / subdir
  if not path.is_dir():
    pytest.skip(f"{path} not found (set {DATA_DIR_ENV})")
  return path


def write_cifar_batch(path: Path, images: np.ndarray, labels) -> Path:
  """A python-version CIFAR-10 batch: rows of R, G, B planes."""
  rows = images.transpose(0, 3, 1, 2).reshape(len(images), -1)
  with open(path, "wb") as f:
    pickle.dump({b"batch_label": b"tiny", b"labels": list(labels), b"data": rows}, f, protocol=2)
  return path


def tiny_cifar(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
  rng = np.random.default_rng(seed)
  return rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), np.arange(n) % 10


@pytest.fixture
def cifar_root(tmp_path):
  """A root holding cifar-10-batches-py/ with data_batch_2, data_batch_4 and test_batch only."""
  folder = tmp_path / "cifar-10-batches-py"
  folder.mkdir()
  batches = {name: tiny_cifar(n, seed) for name, n, seed in
             (("data_batch_2", 6, 2), ("data_batch_4", 4, 4), ("test_batch", 5, 9))}
  for name, (images, labels) in batches.items():
    write_cifar_batch(folder / name, images, labels)
  return tmp_path, batches


def write_png(path: Path, grey: np.ndarray) -> Path:
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(grey.astype(np.uint8)).save(path)
  return path


def dot(row: int, col: int, size: int = 96, value: int = 0) -> np.ndarray:
  """A white page with one dark pixel."""
  page = np.full((size, size), 255, np.uint8)
  page[row, col] = value
  return page


@pytest.fixture
def sketch_dir(tmp_path):
  """png/<category>/<id>.png: 'cup' ids 10, 2, 1, 7 and 'bat' ids 5, 6; each a dot."""
  png = tmp_path / "png"
  for category, ids in (("cup", (10, 2, 1, 7)), ("bat", (5, 6))):
    for i in ids:
      write_png(png / category / f"{i}.png", dot(3 * i % 96, 3 * (i // 32)))
  return png


# --- CIFAR-10 files -------------------------------------------------------------------------


def test_cifar_pixel_layout_is_rgb_planes(tmp_path):
  images = np.zeros((1, 32, 32, 3), np.uint8)
  images[0, 1, 2] = (10, 20, 30)
  rows = np.zeros((1, 3072), np.uint8)
  rows[0, [34, 1024 + 34, 2048 + 34]] = (10, 20, 30)  # R, G, B planes, row 1, column 2
  with open(tmp_path / "b", "wb") as f:
    pickle.dump({b"data": rows, b"labels": [7]}, f, protocol=2)
  read_images, labels = read_cifar10_batch(tmp_path / "b")
  np.testing.assert_array_equal(read_images, images)
  assert labels.dtype == np.int32 and labels.tolist() == [7]


def test_cifar_partial_batches_from_any_folder_level(cifar_root, monkeypatch):
  root, batches = cifar_root
  train = [batches["data_batch_2"], batches["data_batch_4"]]  # in batch order
  for data_dir in (root, root / "cifar-10-batches-py"):
    images, labels = load_cifar10(str(data_dir), source="files")
    np.testing.assert_array_equal(images, np.concatenate([b[0] for b in train]))
    np.testing.assert_array_equal(labels, np.concatenate([b[1] for b in train]))
  monkeypatch.setenv(DATA_DIR_ENV, str(root.parent))  # a data root holding cifar10/
  os.rename(root, root.parent / "cifar10")
  images, labels = load_cifar10(split="test")
  np.testing.assert_array_equal(images, batches["test_batch"][0])
  assert images.shape == (5, 32, 32, 3) and labels.dtype == np.int32


@pytest.mark.parametrize("content, message", [
    ({b"data": np.zeros((5, 3000), np.uint8), b"labels": [0] * 5}, r"shape \(5, 3000\)"),
    ({b"data": np.zeros((5, 3072), np.int64), b"labels": [0] * 5}, "dtype int64"),
    ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 11]}, r"range over \[0, 11\]"),
    ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, "2 images but 1 labels"),
    ({b"data": np.zeros((2, 3072), np.uint8)}, r"keys \[b'data'\].*b'labels'"),
    ([1, 2, 3], "holds list"),
])
def test_cifar_rejects_malformed_batches(tmp_path, content, message):
  with open(tmp_path / "data_batch_1", "wb") as f:
    pickle.dump(content, f, protocol=2)
  with pytest.raises(DataError, match=f"{tmp_path / 'data_batch_1'}.*{message}"):
    load_cifar10(str(tmp_path), source="files")


class _Trap:
  def __init__(self, path):
    self.path = path

  def __reduce__(self):
    return os.mkdir, (self.path,)


def test_cifar_pickles_cannot_run_code(tmp_path):
  with open(tmp_path / "test_batch", "wb") as f:
    pickle.dump({b"data": _Trap(str(tmp_path / "ran")), b"labels": []}, f, protocol=2)
  (tmp_path / "broken").write_bytes(b"\x80\x02}q\x00(")
  with pytest.raises(DataError, match="refusing to load posix.mkdir"):
    load_cifar10(str(tmp_path), source="files", split="test")
  assert not (tmp_path / "ran").exists()
  with pytest.raises(DataError, match=f"{tmp_path / 'broken'} cannot be unpickled"):
    read_cifar10_batch(tmp_path / "broken")


def test_cifar_missing_files_and_sources(tmp_path, monkeypatch):
  monkeypatch.delenv(DATA_DIR_ENV, raising=False)
  with pytest.raises(DataError, match="holds test_batch; set --config.data.dir"):
    load_cifar10(str(tmp_path), source="files", split="test")
  with pytest.raises(DataError, match="needs a data folder"):
    load_cifar10(source="files")
  with pytest.raises(DataError, match="not a directory"):
    load_cifar10(str(tmp_path / "absent"))

  def tfds_fails(spec, split, *args, **kwargs):
    raise DataError(f"tensorflow-datasets could not load {spec.title} {split!r} (offline)")

  monkeypatch.setattr(labelled, "load_tfds", tfds_fails)
  with pytest.raises(DataError, match=r"cannot load CIFAR-10\. Fix either.*data_batch_1 or "
                     r"data_batch_2.*\(offline\)"):
    load_cifar10(str(tmp_path))


def test_cifar_tfds_source_is_put_in_file_order(cifar_root, monkeypatch):
  root, _ = cifar_root
  calls = []

  def fake_tfds(spec, split, tfds_data_dir, manual_dir):
    calls.append((spec.tfds_name, split, manual_dir))
    images = np.arange(3, dtype=np.uint8)[:, None, None, None] * np.ones((1, 32, 32, 3), np.uint8)
    examples = {"id": np.array([b"train_00002", b"train_00000", b"train_00001"]),
                "image": images, "label": np.array([2, 0, 1])}
    return spec.from_tfds(examples, split)

  monkeypatch.setattr(labelled, "load_tfds", fake_tfds)
  images, labels = load_cifar10(str(root), source="tfds")
  assert calls == [("cifar10", "train", str(root))]
  assert labels.tolist() == [0, 1, 2] and images[:, 0, 0, 0].tolist() == [1, 2, 0]
  load_cifar10(str(root), source="auto")  # files present: tfds is not asked
  assert len(calls) == 1


def test_random_subset_is_the_seeded_permutation():
  images, labels = np.arange(50) * 10, np.arange(50) % 10
  sub_images, sub_labels = random_subset(images, labels, 7, 1)
  rng = np.random.RandomState(1)
  rng.randint(2**15), rng.randint(2**15)
  chosen = rng.permutation(50)[:7]
  np.testing.assert_array_equal(sub_images, images[chosen])
  np.testing.assert_array_equal(sub_labels, labels[chosen])
  assert random_subset(images, labels, 0, 1)[0] is images
  with pytest.raises(DataError, match="data.num_train is 51 but only 50"):
    random_subset(images, labels, 51, 1)
  with pytest.raises(DataError, match="must be >= 0"):
    random_subset(images, labels, -1, 1)


def test_load_cifar_config(cifar_root):
  root, batches = cifar_root
  config = ml_collections.ConfigDict({"name": "cifar10", "dir": str(root), "num_train": 4,
                                      "subset_seed": 3})
  dataset = datasets.load(config)
  train = np.concatenate([batches["data_batch_2"][0], batches["data_batch_4"][0]])
  chosen = random_subset(np.arange(10), np.arange(10), 4, 3)[0]
  assert dataset.x.shape == (4, 32, 32, 3) and dataset.x.dtype == np.float32
  np.testing.assert_allclose(dataset.x, (train[chosen] - 127.5) / 128, atol=1e-6)
  assert dataset.class_names == CIFAR10_CLASSES
  test = datasets.load_test(config)
  assert test.x.shape == (5, 32, 32, 3) and test.labels.tolist() == [0, 1, 2, 3, 4]
  assert datasets.load_split(config, "train").x.shape == (10, 32, 32, 3)  # no subset


@pytest.mark.parametrize("name", ["toy_bimodal", "points"])
def test_point_sets_have_no_test_set(name):
  with pytest.raises(DataError, match=f"data.name='{name}' has no test split"):
    datasets.load_test(ml_collections.ConfigDict({"name": name}))


# --- sketch files ---------------------------------------------------------------------------


def test_sketch_preprocessing_dilates_inverts_and_shrinks():
  out = preprocess_sketch(dot(4, 4))
  # The dark pixel becomes a white 3x3 blob (rows and columns 3..5) that fills
  # exactly one 32x32 pixel when 96x96 shrinks by 3.
  expected = np.zeros((32, 32), np.uint8)
  expected[1, 1] = 255
  np.testing.assert_array_equal(out, expected)
  assert out.dtype == np.uint8
  # Grey strokes count, near-white paper does not.
  assert preprocess_sketch(dot(4, 4, value=200))[1, 1] == 255
  assert not preprocess_sketch(dot(4, 4, value=230)).any()
  # A blob straddling two output pixels is averaged over both.
  np.testing.assert_array_equal(preprocess_sketch(dot(4, 5))[1, 1:3], [170, 85])
  big = preprocess_sketch(np.full((300, 300), 255, np.uint8))
  assert big.shape == (32, 32) and not big.any()


def test_load_sketches_order_labels_and_flips(sketch_dir):
  images, labels, names = load_sketches(str(sketch_dir))
  assert names == ("bat", "cup")  # sorted
  ids = [5, 6, 1, 2, 7, 10]  # category by category, numeric id order
  expected = np.stack([preprocess_sketch(dot(3 * i % 96, 3 * (i // 32))) for i in ids])
  np.testing.assert_array_equal(images[:6], expected)
  np.testing.assert_array_equal(images[6:], expected[:, :, ::-1])  # flips after originals
  assert labels.tolist() == [0, 0, 1, 1, 1, 1] * 2 and labels.dtype == np.int32

  images, labels, names = load_sketches(str(sketch_dir), ("cup",), "train")
  np.testing.assert_array_equal(images[:3], expected[2:5])  # the first 3/4 of the ids
  assert names == ("cup",) and labels.tolist() == [0] * 6
  images, _, _ = load_sketches(str(sketch_dir), ("cup", "bat"), "test")
  np.testing.assert_array_equal(images[:2], expected[[5, 1]])  # id 10, then bat's id 6


def test_load_sketches_folder_levels(sketch_dir, monkeypatch):
  reference = load_sketches(str(sketch_dir))[0]
  for folder in (sketch_dir, sketch_dir.parent):
    np.testing.assert_array_equal(load_sketches(str(folder))[0], reference)
  root = sketch_dir.parent / "root"
  (root / "sketches").mkdir(parents=True)
  os.rename(sketch_dir.parent / "png", root / "sketches" / "png")
  (root / "sketches" / "png").rename(root / "sketches" / "tu_berlin")
  monkeypatch.setenv(DATA_DIR_ENV, str(root))
  np.testing.assert_array_equal(load_sketches()[0], reference)


def test_load_sketches_errors(sketch_dir, monkeypatch):
  with pytest.raises(DataError, match=r"\['dog'\].*available categories: bat, cup"):
    load_sketches(str(sketch_dir), ("cup", "dog"))
  with pytest.raises(DataError, match="repeats a category"):
    load_sketches(str(sketch_dir), ("cup", "cup"))
  with pytest.raises(DataError, match="unknown sketch split"):
    load_sketches(str(sketch_dir), split="valid")
  (sketch_dir / "empty").mkdir()
  with pytest.raises(DataError, match=f"{sketch_dir / 'empty'} holds no .png files"):
    load_sketches(str(sketch_dir))
  (sketch_dir / "bat" / "9.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
  with pytest.raises(DataError, match=f"sketch {sketch_dir / 'bat' / '9.png'} cannot be read"):
    load_sketches(str(sketch_dir), ("bat",))
  with pytest.raises(DataError, match="holds no category folders"):
    load_sketches(str(sketch_dir / "cup"))
  with pytest.raises(DataError, match="not a directory"):
    load_sketches(str(sketch_dir / "absent"))
  monkeypatch.delenv(DATA_DIR_ENV, raising=False)
  with pytest.raises(DataError, match="sketches need a data folder"):
    load_sketches()


def test_load_sketches_config(sketch_dir):
  config = ml_collections.ConfigDict({"name": "sketches", "dir": str(sketch_dir),
                                      "categories": ("cup",)})
  dataset = datasets.load(config)
  assert dataset.x.shape == (8, 32, 32, 1) and dataset.x.dtype == np.float32
  images, _, _ = load_sketches(str(sketch_dir), ("cup",))
  np.testing.assert_allclose(dataset.x[..., 0], images / 127.5 - 1, atol=1e-6)
  assert dataset.class_names == ("cup",)
  assert datasets.load_test(config).x.shape == (2, 32, 32, 1)


# --- the shared data ------------------------------------------------------------------------


def test_shared_cifar10():
  root = shared("cifar10")
  x_train, y_train = load_cifar10(str(root), source="files")
  x_test, y_test = load_cifar10(str(root), source="files", split="test")
  assert x_train.shape == (4000, 32, 32, 3) and x_test.shape == (1000, 32, 32, 3)
  assert np.bincount(y_train).tolist() == CIFAR_TRAIN_LABEL_COUNTS
  assert y_train[:10].tolist() == [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]
  assert y_test[:10].tolist() == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]
  assert x_train[:1000].mean() == pytest.approx(120.6, abs=0.05)  # PROVENANCE's strip mean
  red, green, blue = x_test.reshape(-1, 3).mean(0)
  assert red > green > blue  # natural images: the planes are read in R, G, B order

  dataset = datasets.load(ml_collections.ConfigDict({"name": "cifar10", "dir": str(root.parent)}))
  chosen = random_subset(np.arange(4000), np.arange(4000), 2000, 1)[0]
  np.testing.assert_array_equal(dataset.labels, y_train[chosen])
  np.testing.assert_allclose(dataset.x, (x_train[chosen] - 127.5) / 128, atol=1e-6)


def test_shared_sketches():
  folder = shared("sketches/tu_berlin")
  images, labels, names = load_sketches(str(folder))
  assert len(names) == 40 and names[0] == "ant" and names[-1] == "wine-bottle"
  assert images.shape == (6400, 32, 32) and np.bincount(labels).tolist() == [160] * 40
  np.testing.assert_array_equal(images[3200:], images[:3200, :, ::-1])
  assert images[0].mean() == pytest.approx(34.51, abs=0.01)  # ant/241.png
  assert images.mean() == pytest.approx(27.82, abs=0.01)

  config = ml_collections.ConfigDict({"name": "sketches", "dir": str(folder),
                                      "categories": ("cloud", "ant")})
  dataset = datasets.load(config)
  assert dataset.x.shape == (320, 32, 32, 1) and dataset.class_names == ("cloud", "ant")
  assert -1.0 <= dataset.x.min() < dataset.x.max() <= 1.0
  # cloud/4387.png, the one 1111x1111 file, is shrunk like the rest: strokes of similar weight.
  cloud_means = dataset.x[:80].mean(axis=(1, 2, 3))
  assert abs(cloud_means[66] - np.median(cloud_means)) < 3 * cloud_means.std()
  test = datasets.load_test(config)
  assert test.x.shape == (80, 32, 32, 1)  # the last 20 ids of each category, and their flips
  np.testing.assert_array_equal(test.x[:20], dataset.x[60:80])

"""Labelled image datasets (MNIST, CIFAR-10) read from their files or from
tensorflow-datasets, with the same checks for both sources."""

import socket
import urllib.parse
from typing import Callable, NamedTuple

from absl import logging
import numpy as np

from deligan_jax.data import quiet_tensorflow
from deligan_jax.data.dataset import DATA_DIR_ENV, SOURCES, SPLITS, DataError, resolve_data_dir


class ImageSource(NamedTuple):
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


def load_labelled(
    spec: ImageSource,
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
    return load_tfds(spec, split, tfds_data_dir, manual_dir=directory)

  if directory is None:
    files_reason = f"no data folder is set (data.dir and {DATA_DIR_ENV} are empty)"
  else:
    files_reason = spec.missing(directory, split)
    if files_reason is None:
      return spec.read_files(directory, split)
  try:
    return load_tfds(spec, split, tfds_data_dir, manual_dir=directory)
  except DataError as tfds_error:
    raise DataError(
        f"cannot load {spec.title}. Fix either: (1) {spec.setup_hint}; or (2) "
        "install tensorflow (pip install tensorflow-cpu) and have internet "
        f"access so tensorflow-datasets can download {spec.title}. Reasons: "
        f"local files: {files_reason}. tensorflow-datasets: {tfds_error}"
    ) from tfds_error


def checked_images(
    spec: ImageSource, images: np.ndarray, labels: np.ndarray, origin: str
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


def load_tfds(
    spec: ImageSource, split: str, tfds_data_dir: str | None, manual_dir: str | None
) -> tuple[np.ndarray, np.ndarray]:
  """Loads a split with tensorflow-datasets, in the order of the original files.

  When `manual_dir` holds the original download files, tfds builds the
  dataset from them without internet (it still verifies their checksums);
  otherwise it downloads them. Prepared data goes to `tfds_data_dir`, never
  `manual_dir`.
  """
  try:
    tfds = quiet_tensorflow.import_tfds()
  except ImportError as e:
    if (e.name or "").split(".")[0] == "tensorflow":
      raise DataError(
          f"tensorflow-datasets needs TensorFlow, which is not importable ({e}): "
          "pip install tensorflow-cpu, or use data.source='files'"
      ) from e
    raise DataError(
        f"tensorflow-datasets is not importable ({e}): pip install "
        "tensorflow-datasets, or use data.source='files'"
    ) from e

  # tfds can fail in many ways (network, checksums, disk), so any error from
  # it becomes a DataError that keeps the cause.
  try:
    builder = tfds.builder(spec.tfds_name, data_dir=tfds_data_dir)
    if not _is_prepared(builder) and (manual_dir is None
                                      or spec.missing(manual_dir, split) is not None):
      _check_reachable(builder.url_infos or {})
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
  return checked_images(spec, images, labels, f"tensorflow-datasets {spec.tfds_name} {split!r}")


def _is_prepared(builder) -> bool:
  # tfds warns of every variant folder it finds unprepared; whatever follows says what matters.
  level = logging.get_verbosity()
  logging.set_verbosity(logging.ERROR)
  try:
    return builder.is_prepared()
  finally:
    logging.set_verbosity(level)


DOWNLOAD_PROBE_TIMEOUT_S = 5.0


def _check_reachable(urls) -> None:
  """Raises OSError within seconds when a download host cannot be reached.

  Offline, tfds would retry each download with back-off for minutes before
  giving up; one connection attempt per host tells the same at once.
  """
  for host in sorted({urllib.parse.urlsplit(url).hostname for url in urls}):
    try:
      socket.create_connection((host, 443), timeout=DOWNLOAD_PROBE_TIMEOUT_S).close()
    except OSError as e:
      raise OSError(f"{host} is unreachable ({e}); no internet access?") from e

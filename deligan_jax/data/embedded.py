r"""The paper's 500 MNIST training images, shipped inside the package.

``mnist500.npz`` beside this module holds the last 50 images of each digit of
the standard MNIST training set (the official selection, see
:func:`deligan_jax.data.dataset.last_per_class`), so the MNIST config trains
with no data folder and no internet. PROVENANCE.md beside it records its
source files, their checksums and its licence. It is made from the idx files
with::

  DELIGAN_DATA_DIR=/path/to/data python -m deligan_jax.data.embedded deligan_jax/data/mnist500.npz
"""

import os
import sys
import zipfile

import numpy as np

from deligan_jax.data import mnist
from deligan_jax.data.dataset import DataError, last_per_class

MNIST500_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mnist500.npz")
MNIST500_PER_CLASS = 50


def load_mnist500() -> tuple[np.ndarray, np.ndarray]:
  """The shipped uint8 images (500, 28, 28) and int32 labels (500,), class by class."""
  try:
    with np.load(MNIST500_PATH, allow_pickle=False) as archive:
      return archive["images"], archive["labels"]
  except (OSError, KeyError, ValueError, zipfile.BadZipFile) as e:
    raise DataError(f"the shipped MNIST subset {MNIST500_PATH} cannot be read "
                    f"({type(e).__name__}: {e}); reinstall the package") from e


def make_mnist500(data_dir: str | None = None) -> tuple[np.ndarray, np.ndarray]:
  """The subset as the training pipeline selects it from the full idx files."""
  images, labels = mnist.load_mnist(data_dir, "files", "train")
  return last_per_class(images, labels, MNIST500_PER_CLASS)


def main(argv: list[str]) -> None:
  if len(argv) != 2:
    sys.exit(f"usage: python -m deligan_jax.data.embedded OUT.npz (reads ${mnist.DATA_DIR_ENV})")
  images, labels = make_mnist500()
  np.savez_compressed(argv[1], images=images, labels=labels)
  print(f"wrote {len(images)} images to {argv[1]} ({os.path.getsize(argv[1])} bytes)")


if __name__ == "__main__":
  main(sys.argv)

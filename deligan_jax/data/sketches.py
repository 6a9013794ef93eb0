"""TU-Berlin sketches from a folder of per-category PNG folders."""

import os

import numpy as np
from PIL import Image

from deligan_jax.data.dataset import DATA_DIR_ENV, DataError, resolve_data_dir

SKETCH_SPLITS = ("all", "train", "test")
SKETCH_SIZE = 32

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


def load_sketches(
    data_dir: str | None = None,
    categories: tuple[str, ...] = (),
    split: str = "all",
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
  """Loads TU-Berlin sketches, preprocessed as in docs/paper.md §3, with their flips.

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
  """One sketch, uint8 (h, w) with dark strokes on white, as docs/paper.md §3 prepares it.

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

"""Diversity within a class, for any model: how varied the samples of each predicted class are.

For each class the evaluation classifier predicts, up to :data:`PER_CLASS` samples of that
class (the first ones drawn) give a mean pairwise distance, in pixels and in the
classifier's feature space. Each is divided by the same figure for the real test images
the classifier puts in that class (also the first :data:`PER_CLASS`), so 1 is as varied as
real images of that class and copies of one image give 0. The score is the mean ratio over
the classes with at least :data:`MIN_SAMPLES` samples in both sets, beside how many
qualified.

Unlike the spread within one mixture component, this reads only samples, so the GAN and
every baseline have it; unlike m-IS, it does not depend on how confident the classifier is.
Real images are grouped by predicted class, as samples are, so that the test set scored as
if it were samples gives exactly 1.
"""

from __future__ import annotations

import math

import numpy as np

from deligan_jax.scores import metrics

PER_CLASS = 100
MIN_SAMPLES = 10
SPACES = ("pixels", "features")


def _class_spreads(pixels: np.ndarray, features: np.ndarray, classes: np.ndarray,
                   label: int, per_class: int) -> tuple[int, float, float]:
  """How many rows are of ``label``, and the mean pairwise distances of the first ``per_class``."""
  rows = np.flatnonzero(classes == label)
  chosen = rows[:per_class]
  if len(chosen) < 2:
    return len(rows), math.nan, math.nan
  flat = np.asarray(pixels[chosen], np.float64).reshape(len(chosen), -1)
  return (len(rows), metrics.mean_pairwise_distance(flat),
          metrics.mean_pairwise_distance(np.asarray(features[chosen], np.float64)))


def within_class_diversity(sample_pixels: np.ndarray, sample_probs: np.ndarray,
                           sample_features: np.ndarray, real_pixels: np.ndarray,
                           real_probs: np.ndarray, real_features: np.ndarray,
                           per_class: int = PER_CLASS, min_samples: int = MIN_SAMPLES) -> dict:
  """The ratio of the samples' within-class spread to real images', per class and averaged.

  ``*_probs`` are the classifier's class probabilities (n, K); ``*_features`` its
  features (n, f). Returns ``{'pixels': mean ratio, 'features': mean ratio,
  'classes_qualified': count, 'min_samples': ..., 'per_class': {label: {...}}}``,
  the means NaN when no class qualifies.
  """
  sample_classes = np.argmax(sample_probs, axis=1)
  real_classes = np.argmax(real_probs, axis=1)
  per_label, ratios = {}, {space: [] for space in SPACES}
  for label in range(sample_probs.shape[1]):
    count, pixel, feature = _class_spreads(sample_pixels, sample_features, sample_classes,
                                           label, per_class)
    real_count, real_pixel, real_feature = _class_spreads(real_pixels, real_features,
                                                          real_classes, label, per_class)
    qualified = count >= min_samples and real_count >= min_samples and real_pixel > 0
    entry = {"count": count, "real_count": real_count, "qualified": bool(qualified)}
    if qualified:
      entry.update(pixels=pixel / real_pixel, features=feature / real_feature)
      ratios["pixels"].append(entry["pixels"])
      ratios["features"].append(entry["features"])
    per_label[str(label)] = entry
  mean = lambda values: float(np.mean(values)) if values else math.nan
  return {"pixels": mean(ratios["pixels"]), "features": mean(ratios["features"]),
          "classes_qualified": len(ratios["pixels"]), "min_samples": min_samples,
          "per_class_limit": per_class, "per_class": per_label}


def report_lines(score: dict, class_names: list[str]) -> list[str]:
  """The report's section: the two ratios, and each class's count and ratios."""
  cell = lambda entry, space: f"{entry[space]:.3f}" if entry["qualified"] else "left out"
  lines = ["", "## Diversity within a class (samples ÷ real test images of the predicted class)",
           "",
           f"Mean pairwise distance of up to {score['per_class_limit']} samples of each "
           f"predicted class, divided by that of the real test images the classifier puts in "
           f"the class; a class counts with at least {score['min_samples']} of each. 1: as "
           f"varied as real images; 0: copies of one image.", "",
           f"**pixels {score['pixels']:.3f}, classifier features {score['features']:.3f}** "
           f"(mean over {score['classes_qualified']} classes)", "",
           "| class | samples | real | pixels | features |", "| --- | --- | --- | --- | --- |"]
  for label, entry in score["per_class"].items():
    lines.append(f"| {class_names[int(label)]} | {entry['count']} | {entry['real_count']} | "
                 f"{cell(entry, 'pixels')} | {cell(entry, 'features')} |")
  return lines

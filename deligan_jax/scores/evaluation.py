"""Evaluation of a trained run: scores, memorisation check, and the pictures behind them.

Writes into the run's workdir:

  eval.json          every number below
  eval_report.md     the same, readable, with the per-class m-IS table
  eval_nearest_neighbours.png   samples (left) beside their nearest training images (right)
  eval_mixture_tsne.png         DeLiGAN: t-SNE of the N means, each with the image it generates
  eval_samples.png              toy: generated points beside the training points

Image scores are computed with the project's own classifier (see
:mod:`deligan_jax.scores.classifier`) and labelled as such.
"""

from __future__ import annotations

import functools
import json
import math
import os

import ml_collections
import numpy as np

from absl import logging

from deligan_jax import models
from deligan_jax import sampling
from deligan_jax.data import datasets, points
from deligan_jax.errors import DataError
from deligan_jax.runs import atomic_files
from deligan_jax.runs import checkpoints
from deligan_jax.runs import metrics_log as run_log
from deligan_jax.runs import plots
from deligan_jax.scores import classifier as classifier_lib
from deligan_jax.scores import metrics
from deligan_jax.scores import paper_protocol as paper_scores
from deligan_jax.scores import within_class

REPORT = "eval_report.md"
RESULTS = "eval.json"
NOISE_NAMES = {"normal": "N(0, 1)", "uniform": "U(-1, 1)"}


def memorisation(samples: np.ndarray, train: np.ndarray, test: np.ndarray | None) -> dict:
  """How close samples come to the training set, against how close real test images come.

  A model that copies its training images gives samples much nearer to them
  than unseen real images are; ``fraction_closer_than_test_p1`` counts samples
  nearer than 99% of test images. Test images that are in the training set
  (the sketch GANs train on every sketch) are no such reference and are left
  out; when none is left (or ``test`` is None: no test images), the test figures are NaN.
  """
  sample_d, sample_index = metrics.nearest_reference(samples, train)
  test_d = np.zeros(0) if test is None else metrics.nearest_reference(test, train)[0]
  # Distinct 8-bit images differ by at least one level (2/255) somewhere; below
  # that, a distance is the rounding of the distance formula on a copy.
  unseen = test_d[test_d > 1e-3]
  test_stats = ((float(np.median(unseen)), float(np.mean(unseen)),
                 float(np.percentile(unseen, 1))) if len(unseen) else (math.nan,) * 3)
  return {
      "sample_to_train_median": float(np.median(sample_d)),
      "sample_to_train_mean": float(np.mean(sample_d)),
      "test_to_train_median": test_stats[0],
      "test_to_train_mean": test_stats[1],
      "test_to_train_p1": test_stats[2],
      "fraction_closer_than_test_p1": (float(np.mean(sample_d < test_stats[2])) if len(unseen)
                                       else math.nan),
      "num_unseen_test_images": len(unseen),
      "nearest_train_index": sample_index,
  }


@functools.lru_cache(maxsize=4)
def _reference(data_config: ml_collections.FrozenConfigDict, cache, classifier_steps):
  """The classifier and its view of the real test set (None, None, None without test images).

  Computed once per process: a comparison evaluates many runs against the same test set.
  """
  classifier = classifier_lib.train_classifier(data_config, cache, classifier_steps)
  try:
    test = datasets.load_test(data_config)
  except DataError as error:
    logging.debug("why the test images are missing: %s", error)
    return classifier, None, None, None
  return (classifier, test, *classifier.predict(test.x))


# Training steps of the evaluation classifier unless asked otherwise (MNIST: 99.3 % on test).
CLASSIFIER_STEPS = 2000

# The scores that compare with the real test images; without them they are NaN.
NEEDS_TEST_IMAGES = ("FID", "KID", "precision and recall", "the real test images' IS and m-IS",
                     "the diversity within a class (a ratio to the real test images')",
                     "the memorisation check's reference (test images' distances)")


def image_scores(samples: np.ndarray, data_config, cache: str | None = None,
                 classifier_steps: int = CLASSIFIER_STEPS) -> dict:
  """Classifier-based scores of image samples in [-1, 1] against the real test set.

  The classifier and the test set are those of ``data_config``'s dataset.
  """
  classifier, test, test_probs, test_features = _reference(
      ml_collections.FrozenConfigDict(data_config), cache, classifier_steps)
  probs, features = classifier.predict(samples)
  is_mean, is_std = metrics.inception_score(probs)
  mis_mean, mis_std, per_class = metrics.modified_inception_score(probs)
  classes = probs.shape[1]
  shares = np.bincount(np.argmax(probs, axis=1), minlength=classes) / len(probs)
  scores = {
      "score_kind": classifier_lib.SCORE_LABEL,
      "classifier_test_accuracy": classifier.test_accuracy,
      "class_names": list(classifier.class_names),
      "inception_score": [is_mean, is_std],
      "modified_inception_score": [mis_mean, mis_std],
      "m_is_per_class": per_class,
      "predicted_class_shares": shares.tolist(),
      # A class counts as covered when it holds at least a tenth of its uniform share.
      "classes_covered": int(np.sum(shares >= 0.1 / classes)),
  }
  if test_features is None:
    for score in NEEDS_TEST_IMAGES:
      logging.warning("skipped %s: the real test images are missing", score)
    return {**scores, "fid": math.nan, "kid": [math.nan] * 2, "precision": math.nan,
            "recall": math.nan, "real_test_inception_score": [math.nan] * 2,
            "real_test_modified_inception_score": [math.nan] * 2,
            "skipped_without_test_images": list(NEEDS_TEST_IMAGES)}
  kid_mean, kid_std = metrics.kernel_inception_distance(features, test_features)
  precision, recall = metrics.precision_recall(test_features, features)
  real_is = metrics.inception_score(test_probs)
  real_mis = metrics.modified_inception_score(test_probs)
  return {
      **scores,
      "fid": metrics.frechet_distance(features, test_features),
      "kid": [kid_mean, kid_std],
      "precision": precision,
      "recall": recall,
      "real_test_inception_score": list(real_is),
      "real_test_modified_inception_score": list(real_mis[:2]),
      "within_class": within_class.within_class_diversity(
          samples, probs, features, test.x, test_probs, test_features),
  }


def _image_outputs(config, model, state, samples, train_x, cache, classifier_steps,
                   out_dir, paper_protocol) -> dict:
  """Scores, the memorisation check and their pictures for an image run."""
  results = image_scores(samples, config.data, cache, classifier_steps)
  if paper_protocol:
    results["paper_protocol"] = paper_scores.image_scores(samples, config.data, cache)
  _, test, _, _ = _reference(ml_collections.FrozenConfigDict(config.data), cache,
                             classifier_steps)
  copies = memorisation(samples, train_x, None if test is None else test.x)
  nearest = copies.pop("nearest_train_index")
  plots.save_side_by_side(samples[:49], train_x[nearest[:49]],
                          os.path.join(out_dir, "eval_nearest_neighbours.png"),
                          ("samples", "nearest training image"))
  if model.has_mixture:
    _mixture_tsne(model, state, os.path.join(out_dir, "eval_mixture_tsne.png"))
  if test is None:
    logging.warning("skipped the diversity figures: they compare with the real test images, "
                    "which are missing")
    return {**results, "memorisation": copies}
  spread = diversity(model, state, samples, test, out_dir,
                     batch_norm=config.sample_batch_norm, batch_size=config.batch_size)
  return {**results, "memorisation": copies, "diversity": spread}


def diversity(model, state, samples: np.ndarray, test, out_dir: str,
              draws_per_component: int = 100, seed: int = 0, batch_norm: str = "running",
              batch_size: int = 100) -> dict:
  """How many different images a model draws, beside the same figures for real test images.

  * ``distinct``: samples left when pairs closer (pixel L2) than a threshold count
    as one (:func:`metrics.distinct_count`). The threshold is the 1st percentile
    of the nearest-neighbour distances among as many real test images, so 1% of
    real images have a neighbour that close: nearer than that, two images are
    near-copies of each other rather than two different digits.
  * ``spread``: mean pairwise pixel distance of ``draws_per_component`` draws:
    of the model overall; of each single component (DeLiGAN, MoE, Ensemble),
    where a collapsed sigma gives 0; of real test images overall and within
    each class (the real counterpart of a component).

  Writes ``eval_components.png`` for component models: rows of draws, one row
  per component for the first 10 components. Components are drawn with G's batch
  norm as the run scores (``batch_norm``, ``batch_size``: :func:`sampling.draw_components`).
  """
  flat = lambda x: np.asarray(x, np.float64).reshape(len(x), -1)
  n = min(len(samples), len(test.x))
  real = test.x[np.random.default_rng(seed).permutation(len(test.x))[:n]]
  threshold = float(np.percentile(metrics.nearest_neighbour_distances(flat(real)), 1))
  k = draws_per_component
  per_class = [metrics.mean_pairwise_distance(flat(test.x[test.labels == c][:k]))
               for c in np.unique(test.labels) if np.sum(test.labels == c) > 1]
  out = {"threshold": threshold, "num_compared": n,
         "distinct_samples": metrics.distinct_count(flat(samples[:n]), threshold),
         "distinct_real": metrics.distinct_count(flat(real), threshold),
         "spread_samples": metrics.mean_pairwise_distance(flat(samples[:k])),
         "spread_real": metrics.mean_pairwise_distance(flat(real[:k])),
         "spread_real_within_class": float(np.mean(per_class))}
  if model.has_components:
    draws = sampling.draw_components(model, state, k, seed, batch_norm, batch_size)
    within = [metrics.mean_pairwise_distance(flat(d)) for d in draws]
    out.update(spread_within_component=float(np.mean(within)),
               spread_within_component_min=float(np.min(within)),
               spread_within_component_max=float(np.max(within)))
    rows = min(10, len(draws))
    plots.save_image_grid(np.concatenate([d[:10] for d in draws[:rows]]),
                          os.path.join(out_dir, "eval_components.png"), columns=10)
  return out


def _mixture_tsne(model, state, path: str) -> None:
  """Each mixture mean's image, placed at the mean's t-SNE embedding (docs/paper.md §3)."""
  from sklearn.manifold import TSNE  # only evaluation needs scikit-learn

  mu = np.asarray(state.params["mixture"]["mu"])
  at_means = {**state.params, "mixture": {"mu": state.params["mixture"]["mu"],
                                          "sigma": np.zeros_like(mu)}}
  images = sampling.draw(model, state.replace(params=at_means), len(mu), seed=0)
  perplexity = min(10.0, (len(mu) - 1) / 3)
  embedding = TSNE(2, perplexity=perplexity, init="pca", random_state=0).fit_transform(mu)
  plots.save_image_scatter(embedding, np.asarray(images), path,
                           f"t-SNE of the {len(mu)} mixture means and their images")


def _toy_scores(config, samples, train_x, out_dir) -> dict:
  plots.save_toy_scatter(samples, train_x, os.path.join(out_dir, "eval_samples.png"),
                         f"{config.model}: {len(samples)} samples")
  kind = config.data.name.removeprefix("toy_")
  if kind not in points.TOY_MODES:
    return {}
  centres, std = points.TOY_MODES[kind]
  return {"modes": metrics.toy_mode_stats(samples, centres, std)}


def evaluate(workdir: str, num_samples: int | None = None, cache: str | None = None,
             seed: int = 0, classifier_steps: int = CLASSIFIER_STEPS, paper_protocol: bool = True,
             step: int | None = None, sigma_scale: float = 1.0) -> dict:
  """Scores the latest checkpoint of ``workdir``; writes eval.json and eval_report.md there.

  ``paper_protocol``: CIFAR-10 and sketch runs are also scored as the paper
  does (:mod:`deligan_jax.scores.paper_protocol`), on the official count
  (:func:`default_sample_count`) unless ``num_samples``.
  ``step``: score that checkpoint instead; its outputs go to
  :func:`step_dir` so that the run's own eval.json stays the latest one's.
  ``sigma_scale``: DeLiGAN drawn with its sigma times this
  (:func:`sampling.with_sigma_scale`); unless 1, the outputs go to a folder of their own
  (:func:`output_dir`), and eval.json records the scale.
  """
  config, model, state = checkpoints.load_run(workdir, step)
  state = sampling.with_sigma_scale(model, state, sigma_scale)
  out_dir = output_dir(workdir, step, sigma_scale)
  os.makedirs(out_dir, exist_ok=True)
  image_data = config.network.name != "toy"
  paper_protocol = paper_protocol and config.data.name in paper_scores.DATASETS
  num_samples = num_samples or default_sample_count(config, paper_protocol)
  sampler = models.for_sampling(model, config)
  samples = sampling.draw_as_scored(model, config, state, num_samples, seed)
  train_x = datasets.load(config.data).x
  results = {"workdir": workdir, "model": config.model, "dataset": config.data.name,
             "step": int(state.step), "num_samples": num_samples, "sample_seed": seed,
             "sample_noise": sampler.noise, "sigma_scale": sigma_scale}
  if image_data:
    results["classifier_steps"] = classifier_steps
    results.update(_image_outputs(config, sampler, state, samples, train_x, cache,
                                  classifier_steps, out_dir, paper_protocol))
  else:
    results.update(_toy_scores(config, samples, train_x, out_dir))
  # Whole or not at all: trajectory and compare read them back instead of scoring again.
  atomic_files.write_atomic(os.path.join(out_dir, RESULTS),
                            json.dumps(run_log.json_safe(results), indent=2))
  atomic_files.write_atomic(os.path.join(out_dir, REPORT), report(results))
  return results


def default_sample_count(config, paper_protocol: bool) -> int:
  """How many samples :func:`evaluate` scores when not told: the official counts.

  ``paper_protocol``: whether this run is also scored by the paper's protocol, on the
  official sampling loops' counts: ``dg_cifar.py`` draws 50 batches of 100 (5000, though
  its file is named ``samples50k.npy``), ``dg_sketches.py`` 500 batches of 100 (50000).
  """
  if paper_protocol:
    return PAPER_SAMPLE_COUNTS[config.data.name]
  return 5000 if config.network.name != "toy" else 2000


PAPER_SAMPLE_COUNTS = {"cifar10": 5000, "sketches": 50000}


def step_dir(workdir: str, step: int) -> str:
  """Where the evaluation of one earlier checkpoint of a run goes."""
  return os.path.join(workdir, "eval_steps", f"{step:07d}")


def output_dir(workdir: str, step: int | None = None, sigma_scale: float = 1.0) -> str:
  """Where :func:`evaluate` writes: the run, :func:`step_dir`, and a folder per sigma scale."""
  out = workdir if step is None else step_dir(workdir, step)
  return out if sigma_scale == 1 else os.path.join(out, f"sigma_scale_{sigma_scale:g}")


def diversity_lines(spread: dict) -> list[str]:
  """The report's section on how many different images the samples hold."""
  lines = ["", "## Diversity (pixel L2 distances, images in [-1, 1])", "",
           "| | samples | real test images |", "| --- | --- | --- |",
           f"| distinct of {spread['num_compared']} (pairs closer than "
           f"{spread['threshold']:.3f} count as one) | {spread['distinct_samples']} | "
           f"{spread['distinct_real']} |",
           f"| mean pairwise distance, 100 draws | {spread['spread_samples']:.3f} | "
           f"{spread['spread_real']:.3f} |"]
  if "spread_within_component" in spread:
    lines.append("| mean pairwise distance within one component (real: one class), 100 draws "
                 f"each | {spread['spread_within_component']:.3f} (min "
                 f"{spread['spread_within_component_min']:.3f}, max "
                 f"{spread['spread_within_component_max']:.3f}) | "
                 f"{spread['spread_real_within_class']:.3f} |")
  lines += ["", "The threshold is the 1st percentile of the nearest-neighbour distances among "
            "as many real test images."]
  return lines


def report(results: dict) -> str:
  """A readable markdown report of :func:`evaluate`'s results."""
  lines = [f"# Evaluation of {results['workdir']}", "",
           f"Model `{results['model']}` at batch {results['step']}, "
           f"{results['num_samples']} samples of eps ~ "
           f"{NOISE_NAMES[results.get('sample_noise', 'normal')]}"
           + (f", the mixture's sigma times {results['sigma_scale']:g}."
              if results.get("sigma_scale", 1) != 1 else "."), ""]
  if "modes" in results:
    modes = results["modes"]
    lines += ["| metric | value |", "| --- | --- |"]
    lines += [f"| {key} | {value} |" for key, value in modes.items()]
    return "\n".join(lines) + "\n"
  if "fid" not in results:
    return "\n".join(lines) + "\n"
  lines += [f"Scores are {results['score_kind']}; classifier test accuracy "
            f"{results['classifier_test_accuracy']:.4f}.", "",
            *([f"Skipped, the real test images being missing (NaN below): "
               f"{'; '.join(results['skipped_without_test_images'])}.", ""]
              if "skipped_without_test_images" in results else []),
            "| score | samples | real test images |", "| --- | --- | --- |",
            "| IS | {:.3f} ± {:.3f} | {:.3f} ± {:.3f} |".format(
                *results["inception_score"], *results["real_test_inception_score"]),
            "| m-IS | {:.3f} ± {:.3f} | {:.3f} ± {:.3f} |".format(
                *results["modified_inception_score"],
                *results["real_test_modified_inception_score"]),
            f"| FID (vs test set) | {results['fid']:.3f} | 0 |",
            "| KID (vs test set) | {:.4f} ± {:.4f} | 0 |".format(*results["kid"]),
            f"| precision (k=3) | {results['precision']:.3f} | |",
            f"| classes covered (predicted for >= 1/10 of their uniform share) | "
            f"{results['classes_covered']} of {len(results['class_names'])} | |",
            f"| recall (k=3) | {results['recall']:.3f} | |", "",
            *(paper_scores.report_lines(results["paper_protocol"])
              if "paper_protocol" in results else []),
            "## m-IS per predicted class (classifier-based)", "",
            *([note, ""] if (note := metrics.m_is_edge_note(results["m_is_per_class"])) else []),
            "| class | samples | m-IS |", "| --- | --- | --- |"]
  for label, entry in results["m_is_per_class"].items():
    score = (f"{entry['score']:.3f}" if entry["score"] is not None else
             "left out (official: 1)" if entry["count"] == 1 else "left out (official: NaN)")
    lines.append(f"| {results['class_names'][int(label)]} | {entry['count']} | {score} |")
  if "within_class" in results:
    lines += within_class.report_lines(results["within_class"], results["class_names"])
  copies = results["memorisation"]
  lines += diversity_lines(results["diversity"]) if "diversity" in results else []
  lines += ["", "## Memorisation check (pixel L2 distance to the nearest training image)", "",
            "| | median | mean |", "| --- | --- | --- |",
            f"| samples | {copies['sample_to_train_median']:.3f} | "
            f"{copies['sample_to_train_mean']:.3f} |",
            f"| real test images not trained on ({copies['num_unseen_test_images']}) | "
            f"{copies['test_to_train_median']:.3f} | {copies['test_to_train_mean']:.3f} |", "",
            (f"Samples nearer to a training image than 99% of test images are: "
             f"{100 * copies['fraction_closer_than_test_p1']:.2f}%. "
             if copies["num_unseen_test_images"] else
             "Without the real test images there is no reference here. "
             if "skipped_without_test_images" in results else
             "Every test image is in the training set, so unseen real images give no "
             "reference here. ") + "Pictures: "
            "eval_nearest_neighbours.png" + (", eval_mixture_tsne.png" if results["model"] ==
                                             "deligan" else "") + "."]
  return "\n".join(lines) + "\n"

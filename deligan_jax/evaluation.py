"""Evaluation of a trained run: scores, memorisation check, and the pictures behind them.

Writes into the run's workdir:

  eval.json          every number below
  eval_report.md     the same, readable, with the per-class m-IS table
  eval_nearest_neighbours.png   samples (left) beside their nearest training images (right)
  eval_mixture_tsne.png         DeLiGAN: t-SNE of the N means, each with the image it generates
  eval_samples.png              toy: generated points beside the training points

Image scores are computed with the project's own classifier (see
:mod:`deligan_jax.classifier`) and labelled as such.
"""

from __future__ import annotations

import functools
import json
import math
import os

import jax
import ml_collections
import numpy as np

from deligan_jax import checkpoints
from deligan_jax import classifier as classifier_lib
from deligan_jax.data import datasets, points
from deligan_jax import metrics
from deligan_jax import paper_scores
from deligan_jax import plots
from deligan_jax import run_log

REPORT = "eval_report.md"
RESULTS = "eval.json"


def generate_samples(model, state, num: int, seed: int = 0, batch_norm: str = "running",
                     batch_size: int = 100) -> np.ndarray:
  """``num`` samples.

  ``batch_norm='running'``: G's batch norm on its running averages, in one call.
  ``'batch'`` (the official CIFAR-10 and sketch ``samplefun``): batches of ``batch_size``
  generated in training mode, each normalised by its own statistics (with the 'batch'
  assignment, one row per mixture component); the running averages are left as they are.
  """
  key = jax.random.key(seed)
  if batch_norm == "running":
    samples, _ = model.generate(state.params, state.batch_stats, key, num, train=False)
    return np.asarray(samples)
  draw = jax.jit(lambda params, stats, batch_key: model.generate(
      params, stats, batch_key, batch_size, train=True)[0])
  batches = [np.asarray(draw(state.params, state.batch_stats, jax.random.fold_in(key, i)))
             for i in range(-(-num // batch_size))]
  return np.concatenate(batches)[:num]


def nearest_neighbour_distances(queries: np.ndarray, references: np.ndarray,
                                chunk: int = 500) -> tuple[np.ndarray, np.ndarray]:
  """Euclidean (pixel) distance from each query to its nearest reference, and that index."""
  q = queries.reshape(len(queries), -1).astype(np.float64)
  r = references.reshape(len(references), -1).astype(np.float64)
  r_sq = np.sum(r * r, axis=1)
  distances, indices = [], []
  for start in range(0, len(q), chunk):
    block = q[start:start + chunk]
    sq = np.sum(block * block, axis=1)[:, None] + r_sq[None, :] - 2 * block @ r.T
    nearest = np.argmin(sq, axis=1)
    indices.append(nearest)
    distances.append(np.sqrt(np.maximum(sq[np.arange(len(block)), nearest], 0.0)))
  return np.concatenate(distances), np.concatenate(indices)


def memorisation(samples: np.ndarray, train: np.ndarray, test: np.ndarray) -> dict:
  """How close samples come to the training set, against how close real test images come.

  A model that copies its training images gives samples much nearer to them
  than unseen real images are; ``fraction_closer_than_test_p1`` counts samples
  nearer than 99% of test images. Test images that are in the training set
  (the sketch GANs train on every sketch) are no such reference and are left
  out; when none is left, the test figures are NaN.
  """
  sample_d, sample_index = nearest_neighbour_distances(samples, train)
  test_d, _ = nearest_neighbour_distances(test, train)
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
  """The classifier and its view of the real test set.

  Computed once per process: a comparison evaluates many runs against the same test set.
  """
  classifier = classifier_lib.train_classifier(data_config, cache, classifier_steps)
  test_x = datasets.load_test(data_config).x
  return (classifier, test_x, *classifier.predict(test_x))


def image_scores(samples: np.ndarray, data_config, cache: str | None = None,
                 classifier_steps: int = 2000) -> dict:
  """Classifier-based scores of image samples in [-1, 1] against the real test set.

  The classifier and the test set are those of ``data_config``'s dataset.
  """
  classifier, _, test_probs, test_features = _reference(
      ml_collections.FrozenConfigDict(data_config), cache, classifier_steps)
  probs, features = classifier.predict(samples)
  is_mean, is_std = metrics.inception_score(probs)
  mis_mean, mis_std, per_class = metrics.modified_inception_score(probs)
  kid_mean, kid_std = metrics.kernel_inception_distance(features, test_features)
  precision, recall = metrics.precision_recall(test_features, features)
  real_is = metrics.inception_score(test_probs)
  real_mis = metrics.modified_inception_score(test_probs)
  return {
      "score_kind": classifier_lib.SCORE_LABEL,
      "classifier_test_accuracy": classifier.test_accuracy,
      "class_names": list(classifier.class_names),
      "inception_score": [is_mean, is_std],
      "modified_inception_score": [mis_mean, mis_std],
      "m_is_per_class": per_class,
      "fid": metrics.frechet_distance(features, test_features),
      "kid": [kid_mean, kid_std],
      "precision": precision,
      "recall": recall,
      "real_test_inception_score": list(real_is),
      "real_test_modified_inception_score": list(real_mis[:2]),
  }


def _image_outputs(config, model, state, samples, train_x, cache, classifier_steps,
                   out_dir, paper_protocol) -> dict:
  """Scores, the memorisation check and their pictures for an image run."""
  results = image_scores(samples, config.data, cache, classifier_steps)
  if paper_protocol:
    results["paper_protocol"] = paper_scores.image_scores(samples, config.data, cache)
  _, test_x, _, _ = _reference(ml_collections.FrozenConfigDict(config.data), cache,
                               classifier_steps)
  copies = memorisation(samples, train_x, test_x)
  nearest = copies.pop("nearest_train_index")
  plots.save_side_by_side(samples[:49], train_x[nearest[:49]],
                          os.path.join(out_dir, "eval_nearest_neighbours.png"),
                          ("samples", "nearest training image"))
  if model.has_mixture:
    _mixture_tsne(model, state, os.path.join(out_dir, "eval_mixture_tsne.png"))
  return {**results, "memorisation": copies}


def _mixture_tsne(model, state, path: str) -> None:
  """Each mixture mean's image, placed at the mean's t-SNE embedding (spec §3)."""
  from sklearn.manifold import TSNE  # only evaluation needs scikit-learn

  mu = np.asarray(state.params["mixture"]["mu"])
  at_means = {**state.params, "mixture": {"mu": state.params["mixture"]["mu"],
                                          "sigma": 0.0 * state.params["mixture"]["sigma"]}}
  images, _ = model.generate(at_means, state.batch_stats, jax.random.key(0), len(mu),
                             train=False)
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
             seed: int = 0, classifier_steps: int = 2000, paper_protocol: bool = True) -> dict:
  """Scores the latest checkpoint of ``workdir``; writes eval.json and eval_report.md there.

  ``paper_protocol``: CIFAR-10 and sketch runs are also scored as the paper
  does (:mod:`deligan_jax.paper_scores`), on 50000 samples unless ``num_samples``.
  """
  config, model, state = checkpoints.load_run(workdir)
  image_data = config.network.name != "toy"
  paper_protocol = paper_protocol and config.data.name in paper_scores.DATASETS
  num_samples = num_samples or (50000 if paper_protocol else 5000 if image_data else 2000)
  samples = generate_samples(model, state, num_samples, seed, config.sample_batch_norm,
                             config.batch_size)
  train_x = datasets.load(config.data).x
  results = {"workdir": workdir, "model": config.model, "step": int(state.step),
             "num_samples": num_samples}
  if image_data:
    results.update(_image_outputs(config, model, state, samples, train_x, cache,
                                  classifier_steps, workdir, paper_protocol))
  else:
    results.update(_toy_scores(config, samples, train_x, workdir))
  with open(os.path.join(workdir, RESULTS), "w") as f:
    json.dump(run_log.json_safe(results), f, indent=2)
  with open(os.path.join(workdir, REPORT), "w") as f:
    f.write(report(results))
  return results


def report(results: dict) -> str:
  """A readable markdown report of :func:`evaluate`'s results."""
  lines = [f"# Evaluation of {results['workdir']}", "",
           f"Model `{results['model']}` at batch {results['step']}, "
           f"{results['num_samples']} samples.", ""]
  if "modes" in results:
    modes = results["modes"]
    lines += ["| metric | value |", "| --- | --- |"]
    lines += [f"| {key} | {value} |" for key, value in modes.items()]
    return "\n".join(lines) + "\n"
  if "fid" not in results:
    return "\n".join(lines) + "\n"
  lines += [f"Scores are {results['score_kind']}; classifier test accuracy "
            f"{results['classifier_test_accuracy']:.4f}.", "",
            "| score | samples | real test images |", "| --- | --- | --- |",
            "| IS | {:.3f} ± {:.3f} | {:.3f} ± {:.3f} |".format(
                *results["inception_score"], *results["real_test_inception_score"]),
            "| m-IS | {:.3f} ± {:.3f} | {:.3f} ± {:.3f} |".format(
                *results["modified_inception_score"],
                *results["real_test_modified_inception_score"]),
            f"| FID (vs test set) | {results['fid']:.3f} | 0 |",
            "| KID (vs test set) | {:.4f} ± {:.4f} | 0 |".format(*results["kid"]),
            f"| precision (k=3) | {results['precision']:.3f} | |",
            f"| recall (k=3) | {results['recall']:.3f} | |", "",
            *(paper_scores.report_lines(results["paper_protocol"])
              if "paper_protocol" in results else []),
            "## m-IS per predicted class (classifier-based)", "", "| class | samples | m-IS |", "| --- | --- | --- |"]
  for label, entry in results["m_is_per_class"].items():
    score = "too few samples" if entry["score"] is None else f"{entry['score']:.3f}"
    lines.append(f"| {results['class_names'][int(label)]} | {entry['count']} | {score} |")
  copies = results["memorisation"]
  lines += ["", "## Memorisation check (pixel L2 distance to the nearest training image)", "",
            "| | median | mean |", "| --- | --- | --- |",
            f"| samples | {copies['sample_to_train_median']:.3f} | "
            f"{copies['sample_to_train_mean']:.3f} |",
            f"| real test images not trained on ({copies['num_unseen_test_images']}) | "
            f"{copies['test_to_train_median']:.3f} | {copies['test_to_train_mean']:.3f} |", "",
            (f"Samples nearer to a training image than 99% of test images are: "
             f"{100 * copies['fraction_closer_than_test_p1']:.2f}%. "
             if copies["num_unseen_test_images"] else
             "Every test image is in the training set, so unseen real images give no "
             "reference here. ") + "Pictures: "
            "eval_nearest_neighbours.png" + (", eval_mixture_tsne.png" if results["model"] ==
                                             "deligan" else "") + "."]
  return "\n".join(lines) + "\n"

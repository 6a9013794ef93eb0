"""The paper's own image scores, on Inception-v3 pool3 features (CIFAR-10, sketches).

* m-IS, "paper protocol" (official ``src/modified_inception_scores/``): a new
  2048 -> classes softmax on pool3 features of the real training split,
  weights truncated-normal with std 0.001 and zero biases, plain SGD with
  learning rate 0.005 on the cross-entropy, batch 1, one epoch over a shuffled
  80% (``train_test_split(test_size=0.2, random_state=42)``, as the official
  code); samples are scored by :func:`metrics.modified_inception_score` of its
  probabilities. Trained once per training set and cached.
* FID and KID on the same features: samples against the real test split (the
  FID10k protocol of the limited-data GAN tables when the test split is
  CIFAR-10's 10000 images) and against the run's training images, beside the
  real-data rows (training images against the test split): the floor a
  generator of perfect copies would reach.

Real-image features come from :mod:`deligan_jax.scores.inception.store` (cached per
image); generated samples are scored afresh.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import hashlib
import io
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from deligan_jax.runs import cache
from deligan_jax.scores import inception
from deligan_jax.scores import metrics
from deligan_jax.data import dataset as dataset_lib
from deligan_jax.data import datasets
from deligan_jax.scores.inception import store

LABEL = ("paper protocol (Inception-v3 pool3 features of the FID 2015-12-05 graph; "
         "transfer softmax as the official code)")
DATASETS = ("cifar10", "sketches")
LEARNING_RATE = 0.005
INIT_STD = 0.001
VALIDATION_FRACTION = 0.2
SPLIT_RANDOM_STATE = 42


@dataclasses.dataclass(frozen=True)
class TransferSoftmax:
  """The transfer-learned softmax and its accuracies on real held-out images."""
  weights: np.ndarray
  bias: np.ndarray
  validation_accuracy: float
  test_accuracy: float

  def predict(self, features: np.ndarray) -> np.ndarray:
    logits = np.asarray(features, np.float64) @ self.weights + self.bias
    logits -= logits.max(axis=1, keepdims=True)
    probs = np.exp(logits)
    return probs / probs.sum(axis=1, keepdims=True)


@jax.jit
def _sgd_epoch(weights, bias, features, one_hot):
  """Batch-1 SGD on the softmax cross-entropy, one step per row, in row order."""
  def step(carry, row):
    w, b = carry
    x, y = row
    probs = jax.nn.softmax(x @ w + b)
    return (w - LEARNING_RATE * jnp.outer(x, probs - y), b - LEARNING_RATE * (probs - y)), None

  (weights, bias), _ = jax.lax.scan(step, (weights, bias), (features, one_hot))
  return weights, bias


def fit_transfer_softmax(features: np.ndarray, labels: np.ndarray, num_classes: int,
                         seed: int = 0) -> tuple[np.ndarray, np.ndarray, float]:
  """Weights, biases and validation accuracy of the official transfer softmax.

  The official code shuffles its 80% with an unseeded permutation; here
  ``seed`` fixes it.
  """
  from sklearn.model_selection import train_test_split  # only this protocol needs it

  x_train, x_val, y_train, y_val = train_test_split(
      features, labels, test_size=VALIDATION_FRACTION, random_state=SPLIT_RANDOM_STATE)
  init_key, shuffle_key = jax.random.split(jax.random.key(seed))
  weights = INIT_STD * jax.random.truncated_normal(init_key, -2, 2,
                                                   (features.shape[1], num_classes))
  order = np.asarray(jax.random.permutation(shuffle_key, len(x_train)))
  weights, bias = _sgd_epoch(weights, jnp.zeros(num_classes), jnp.asarray(x_train[order]),
                             jax.nn.one_hot(y_train[order], num_classes))
  weights, bias = np.asarray(weights, np.float64), np.asarray(bias, np.float64)
  accuracy = float(np.mean((x_val @ weights + bias).argmax(1) == y_val))
  return weights, bias, accuracy


@dataclasses.dataclass(frozen=True)
class Reference:
  """What samples of one dataset are scored against."""
  softmax: TransferSoftmax
  class_names: tuple[str, ...]
  test_features: np.ndarray
  train_features: np.ndarray  # the run's training images (CIFAR-10: its subset)


def _real_features(params, dataset: dataset_lib.Dataset, cache_dir) -> np.ndarray:
  return store.real_features(params, inception.to_uint8(dataset.x), cache_dir)


def _softmax(params, data_config, test_features, test_labels, cache_dir) -> TransferSoftmax:
  """The transfer softmax of ``data_config``'s training split: cached, or fitted and cached."""
  train = datasets.load_split(data_config, "train")
  digest = hashlib.sha1(store.image_keys(inception.to_uint8(train.x)).tobytes()
                        + train.labels.tobytes()).hexdigest()[:10]
  path = os.path.join(cache.folder(cache_dir), f"{train.name}_transfer_softmax_{digest}")
  if cache.has_entry(path, ".npz"):
    with np.load(path + ".npz") as stored:
      return TransferSoftmax(stored["weights"], stored["bias"], **cache.read_record(path))
  weights, bias, validation_accuracy = fit_transfer_softmax(
      _real_features(params, train, cache_dir), train.labels, len(train.class_names))
  softmax = TransferSoftmax(weights, bias, validation_accuracy, 0.0)
  softmax = dataclasses.replace(softmax, test_accuracy=float(
      np.mean(softmax.predict(test_features).argmax(1) == test_labels)))
  buffer = io.BytesIO()
  np.savez(buffer, weights=weights, bias=bias)
  cache.write_entry(path, ".npz", buffer.getvalue(), {
      "validation_accuracy": validation_accuracy, "test_accuracy": softmax.test_accuracy})
  return softmax


def reference(data_config: Any, cache_dir: str | None = None) -> Reference:
  """Inception weights (from the cache), real features and the transfer softmax of a dataset."""
  params = inception.load(cache_dir)
  test = datasets.load_test(data_config)
  test_features = _real_features(params, test, cache_dir)
  return Reference(_softmax(params, data_config, test_features, test.labels, cache_dir),
                   tuple(test.class_names), test_features,
                   _real_features(params, datasets.load(data_config), cache_dir))


def _distances(features: np.ndarray, ref: Reference) -> dict:
  return {
      "fid_vs_test": metrics.frechet_distance(features, ref.test_features),
      "fid_vs_train": metrics.frechet_distance(features, ref.train_features),
      "kid_vs_test": list(metrics.kernel_inception_distance(features, ref.test_features)),
      "kid_vs_train": list(metrics.kernel_inception_distance(features, ref.train_features)),
  }


def scores(features: np.ndarray, ref: Reference) -> dict:
  """Paper-protocol m-IS and Inception FID/KID of (n, 2048) sample features."""
  return {**scores_of_predictions(ref.softmax.predict(features)), **_distances(features, ref)}


def scores_of_predictions(probs: np.ndarray) -> dict:
  """m-IS of the transfer softmax's predictions, the official code's value as the headline.

  The official code averages over every class: one sample scores 1, an empty class NaN
  (and so the mean); beside it, the mean over the classes with 2 or more samples.
  """
  mis_mean, mis_std, per_class = metrics.modified_inception_score(probs)
  return {"modified_inception_score":
              list(metrics.modified_inception_score_official_edges(per_class)),
          "modified_inception_score_classes_of_2_or_more": [mis_mean, mis_std],
          "m_is_per_class": per_class}


def _subset(features: np.ndarray, n: int) -> np.ndarray:
  """``n`` rows drawn without replacement by a fixed seed (files may be stored by class)."""
  if n >= len(features):
    return features
  return features[np.sort(np.random.default_rng(0).choice(len(features), n, replace=False))]


def real_rows(ref: Reference, num_samples: int) -> dict:
  """The real-data rows: m-IS of the test images; the training images against the test split.

  FID is biased upwards at small sizes, so the floors are also computed at the samples' size:
  ``num_samples`` training images against the test split, and as many test images (held out,
  as samples are) against the training images. Only a floor of the same size is comparable
  with a sample score.
  """
  mis = scores_of_predictions(ref.softmax.predict(ref.test_features))
  train = _subset(ref.train_features, num_samples)
  test = _subset(ref.test_features, num_samples)
  return {"test_modified_inception_score": mis["modified_inception_score"],
          "test_modified_inception_score_classes_of_2_or_more":
              mis["modified_inception_score_classes_of_2_or_more"],
          "train_fid_vs_test": metrics.frechet_distance(ref.train_features, ref.test_features),
          "train_kid_vs_test": list(metrics.kernel_inception_distance(ref.train_features,
                                                                      ref.test_features)),
          "num_test": len(ref.test_features), "num_train": len(ref.train_features),
          "same_size": {
              "num_train": len(train), "num_test": len(test),
              "train_fid_vs_test": metrics.frechet_distance(train, ref.test_features),
              "test_fid_vs_train": metrics.frechet_distance(test, ref.train_features)}}


@functools.lru_cache(maxsize=4)
def _cached_reference(data_config, cache_dir):
  return reference(data_config, cache_dir)


@functools.lru_cache(maxsize=4)
def _cached_real_rows(data_config, cache_dir, num_samples: int) -> dict:
  # The same for every run of a dataset scored at one size (24 s for the sketches).
  return real_rows(_cached_reference(data_config, cache_dir), num_samples)


def image_scores(samples: np.ndarray, data_config, cache_dir: str | None = None) -> dict:
  """Everything the paper protocol reports for samples in [-1, 1] of a CIFAR-10/sketch run."""
  import ml_collections

  data_config = ml_collections.FrozenConfigDict(data_config)
  ref = _cached_reference(data_config, cache_dir)
  features = inception.features(inception.load(cache_dir), inception.samples_to_uint8(samples))
  return {"score_kind": LABEL, "class_names": list(ref.class_names),
          "softmax_validation_accuracy": ref.softmax.validation_accuracy,
          "softmax_test_accuracy": ref.softmax.test_accuracy,
          "num_samples": len(samples), **scores(features, ref),
          "real": copy.deepcopy(_cached_real_rows(data_config, cache_dir, len(samples)))}


def floors_line(results: dict) -> str:
  """One line: the real images' scores that :func:`image_scores`' results are read against."""
  real = results["real"]
  same = real["same_size"]
  return (f"Real images, paper protocol: m-IS of the {real['num_test']} test images "
          f"{real['test_modified_inception_score'][0]:.3f} ± "
          f"{real['test_modified_inception_score'][1]:.3f}; Inception FID of "
          f"{same['num_train']} training images vs the test images {same['train_fid_vs_test']:.3f}"
          f" (the floor at the samples' size; all {real['num_train']}: "
          f"{real['train_fid_vs_test']:.3f}); KID {real['train_kid_vs_test'][0]:.4f}.")


def report_lines(results: dict) -> list[str]:
  """The markdown section of an evaluation report for :func:`image_scores`' results."""
  real = results["real"]
  same = real["same_size"]
  lines = [f"## Scores, {results['score_kind']}", "",
           f"Transfer softmax accuracy: {results['softmax_validation_accuracy']:.4f} on its 20% "
           f"validation split, {results['softmax_test_accuracy']:.4f} on the test split. "
           f"{results['num_samples']} samples; {real['num_train']} training and "
           f"{real['num_test']} test images. FID is biased upwards at small sizes: its real "
           "rows use as many real images as there are samples.", "",
           "| score | samples | real images |", "| --- | --- | --- |",
           "| m-IS (paper protocol) | {:.3f} ± {:.3f} | {:.3f} ± {:.3f} (test images) |".format(
               *results["modified_inception_score"], *real["test_modified_inception_score"]),
           f"| FID vs test images | {results['fid_vs_test']:.3f} | "
           f"{same['train_fid_vs_test']:.3f} ({same['num_train']} training images; all "
           f"{real['num_train']}: {real['train_fid_vs_test']:.3f}) |",
           f"| FID vs training images | {results['fid_vs_train']:.3f} | "
           f"{same['test_fid_vs_train']:.3f} ({same['num_test']} test images) |",
           "| KID vs test images | {:.4f} ± {:.4f} | {:.4f} ± {:.4f} (training images) |".format(
               *results["kid_vs_test"], *real["train_kid_vs_test"]),
           "| KID vs training images | {:.4f} ± {:.4f} | 0 |".format(*results["kid_vs_train"]),
           "", "m-IS (paper protocol) per predicted class: " + ", ".join(
               f"{results['class_names'][int(label)]} "
               + ("-" if entry["score"] is None else f"{entry['score']:.3f}")
               + f" ({entry['count']})" for label, entry in results["m_is_per_class"].items()), ""]
  return lines + official_m_is_lines(results)


def official_m_is_lines(results: dict) -> list[str]:
  """What the headline m-IS (the official code's) does with classes of fewer than 2 samples."""
  per_class = results["m_is_per_class"].values()
  few = [entry["count"] for entry in per_class if entry["count"] < 2]
  if not few or "modified_inception_score_classes_of_2_or_more" not in results:
    return []
  kept = results["modified_inception_score_classes_of_2_or_more"]
  empty = few.count(0)
  return [f"m-IS above is the official code's: the mean over every predicted class, a class "
          f"with one sample scoring 1" + (f" and an empty class NaN, so with {empty} empty "
                                           "the mean is NaN" if empty else "")
          + f". Over the {len(per_class) - len(few)} classes with 2 or more samples it is "
          f"{kept[0]:.3f} ± {kept[1]:.3f}.", ""]

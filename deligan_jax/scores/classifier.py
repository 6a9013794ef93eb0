"""Evaluation classifiers, trained by the project on the real training data.

The paper scores samples with an Inception network. No pretrained weights can
be downloaded here, so scores come from a classifier trained on the dataset
itself: valid for comparing models under one classifier, and labelled
``classifier-based`` wherever they are reported (not comparable to published
Inception-based numbers). Its penultimate layer gives the features for FID,
KID and precision/recall.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
from typing import Any

from absl import logging
import flax.linen as nn
import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import optax
import tqdm

from deligan_jax.step import augment
from deligan_jax.models import conv
from deligan_jax.runs import cache
from deligan_jax.data import dataset as dataset_lib
from deligan_jax.data import datasets
from deligan_jax.data import mnist

SCORE_LABEL = "classifier-based (a CNN trained on the real data, not Inception)"


class CnnClassifier(nn.Module):
  """A small CNN: two conv blocks, a 128-unit feature layer, ``num_classes`` logits.

  One family for every image dataset: the input shape only changes the size
  of the feature layer's weights.
  """
  num_classes: int = 10
  conv_impl: str = "xla"

  @nn.compact
  def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    for features in (32, 64):
      x = nn.relu(conv.Conv(features, (3, 3), impl=self.conv_impl)(x))
      x = nn.relu(conv.Conv(features, (3, 3), impl=self.conv_impl)(x))
      x = nn.max_pool(x, (2, 2), (2, 2))
    features = nn.relu(nn.Dense(128)(x.reshape(x.shape[0], -1)))
    return nn.Dense(self.num_classes)(features), features


# Random shifts (by up to this fraction of the side; black enters) and
# left-right flips of the training images: they stretch the few thousand
# CIFAR-10 and sketch images. MNIST has plenty of images, and flipped digits
# are not digits.
AUGMENT_SHIFT = {"mnist": 0.0, "cifar10": 1 / 8, "sketches": 1 / 16}


@dataclasses.dataclass(frozen=True)
class Classifier:
  """A trained classifier: its parameters and its accuracy on the real test set."""
  params: Any
  test_accuracy: float
  class_names: tuple[str, ...]
  name: str

  def predict(self, images: np.ndarray, batch_size: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """Class probabilities (n, classes) and penultimate features (n, 128) of images in [-1, 1]."""
    probs, features = [], []
    for start in range(0, len(images), batch_size):
      p, f = _predict(self.params, jnp.asarray(images[start:start + batch_size], jnp.float32),
                      len(self.class_names))
      probs.append(np.asarray(p))
      features.append(np.asarray(f))
    return np.concatenate(probs), np.concatenate(features)


@functools.partial(jax.jit, static_argnums=2)
def _predict(params, images, num_classes):
  logits, features = CnnClassifier(num_classes).apply({"params": params}, images)
  return jax.nn.softmax(logits), features


# The MNIST classifier shipped with the package (how it was made: CLASSIFIERS.md beside it),
# for evaluation where the MNIST training images are missing.
SHIPPED_MNIST = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                             "data", "mnist_cnn_steps300_seed0")


def train_classifier(data_config: Any, cache_dir: str | None = None, steps: int = 2000,
                     batch_size: int = 128, seed: int = 0) -> Classifier:
  """The classifier of an image dataset: loaded from the cache, or trained and cached.

  Trains on the whole training split of ``data_config``'s dataset (see
  :func:`datasets.load_split`) and reports its accuracy on the test
  split (stored with the weights). Without the MNIST training images, a cached
  MNIST classifier of ``steps`` and ``seed`` is used, else the shipped one.
  """
  try:
    train = datasets.load_split(data_config, "train")
  except dataset_lib.DataError as error:
    if dataset_lib.config_field(data_config, "name") != "mnist":
      raise
    return _mnist_without_training_images(cache_dir, steps, seed, error)
  path = os.path.join(cache.folder(cache_dir),
                      f"{train.name}{_data_tag(train)}_cnn_steps{steps}_seed{seed}")
  if cache.has_entry(path, ".msgpack"):
    return _load(path, train.x.shape[1:], train.class_names, train.name, seed)

  model = CnnClassifier(len(train.class_names))
  template = model.init(jax.random.key(seed), jnp.zeros((1, *train.x.shape[1:])))["params"]
  params = _fit(model, template, train, steps, batch_size, seed)
  test = datasets.load_split(data_config, "test")
  classifier = Classifier(params, 0.0, train.class_names, f"{train.name}-cnn")
  predictions = classifier.predict(test.x)[0].argmax(-1)
  classifier = dataclasses.replace(classifier,
                                   test_accuracy=float(np.mean(predictions == test.labels)))
  cache.write_entry(path, ".msgpack", flax.serialization.to_bytes(params), {
      "test_accuracy": classifier.test_accuracy, "steps": steps, "seed": seed,
      "num_train": len(train.x), "num_test": len(test.x),
      "class_names": train.class_names})
  return classifier


def _mnist_without_training_images(cache_dir: str | None, steps: int, seed: int,
                                   error: Exception) -> Classifier:
  """The cached MNIST classifier of ``steps`` and ``seed``, else the shipped one (said in a line).

  MNIST's training split is always the same 60000 images, so a cached
  classifier is found without reading them.
  """
  cached = os.path.join(cache.folder(cache_dir), f"mnist_cnn_steps{steps}_seed{seed}")
  if cache.has_entry(cached, ".msgpack"):
    return _load(cached, (28, 28, 1), mnist.MNIST_CLASSES, "mnist", seed)
  shipped = shipped_mnist()
  logging.warning("the MNIST training images are missing, so the scores use the classifier "
                  "shipped with the package (%s, test accuracy %.4f) rather than one of %d "
                  "steps trained here", os.path.basename(SHIPPED_MNIST),
                  shipped.test_accuracy, steps)
  logging.debug("why the training images are missing: %s", error)
  return shipped


def shipped_mnist() -> Classifier:
  """The MNIST classifier shipped with the package, with its recorded test accuracy."""
  return _load(SHIPPED_MNIST, (28, 28, 1), mnist.MNIST_CLASSES, "mnist", 0)


def _load(path: str, image_shape, class_names, dataset: str, seed: int) -> Classifier:
  """A stored classifier: weights ``path.msgpack``, test accuracy in ``path.json``."""
  model = CnnClassifier(len(class_names))
  template = model.init(jax.random.key(seed), jnp.zeros((1, *image_shape)))["params"]
  with open(path + ".msgpack", "rb") as f:
    params = flax.serialization.from_bytes(template, f.read())
  return Classifier(params, cache.read_record(path)["test_accuracy"], tuple(class_names),
                    f"{dataset}-cnn")


def _data_tag(train: dataset_lib.Dataset) -> str:
  """What tells apart the training sets a dataset can have, for the cache file's name.

  MNIST's training split is always the same 60000 images (and older caches
  stay valid); CIFAR-10's depends on the batches present, the sketches' on
  the chosen categories.
  """
  if train.name == "mnist":
    return ""
  digest = hashlib.sha1(json.dumps(train.class_names).encode()).hexdigest()[:8]
  return f"_{len(train.class_names)}classes-{digest}_n{len(train.x)}"


def _fit(model, params, train, steps, batch_size, seed):
  optimizer = optax.adam(1e-3)
  shift = AUGMENT_SHIFT[train.name]

  @jax.jit
  def step(params, opt_state, x, y, key):
    if shift:
      x = _shift_and_flip(key, x, shift)

    def loss_fn(p):
      logits, _ = model.apply({"params": p}, x)
      return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
    grads = jax.grad(loss_fn)(params)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

  opt_state = optimizer.init(params)
  rng = np.random.default_rng(seed)
  key = jax.random.key(seed)
  order = np.empty(0, np.int64)
  for i in tqdm.trange(steps, desc=f"evaluation classifier ({train.name})", leave=False):
    if len(order) < batch_size:
      order = np.concatenate([order, rng.permutation(len(train.x))])
    batch, order = order[:batch_size], order[batch_size:]
    params, opt_state = step(params, opt_state, train.x[batch], train.labels[batch],
                             jax.random.fold_in(key, i))
  return params


def _shift_and_flip(key: jax.Array, images: jax.Array, shift: float) -> jax.Array:
  """Each image moved by up to ``shift`` of its side (black enters), flipped with p = 1/2."""
  shift_key, flip_key = jax.random.split(key)
  moved = augment.translation(shift_key, images, shift, fill=-1.0)
  flip = jax.random.bernoulli(flip_key, 0.5, (len(images), 1, 1, 1))
  return jnp.where(flip, moved[:, :, ::-1], moved)


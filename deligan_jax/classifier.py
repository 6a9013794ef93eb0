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
import json
import os
from typing import Any

import flax.linen as nn
import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import optax

from deligan_jax import conv
from deligan_jax import input_pipeline

CACHE_ENV = "DELIGAN_CACHE_DIR"
SCORE_LABEL = "classifier-based (a CNN trained on the real data, not Inception)"


class MnistClassifier(nn.Module):
  """A small CNN: two conv blocks, a 128-unit feature layer, 10 logits."""
  conv_impl: str = "xla"

  @nn.compact
  def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    for features in (32, 64):
      x = nn.relu(conv.Conv(features, (3, 3), impl=self.conv_impl)(x))
      x = nn.relu(conv.Conv(features, (3, 3), impl=self.conv_impl)(x))
      x = nn.max_pool(x, (2, 2), (2, 2))
    features = nn.relu(nn.Dense(128)(x.reshape(x.shape[0], -1)))
    return nn.Dense(10)(features), features


@dataclasses.dataclass(frozen=True)
class Classifier:
  """A trained classifier: its parameters and its accuracy on the real test set."""
  params: Any
  test_accuracy: float
  name: str = "mnist-cnn"

  def predict(self, images: np.ndarray, batch_size: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """Class probabilities (n, 10) and penultimate features (n, 128) of images in [-1, 1]."""
    probs, features = [], []
    for start in range(0, len(images), batch_size):
      p, f = _predict(self.params, jnp.asarray(images[start:start + batch_size], jnp.float32))
      probs.append(np.asarray(p))
      features.append(np.asarray(f))
    return np.concatenate(probs), np.concatenate(features)


@jax.jit
def _predict(params, images):
  logits, features = MnistClassifier().apply({"params": params}, images)
  return jax.nn.softmax(logits), features


def cache_dir(configured: str | None = None) -> str:
  """Where trained classifiers are kept: the argument, ``$DELIGAN_CACHE_DIR``, or ~/.cache."""
  return (configured or os.environ.get(CACHE_ENV)
          or os.path.join(os.path.expanduser("~"), ".cache", "deligan_jax"))


def train_classifier(data_dir: str | None = None, cache: str | None = None, steps: int = 2000,
                     batch_size: int = 128, seed: int = 0, source: str = "auto") -> Classifier:
  """The MNIST classifier: loaded from the cache, or trained on all 60000 images and cached.

  Reports its accuracy on the 10000 test images (stored with the weights).
  """
  path = os.path.join(cache_dir(cache), f"mnist_cnn_steps{steps}_seed{seed}")
  model = MnistClassifier()
  template = model.init(jax.random.key(seed), jnp.zeros((1, 28, 28, 1)))["params"]
  if os.path.exists(path + ".msgpack") and os.path.exists(path + ".json"):
    with open(path + ".msgpack", "rb") as f:
      params = flax.serialization.from_bytes(template, f.read())
    with open(path + ".json") as f:
      return Classifier(params, json.load(f)["test_accuracy"])

  images, labels = _mnist(data_dir, source, "train")
  params = _fit(model, template, images, labels, steps, batch_size, seed)
  test_images, test_labels = _mnist(data_dir, source, "test")
  classifier = Classifier(params, 0.0)
  predictions = classifier.predict(test_images)[0].argmax(-1)
  classifier = dataclasses.replace(classifier,
                                   test_accuracy=float(np.mean(predictions == test_labels)))
  os.makedirs(os.path.dirname(path), exist_ok=True)
  # Weights first, accuracy last: a cache entry counts only when both exist.
  _write_atomic(path + ".msgpack", flax.serialization.to_bytes(params))
  _write_atomic(path + ".json", json.dumps({"test_accuracy": classifier.test_accuracy,
                                            "steps": steps, "seed": seed}).encode())
  return classifier


def _mnist(data_dir, source, split):
  images, labels = input_pipeline.load_mnist(data_dir, source, split)
  return input_pipeline.to_model_scale(images), labels


def _fit(model, params, images, labels, steps, batch_size, seed):
  optimizer = optax.adam(1e-3)

  @jax.jit
  def step(params, opt_state, x, y):
    def loss_fn(p):
      logits, _ = model.apply({"params": p}, x)
      return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
    grads = jax.grad(loss_fn)(params)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

  opt_state = optimizer.init(params)
  rng = np.random.default_rng(seed)
  order = np.empty(0, np.int64)
  for _ in range(steps):
    if len(order) < batch_size:
      order = np.concatenate([order, rng.permutation(len(images))])
    batch, order = order[:batch_size], order[batch_size:]
    params, opt_state = step(params, opt_state, images[batch], labels[batch])
  return params


def _write_atomic(path: str, data: bytes) -> None:
  with open(path + ".tmp", "wb") as f:
    f.write(data)
  os.replace(path + ".tmp", path)

"""The paper-protocol scores: the transfer softmax, and the pipeline with a stand-in feature net."""

import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from deligan_jax.scores import inception
from deligan_jax.scores import metrics
from deligan_jax.scores import paper_protocol as paper_scores
from deligan_jax.data import datasets
from deligan_jax.scores.inception import store
from tests.test_classifier import colour_batches


def test_sgd_epoch_is_batch_one_sgd_on_the_cross_entropy():
  rng = np.random.default_rng(0)
  x, labels = rng.normal(size=(12, 5)), rng.integers(0, 3, 12)
  w, b = rng.normal(size=(5, 3)) * 0.1, np.zeros(3)
  got_w, got_b = paper_scores._sgd_epoch(jnp.asarray(w, jnp.float32), jnp.asarray(b, jnp.float32),
                                         jnp.asarray(x, jnp.float32),
                                         jnp.eye(3)[labels])
  for row, label in zip(x, labels):  # d(-log softmax_label)/dlogits = p - onehot
    logits = row @ w + b
    p = np.exp(logits - logits.max())
    p /= p.sum()
    p[label] -= 1
    w, b = w - paper_scores.LEARNING_RATE * np.outer(row, p), b - paper_scores.LEARNING_RATE * p
  np.testing.assert_allclose(got_w, w, atol=1e-5)
  np.testing.assert_allclose(got_b, b, atol=1e-5)


def test_transfer_softmax_learns_separable_classes_in_one_epoch():
  rng = np.random.default_rng(0)
  labels = rng.integers(0, 4, 500)
  centres = rng.normal(size=(4, 64)) * 3
  features = np.abs(centres[labels] + rng.normal(size=(500, 64)))  # pool3 features are >= 0
  weights, bias, accuracy = paper_scores.fit_transfer_softmax(features, labels, 4)
  assert weights.shape == (64, 4) and bias.shape == (4,)
  assert accuracy > 0.9  # on sklearn's 20% (100 rows), random_state 42; chance is 1/4
  again = paper_scores.fit_transfer_softmax(features, labels, 4)
  np.testing.assert_array_equal(again[0], weights)


def stand_in_features(params, images, batch_size=50, progress=True):
  """Cheap, small features: the first 16 pixel values, scaled (FID of 2048-d ones takes minutes)."""
  del params, batch_size, progress
  return np.asarray(images, np.float32).reshape(len(images), -1)[:, :16] / 255


def test_image_scores_pipeline_caches_and_reports_real_rows(tmp_path, monkeypatch):
  monkeypatch.setattr(inception, "load", lambda cache_dir=None: None)
  monkeypatch.setattr(inception, "features", stand_in_features)
  colour_batches(tmp_path / "cifar-10-batches-py", seed=0)
  config = ml_collections.ConfigDict({"name": "cifar10", "dir": str(tmp_path), "num_train": 60})
  cache = str(tmp_path / "cache")
  real = datasets.load_test(config).x
  noise = np.random.default_rng(0).uniform(-1, 1, real.shape).astype(np.float32)
  real_scores = paper_scores.image_scores(real, config, cache)
  noise_scores = paper_scores.image_scores(noise, config, cache)

  assert "paper protocol" in real_scores["score_kind"]
  assert real_scores["softmax_validation_accuracy"] > 0.8  # colour classes; chance is 1/3
  assert real_scores["fid_vs_test"] == pytest.approx(0, abs=1e-6)
  assert real_scores["fid_vs_test"] < noise_scores["fid_vs_test"]
  assert real_scores["fid_vs_train"] < noise_scores["fid_vs_train"]
  np.testing.assert_equal(real_scores["real"]["test_modified_inception_score"],
                          real_scores["modified_inception_score"])  # NaN: an empty class
  assert (real_scores["real"]["num_train"], real_scores["real"]["num_test"]) == (60, 30)
  # Floors at the samples' size (30): 30 of the 60 training images against the test images;
  # all 30 test images against the training images.
  same = real_scores["real"]["same_size"]
  assert (same["num_train"], same["num_test"]) == (30, 30)
  train_features = stand_in_features(None, inception.to_uint8(datasets.load(config).x))
  test_features = stand_in_features(None, inception.to_uint8(real))
  subset = np.sort(np.random.default_rng(0).choice(60, 30, replace=False))
  assert same["train_fid_vs_test"] == pytest.approx(
      metrics.frechet_distance(train_features[subset], test_features), rel=1e-6)
  assert same["test_fid_vs_train"] == pytest.approx(
      metrics.frechet_distance(test_features, train_features), rel=1e-6)
  assert same["train_fid_vs_test"] != pytest.approx(real_scores["real"]["train_fid_vs_test"])
  # The store holds each distinct real image once: the 90 training images (the 60-image
  # subset among them) and the 30 test images.
  with np.load(store.store_path(cache)) as stored:
    assert len(stored["keys"]) == 120
  softmax_files = sorted(p.suffix for p in (tmp_path / "cache").glob("cifar10_transfer_softmax_*"))
  assert softmax_files == [".json", ".npz"]
  report = "\n".join(paper_scores.report_lines(real_scores))
  assert "m-IS (paper protocol)" in report and "training images" in report


def test_store_computes_only_new_images(tmp_path, monkeypatch):
  calls = []
  monkeypatch.setattr(inception, "features",
                      lambda p, images, *a, **k: calls.append(len(images)) or
                      stand_in_features(p, images))
  images = np.random.default_rng(0).integers(0, 256, (7, 32, 32, 3), dtype=np.uint8)
  first = store.real_features(None, images[:5], str(tmp_path), chunk=2)
  both = store.real_features(None, images, str(tmp_path), chunk=2)
  assert calls == [2, 2, 1, 2]
  np.testing.assert_array_equal(both[:5], first)
  np.testing.assert_array_equal(both, stand_in_features(None, images))


@pytest.mark.slow  # trains a tiny CIFAR-10 run: 494 s on the shared CPU
def test_eval_of_a_cifar_run_adds_the_paper_protocol(tmp_path, monkeypatch):
  from deligan_jax import training
  from deligan_jax.scores import evaluation
  from tests.conftest import small_config

  monkeypatch.setattr(inception, "load", lambda cache_dir=None: None)
  monkeypatch.setattr(inception, "features", stand_in_features)
  colour_batches(tmp_path / "cifar-10-batches-py", seed=0)
  config = small_config("cifar10")
  config.data.dir, config.data.num_train = str(tmp_path), 60
  run = str(tmp_path / "run")
  training.train_and_evaluate(config, run)
  results = evaluation.evaluate(run, num_samples=40, cache=str(tmp_path / "cache"),
                                classifier_steps=5)
  assert "classifier-based" in results["score_kind"]
  assert "paper protocol" in results["paper_protocol"]["score_kind"]
  assert results["paper_protocol"]["num_samples"] == 40
  report = (tmp_path / "run" / "eval_report.md").read_text()
  assert "## Scores, paper protocol" in report and "m-IS per predicted class (classifier-based)" in report
  skipped = evaluation.evaluate(run, num_samples=40, cache=str(tmp_path / "cache"),
                                classifier_steps=5, paper_protocol=False)
  assert "paper_protocol" not in skipped


def test_paper_protocol_scores_the_official_sampling_loops_counts():
  """dg_cifar.py: 50 batches of 100 (saved as samples50k.npy); dg_sketches.py: 500 of 100."""
  from deligan_jax.scores import evaluation
  from tests.conftest import load_config
  assert evaluation.default_sample_count(load_config("cifar10"), paper_protocol=True) == 5000
  assert evaluation.default_sample_count(load_config("sketches"), paper_protocol=True) == 50000
  assert evaluation.default_sample_count(load_config("cifar10"), paper_protocol=False) == 5000


def test_paper_m_is_headline_is_the_official_mean_over_every_class():
  """A class predicted once scores 1 in the headline; an empty class makes it NaN."""
  import types
  from deligan_jax.scores import metrics, paper_protocol
  rng = np.random.default_rng(0)

  def with_probs(probs):
    softmax = types.SimpleNamespace(predict=lambda features: probs)
    real = rng.normal(size=(40, 4))
    ref = types.SimpleNamespace(softmax=softmax, test_features=real, train_features=real + 1)
    return paper_protocol.scores(rng.normal(size=(len(probs), 4)), ref)

  probs = np.full((7, 3), 0.05)
  probs[[0, 1, 2], 0] = [0.9, 0.8, 0.7]
  probs[[3, 4, 5], 1] = [0.9, 0.6, 0.85]
  probs[6, 2] = 0.9  # class 2: one sample
  probs /= probs.sum(axis=1, keepdims=True)
  result = with_probs(probs)
  kept, _, per_class = metrics.modified_inception_score(probs)
  assert result["modified_inception_score"][0] == pytest.approx(
      (per_class[0]["score"] + per_class[1]["score"] + 1.0) / 3)
  assert result["modified_inception_score_classes_of_2_or_more"][0] == pytest.approx(kept)
  assert "a class with one sample scoring 1" in paper_protocol.official_m_is_lines(result)[0]
  empty = with_probs(probs[:6])  # class 2 never predicted
  assert np.isnan(empty["modified_inception_score"][0])
  assert "the mean is NaN" in paper_protocol.official_m_is_lines(empty)[0]

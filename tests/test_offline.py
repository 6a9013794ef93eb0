"""Offline use: the shipped MNIST subset stands in when there is no data folder and no internet."""

import json
import logging
import re

import numpy as np
import pytest
from ml_collections import ConfigDict

from deligan_jax import training
from deligan_jax.scores import classifier
from deligan_jax.scores import evaluation
from deligan_jax.data import datasets, embedded, labelled
from deligan_jax.data.dataset import DataError
from tests.conftest import REPO, small_config
from tests.process_output import own_lines
from tests.test_cli import TINY
from tests.test_training import run_cli


@pytest.fixture
def offline(monkeypatch):
  """No download host answers, on any machine: tensorflow-datasets fails as it does offline."""
  def unreachable(urls):
    raise OSError("no internet access (the test's stand-in)")
  monkeypatch.setattr(labelled, "_check_reachable", unreachable)


def test_shipped_subset_is_the_papers_selection_from_the_idx_files(mnist_dir):
  images, labels = embedded.load_mnist500()
  expected_images, expected_labels = embedded.make_mnist500(mnist_dir)
  assert images.dtype == np.uint8 and labels.dtype == np.int32
  np.testing.assert_array_equal(images, expected_images)
  np.testing.assert_array_equal(labels, expected_labels)
  assert list(np.bincount(labels)) == [50] * 10


def test_without_a_folder_the_mnist_config_loads_the_shipped_subset(tmp_path, monkeypatch,
                                                                    mnist_dir):
  monkeypatch.delenv("DELIGAN_DATA_DIR", raising=False)
  monkeypatch.setattr(labelled, "load_tfds", pytest.fail)  # the same images: tfds is not asked
  loaded = datasets.load(ConfigDict({"name": "mnist", "tfds_data_dir": str(tmp_path)}))
  from_files = datasets.load(ConfigDict({"name": "mnist", "dir": mnist_dir}))
  np.testing.assert_array_equal(loaded.x, from_files.x)
  np.testing.assert_array_equal(loaded.labels, from_files.labels)
  assert loaded.class_names == from_files.class_names


@pytest.mark.parametrize("fields, env", [
    ({"dir": "EMPTY"}, {}),            # a configured folder without the files stays an error
    ({}, {"DELIGAN_DATA_DIR": "EMPTY"}),
    ({"per_class": 4}, {}),            # another subset than the shipped one
    ({"source": "files"}, {}),
])
def test_the_shipped_subset_does_not_hide_a_configured_source(tmp_path, monkeypatch, fields,
                                                              env, offline):
  monkeypatch.delenv("DELIGAN_DATA_DIR", raising=False)
  (tmp_path / "empty").mkdir()
  fill = lambda v: str(tmp_path / "empty") if v == "EMPTY" else v
  for name, value in env.items():
    monkeypatch.setenv(name, fill(value))
  config = ConfigDict({"name": "mnist", "tfds_data_dir": str(tmp_path / "tfds"),
                       **{k: fill(v) for k, v in fields.items()}})
  with pytest.raises(DataError):
    datasets.load(config)


def test_mission_command_trains_from_an_empty_folder_without_data_or_home(tmp_path):
  """`python train.py --config configs/mnist.py` with nothing set up: the shipped images, and
  none of TensorFlow's start-up notes even where oneDNN is on (TensorFlow is not imported)."""
  home, cwd = tmp_path / "home", tmp_path / "cwd"
  home.mkdir()
  cwd.mkdir()
  result = run_cli(str(REPO / "train.py"), "--config", str(REPO / "configs" / "mnist.py"),
                   *TINY, "--config.batch_size=8", "--config.latent.num_components=8",
                   "--config.latent.dim=6", "--config.network.generator_width=4",
                   "--config.network.discriminator_width=4", "--config.network.init_examples=16",
                   cwd=cwd, env={"HOME": str(home), "DELIGAN_DATA_DIR": None,
                                 "TF_ENABLE_ONEDNN_OPTS": "1", "TF_CPP_MIN_LOG_LEVEL": None})
  assert result.returncode == 0, result.stderr[-3000:]
  own = own_lines(result.stderr)
  notes = [l for l in own if "shipped with the package" in l]
  assert len(notes) == 1 and "mnist500.npz" in notes[0], result.stderr[-3000:]
  assert [l for l in own if re.match(r"(W\d{4} |WARNING:)", l)] == notes, result.stderr[-3000:]
  assert not any(note in result.stderr for note in TENSORFLOW_NOTES), result.stderr[-3000:]
  workdir = cwd / "runs" / "mnist_deligan"
  assert (workdir / "samples.png").is_file()
  assert (workdir / "samples" / "step_0000008.png").is_file()


# What TensorFlow writes to stderr when it is imported on a CPU where oneDNN is on.
TENSORFLOW_NOTES = ("oneDNN custom operations are on", "absl::InitializeLog()")


def test_commands_and_the_shipped_subset_do_not_import_tensorflow(tmp_path):
  """TensorFlow is imported for tensorflow-datasets only, which the shipped subset skips."""
  script = """
import json, sys
from ml_collections import ConfigDict
from deligan_jax import training
from deligan_jax.cli import compare, evaluate, sample, train, trajectory
from deligan_jax.data import datasets
datasets.load(ConfigDict({"name": "mnist"}))
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0].startswith("tensorflow"))))
"""
  result = run_cli("-c", script, env={"DELIGAN_DATA_DIR": None, "HOME": str(tmp_path)})
  assert result.returncode == 0, result.stderr[-3000:]
  assert json.loads(result.stdout.splitlines()[-1]) == []


def test_shipped_classifier_scores_the_test_images_at_its_recorded_accuracy(mnist_dir):
  shipped = classifier.shipped_mnist()
  with open(classifier.SHIPPED_MNIST + ".json") as f:
    recorded = json.load(f)
  assert shipped.test_accuracy == recorded["test_accuracy"] > 0.97
  test = datasets.load_split(ConfigDict({"name": "mnist", "dir": mnist_dir}), "test")
  accuracy = np.mean(shipped.predict(test.x)[0].argmax(-1) == test.labels)
  assert abs(accuracy - recorded["test_accuracy"]) <= 2e-4  # 2 of 10000 images: float rounding


def test_eval_without_any_data_scores_what_it_can(tmp_path, monkeypatch, caplog, offline):
  """A run on the shipped images, evaluated offline: the shipped classifier, test scores skipped."""
  monkeypatch.delenv("DELIGAN_DATA_DIR", raising=False)
  config = small_config("mnist")
  config.data.per_class = 50
  config.data.tfds_data_dir = str(tmp_path / "tfds")
  training.train_and_evaluate(config, str(tmp_path / "run"))
  caplog.set_level(logging.WARNING)
  results = evaluation.evaluate(str(tmp_path / "run"), num_samples=100,
                                cache=str(tmp_path / "cache"))
  assert results["classifier_test_accuracy"] == classifier.shipped_mnist().test_accuracy
  assert np.isfinite(results["modified_inception_score"][0]) and results["m_is_per_class"]
  assert np.isnan(results["fid"]) and np.isnan(results["precision"])
  assert np.isnan(results["memorisation"]["test_to_train_median"])
  assert np.isfinite(results["memorisation"]["sample_to_train_median"])
  skipped = [r.getMessage() for r in caplog.records if "real test images are missing" in r.getMessage()]
  assert len(skipped) == len(evaluation.NEEDS_TEST_IMAGES)
  shipped_notes = [r.getMessage() for r in caplog.records if "classifier shipped" in r.getMessage()]
  assert len(shipped_notes) == 1
  report = (tmp_path / "run" / evaluation.REPORT).read_text()
  assert "Skipped, the real test images being missing" in report
  assert "Without the real test images there is no reference here." in report

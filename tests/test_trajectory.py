"""Scores over training from kept checkpoints, with a band over seeds."""

import json
import os
import subprocess
import sys

import warnings

import matplotlib
import numpy as np
import pytest

from deligan_jax.runs import checkpoints
from deligan_jax.runs import plots
from deligan_jax.scores import evaluation
from deligan_jax.scores import trajectory
from deligan_jax import training
from tests.conftest import REPO, small_config
from tests.process_output import own_lines


@pytest.fixture(scope="module")
def two_arms(tmp_path_factory):
  """Toy GAN and DeLiGAN, 2 seeds each, checkpoints at batches 4 and 8 kept."""
  root = tmp_path_factory.mktemp("arms")
  for model in ("gan", "deligan"):
    config = small_config("toy", f"bimodal,{model}")
    config.num_seeds = 2
    training.train_and_evaluate(config, str(root / model))
  return root


def test_trajectory_scores_each_kept_checkpoint_of_each_seed(two_arms):
  data = trajectory.trajectory(str(two_arms), ["gan", "deligan"], [4, 8, 12], num_samples=200)
  scores = data["scores"]
  assert [len(scores["deligan"][step]) for step in (4, 8, 12)] == [2, 2, 0]  # no batch 12
  # The last step's scores are those of the run's own (latest) evaluation.
  latest = evaluation.evaluate(str(two_arms / "deligan" / "seed_1"), num_samples=200)
  assert scores["deligan"][8]["seed_1"]["high_quality"] == pytest.approx(
      100 * latest["modes"]["high_quality_fraction"])
  assert (two_arms / "deligan" / "seed_0" / "eval_steps" / "0000004" / "eval.json").is_file()
  early = json.loads((two_arms / "deligan" / "seed_0" / "eval_steps" / "0000004" /
                      "eval.json").read_text())
  assert early["step"] == 4  # that checkpoint, not the latest
  _, _, state = checkpoints.load_run(str(two_arms / "deligan" / "seed_0"), 4)
  assert int(state.step) == 4
  # D's share per 1000-batch bin from metrics.jsonl: both seeds' 8 batches in bin 1000.
  records = [json.loads(l) for l in
             (two_arms / "gan" / "seed_0" / "metrics.jsonl").read_text().splitlines()]
  assert data["curves"]["gan"]["d_fraction"]["seed_0"] == {
      1000: pytest.approx(np.mean([r["d_fraction"] for r in records]))}
  assert data["curves"]["deligan"]["sigma_mean"]["seed_0"][1000] > 0
  saved = json.loads((two_arms / "trajectory.json").read_text())
  assert set(saved["scores"]["gan"]) == {"4", "8", "12"}
  assert "| deligan (2) | 8 |" in (two_arms / "trajectory.md").read_text()
  assert (two_arms / "trajectory.png").stat().st_size > 10_000


def test_trajectory_reuses_evaluations_and_refuses_a_bad_step_in_one_line(two_arms):
  report = two_arms / "gan" / "seed_0" / "eval_steps" / "0000004" / "eval.json"
  if not report.is_file():
    evaluation.evaluate(str(two_arms / "gan" / "seed_0"), num_samples=200, step=4)
  before = report.stat().st_mtime_ns
  env = dict(os.environ, PYTHONPATH=str(REPO))
  run = subprocess.run([sys.executable, "-m", "deligan_jax.cli.trajectory", "--workdir",
                        str(two_arms), "--models", "gan", "--steps", "4", "--num_samples", "200"],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
  assert run.returncode == 0, run.stderr[-2000:]
  assert report.stat().st_mtime_ns == before  # reused, not recomputed
  bad = subprocess.run([sys.executable, "eval.py", "--workdir", str(two_arms / "gan" / "seed_0"),
                        "--step", "6"], cwd=REPO, env=env, capture_output=True, text=True,
                       timeout=600)
  assert bad.returncode == 1 and len(own_lines(bad.stderr.strip())) == 1
  assert "holds no checkpoint of batch 6; it holds [4, 8]" in bad.stderr


def test_trajectory_takes_an_evaluation_already_written_only_if_scored_alike(two_arms):
  run = two_arms / "gan" / "seed_1"
  own = evaluation.evaluate(str(run), num_samples=200)
  assert own["step"] == 8 and own["sample_seed"] == trajectory.SAMPLE_SEED
  step_report = run / "eval_steps" / "0000008" / "eval.json"
  step_report.unlink(missing_ok=True)
  reused = trajectory.evaluation_at(str(run), 8, num_samples=200, cache=None)
  assert not step_report.exists()  # eval.py's scores served, nothing scored again
  assert reused["modes"] == own["modes"]
  # One scored from another sample count or sample seed (eval.py --num_samples, --seed) is
  # scored again: the earlier step's evaluation, marked as written that way.
  early = run / "eval_steps" / "0000004" / "eval.json"
  for unlike in ({"num_samples": 150}, {"sample_seed": 1}):
    if not early.is_file():
      evaluation.evaluate(str(run), num_samples=200, step=4)
    early.write_text(json.dumps({**json.loads(early.read_text()), **unlike, "modes": None}))
    rescored = trajectory.evaluation_at(str(run), 4, num_samples=200, cache=None)
    stored = json.loads(early.read_text())
    assert rescored == stored and stored["modes"] is not None, unlike
    assert (stored["num_samples"], stored["sample_seed"]) == (200, trajectory.SAMPLE_SEED)


def test_an_image_evaluation_serves_only_with_the_default_classifier(tmp_path):
  stored = {"step": 40000, "num_samples": 5000, "sample_seed": trajectory.SAMPLE_SEED,
            "classifier_steps": evaluation.CLASSIFIER_STEPS, "within_class": {"pixels": 0.5}}
  path = tmp_path / "eval.json"
  path.write_text(json.dumps(stored))
  assert trajectory._scored_alike(str(path), 40000, 5000) == stored
  # Scored before the diversity within a class was, it is scored again, unless the test
  # images it needs were missing.
  older = {k: v for k, v in stored.items() if k != "within_class"}
  path.write_text(json.dumps(older))
  assert trajectory._scored_alike(str(path), 40000, 5000) is None
  skipped = {**older, "skipped_without_test_images": ["FID"]}
  path.write_text(json.dumps(skipped))
  assert trajectory._scored_alike(str(path), 40000, 5000) == skipped
  path.write_text(json.dumps({**stored, "classifier_steps": 300}))
  assert trajectory._scored_alike(str(path), 40000, 5000) is None
  path.write_text(json.dumps({k: v for k, v in stored.items() if k != "classifier_steps"}))
  assert trajectory._scored_alike(str(path), 40000, 5000) is None  # which classifier: unknown


@pytest.mark.parametrize("log", [False, True])
def test_band_of_a_column_only_one_seed_reached_is_its_value_without_a_warning(log):
  """A run still training has no value at the later batches: there the line is the other
  seeds' mean, and a column held by one seed has no band (and no ddof warning)."""
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  per_seed = np.array([[1.0, 10.0, 100.0], [3.0, 30.0, np.nan]])
  fig, ax = plt.subplots()
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    plots._band(ax, [1, 2, 3], per_seed, "arm", "C0", log=log)
  line = ax.lines[0].get_ydata()
  band = ax.collections[0].get_paths()[0].vertices[:, 1]
  plt.close(fig)
  expected_mean = np.sqrt([3.0, 300.0]) if log else np.array([2.0, 20.0])
  np.testing.assert_allclose(line, [*expected_mean, 100.0])
  assert np.isclose(band, 100.0).sum() >= 2  # the last column: low = high = its one value
  assert band.min() < expected_mean[0] and band.max() > expected_mean[1]


def test_band_of_a_score_no_seed_has_below_zero_stops_at_zero():
  """Near-copies % of 0, 0 and 3 over seeds: mean 1, std 1.7; the band's low edge is 0, not -0.7.
  A score that can be negative (KID) keeps its band."""
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  fig, ax = plt.subplots()
  plots._band(ax, [1, 2], np.array([[0.0, 1.0], [0.0, 2.0], [3.0, 3.0]]), "arm", "C0")
  plots._band(ax, [1, 2], np.array([[-1.0, 1.0], [0.0, 2.0], [3.0, 3.0]]), "arm", "C1")
  clipped, kept = (c.get_paths()[0].vertices[:, 1] for c in ax.collections)
  plt.close(fig)
  assert clipped.min() == 0.0 and np.isclose(clipped.max(), 3.0)  # column 2: 2 ± 1, unclipped
  assert np.isclose(kept.min(), 2 / 3 - np.std([-1.0, 0.0, 3.0], ddof=1))

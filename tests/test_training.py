"""The training loop end to end: outputs, resume equivalence, the CLI, sampling."""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from deligan_jax import config as config_lib
from deligan_jax import sampling
from deligan_jax import training
from tests.conftest import REPO, small_config


def tree_equal(a, b):
  return jax.tree.all(jax.tree.map(np.array_equal, jax.device_get(a), jax.device_get(b)))


def test_resume_continues_exactly(tmp_path):
  config = small_config("toy", "bimodal,deligan")
  config.num_steps = 16
  straight = training.train_and_evaluate(config, str(tmp_path / "straight"))

  config.num_steps = 8
  training.train_and_evaluate(config, str(tmp_path / "resumed"))
  config.num_steps = 16
  resumed = training.train_and_evaluate(config, str(tmp_path / "resumed"))

  assert int(resumed.step) == 16
  assert tree_equal(straight, resumed)  # params, stats, optimisers, balance, key
  lines = (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()
  assert [json.loads(l)["step"] for l in lines] == [4, 8, 12, 16]


def test_resume_of_mnist_model_with_batch_norm(tmp_path, monkeypatch):
  # MNIST networks on random images: batch norm statistics must resume too.
  from deligan_jax.data.dataset import Dataset
  images = np.random.default_rng(0).uniform(-1, 1, (40, 28, 28, 1)).astype(np.float32)
  monkeypatch.setattr(training.datasets, "load",
                      lambda _: Dataset(images, None, "random"))
  config = small_config("mnist", "deligan")
  straight = training.train_and_evaluate(config, str(tmp_path / "a"))
  config.num_steps = 4
  training.train_and_evaluate(config, str(tmp_path / "b"))
  config.num_steps = 8
  resumed = training.train_and_evaluate(config, str(tmp_path / "b"))
  assert tree_equal(straight, resumed)


def test_workdir_of_another_config_is_refused(tmp_path):
  config = small_config("toy", "gan")
  training.train_and_evaluate(config, str(tmp_path))
  config.latent.dim = 3
  with pytest.raises(config_lib.ConfigError, match="latent.dim"):
    training.train_and_evaluate(config, str(tmp_path))


def run_cli(*args, cwd=REPO, env=None):
  """Runs ``python *args``; ``env`` adds variables to this process's (None values unset them)."""
  merged = dict(os.environ, PYTHONPATH=str(REPO))
  for name, value in (env or {}).items():
    if value is None:
      merged.pop(name, None)
    else:
      merged[name] = value
  return subprocess.run([sys.executable, *args], cwd=cwd, env=merged, capture_output=True,
                        text=True, timeout=600)


def test_cli_toy_end_to_end(tmp_path):
  workdir = tmp_path / "run"
  result = run_cli("train.py", "--config", "configs/toy.py:bimodal,deligan",
                   "--workdir", str(workdir), "--config.num_steps=60",
                   "--config.steps_per_dispatch=20", "--config.log_every=20",
                   "--config.sample_every=40", "--config.checkpoint_every=20",
                   "--config.keep_checkpoints=2")
  assert result.returncode == 0, result.stderr[-3000:]
  assert "upd" in result.stderr  # the progress bar, with its rate
  for name in ("config.json", "metrics.jsonl", "samples.png", "loss_curves.png",
               "samples/step_0000040.png"):
    assert (workdir / name).is_file(), name
  assert any(f.startswith("events.out.tfevents") for f in os.listdir(workdir / "tensorboard"))
  assert sorted(os.listdir(workdir / "checkpoints")) == ["40", "60"]  # keeps the last 2
  records = [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines()]
  assert [r["step"] for r in records] == [20, 40, 60]
  for key in ("g_loss", "d_loss", "thres", "g_updates", "d_updates", "sigma_mean", "lr"):
    assert key in records[-1], key
  assert sum(r["g_updates"] + r["d_updates"] for r in records) == 60 * 5
  saved = config_lib.from_json((workdir / "config.json").read_text())
  assert saved.num_steps == 60 and saved.network.name == "toy"

  out = tmp_path / "z.npy"
  result = run_cli("-m", "deligan_jax.cli.sample", "--workdir", str(workdir), "--num", "30",
                   "--out", str(out), "--component", "3")
  assert result.returncode == 0, result.stderr[-3000:]
  z3 = np.load(out)
  assert z3.shape == (30, 2) and np.all(np.abs(z3) <= 1)
  result = run_cli("-m", "deligan_jax.cli.sample", "--workdir", str(workdir), "--num", "100",
                   "--out", str(tmp_path / "s.png"))
  assert result.returncode == 0 and (tmp_path / "s.png").stat().st_size > 1000


def test_cli_refuses_bad_config_before_any_work(tmp_path):
  workdir = tmp_path / "run"
  result = run_cli("train.py", "--config", "configs/toy.py", "--workdir", str(workdir),
                   "--config.optim.lr=-0.1")
  assert result.returncode != 0 and "optim.lr" in result.stderr
  result = run_cli("train.py", "--config", "configs/toy.py", "--workdir", str(workdir),
                   "--config.batch_size=8")
  assert result.returncode != 0 and "latent.num_components" in result.stderr
  result = run_cli("train.py", "--config", "configs/toy.py", "--workdir", str(workdir),
                   "--config.no_such_field=1")
  assert result.returncode != 0 and "no_such_field" in result.stderr
  assert not workdir.exists()


def test_sample_component_of_one_generator(tmp_path):
  config = small_config("toy", "bimodal,ensemble")
  training.train_and_evaluate(config, str(tmp_path))
  all_rows = sampling.from_run(str(tmp_path), 16, seed=1)
  one = sampling.from_run(str(tmp_path), 5, seed=1, component=2)
  assert all_rows.shape == (16, 2) and one.shape == (5, 2)
  # Not a multiple of the 8 generators: whole rounds are drawn and cut.
  np.testing.assert_array_equal(sampling.from_run(str(tmp_path), 11, seed=1), all_rows[:11])


@pytest.mark.parametrize("signal_name", ["SIGTERM", "SIGINT"])
def test_signal_saves_a_checkpoint_and_says_how_to_resume(tmp_path, signal_name):
  import signal
  import time
  workdir = tmp_path / "run"
  args = ["train.py", "--config", "configs/toy.py:bimodal,deligan", "--workdir", str(workdir),
          "--config.num_steps=200000", "--config.steps_per_dispatch=100",
          "--config.log_every=100", "--config.checkpoint_every=100000"]
  env = dict(os.environ, PYTHONPATH=str(REPO))
  log = tmp_path / "stderr.log"  # a file: a pipe nobody reads while waiting could fill
  with open(log, "w") as stderr_file:
    process = subprocess.Popen([sys.executable, *args], cwd=REPO, env=env, text=True,
                               stdout=subprocess.DEVNULL, stderr=stderr_file)
  metrics = workdir / "metrics.jsonl"
  deadline = time.time() + 300
  while not (metrics.exists() and metrics.read_text().count("\n") >= 2):
    if time.time() > deadline or process.poll() is not None:
      process.kill()
      process.wait()
      pytest.fail(log.read_text()[-3000:])
    time.sleep(0.2)
  process.send_signal(getattr(signal, signal_name))
  process.wait(timeout=300)
  stderr = log.read_text()
  assert process.returncode != 0
  assert signal_name in stderr and "run the same command again to resume" in stderr
  steps = [int(d) for d in os.listdir(workdir / "checkpoints")]
  assert len(steps) == 1 and 0 < steps[0] < 200000 and steps[0] % 100 == 0
  logged = [json.loads(l)["step"] for l in metrics.read_text().splitlines()]
  assert logged[-1] == steps[0]  # the checkpoint holds everything that was logged


def test_same_config_and_seed_reproduce_across_processes(tmp_path):
  from deligan_jax.runs import checkpoints
  args = ["--config", "configs/toy.py:bimodal,deligan", "--config.num_steps=40",
          "--config.steps_per_dispatch=20", "--config.log_every=20"]
  for name in ("a", "b"):
    result = run_cli("train.py", *args, "--workdir", str(tmp_path / name))
    assert result.returncode == 0, result.stderr[-3000:]
  assert (tmp_path / "a" / "metrics.jsonl").read_bytes() == \
      (tmp_path / "b" / "metrics.jsonl").read_bytes()
  _, _, a = checkpoints.load_run(str(tmp_path / "a"))
  _, _, b = checkpoints.load_run(str(tmp_path / "b"))
  assert tree_equal(a, b)


def test_training_on_a_user_point_set(tmp_path):
  points = np.random.default_rng(0).normal(0, 0.2, (64, 2)).astype(np.float32)
  np.save(tmp_path / "points.npy", points)
  config = small_config("toy", "points,gan")
  config.data.path = str(tmp_path / "points.npy")
  state = training.train_and_evaluate(config, str(tmp_path / "run"))
  assert int(state.step) == 8 and (tmp_path / "run" / "samples.png").is_file()


def test_non_finite_values_stop_training_and_keep_the_last_good_checkpoint(tmp_path,
                                                                          monkeypatch):
  from deligan_jax.runs import checkpoints
  from deligan_jax.data.dataset import Dataset
  from deligan_jax.data.points import toy_points
  config = small_config("toy", "bimodal,deligan")
  config.num_steps = 4
  training.train_and_evaluate(config, str(tmp_path))  # a good checkpoint at batch 4
  poisoned = toy_points("bimodal", 400)
  poisoned[::2] = np.nan  # every batch of the next epochs meets NaN samples
  monkeypatch.setattr(training.datasets, "load",
                      lambda _: Dataset(poisoned, None, "poisoned"))
  config.num_steps = 16
  with pytest.raises(training.NonFinite, match=r"at batch (5|6|7|8);.*latest checkpoint"):
    training.train_and_evaluate(config, str(tmp_path))
  assert sorted(os.listdir(tmp_path / "checkpoints")) == ["4"]
  _, _, state = checkpoints.load_run(str(tmp_path))
  assert int(state.step) == 4
  assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves(state.params))
  assert [json.loads(l)["step"] for l in (tmp_path / "metrics.jsonl").read_text().splitlines()] \
      == [4]


def test_log_window_records_the_fraction_of_d_updates():
  window = [{"g_updates": np.array([3, 0]), "d_updates": np.array([2, 5]), "thres": np.ones(2)},
            {"g_updates": np.array([5]), "d_updates": np.array([0]), "thres": np.ones(1)}]
  summary = training._summarise(window)
  assert (summary["g_updates"], summary["d_updates"]) == (8, 7)
  assert summary["d_fraction"] == pytest.approx(7 / 15)


def test_log_window_counts_forced_d_updates_as_d_updates():
  window = [{"g_updates": np.array([5, 5]), "d_updates": np.array([0, 0]),
             "forced_d_updates": np.array([1, 0])},
            {"g_updates": np.array([5]), "d_updates": np.array([0]),
             "forced_d_updates": np.array([1])}]
  summary = training._summarise(window)
  assert summary["forced_d_updates"] == 2
  assert summary["d_fraction"] == pytest.approx(2 / 17)

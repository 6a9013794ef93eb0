"""The command lines as users type them: default workdirs, and user errors in one line."""

import json
import os

import pytest

from deligan_jax import run_dirs
from tests.conftest import REPO, load_config
from tests.test_training import run_cli

TINY = ("--config.num_steps=8", "--config.steps_per_dispatch=4", "--config.log_every=4",
        "--config.sample_every=8", "--config.checkpoint_every=4", "--config.num_plot_samples=50")


@pytest.mark.parametrize("name, arg, expected", [
    ("mnist", None, "mnist_deligan"),
    ("cifar10", "gan", "cifar10_gan"),
    ("toy", "bimodal,gan", "toy_bimodal_gan"),
    ("toy", "gan", "toy_bimodal_gan"),          # the same config, the same folder
    ("toy", None, "toy_bimodal_deligan"),
    ("toy", "points,ensemble", "toy_points_ensemble"),
])
def test_default_workdir_is_named_from_the_config(name, arg, expected):
  config_file = f"configs/{name}.py" + (f":{arg}" if arg else "")
  assert run_dirs.default_workdir(config_file, load_config(name, arg)) == \
      os.path.join("runs", expected)


@pytest.mark.slow  # three training processes
def test_train_without_workdir_uses_the_default_and_resumes_there(tmp_path):
  config = f"{REPO / 'configs' / 'toy.py'}:bimodal,gan"
  first = run_cli(str(REPO / "train.py"), "--config", config, *TINY,
                  cwd=tmp_path)
  assert first.returncode == 0, first.stderr[-3000:]
  workdir = tmp_path / "runs" / "toy_bimodal_gan"
  assert first.stdout.splitlines()[0].startswith("workdir: runs/toy_bimodal_gan ")

  again = run_cli(str(REPO / "train.py"), "--config", config, *TINY,
                  "--config.num_steps=16", cwd=tmp_path)
  assert again.returncode == 0, again.stderr[-3000:]
  steps = [json.loads(l)["step"] for l in (workdir / "metrics.jsonl").read_text().splitlines()]
  assert steps == [4, 8, 12, 16]  # continued from step 8, not restarted

  chosen = tmp_path / "chosen"
  explicit = run_cli(str(REPO / "train.py"), "--config", config, *TINY,
                     "--workdir", str(chosen), cwd=tmp_path)
  assert explicit.returncode == 0, explicit.stderr[-3000:]
  assert "workdir:" not in explicit.stdout and (chosen / "config.json").is_file()
  assert sorted(os.listdir(tmp_path / "runs")) == ["toy_bimodal_gan"]

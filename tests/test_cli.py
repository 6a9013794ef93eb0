"""The command lines as users type them: default workdirs, and user errors in one line."""

import importlib
import json
import os
import tomllib

import pytest

from deligan_jax import config as config_lib
from deligan_jax.errors import ConfigError
from deligan_jax.runs import workdir as workdir_lib
from tests.conftest import REPO, load_config
from tests.test_training import run_cli
from tests.process_output import own_lines

TINY = ("--config.num_steps=8", "--config.steps_per_dispatch=4", "--config.log_every=4",
        "--config.sample_every=8", "--config.checkpoint_every=4", "--config.num_plot_samples=50")


@pytest.mark.parametrize("name, arg, expected", [
    ("mnist", None, "mnist_deligan"),
    ("mnist", "deligan_diverse", "mnist_deligan_diverse"),  # not the official recipe's folder
    ("cifar10", "gan", "cifar10_gan"),
    ("toy", "bimodal,gan", "toy_bimodal_gan"),
    ("toy", "gan", "toy_bimodal_gan"),          # the same config, the same folder
    ("toy", None, "toy_bimodal_deligan"),
    ("toy", "points,ensemble", "toy_points_ensemble"),
])
def test_default_workdir_is_named_from_the_config(name, arg, expected):
  config_file = f"configs/{name}.py" + (f":{arg}" if arg else "")
  assert workdir_lib.default_workdir(config_file, load_config(name, arg)) == \
      os.path.join("runs", expected)


def test_a_recipe_name_resumes_a_run_of_the_same_settings(tmp_path):
  """``deligan_diverse`` resumes a deligan run with its settings; the official recipe does not."""
  by_hand = load_config("mnist")
  by_hand.latent.num_components = 500
  by_hand.latent.assignment = "random"
  workdir_lib.record_config(by_hand, str(tmp_path))
  workdir_lib.check(load_config("mnist", "deligan_diverse"), str(tmp_path))
  with pytest.raises(ConfigError, match=r"latent\.num_components: 500 -> 50"):
    workdir_lib.check(load_config("mnist"), str(tmp_path))


def test_a_recipe_that_is_not_a_folder_name_is_refused():
  config = load_config("mnist", "deligan_diverse")
  config.recipe = "../elsewhere"
  with pytest.raises(ConfigError, match=r"config\.recipe: names a folder"):
    config_lib.validate(config)


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


def one_line_refusal(result, *fragments):
  """Status 1, one line on stderr naming the problem, no traceback, nothing on stdout."""
  lines = own_lines(result.stderr.strip())
  assert result.returncode == 1, result.stderr[-3000:]
  assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
  for fragment in fragments:
    assert fragment in lines[0], lines[0]


@pytest.mark.parametrize("args, fragments", [
    (("train.py", "--config", "configs/no_such_config.py"),
     ("no_such_config.py cannot be loaded", "No such file")),
    (("train.py", "--config", "configs/toy.py:bogus"), ("unknown config argument 'bogus'",)),
    (("train.py", "--config", "configs/mnist.py:deligan_diverse,gan"),
     ("config argument 'deligan_diverse,gan' names two models, 'deligan_diverse' and 'gan'",)),
    (("train.py", "--config", "configs/toy.py", "stray"), ("unexpected arguments: ['stray']",)),
    (("-m", "deligan_jax.cli.sample", "--workdir", "no_such_run", "--num", "0", "--out", "s.png"),
     ("--num=0",)),
    (("-m", "deligan_jax.cli.sample", "--workdir", "no_such_run", "--out", "s.png"),
     ("no_such_run holds no config.json",)),
    (("-m", "deligan_jax.cli.sample", "--workdir", "no_such_run", "--out", "s.txt"),
     ("--out must end in .png or .npy",)),
    (("eval.py", "--workdir", "no_such_run"), ("no_such_run holds no config.json",)),
    (("eval.py",), ("--workdir must have a value",)),
    (("-m", "deligan_jax.cli.compare", "--config", "configs/toy.py", "--models", "gan,foo",
      "--workdir", "cmp"), ("--models: unknown ['foo']",)),
])
def test_user_errors_are_one_line(tmp_path, args, fragments):
  """Each CLI refuses bad flags, missing files and workdirs in one line, writing nothing."""
  args = [str(REPO / a) if a.endswith(".py") or a.startswith("configs/") else a for a in args]
  one_line_refusal(run_cli(*args, cwd=tmp_path), *fragments)
  assert os.listdir(tmp_path) == []


@pytest.mark.slow  # trains a run, then two sampling processes
def test_sample_of_a_component_out_of_range_is_one_line_and_sampling_is_quiet(tmp_path):
  from deligan_jax import training
  from tests.conftest import small_config
  training.train_and_evaluate(small_config("toy", "bimodal,deligan"), str(tmp_path / "run"))
  refused = run_cli("-m", "deligan_jax.cli.sample", "--workdir", str(tmp_path / "run"),
                    "--component", "999", "--out", str(tmp_path / "z.npy"))
  one_line_refusal(refused, "--component must be in [0, 8), got 999")
  assert not (tmp_path / "z.npy").exists()
  sampled = run_cli("-m", "deligan_jax.cli.sample", "--workdir", str(tmp_path / "run"),
                    "--num", "3", "--out", str(tmp_path / "z.npy"))
  assert sampled.returncode == 0 and own_lines(sampled.stderr) == [], sampled.stderr[-3000:]  # no orbax INFO
  assert sampled.stdout.strip() == f"wrote (3, 2) samples to {tmp_path / 'z.npy'}"


def test_every_console_script_names_a_command_line_entry_point():
  scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
  assert {name.removeprefix("deligan-").replace("-", "_") for name in scripts} >= {
      "train", "eval", "sample", "compare", "trajectory", "study"}
  for target in scripts.values():
    module, function = target.split(":")
    assert module.startswith("deligan_jax.cli.")
    assert callable(getattr(importlib.import_module(module), function)), target

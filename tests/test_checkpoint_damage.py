"""Checkpoints that catch damage: SHA-256 manifests, fallback to the newest intact checkpoint."""

import logging
import os

import numpy as np
import pytest

from deligan_jax.runs import checkpoints
from deligan_jax.runs import checksums
from deligan_jax import training
from tests.conftest import small_config
from tests.test_training import run_cli
from tests.process_output import own_lines


def truncate(path):
  with open(path, "r+b") as f:
    f.truncate(os.path.getsize(path) // 2)


def flip_bytes(path):
  data = bytearray(open(path, "rb").read())
  middle = len(data) // 2
  data[middle:middle + 4] = bytes(255 - b for b in data[middle:middle + 4])
  open(path, "wb").write(bytes(data))


def largest_data_file(step_dir):
  """The biggest file of a checkpoint: one of orbax's array data files."""
  paths = [os.path.join(root, name) for root, _, names in os.walk(step_dir) for name in names
           if name != checksums.MANIFEST]
  return max(paths, key=os.path.getsize)


@pytest.mark.parametrize("damage, message", [(truncate, "does not match"),
                                             (flip_bytes, "does not match"),
                                             (os.remove, "is missing")])
def test_manifest_catches_damage(tmp_path, damage, message):
  (tmp_path / "d").mkdir()
  (tmp_path / "d" / "weights").write_bytes(bytes(range(256)) * 8)
  (tmp_path / "meta").write_text("{}")
  checksums.write_manifest(str(tmp_path))
  assert checksums.find_damage(str(tmp_path)) is None
  damage(str(tmp_path / "d" / "weights"))
  found = checksums.find_damage(str(tmp_path))
  assert found is not None and found.startswith("d/weights") and message in found


@pytest.fixture
def toy_run(tmp_path):
  config = small_config("toy", "bimodal,deligan")  # checkpoints at steps 4 and 8
  workdir = str(tmp_path / "run")
  training.train_and_evaluate(config, workdir)
  return config, workdir


def step_dir(workdir, step):
  return os.path.join(workdir, checkpoints.CHECKPOINT_DIR, str(step))


@pytest.mark.parametrize("damage", [truncate, flip_bytes])
def test_damaged_latest_checkpoint_is_named_and_passed_over(toy_run, damage, caplog):
  config, workdir = toy_run
  victim = largest_data_file(step_dir(workdir, 8))
  damage(victim)
  damaged_bytes = open(victim, "rb").read()

  # What sample and eval.py read: the newest intact checkpoint, with one warning.
  with caplog.at_level(logging.WARNING):
    _, _, state = checkpoints.load_run(workdir)
  assert int(state.step) == 4
  warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
  assert len(warnings) == 1 and "checkpoint 8" in warnings[0] and "damaged" in warnings[0]
  assert os.path.relpath(victim, step_dir(workdir, 8)) in warnings[0]
  assert "using checkpoint 4" in warnings[0]

  # Resumption goes on from 4, and the damaged 8 is moved aside with its bytes, not deleted.
  config.num_steps = 12
  resumed = training.train_and_evaluate(config, workdir)
  assert int(resumed.step) == 12
  kept = os.path.join(workdir, checkpoints.SET_ASIDE_DIR, "8",
                      os.path.relpath(victim, step_dir(workdir, 8)))
  assert open(kept, "rb").read() == damaged_bytes
  assert sorted(os.listdir(os.path.join(workdir, checkpoints.CHECKPOINT_DIR)),
                key=int)[-2:] == ["8", "12"]
  for step in (8, 12):  # saved again, with manifests that check out
    assert checksums.has_manifest(step_dir(workdir, step))
    assert checksums.find_damage(step_dir(workdir, step)) is None


def test_every_checkpoint_damaged_is_refused_in_one_line(toy_run):
  config, workdir = toy_run
  for step in (4, 8):
    flip_bytes(largest_data_file(step_dir(workdir, step)))
  with pytest.raises(checkpoints.CheckpointError, match="every checkpoint .* is damaged"):
    checkpoints.load_run(workdir)
  before = {p: open(os.path.join(r, p), "rb").read()
            for r, _, names in os.walk(workdir) for p in names}
  config.num_steps = 12
  with pytest.raises(checkpoints.CheckpointError, match="nothing was deleted"):
    training.train_and_evaluate(config, workdir)
  after = {p: open(os.path.join(r, p), "rb").read()
           for r, _, names in os.walk(workdir) for p in names}
  assert after == before


@pytest.mark.slow  # a sampling process
def test_sample_names_a_damaged_checkpoint_in_one_line(toy_run, tmp_path):
  _, workdir = toy_run
  truncate(largest_data_file(step_dir(workdir, 8)))
  result = run_cli("-m", "deligan_jax.cli.sample", "--workdir", workdir, "--num", "3",
                   "--out", str(tmp_path / "z.npy"))
  assert result.returncode == 0, result.stderr[-3000:]
  lines = own_lines(result.stderr.strip())
  assert len(lines) == 1 and "checkpoint 8" in lines[0] and "using checkpoint 4" in lines[0]
  assert np.load(tmp_path / "z.npy").shape == (3, 2)

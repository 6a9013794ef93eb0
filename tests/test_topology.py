"""A checkpoint written on one device topology is sampled, evaluated and resumed on another."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import REPO


def run_check(mode: str, workdir, num_seeds: int, num_devices: int) -> dict:
  flags = f"{os.environ['XLA_FLAGS']} --xla_force_host_platform_device_count={num_devices}"
  env = dict(os.environ, PYTHONPATH=str(REPO), XLA_FLAGS=flags)
  result = subprocess.run([sys.executable, "-m", "tests.topology_check", mode, str(workdir),
                           str(num_seeds)], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=900)
  assert result.returncode == 0, result.stderr[-3000:]
  report = json.loads(result.stdout.strip().splitlines()[-1])
  assert report["devices"] == num_devices
  return report


def assert_read_back(written: dict, read: dict) -> None:
  """The reading topology draws the writer's samples, evaluates, and resumes from batch 8."""
  assert written["seeds"].keys() == read["seeds"].keys()
  for seed_workdir, seed in read["seeds"].items():
    np.testing.assert_allclose(seed["samples"], written["seeds"][seed_workdir]["samples"],
                               atol=1e-5)
    assert seed["modes_covered"] >= 0
    assert seed["steps"] == [4, 8, 12]  # continued, not restarted


# The batch split over 4 devices; a seed on each (slow: the same restore path, 4 seed folders).
@pytest.mark.parametrize("num_seeds", [1, pytest.param(4, marks=pytest.mark.slow)])
def test_four_devices_to_one_and_back(tmp_path, num_seeds):
  workdir = tmp_path / "run"
  written = run_check("train", workdir, num_seeds, 4)
  assert_read_back(written, run_check("read", workdir, num_seeds, 1))

  other = tmp_path / "one_device_run"
  written = run_check("train", other, num_seeds, 1)
  assert_read_back(written, run_check("read", other, num_seeds, 4))

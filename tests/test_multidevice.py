"""Data parallelism: 1 device and 8 (simulated) devices train to the same parameters."""

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO, eight_device_env


@pytest.mark.parametrize("experiment, variant, flags", [
    ("toy", "bimodal,deligan", ["--wrong_row"]), ("mnist", "deligan", ["--wrong_row"]),
    ("toy", "bimodal,ensemble", []),
    pytest.param("mnist", "ensemble", [], marks=pytest.mark.slow)])
def test_one_and_eight_devices_agree(experiment, variant, flags):
  """Equal up to float32 sums in another order (``conftest.reordering_bound``).

  The MNIST ensemble (a minute) is in the slow suite: the fast cases cover its two parts,
  the ensemble's stacked generators split over devices ``[toy-bimodal,ensemble]`` and
  batch norm over a sharded batch ``[mnist-deligan]``.
  """
  env = eight_device_env()
  result = subprocess.run([sys.executable, "-m", "tests.multidevice_equivalence", experiment,
                           variant, *flags], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=900)
  assert result.returncode == 0, result.stderr[-3000:]
  report = json.loads(result.stdout.strip().splitlines()[-1])
  assert report["devices"] == 8
  assert report["thres_equal"]
  assert report["within_bound"], report
  if flags:  # the bound is tight enough to catch one wrong row on one device
    assert report["wrong_row_output_diff"] > report["output_bound"], report


"""Seeds x data layouts: any device count runs the paper's batch, each seed as if alone."""

import json
import subprocess
import sys

import pytest

from deligan_jax.step import device_layout
from tests.conftest import REPO, eight_device_env


@pytest.mark.parametrize("devices, seeds, batch, layout", [
    (1, 1, 50, (1, 1)), (1, 8, 50, (1, 1)), (2, 1, 50, (1, 2)), (4, 1, 50, (1, 2)),
    (8, 1, 50, (1, 2)), (8, 8, 50, (8, 1)), (8, 2, 50, (2, 2)), (8, 4, 50, (4, 2)),
    (8, 3, 50, (1, 2)), (8, 1, 64, (1, 8)), (8, 6, 100, (2, 4)), (3, 1, 8, (1, 1))])
def test_layout_uses_the_most_devices_seeds_first(devices, seeds, batch, layout):
  plan = device_layout.Layout.plan(devices, seeds, batch)
  assert (plan.seeds, plan.data) == layout
  assert seeds % plan.seeds == 0 and batch % plan.data == 0


def test_idle_devices_are_named_with_the_num_seeds_that_uses_them():
  pool = [f"cpu:{k}" for k in range(8)]
  assert device_layout.Layout.plan(8, 8, 50).idle_note(pool) is None
  note = device_layout.Layout.plan(8, 3, 50).idle_note(pool)
  assert note.startswith("6 of 8 devices idle (cpu:2, cpu:3, cpu:4, cpu:5, cpu:6, cpu:7)")
  assert "--config.num_seeds=4 " in note and "\n" not in note
  # 4 seeds then use all 8.
  assert device_layout.Layout.plan(8, 4, 50).idle_note(pool) is None


def run_layouts(device_counts: str, seed_counts: str) -> list[dict]:
  env = eight_device_env()
  result = subprocess.run([sys.executable, "-m", "tests.device_layouts_check", device_counts,
                           seed_counts], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=1800)
  assert result.returncode == 0, result.stderr[-3000:]
  runs = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
  for run in runs:
    assert run["state_devices"] == run["layout"][0] * run["layout"][1]
    assert (run["idle_note"] is None) == (run["state_devices"] == run["devices"]), run
    assert len(run["seeds"]) == run["num_seeds"]
    for seed, report in enumerate(run["seeds"]):
      assert report["within_bound"], (run["devices"], run["num_seeds"], seed, report)
  return runs


# (devices, num_seeds) -> (seeds axis, data axis) at batch 50
LAYOUTS = {(1, 1): (1, 1), (1, 8): (1, 1), (2, 1): (1, 2), (2, 8): (2, 1),
           (4, 1): (1, 2), (4, 8): (4, 1), (8, 1): (1, 2), (8, 8): (8, 1)}


def test_each_seed_on_2_devices_equals_its_one_device_run():
  """Seeds sharded over devices (8 seeds: (2, 1)) and the batch sharded (1 seed: (1, 2)).

  The 8-device pool is in the slow test below: on a loaded 2-core machine its 8-seed
  program's all-reduce can hang in XLA:CPU's rendezvous (docs/devices.md).
  """
  runs = run_layouts("2", "1,8")
  assert {(r["devices"], r["num_seeds"]): tuple(r["layout"]) for r in runs} == {
      k: v for k, v in LAYOUTS.items() if k[0] == 2}


@pytest.mark.slow
def test_each_seed_on_1_2_4_8_devices_equals_its_one_device_run():
  runs = run_layouts("1,2,4,8", "1,8")
  assert {(r["devices"], r["num_seeds"]): tuple(r["layout"]) for r in runs} == LAYOUTS

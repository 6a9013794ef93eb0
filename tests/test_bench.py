"""The benchmark runs and reports every figure it promises."""

import importlib.util
import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO


def test_bench_quick_json():
  result = subprocess.run(
      [sys.executable, "bench.py", "--config", "configs/mnist.py", "--quick", "--json",
       "--batch_sizes=8", "--config.network.generator_width=4",
       "--config.network.discriminator_width=4"],
      cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)), capture_output=True, text=True,
      timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  rows = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
  with_torch = importlib.util.find_spec("torch") is not None
  assert [(r["batch_size"], r["mode"], r["dtype"]) for r in rows] == [
      (8, "fused", "float32"), (8, "fused", "bfloat16"), (8, "per_update", "float32")] + (
          [(8, "torch_eager", "float32")] if with_torch else [])
  for row in rows[:3]:
    assert row["compile_s"] > 0 and row["backend"] == "cpu" and "peak_memory_bytes" in row
  for row in rows:
    assert row["us_per_update"] > 0 and row["device"] and row["mbd_ms"] > 0
    assert row["updates_per_s"] * row["us_per_update"] == pytest.approx(1e6, rel=1e-6)
    if with_torch:
      assert row["vs_torch"] == pytest.approx(row["us_per_update"] / rows[-1]["us_per_update"])
    else:
      assert row["vs_torch"] is None
  assert rows[0]["updates_per_call"] == 4 * 5 and rows[2]["updates_per_call"] == 5



def test_bench_train_sizes_reports_the_ratio_to_the_first_size():
  result = subprocess.run(
      [sys.executable, "bench.py", "--config", "configs/toy.py", "--quick", "--json",
       "--train_sizes=400,5000", "--dtypes=float32"],
      cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)), capture_output=True, text=True,
      timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  rows = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
  assert [r["train_size"] for r in rows] == [400, 5000]
  assert rows[0]["ratio_to_first"] == 1.0
  assert rows[1]["ratio_to_first"] == pytest.approx(
      rows[1]["us_per_update"] / rows[0]["us_per_update"])
  assert all(r["us_per_update"] > 0 and r["mode"] == "fused" for r in rows)

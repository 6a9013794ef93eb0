"""The benchmark runs and reports every figure it promises."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmarks import bench
from deligan_jax.data import datasets
from tests.conftest import REPO, SHARED_DATA
from tests.process_output import own_lines


@pytest.mark.slow  # 80 s of compiling three steps; the fast suite covers its parts
def test_bench_quick_json():
  """Every mode's row. Fast tests cover the parts: the bench CLI and JSON
  (``test_bench_scaling_*``), fused against per-update dispatch
  (``test_train_step.py::test_two_dispatches_equal_one``) and the bfloat16 step
  (``test_train_step.py::test_mixed_precision_keeps_float32_parameters_and_optimiser_state``)."""
  result = subprocess.run(
      [sys.executable, "-m", "benchmarks.bench", "--config", "configs/mnist.py", "--quick", "--json",
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



def test_bench_scaling_reports_the_ratio_to_the_paper_size_and_compile_seconds():
  result = subprocess.run(
      [sys.executable, "-m", "benchmarks.bench", "--scaling=toy", "--quick", "--json", "--dtypes=float32"],
      cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)), capture_output=True, text=True,
      timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  rows = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
  assert [(r["data"], r["train_size"]) for r in rows] == [("toy", 400), ("toy", 1_000_000)]
  assert rows[0]["ratio_to_paper"] == 1.0 and rows[0]["target"] is None
  ratio = rows[1]["us_per_update"] / rows[0]["us_per_update"]
  assert rows[1]["ratio_to_paper"] == pytest.approx(ratio)
  assert rows[1]["target"] == 1.5 and rows[1]["within_target"] == (ratio <= 1.5)
  assert all(r["us_per_update"] > 0 and r["compile_s"] > 0 and r["mode"] == "fused"
             for r in rows)


def test_bench_scaling_refuses_an_unknown_dataset_in_one_line():
  result = subprocess.run([sys.executable, "-m", "benchmarks.bench", "--scaling=toy,imagenet"], cwd=REPO,
                          env=dict(os.environ, PYTHONPATH=str(REPO)), capture_output=True,
                          text=True, timeout=600)
  assert result.returncode != 0 and "Traceback" not in result.stderr
  assert own_lines(result.stderr)[-1] == (
      "error: --scaling: unknown datasets ['imagenet']; use some of ['toy', 'mnist', 'cifar10']")


def test_bench_scaling_tiles_a_partial_cifar10_copy_up_to_the_full_training_set(monkeypatch):
  root = Path(os.environ.get("DELIGAN_DATA_DIR", SHARED_DATA))
  if not (root / "cifar10" / "cifar-10-batches-py").is_dir():
    pytest.skip(f"no CIFAR-10 copy in {root}/cifar10 (set DELIGAN_DATA_DIR)")
  monkeypatch.setenv("DELIGAN_DATA_DIR", str(root))
  config, (paper, full), note = bench.scaling_sets("cifar10")
  all_present = config.data.copy_and_resolve_references()
  all_present.num_train = 0
  present = len(datasets.load(all_present).x)
  if present >= 50_000:
    pytest.skip("the CIFAR-10 copy is complete: nothing to tile")
  assert config.data.name == "cifar10" and len(paper.x) == config.data.num_train == 2000
  assert full.x.shape == (50_000, 32, 32, 3) and full.labels.shape == (50_000,)
  assert note == f"50000 tiled from the {present} images present"
  np.testing.assert_array_equal(full.x[present:2 * present], full.x[:present])
  np.testing.assert_array_equal(full.labels[present:2 * present], full.labels[:present])

"""One run over two processes on localhost (2 simulated CPU devices each) equals a run of one.

The processes meet through ``jax.distributed`` (gloo collectives on CPU); their 4
devices form the mesh that 4 devices of one process form, so the two runs compute
the same program and may differ only by the order in which sums over the batch
are added (the cross-process all-reduce is gloo's, the in-process one XLA's):
``conftest.reordering_bound``, as for the device layouts.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from deligan_jax import cli
from deligan_jax import sampling
from deligan_jax.runs import checkpoints
from deligan_jax.runs import metrics_log as run_log
from deligan_jax import config as config_lib
from deligan_jax.data import datasets
from tests.conftest import REPO, SHARED_DATA, training_gaps_within_bound
from tests.distributed_check import HEARTBEAT_TIMEOUT, config_for
from tests.test_topology import run_check
from tests.process_output import own_lines

PROCESSES = 2
STEPS = 8


def test_earlier_bool_configs_and_flags_read_as_enabled():
  """config.json files and command lines of versions where ``distributed`` was a bool."""
  old = json.loads(config_lib.to_json(config_lib.base_config()))
  old["distributed"] = True
  config = config_lib.from_json(json.dumps(old))
  assert config.distributed.enabled is True and config.distributed.num_processes is None
  assert cli.renamed_flags(["train.py", "--config.distributed=True", "--config.distributed",
                            "--config.distributed.num_processes=2"]) == [
      "train.py", "--config.distributed.enabled=True", "--config.distributed.enabled",
      "--config.distributed.num_processes=2"]


@pytest.mark.parametrize("field, value, message", [
    ("coordinator_address", "host0", "must be 'host:port'"),
    ("num_processes", 0, "must be positive"),
    ("process_id", 2, "must be in [0, num_processes=2)"),
    ("initialization_timeout", 0, "must be positive"),
    ("heartbeat_timeout", 0, "must be positive")])
def test_bad_distributed_fields_are_named(field, value, message):
  config = config_lib.base_config()
  config.distributed.num_processes = 2
  config.distributed[field] = value
  with pytest.raises(config_lib.ConfigError, match=re.escape(f"config.distributed.{field}: "
                                                             f"{message}")):
    config_lib.validate(config)


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def env_with_devices(num_devices: int) -> dict[str, str]:
  flags = f"{os.environ['XLA_FLAGS']} --xla_force_host_platform_device_count={num_devices}"
  return dict(os.environ, PYTHONPATH=str(REPO), XLA_FLAGS=flags,
              DELIGAN_DATA_DIR=os.environ.get("DELIGAN_DATA_DIR", str(SHARED_DATA)))


def start(address: str, process_id: int, root, runs: str, num_devices: int = 2,
          num_processes: int = PROCESSES) -> subprocess.Popen:
  return subprocess.Popen(
      [sys.executable, "-m", "tests.distributed_check", address, str(num_processes),
       str(process_id), str(root), runs], cwd=REPO, env=env_with_devices(num_devices),
      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen, timeout: float = 900) -> dict:
  out, err = process.communicate(timeout=timeout)
  assert process.returncode == 0, err[-3000:]
  return json.loads(out.strip().splitlines()[-1])


def run_two_processes(root, runs: str) -> list[dict]:
  address = f"localhost:{free_port()}"
  processes = [start(address, k, root, runs) for k in range(PROCESSES)]
  return [finish(p) for p in processes]


# Trained by one pair of processes each; MNIST's programs take minutes to compile on a
# 2-core CPU, so its group is in the slow suite.
GROUPS = {"toy": [("toy", 1), ("toy", 4)], "mnist": [("mnist", 1), ("mnist", 4)]}


@pytest.fixture(scope="module", params=["toy", pytest.param("mnist", marks=pytest.mark.slow)])
def both_runs(request, tmp_path_factory):
  """The group's runs trained by two processes of 2 devices and by one process of 4."""
  runs = GROUPS[request.param]
  data = Path(os.environ.get("DELIGAN_DATA_DIR", SHARED_DATA))
  if request.param == "mnist" and not (data / "mnist" / "train-images-idx3-ubyte.gz").exists():
    pytest.skip(f"MNIST idx files not found in {data / 'mnist'} (set DELIGAN_DATA_DIR)")
  spec = ",".join(f"{name}:{seeds}:{STEPS}" for name, seeds in runs)
  two, one = tmp_path_factory.mktemp("two_processes"), tmp_path_factory.mktemp("one_process")
  address = f"localhost:{free_port()}"  # all three processes at once
  # The paper's batch of 50 and 1 seed would leave process 1's devices idle: refused.
  processes = [start(address, k, two, f"{spec},toy:1:{STEPS}:50") for k in range(PROCESSES)]
  alone = start("none", 0, one, spec, num_devices=PROCESSES * 2, num_processes=1)
  return runs, two, one, [finish(p) for p in processes], finish(alone)


def test_two_processes_form_the_one_process_mesh(both_runs):
  runs, two, _, reports, alone = both_runs
  assert sorted(r["process"] for r in reports) == [0, 1]
  for report in reports:
    assert (report["processes"], report["devices"], report["local_devices"]) == (2, 4, 2)
    for name, seeds in runs:
      run = report["runs"][str(two / f"{name}_{seeds}_8")]
      # 1 seed: the batch split over all 4 devices; 4 seeds: one a device.
      assert run["mesh"] == ({"seeds": 1, "data": 4} if seeds == 1 else {"seeds": 4, "data": 1})
      assert run["state_devices"] == 4 and run["local_shards"] == 2  # its own devices only
    refused = report["runs"][str(two / "toy_1_50")]["refused"]
    assert refused.startswith("a run over several processes must use all their devices: 2 of "
                              "4 devices idle") and "--config.num_seeds=2 " in refused
    assert not (two / "toy_1_50").exists()
  assert alone["processes"] == 1 and alone["devices"] == 4
  assert [r["mesh"] for r in alone["runs"].values()] == [
      r["mesh"] for r in list(reports[0]["runs"].values())[:len(runs)]]


def test_two_processes_train_what_one_process_trains(both_runs):
  runs, two, one, _, _ = both_runs
  for name, num_seeds in runs:
    config = config_for(name, num_seeds, STEPS, None, 1, 0)
    x = datasets.load(config.data).x
    for seed_two, seed_one in zip(
        checkpoints.run_workdirs(config, str(two / f"{name}_{num_seeds}_8")),
        checkpoints.run_workdirs(config, str(one / f"{name}_{num_seeds}_8"))):
      seed_config, _, state_two = checkpoints.load_run(seed_two)  # 2 processes -> 1 device
      _, _, state_one = checkpoints.load_run(seed_one)
      assert int(state_two.step) == STEPS
      if num_seeds == 1:
        report = training_gaps_within_bound(seed_config, state_two, state_one, x, STEPS)
        assert report["within_bound"], (seed_two, report)
      else:
        # Each seed on one device, in both runs: its step sums nothing across devices, so
        # nothing can be added in another order.
        for u, v in zip(jax.tree.leaves(state_two), jax.tree.leaves(state_one)):
          np.testing.assert_array_equal(u, v)
      # Process 0 alone wrote the metrics: one record per log step, as one process writes.
      steps = [r["step"] for r in run_log.read_metrics(seed_two)]
      assert steps == [r["step"] for r in run_log.read_metrics(seed_one)] == [4, 8]
      for written in ("config.json", "samples.png", "loss_curves.png"):
        assert os.path.exists(os.path.join(seed_two, written)), written
    if num_seeds > 1:  # and the summary over seeds
      summary = run_log.read_metrics(str(two / f"{name}_{num_seeds}_8"))
      assert [r["step"] for r in summary] == [4, 8]


def test_two_processes_checkpoints_sample_evaluate_and_resume_on_one_device(both_runs,
                                                                             tmp_path):
  """The topology matrix's 2 processes -> 1: sample, eval and resumed training of a run.

  The run of 4 seeds, whose checkpoint each process wrote its own seeds' shards of; the
  samples equal those of the one-process run of the same config bit for bit (their states
  are). One seed's state is replicated and written whole by process 0, as by one process
  of 4 devices (``tests/test_topology.py``).
  """
  runs, two, one, _, _ = both_runs
  if runs[0][0] != "toy":
    pytest.skip("tests.topology_check reads toy runs")
  num_seeds = 4
  workdir = tmp_path / f"toy_{num_seeds}"
  shutil.copytree(two / f"toy_{num_seeds}_8", workdir)
  read = run_check("read", workdir, num_seeds, 1)
  assert len(read["seeds"]) == num_seeds
  config = config_for("toy", num_seeds, STEPS, None, 1, 0)
  one_run = str(one / f"toy_{num_seeds}_8")
  for seed_workdir, seed_one in zip(checkpoints.run_workdirs(config, str(workdir)),
                                    checkpoints.run_workdirs(config, one_run)):
    seed = read["seeds"][seed_workdir]
    np.testing.assert_array_equal(seed["samples"], sampling.from_run(seed_one, 4))
    assert seed["modes_covered"] in (0, 1, 2)  # evaluated
    assert seed["steps"] == [4, 8, 12]  # continued from the two processes' batch 8


def test_a_process_killed_mid_run_ends_the_other_and_both_resume(tmp_path):
  """Process 1 dies (SIGKILL) after the first checkpoint; process 0 ends by itself within
  the heartbeat timeout; both started again resume from the last checkpoint."""
  runs = "toy:1:400"  # long enough to be killed mid-run
  address = f"localhost:{free_port()}"
  processes = [start(address, k, tmp_path, runs) for k in range(PROCESSES)]
  checkpoint_dir = tmp_path / "toy_1_8" / checkpoints.CHECKPOINT_DIR
  deadline = time.monotonic() + 600
  while not (checkpoint_dir.exists() and any(p.name.isdigit() for p in checkpoint_dir.iterdir())):
    assert time.monotonic() < deadline and all(p.poll() is None for p in processes)
    time.sleep(0.2)
  processes[1].send_signal(signal.SIGKILL)
  killed = time.monotonic()
  processes[1].communicate(timeout=60)
  _, err = processes[0].communicate(timeout=HEARTBEAT_TIMEOUT + 60)
  # Its collective with the lost process fails (our line), or the coordination service
  # misses the lost process's heartbeats and JAX ends this one (JAX's line), or gloo's
  # receiving thread aborts in C++ before Python sees the failure (gloo's line).
  assert processes[0].returncode != 0
  assert ("another process of this run stopped" in err
          or "This most likely indicates that another task died" in err
          or ("gloo::EnforceNotMet" in err and processes[0].returncode == -signal.SIGABRT)
          ), err[-3000:]
  assert time.monotonic() - killed < HEARTBEAT_TIMEOUT + 30
  saved = max(int(p.name) for p in checkpoint_dir.iterdir() if p.name.isdigit())
  assert 0 < saved < 400
  # Started again, both processes go on from the saved batch: the metrics continue, the
  # records past it (none, or one of the killed run's) replaced.
  reports = run_two_processes(tmp_path, runs.replace(":400", f":{saved + 8}"))
  assert all(r["runs"] for r in reports)
  steps = [r["step"] for r in run_log.read_metrics(str(tmp_path / "toy_1_8"))]
  assert steps == list(range(4, saved + 9, 4))


def test_a_collective_failed_by_a_lost_process_ends_in_one_line():
  """The error a gloo collective raised in a run whose other process was killed (copied
  from such a run) ends the process with one line; other errors pass through, also one
  that names a reset connection of its own."""
  script = """
import jax
from deligan_jax.step import distributed
distributed.is_multi_process = lambda: True
try:
  with distributed.one_line_when_a_process_stops():
    raise ValueError("tensorflow-datasets could not load MNIST 'train' (ConnectionResetError: "
                     "[Errno 104] Connection reset by peer)")
except ValueError:
  print("passed through", flush=True)
with distributed.one_line_when_a_process_stops():
  raise jax.errors.JaxRuntimeError(
      "UNKNOWN: Gloo AllGather failed: [external/gloo/gloo/transport/tcp/pair.cc:538] "
      "Read error [127.0.0.1]:17093: Connection reset by peer")
"""
  done = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env_with_devices(1),
                        capture_output=True, text=True, timeout=120)
  assert done.returncode == 1 and done.stdout == "passed through\n"
  assert own_lines(done.stderr) == [
      "error: another process of this run stopped (killed, crashed or preempted), so this one "
      "ends too: start every process again with the same command, and the run resumes from "
      "its last checkpoint (UNKNOWN: Gloo AllGather failed: [external/gloo/gloo/transport/tcp/"
      "pair.cc:538] Read error [127.0.0.1]:17093: Connection reset by peer)"], done.stderr


def test_an_unreachable_coordinator_ends_the_start_within_its_timeout(tmp_path):
  """Process 1 with no coordinator, and a coordinator whose other process never comes."""
  timeout = 5
  started = time.monotonic()
  processes = {k: subprocess.Popen(
      [sys.executable, "train.py", "--config", "configs/toy.py", "--workdir",
       str(tmp_path / f"run{k}"), "--config.distributed.enabled=True",
       f"--config.distributed.coordinator_address=localhost:{free_port()}",
       "--config.distributed.num_processes=2", f"--config.distributed.process_id={k}",
       f"--config.distributed.initialization_timeout={timeout}"], cwd=REPO,
      env=env_with_devices(2), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
      for k in (1, 0)}
  for k, p in processes.items():
    _, err = p.communicate(timeout=120)
    assert p.returncode == 1
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "did not all meet within 5 s" in errors[0], err[-2000:]
    # JAX's own deadline (30 s later) would end it with a C++ stack trace instead.
    assert "Traceback" not in err and "Check failure" not in err, err[-2000:]
    assert not (tmp_path / f"run{k}").exists()
  # Starting Python and importing the package takes most of it (two at once on 2 cores).
  assert time.monotonic() - started < timeout + 60

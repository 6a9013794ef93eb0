"""One run, one writer: a second run on a workdir is refused; a killed run's lock is taken over."""

import os
import signal
import socket
import subprocess
import sys

import pytest

from deligan_jax import training
from deligan_jax.runs import lock as workdir_lock
from tests.conftest import REPO, small_config
from tests.test_cli import TINY, one_line_refusal
from tests.test_faults import snapshot
from tests.test_training import run_cli

HOLD = ("import sys, time; from deligan_jax.runs import lock as workdir_lock\n"
        "with workdir_lock.owned(sys.argv[1]) as claim:\n"
        "  claim(); print('held', flush=True); time.sleep(600)")


def hold_lock(workdir) -> subprocess.Popen:
  """Another process that owns ``workdir`` until killed."""
  holder = subprocess.Popen([sys.executable, "-c", HOLD, str(workdir)], cwd=REPO,
                            env=dict(os.environ, PYTHONPATH=str(REPO)), stdout=subprocess.PIPE,
                            text=True)
  assert holder.stdout.readline().strip() == "held"
  return holder


def test_a_held_workdir_is_refused_naming_its_owner(tmp_path):
  with workdir_lock.owned(str(tmp_path)) as claim:
    claim()
    with pytest.raises(workdir_lock.WorkdirBusy) as refused:
      with workdir_lock.owned(str(tmp_path)):
        pass
  message = str(refused.value)
  assert f"pid {os.getpid()} on {socket.gethostname()} since " in message
  assert "\n" not in message
  with workdir_lock.owned(str(tmp_path)) as claim:  # released at the end of the block
    claim()
  assert (tmp_path / workdir_lock.LOCK_FILE).read_text() == ""


def test_second_train_is_refused_and_a_killed_owners_lock_is_taken_over(tmp_path):
  workdir = tmp_path / "run"
  training.train_and_evaluate(small_config("toy", "bimodal,gan"), str(workdir))
  holder = hold_lock(workdir)
  try:
    before = snapshot(workdir)
    refused = run_cli("train.py", "--config", "configs/toy.py:bimodal,gan", *TINY,
                      "--config.batch_size=8", "--config.latent.num_components=8",
                      "--config.num_steps=12", "--workdir", str(workdir))
    one_line_refusal(refused, f"workdir {workdir} is in use by the run of pid {holder.pid} on "
                     f"{socket.gethostname()} since ")
    assert snapshot(workdir) == before  # nothing of the owner's run touched
  finally:
    holder.send_signal(signal.SIGKILL)
    holder.wait()

  resumed = run_cli("train.py", "--config", "configs/toy.py:bimodal,gan", *TINY,
                    "--config.batch_size=8", "--config.latent.num_components=8",
                    "--config.num_steps=12", "--workdir", str(workdir))
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  took_over = [l for l in resumed.stderr.splitlines() if "took over the lock" in l]
  assert len(took_over) == 1 and f"pid {holder.pid} " in took_over[0], resumed.stderr[-3000:]
  assert sorted(os.listdir(workdir / "checkpoints")) == ["12", "4", "8"]

"""A full disk (docs/faults.md): one line naming the workdir, its last complete checkpoint and
what to do, whatever was being written; the same command resumes once there is room."""

import errno
import io
import json
import os
import re
import shutil
import subprocess

import numpy as np
import pytest

from deligan_jax.runs import atomic_files, checkpoints, disk_full, metrics_log, plots
from deligan_jax import errors
from deligan_jax import training
from tests.conftest import small_config
from tests.process_output import own_lines
from tests.test_training import run_cli, tree_equal

# small_config("toy", "bimodal,deligan") on the command line, with 16 batches, every
# checkpoint kept and no pictures before the end: the third checkpoint (about 150 KB, far more
# than the metrics written between checkpoints) no longer fits on a 400 KB disk.
TOY_RUN = ["train.py", "--config", "configs/toy.py:bimodal,deligan", "--config.batch_size=8",
           "--config.latent.num_components=8", "--config.num_steps=16",
           "--config.steps_per_dispatch=4", "--config.log_every=4", "--config.sample_every=400",
           "--config.checkpoint_every=4", "--config.num_plot_samples=16",
           "--config.keep_checkpoints=10"]


def toy_config():
  config = small_config("toy", "bimodal,deligan")
  config.num_steps = 16
  config.sample_every = 400
  config.keep_checkpoints = 10
  return config


@pytest.fixture
def small_disk(tmp_path):
  """A 400 KB filesystem (tmpfs) that ``grow`` enlarges; skips where mounting is not permitted."""
  disk = tmp_path / "disk"
  disk.mkdir()
  if shutil.which("mount") is None:
    pytest.skip("no mount command")
  mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=400k", "tmpfs", str(disk)],
                           capture_output=True, text=True)
  if mounted.returncode != 0:
    pytest.skip(f"cannot mount a small filesystem here: {mounted.stderr.strip()}")
  yield disk
  subprocess.run(["umount", "-l", str(disk)], check=True)


def grow(disk, size="8m"):
  subprocess.run(["mount", "-o", f"remount,size={size}", str(disk)], check=True)


def error_lines(result) -> list[str]:
  stderr = result.stderr.replace("\r", "\n")
  assert result.returncode == 1 and "Traceback" not in stderr, stderr[-3000:]
  lines = own_lines(stderr)
  assert [l for l in lines if l.startswith("error:")] == lines[-1:], result.stderr[-3000:]
  return lines


def complete_steps(workdir) -> list[int]:
  return sorted(int(n) for n in os.listdir(workdir / "checkpoints") if n.isdigit())


def test_a_run_on_a_full_disk_ends_in_one_line_and_the_same_command_resumes(small_disk,
                                                                             tmp_path):
  workdir = small_disk / "run"
  full = run_cli(*TOY_RUN, "--workdir", str(workdir))
  line = error_lines(full)[-1]
  last = complete_steps(workdir)[-1]
  assert 4 <= last < 16
  # Where the file that failed is known (orbax's arrays name it, its metadata do not), too.
  assert re.fullmatch(
      f"error: the disk of workdir {re.escape(str(workdir))} is full \\(No space left on "
      f"device(, writing {re.escape(str(workdir))}/\\S+)?\\); the last complete checkpoint is "
      f"{last}\\. Free space there or move the workdir to a disk with room, then run the same "
      "command again: training resumes from the last complete checkpoint", line), line
  partial = [n for n in os.listdir(workdir / "checkpoints") if not n.isdigit()]
  assert partial == [f"{last + 4}{checkpoints.PARTIAL_SUFFIX}"]

  grow(small_disk)
  resumed = run_cli(*TOY_RUN, "--workdir", str(workdir))
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  for name in partial:  # removed on the next start, said once
    assert f"removed {workdir / 'checkpoints' / name}, a checkpoint whose write did not " \
           "finish" in resumed.stderr
  assert sorted(os.listdir(workdir / "checkpoints")) == ["12", "16", "4", "8"]
  # Nothing lost: the state and the metrics of a run that never met a full disk.
  straight = tmp_path / "straight"
  training.train_and_evaluate(toy_config(), str(straight))
  assert tree_equal(checkpoints.load_run(str(workdir))[2], checkpoints.load_run(str(straight))[2])
  assert (workdir / "metrics.jsonl").read_text() == (straight / "metrics.jsonl").read_text()


def test_stderr_drops_only_the_closed_loop_tracebacks_even_interleaved():
  from deligan_jax.runs import disk_full
  out = io.StringIO()
  stream = disk_full._WithoutClosedLoopTracebacks(out)
  for piece in ("run: 50%", "\r100%\n", "Traceback (most recent call last):\n", "  File a\n",
                "\rrun: 100%",
                "Traceback (most recent call last):\n", "    raise\n",
                "RuntimeError: Event loop is closed\n", "    self._check_closed()\n",
                "RuntimeError: Event loop is closed\n", "\n", "kept\n",
                "Traceback (most recent call last):\n  File b\nValueError: a real one\n",
                "error: the disk of workdir w is full\n"):
    stream.write(piece)
  assert out.getvalue() == ("run: 50%\r100%\n\rrun: 100%\nkept\nTraceback (most recent call last):\n"
                            "  File b\nValueError: a real one\nerror: the disk of workdir w is "
                            "full\n")


def test_the_last_line_drops_a_traceback_another_thread_is_still_printing():
  out = io.StringIO()
  stream = disk_full._WithoutClosedLoopTracebacks(out)
  stream.write("\rrun: 100%")
  stream.write("Traceback (most recent call last):\n")
  stream.write("\n")  # the progress bar's end, held as a blank line of that traceback
  stream.write_last("error: the disk of workdir w is full\n")
  stream.write('  File "writer.py", line 1\n')
  stream.write("RuntimeError: Event loop is closed\n")
  assert out.getvalue() == "\rrun: 100%\nerror: the disk of workdir w is full\n"
  out = io.StringIO()
  stream = disk_full._WithoutClosedLoopTracebacks(out)
  stream.write("kept\n")
  stream.write_last("error: the disk of workdir w is full\n")
  assert out.getvalue() == "kept\nerror: the disk of workdir w is full\n"


def test_once_a_full_disk_was_seen_every_traceback_is_dropped():
  out, seen = io.StringIO(), []
  stream = disk_full._WithoutClosedLoopTracebacks(out, quiet=lambda: bool(seen))
  failure = "Traceback (most recent call last):\n  File a\nCancelledError\n"
  stream.write(failure)
  seen.append(OSError(errno.ENOSPC, "No space left on device"))
  stream.write(failure)
  stream.write("kept\n")
  assert out.getvalue() == failure + "kept\n"


@pytest.fixture(scope="module")
def evaluated_toy(tmp_path_factory):
  """A finished, evaluated toy run (on a disk with room) that the tests copy from."""
  workdir = tmp_path_factory.mktemp("trained") / "run"
  training.train_and_evaluate(toy_config(), str(workdir))
  result = run_cli("eval.py", "--workdir", str(workdir))
  assert result.returncode == 0, result.stderr[-3000:]
  return workdir


def fill(disk, leave: int = 8192) -> None:
  """Leaves about ``leave`` bytes free on ``disk``."""
  stat = os.statvfs(disk)
  (disk / "filler").write_bytes(b"\0" * max(stat.f_bavail * stat.f_frsize - leave, 0))


def tree_bytes(folder) -> dict[str, bytes]:
  return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
          if p.is_file()}


def test_eval_on_a_full_disk_ends_in_one_line_and_the_same_command_scores_alike(
    small_disk, evaluated_toy):
  workdir = small_disk / "run"
  shutil.copytree(evaluated_toy, workdir, ignore=shutil.ignore_patterns(
      "eval*", "*.png", "tensorboard", "samples", "4", "8", "12"))
  checkpoint = tree_bytes(workdir / "checkpoints")
  fill(small_disk)
  line = error_lines(run_cli("eval.py", "--workdir", str(workdir)))[-1]
  assert re.fullmatch(
      f"error: the disk of workdir {re.escape(str(workdir))} is full \\(No space left on "
      f"device, writing {re.escape(str(workdir))}/\\S+\\); the last complete checkpoint is 16\\. "
      "Free space there or move the workdir to a disk with room, then run the same command "
      "again: the checkpoint is untouched and is scored again, to the same numbers", line), line
  assert tree_bytes(workdir / "checkpoints") == checkpoint
  assert not list(workdir.glob("*.tmp")) and not (workdir / "eval.json").exists()

  (small_disk / "filler").unlink()
  again = run_cli("eval.py", "--workdir", str(workdir))
  assert again.returncode == 0, again.stderr[-3000:]
  scores = lambda run: {k: v for k, v in json.loads((run / "eval.json").read_text()).items()
                        if k != "workdir"}
  assert scores(workdir) == scores(evaluated_toy)


def test_sample_to_a_full_disk_names_the_output_folder_not_the_run(small_disk, evaluated_toy):
  out = small_disk / "out" / "samples.npy"
  out.parent.mkdir()
  fill(small_disk)
  command = ("-m", "deligan_jax.cli.sample", "--workdir", str(evaluated_toy), "--num", "5000",
             "--out", str(out))
  line = error_lines(run_cli(*command))[-1]
  assert line == (f"error: the disk of {out.parent} is full (No space left on device, writing "
                  f"{out}). Free space there or write elsewhere, then run the same command "
                  "again: the checkpoint is untouched and the same samples are drawn again"), line
  assert os.listdir(out.parent) == []  # no partial file

  (small_disk / "filler").unlink()
  assert run_cli(*command).returncode == 0
  assert np.load(out).shape == (5000, 2)


def test_compare_tables_on_a_full_disk_end_in_one_line(small_disk, evaluated_toy):
  workdir = small_disk / "comparison"
  for arm in ("gan", "deligan"):
    (workdir / arm).mkdir(parents=True)
    for name in ("config.json", "eval.json"):
      shutil.copy(evaluated_toy / name, workdir / arm / name)
  fill(small_disk, leave=0)
  command = ("-m", "deligan_jax.cli.compare", "--tabulate", "--workdir", str(workdir))
  line = error_lines(run_cli(*command))[-1]
  assert re.fullmatch(f"error: the disk of {re.escape(str(workdir))} is full \\(No space left "
                      f"on device, writing {re.escape(str(workdir))}/comparison\\.\\S+\\)\\. "
                      "Free space there or write elsewhere, then run the same command again: "
                      "the tables are written again", line), line
  assert sorted(p.name for p in workdir.iterdir()) == ["deligan", "gan"]

  (small_disk / "filler").unlink()
  assert run_cli(*command).returncode == 0
  assert json.loads((workdir / "comparison.json").read_text()).keys() == {"gan", "deligan"}


def test_a_write_that_names_no_file_or_its_temporary_is_named_by_the_file_meant(tmp_path):
  meant = tmp_path / "missing" / "eval.json"
  with pytest.raises(FileNotFoundError) as raised:  # open(meant + ".tmp") fails
    atomic_files.write_atomic(str(meant), "{}")
  assert raised.value.filename == str(meant)
  with pytest.raises(OSError) as raised, atomic_files.naming("/w/metrics.jsonl"):
    raise OSError(errno.ENOSPC, "No space left on device")
  assert (raised.value.errno, raised.value.filename) == (errno.ENOSPC, "/w/metrics.jsonl")


def test_appending_metrics_to_a_full_disk_names_the_metrics_file(small_disk):
  workdir = small_disk / "run"
  workdir.mkdir()
  (workdir / "config.json").write_text("{}")
  writer = metrics_log.MetricWriter(str(workdir), resume_step=0)
  fill(small_disk, leave=0)
  with pytest.raises(OSError) as raised:
    for step in range(100_000):  # until a flush finds no room
      writer.write(step, {"g_loss": 0.5, "note": "x" * 100})
  (small_disk / "filler").unlink()
  writer.close()
  assert raised.value.filename == str(workdir / "metrics.jsonl")
  line = disk_full.message(raised.value, str(workdir))
  assert line.startswith(f"the disk of workdir {workdir} is full (No space left on device, "
                         f"writing {workdir / 'metrics.jsonl'}); there is no complete checkpoint")


@pytest.mark.parametrize("is_run", [True, False])
def test_a_full_disk_without_a_file_names_the_workdir_as_a_run_only_if_it_is_one(tmp_path,
                                                                                  is_run):
  if is_run:
    (tmp_path / "config.json").write_text("{}")
  line = disk_full.message(OSError(errno.ENOSPC, "No space left on device"), str(tmp_path),
                           again="it resumes")
  form = "workdir " if is_run else ""
  assert line.startswith(f"the disk of {form}{tmp_path} is full (No space left on device)")
  assert line.endswith("then run the same command again: it resumes")


def test_a_picture_on_a_full_disk_names_itself_and_leaves_no_partial_file(small_disk):
  path = small_disk / "grid.png"
  fill(small_disk, leave=0)
  with pytest.raises(OSError) as raised:
    plots.save_image_grid(np.random.default_rng(0).uniform(-1, 1, (64, 28, 28, 1)), str(path))
  assert (raised.value.errno, raised.value.filename) == (errno.ENOSPC, str(path))
  assert sorted(p.name for p in small_disk.iterdir()) == ["filler"]

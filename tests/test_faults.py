"""Faults and bad input (docs/faults.md): one test per row of its tables.

Every refusal is checked twice: the message names what is wrong, and the
workdir is left exactly as it was (every file's bytes and modification time,
every folder), which shows that the check ran before anything was written.
"""

import errno
import gc
import gzip
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
import tracemalloc

import jax
import numpy as np
import pytest

from deligan_jax.runs import checkpoints
from deligan_jax import config as config_lib
from deligan_jax.data.dataset import DataError, Dataset
from deligan_jax.data.points import toy_points
from deligan_jax.step import state as train_state
from deligan_jax.step.driver import StepDriver
from deligan_jax import errors
from deligan_jax import training
from tests.conftest import REPO, small_config
from tests.process_output import own_lines
from tests.test_image_data import dot, write_png
from tests.test_training import run_cli, tree_equal


def snapshot(root) -> dict:
  """Every folder under ``root``, and every file's bytes and modification time."""
  found = {}
  for folder, _, files in os.walk(root):
    found[os.path.relpath(folder, root)] = None
    for name in files:
      path = os.path.join(folder, name)
      with open(path, "rb") as f:
        found[os.path.relpath(path, root)] = (f.read(), os.stat(path).st_mtime_ns)
  return found


def refused(config, workdir, error, match):
  """Trains ``config`` in ``workdir``; expects ``error`` and a workdir left as it was."""
  before = snapshot(workdir)
  with pytest.raises(error, match=match):
    training.train_and_evaluate(config, str(workdir))
  assert snapshot(workdir) == before


def random_images(n: int, shape=(28, 28, 1)) -> Dataset:
  images = np.random.default_rng(0).uniform(-1, 1, (n, *shape)).astype(np.float32)
  return Dataset(images, None, "random")


def toy_config():
  return small_config("toy", "bimodal,deligan")


def mnist_config():
  config = small_config("mnist", "deligan")
  config.num_steps = 0  # a run that only initialises: the data rows need no training
  return config


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
  """A finished toy run: config.json, metrics, samples and checkpoints at batches 4 and 8."""
  workdir = tmp_path_factory.mktemp("toy") / "run"
  training.train_and_evaluate(toy_config(), str(workdir))
  return workdir


@pytest.fixture(scope="module")
def mnist_run(tmp_path_factory):
  """A run of the MNIST networks (on random images) in a workdir of its own."""
  workdir = tmp_path_factory.mktemp("mnist") / "run"
  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(training.datasets, "load", lambda _: random_images(40))
    training.train_and_evaluate(mnist_config(), str(workdir))
  return workdir


@pytest.fixture
def toy_workdir(toy_run, tmp_path):
  """A copy of ``toy_run`` that a test may break (modification times kept)."""
  shutil.copytree(toy_run, tmp_path / "run")
  return tmp_path / "run"


@pytest.fixture
def mnist_workdir(mnist_run, tmp_path):
  shutil.copytree(mnist_run, tmp_path / "run")
  return tmp_path / "run"


# --- config --------------------------------------------------------------------------------


@pytest.mark.parametrize("field, value, match", [
    ("optim.lr", -0.1, r"config\.optim\.lr: must be positive"),
    ("num_steps", -1, r"config\.num_steps: must be >= 0"),
    ("log_every", 3, r"config\.log_every: must be a multiple of steps_per_dispatch=4"),
    ("on_non_finite", "retry", r"config\.on_non_finite: must be one of \('stop', 'reseed'\)"),
    ("max_reseeds", -1, r"config\.max_reseeds: must be >= 0"),
])
def test_config_value_out_of_range(toy_workdir, field, value, match):
  config = toy_config()
  config.update_from_flattened_dict({field: value})
  refused(config, toy_workdir, config_lib.ConfigError, match)


@pytest.mark.parametrize("field, value, match", [
    ("latent.dim", None, r"config\.latent\.dim: must be of type int, got None"),
    ("seed", True, r"config\.seed: must be of type int, got True \(bool\)"),
])
def test_config_value_of_the_wrong_type(toy_workdir, field, value, match):
  config = toy_config()
  config.update_from_flattened_dict({field: value})  # ConfigDict's own type check lets both in
  refused(config, toy_workdir, config_lib.ConfigError, match)


def test_config_unknown_field(toy_workdir):
  config = toy_config()
  config.latent.dimension = 3  # a typo in a config file
  refused(config, toy_workdir, config_lib.ConfigError,
          r"config\.latent\.dimension: unknown field")


@pytest.mark.parametrize("override, message", [
    ("--config.num_steps=ten", "flag --config.num_steps=ten: invalid literal for int()"),
    ("--config.latent.dimension=3", "unknown config field in ['--config.latent.dimension']"),
])
def test_cli_refuses_a_bad_override_in_one_line(toy_workdir, override, message):
  before = snapshot(toy_workdir)
  result = run_cli("train.py", "--config", "configs/toy.py", "--workdir", str(toy_workdir),
                   override)
  assert result.returncode != 0
  assert f"FATAL flags error: {message}" in result.stderr and "Traceback" not in result.stderr
  assert snapshot(toy_workdir) == before


# --- model and data ------------------------------------------------------------------------


def test_network_of_another_data_kind(toy_workdir):
  config = toy_config()
  config.data.name = "mnist"
  refused(config, toy_workdir, config_lib.ConfigError,
          r"config\.network\.name: data\.name='mnist' needs the 'mnist' networks, got 'toy'")


def test_num_components_must_equal_batch_size_under_batch_assignment(toy_workdir):
  config = toy_config()
  config.latent.num_components = 10
  refused(config, toy_workdir, config_lib.ConfigError,
          r"config\.latent\.num_components: 'batch' assignment .* must equal batch_size=8, "
          "got 10")


def test_images_of_another_shape_than_the_networks_take(mnist_workdir, monkeypatch):
  monkeypatch.setattr(training.datasets, "load",
                      lambda _: random_images(40, (32, 32, 1)))  # e.g. a folder of 32x32 PNGs
  refused(mnist_config(), mnist_workdir, DataError,
          r"samples of shape \(32, 32, 1\), but the 'mnist' networks \(network\.name\) take "
          r"\(28, 28, 1\)")


def test_batch_larger_than_the_training_set(mnist_workdir, monkeypatch):
  monkeypatch.setattr(training.datasets, "load", lambda _: random_images(5))
  refused(mnist_config(), mnist_workdir, config_lib.ConfigError,
          r"config\.batch_size=8 is larger than the training set \(5 samples\)")


def test_missing_data_directory(mnist_workdir, tmp_path):
  config = mnist_config()
  config.data.dir = str(tmp_path / "no_such_folder")
  refused(config, mnist_workdir, DataError,
          r"data\.dir points at .*no_such_folder, which is not a directory")


def write_damaged_idx(damage: str, real: str, folder) -> None:
  """Writes the training images of ``real`` (an idx .gz file) into ``folder``, damaged."""
  with open(real, "rb") as f:
    compressed = f.read()
  data = gzip.decompress(compressed)
  name = "train-images-idx3-ubyte"  # uncompressed idx files are read too
  if damage == "truncated":  # the header promises more images than follow
    data = data[:len(data) // 2]
  elif damage == "wrong_magic":
    data = b"\x00\x00\x09\x03" + data[4:]
  else:  # "corrupt": a download cut short, so not even the gzip stream is whole
    name, data = name + ".gz", compressed[:len(compressed) // 2]
  (folder / name).write_bytes(data)


@pytest.mark.parametrize("damage, match", [
    ("truncated", r"train-images-idx3-ubyte is truncated: expected 47040000 bytes"),
    ("wrong_magic", r"train-images-idx3-ubyte has bad magic number 0x00000903"),
    ("corrupt", r"train-images-idx3-ubyte\.gz cannot be read \(EOFError"),
])
def test_damaged_idx_files(mnist_workdir, mnist_dir, tmp_path, damage, match):
  folder = tmp_path / damage
  folder.mkdir()
  shutil.copy(os.path.join(mnist_dir, "train-labels-idx1-ubyte.gz"), folder)
  write_damaged_idx(damage, os.path.join(mnist_dir, "train-images-idx3-ubyte.gz"), folder)
  config = mnist_config()
  config.data.dir = str(folder)
  config.data.source = "files"
  refused(config, mnist_workdir, DataError, match)


# --- checkpoints ---------------------------------------------------------------------------


def test_workdir_of_another_config(toy_workdir):
  config = toy_config()
  config.latent.dim = 3
  refused(config, toy_workdir, config_lib.ConfigError,
          r"workdir .* holds a run with a different config \(latent\.dim: 2 -> 3\)")


@pytest.mark.parametrize("field, value, match", [
    ("latent.dim", 3, r"checkpoint 8 in .*checkpoints was written by another model config "
                      r"\(\d+ arrays differ; .*\(8, 2\) there, \(8, 3\) here"),
    ("model", "gan", r"checkpoint 8 in .*checkpoints was written by another model config "
                     r"\(\d+ arrays differ; .*params/mixture/mu: \(8, 2\) there, absent here"),
])
def test_checkpoint_of_another_config(toy_workdir, field, value, match):
  # config.json edited by hand to match the new config: the checkpoints still do not.
  config = toy_config()
  config.update_from_flattened_dict({field: value})
  (toy_workdir / "config.json").write_text(config_lib.to_json(config))
  refused(config, toy_workdir, checkpoints.CheckpointError, match)


def test_config_json_that_cannot_be_read(toy_workdir):
  path = toy_workdir / "config.json"
  path.write_text(path.read_text().replace('"dim"', '"dimension"'))
  refused(toy_config(), toy_workdir, config_lib.ConfigError,
          r"config\.json is not a config this version can read: config\.latent\.dimension: "
          "unknown field")


# --- the workdir ---------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["workdir", "parent"])
def test_workdir_that_is_a_file(tmp_path, where):
  (tmp_path / "taken").write_text("not a folder")
  workdir = tmp_path / "taken" if where == "workdir" else tmp_path / "taken" / "run"
  before = snapshot(tmp_path)
  with pytest.raises(errors.WorkdirError, match=r"cannot be created: .*taken is a file"):
    training.train_and_evaluate(toy_config(), str(workdir))
  assert snapshot(tmp_path) == before


def test_workdir_that_is_not_writable(toy_workdir):
  """A read-only workdir refused by the real CLI.

  As root (here) permission bits do not bind, so the CLI then runs without
  the capabilities that bypass them (setpriv); the refusal is the real one.
  """
  os.chmod(toy_workdir, 0o555)
  privileged = os.access(toy_workdir, os.W_OK)
  if privileged and not shutil.which("setpriv"):
    pytest.skip("running privileged and setpriv is not installed")
  before = snapshot(toy_workdir)
  prefix = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search"] if privileged else []
  env = dict(os.environ, PYTHONPATH=str(REPO))
  result = subprocess.run(
      [*prefix, sys.executable, "train.py", "--config", "configs/toy.py:bimodal,deligan",
       "--workdir", str(toy_workdir), "--config.batch_size=8",
       "--config.latent.num_components=8"],
      cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
  os.chmod(toy_workdir, 0o755)
  assert result.returncode != 0
  assert own_lines(result.stderr)[-1] == (
      f"error: workdir {toy_workdir} cannot be written: {toy_workdir} is not writable for "
      "this user; choose another --workdir or fix its permissions")
  assert snapshot(toy_workdir) == before


# orbax's writer threads, failing, leave an "Event loop is closed" behind.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_disk_full_while_writing_a_checkpoint(toy_workdir, monkeypatch):
  """A write that fails mid-checkpoint stops the run; the previous checkpoint stays the latest.

  The failure is simulated where orbax writes a checkpoint's metadata files,
  after the arrays: the checkpoint's temporary folder is then half written.
  """
  from orbax.checkpoint._src.path import async_path

  async def disk_full(path, text):
    del text
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

  before = snapshot(toy_workdir)
  monkeypatch.setattr(async_path, "write_text", disk_full)
  config = toy_config()
  config.num_steps = 12
  with pytest.raises(checkpoints.CheckpointError,
                     match=r"could not write checkpoint 12 to .*No space left on device.*; the "
                           "latest complete checkpoint is still 8"):
    training.train_and_evaluate(config, str(toy_workdir))
  monkeypatch.undo()

  after = snapshot(toy_workdir)
  kept = {k: v for k, v in before.items() if k.startswith("checkpoints")}
  assert {k: after[k] for k in kept} == kept  # nothing of the checkpoints changed
  assert sorted(d for d in os.listdir(toy_workdir / "checkpoints") if d.isdigit()) == ["4", "8"]
  old_metrics = before["metrics.jsonl"][0]
  assert after["metrics.jsonl"][0].startswith(old_metrics)  # batch 12's record: dropped on resume
  _, _, state = checkpoints.load_run(str(toy_workdir))
  assert int(state.step) == 8

  config.num_steps = 12  # the same command again, with space: resumes from batch 8
  resumed = training.train_and_evaluate(config, str(toy_workdir))
  assert int(resumed.step) == 12


# --- non-finite values ---------------------------------------------------------------------


def metric_steps(workdir):
  return [(r["step"], r.get("reseed")) for r in training.metrics_log.read_metrics(str(workdir))]


def test_reseed_continues_from_the_last_good_checkpoint(toy_run, toy_workdir, monkeypatch,
                                                        caplog):
  """A one-off NaN (injected into the parameters): back to batch 8 with a new key, then on."""
  train = StepDriver.run
  injected = []

  def train_once_poisoned(self, state, num_batches):
    if not injected:
      injected.append(int(state.step))
      state = state.replace(params=jax.tree.map(lambda p: p * np.nan, state.params))
    return train(self, state, num_batches)

  monkeypatch.setattr(StepDriver, "run", train_once_poisoned)
  config = toy_config()
  config.num_steps = 16
  config.on_non_finite = "reseed"
  state = training.train_and_evaluate(config, str(toy_workdir))

  assert injected == [8] and int(state.step) == 16
  assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves(state.params))
  assert metric_steps(toy_workdir) == [(4, None), (8, None), (8, 1), (12, None), (16, None)]
  assert training.metrics_log.read_metrics(str(toy_workdir))[2] == {
      "step": 8, "reseed": 1, "non_finite_batch": 9}
  assert "a loss became NaN or infinite at batch 9; continuing from batch 8 with new " \
      "randomness (retry 1 from there; reseed 1 of at most 3)" in caplog.text
  _, _, good = checkpoints.load_run(str(toy_run))  # batch 8, before the fault
  assert np.array_equal(state.key, train_state.reseed(good, 1).key)
  assert not np.array_equal(state.key, good.key)


def test_reseeds_are_bounded_by_max_reseeds(toy_workdir, monkeypatch):
  poisoned = toy_points("bimodal", 400)
  poisoned[::2] = np.nan  # every batch meets NaN samples, whatever the key
  monkeypatch.setattr(training.datasets, "load",
                      lambda _: Dataset(poisoned, None, "poisoned"))
  config = toy_config()
  config.num_steps = 16
  config.on_non_finite = "reseed"
  config.max_reseeds = 2
  with pytest.raises(training.NonFinite,
                     match=r"a loss became NaN or infinite at batch 9; nothing after the latest "
                           r"checkpoint .* Gave up after 2 reseeds \(config\.max_reseeds\)"):
    training.train_and_evaluate(config, str(toy_workdir))
  assert sorted(d for d in os.listdir(toy_workdir / "checkpoints")) == ["4", "8"]
  assert metric_steps(toy_workdir) == [(4, None), (8, None), (8, 1), (8, 2)]


# --- resource bounds -----------------------------------------------------------------------


def resident_bytes() -> int:
  with open("/proc/self/statm") as f:
    return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_memory_stays_flat_over_many_dispatches(tmp_path, monkeypatch):
  """700 dispatches, each one logged: no memory grows per dispatch.

  Python's heap (tracemalloc) after warm-up grows by less than 128 KiB over
  400 dispatches (keeping each dispatch's metrics would add ~600 KiB), the
  process's resident memory by less than 8 MiB, and the device arrays (count
  and bytes) not at all. The one checkpoint comes after the last measurement:
  orbax keeps ~40 KiB of Python objects per checkpoint written, which would
  hide a per-dispatch leak of that size.
  """
  if not os.path.exists("/proc/self/statm"):
    pytest.skip("resident memory is read from /proc")
  train = StepDriver.run
  measured = []  # after warm-up, every 100 dispatches: (heap, resident, device arrays)
  dispatches = []

  def train_and_measure(self, state, num_batches):
    state, metrics = train(self, state, num_batches)
    dispatches.append(num_batches)
    if len(dispatches) == 100:  # jit and caches warmed up
      tracemalloc.start()
    if len(dispatches) >= 300 and len(dispatches) % 100 == 0:
      gc.collect()  # also other tests' garbage, which would count as live arrays
      live = jax.live_arrays()
      measured.append((tracemalloc.get_traced_memory()[0], resident_bytes(),
                       (len(live), sum(a.nbytes for a in live))))
    return state, metrics

  monkeypatch.setattr(StepDriver, "run", train_and_measure)
  config = toy_config()
  config.num_steps = 700
  config.steps_per_dispatch = config.log_every = 1
  config.checkpoint_every = config.sample_every = 700
  try:
    training.train_and_evaluate(config, str(tmp_path))
  finally:
    tracemalloc.stop()

  assert len(dispatches) == 700 and len(measured) == 5
  heap, resident, arrays = zip(*measured)
  assert len(set(arrays)) == 1  # device arrays: the same count and bytes throughout
  assert heap[-1] - heap[0] < 128 * 1024
  assert resident[-1] - resident[0] < 8 * 1024 * 1024
  assert len(training.metrics_log.read_metrics(str(tmp_path))) == 700


# --- kill anywhere -------------------------------------------------------------------------


KILL_RUN = ["--config.num_steps=400", "--config.steps_per_dispatch=10", "--config.log_every=10",
            "--config.checkpoint_every=20", "--config.sample_every=400",
            "--config.keep_checkpoints=2", "--config.num_plot_samples=50"]


def complete_steps(checkpoint_dir) -> list[int]:
  names = os.listdir(checkpoint_dir) if os.path.isdir(checkpoint_dir) else []
  return sorted(int(name) for name in names if name.isdigit())


def test_killed_anywhere_resumes_exactly(tmp_path):
  """SIGKILL at random moments (one while orbax writes a checkpoint), restart on the same
  workdir each time: the final state and metrics equal those of an uninterrupted run."""
  workdir = tmp_path / "killed"
  checkpoint_dir = workdir / "checkpoints"
  env = dict(os.environ, PYTHONPATH=str(REPO))
  rng = np.random.default_rng(0)

  def start(log_name):
    with open(tmp_path / log_name, "w") as log:
      return subprocess.Popen(
          [sys.executable, "train.py", "--config", "configs/toy.py:bimodal,deligan", *KILL_RUN,
           "--workdir", str(workdir)], cwd=REPO, env=env, stdout=log, stderr=log)

  def partials() -> set[str]:
    names = os.listdir(checkpoint_dir) if checkpoint_dir.is_dir() else []
    return {name for name in names if name.endswith(checkpoints.PARTIAL_SUFFIX)}

  def writing_anew():
    """A checkpoint write of this process: one left by a killed one is first removed."""
    stale = partials()

    def ready() -> bool:
      stale.intersection_update(partials())
      return not stale and bool(partials())
    return ready

  def kill_when(process, ready, delay=0.0):
    deadline = time.time() + 120
    while not ready():
      assert process.poll() is None and time.time() < deadline, "the run ended before its kill"
      time.sleep(0.001)
    time.sleep(delay)
    assert process.poll() is None, "the run ended before its kill"
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL

  # While starting (imports, compilation, restore), during training, while writing a checkpoint.
  moments = ["starting", "training", "writing", "training"]
  for k, moment in enumerate(moments):
    before = complete_steps(checkpoint_dir)
    for attempt in range(5):
      process = start(f"kill_{k}_{attempt}.log")
      if moment == "starting":
        kill_when(process, lambda: True, rng.uniform(0, 3))
      elif moment == "training":  # once this process has saved, at a random time after
        kill_when(process, lambda: complete_steps(checkpoint_dir)[-1:] > before[-1:],
                  rng.uniform(0, 0.5))
      else:
        kill_when(process, writing_anew())
      partial = [n for n in os.listdir(checkpoint_dir) if not n.isdigit()] \
          if checkpoint_dir.is_dir() else []
      if moment != "writing" or partial:  # else the write finished first: kill again
        break
    assert moment != "writing" or partial, "no kill landed inside a checkpoint write"
    # Whatever was cut short, the latest checkpoint is a complete one that restores.
    latest = checkpoints.Checkpointer(str(workdir)).latest_step()
    if latest is not None:
      assert latest == complete_steps(checkpoint_dir)[-1]
      _, _, state = checkpoints.load_run(str(workdir))
      assert int(state.step) == latest

  result = subprocess.run(process.args, cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  assert not [n for n in os.listdir(checkpoint_dir) if not n.isdigit()]  # the partial one: gone

  straight = tmp_path / "straight"
  result = run_cli("train.py", "--config", "configs/toy.py:bimodal,deligan", *KILL_RUN,
                   "--workdir", str(straight))
  assert result.returncode == 0, result.stderr[-3000:]
  assert tree_equal(checkpoints.load_run(str(workdir))[2], checkpoints.load_run(str(straight))[2])
  assert (workdir / "metrics.jsonl").read_text() == (straight / "metrics.jsonl").read_text()


@pytest.mark.parametrize("case, match", [
    ("unknown_category", r"\['dog'\].*available categories: cup"),
    ("unreadable_png", r"sketch .*cup.1\.png cannot be read"),
    ("wrong_shape_pickle", r"data_batch_1.*shape \(5, 3000\)"),
])
def test_bad_image_data(case, match, tmp_path):
  """Image folders and pickles: refused before a workdir (holding a user's file) changes."""
  workdir = tmp_path / "run"
  workdir.mkdir()
  (workdir / "notes.txt").write_text("the user's own file")
  if case == "wrong_shape_pickle":
    config = small_config("cifar10", "deligan")
    config.data.dir = str(tmp_path)
    with open(tmp_path / "data_batch_1", "wb") as f:
      pickle.dump({b"data": np.zeros((5, 3000), np.uint8), b"labels": [0] * 5}, f, protocol=2)
  else:
    config = small_config("sketches", "deligan")
    config.data.dir = str(tmp_path / "png")
    for i in range(8):
      write_png(tmp_path / "png" / "cup" / f"{i}.png", dot(10 + i, 20))
    if case == "unknown_category":
      config.data.categories = ("cup", "dog")
    else:
      (tmp_path / "png" / "cup" / "1.png").write_bytes(b"\x89PNG\r\n\x1a\n cut short")
  refused(config, workdir, DataError, match)

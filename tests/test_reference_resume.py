"""The reference runner resumes exactly: k batches in one go equal k/2, a checkpoint, a fresh
port restored from it, and k/2 more (every variable, the loop's and the rule's state, and
the per-batch records)."""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
from tests.reference import checkpoints  # noqa: E402
from tests.reference import dg_mnist_tf  # noqa: E402

pytestmark = pytest.mark.reference

SIZES = dict(batchsize=4, z_dim=6, gf_dim=4, df_dim=4)
BATCHES = 8  # three per epoch: the checkpoint falls mid-epoch, the resumed half crosses one


def _run(loop, num_batches):
  if loop.counter == 0:
    loop.rule.thres = loop.rule.t1  # from its floor, so that G gets updates within a few batches
  records = []
  loop.run(num_batches, lambda counter, record: records.append((counter, record)))
  return records


def test_resumed_run_equals_an_uninterrupted_one(tmp_path):
  data = np.random.RandomState(5).uniform(-1, 1, (3 * SIZES["batchsize"], 784)).astype(
      np.float32)
  reference = dg_mnist_tf.MnistReference(seed=0, **SIZES)
  whole = dg_mnist_tf.ScriptLoop(reference, data)
  whole_records = _run(whole, BATCHES)
  whole_variables = reference.get()

  reference.reset()
  first_half = dg_mnist_tf.ScriptLoop(reference, data)
  half_records = _run(first_half, BATCHES // 2)
  checkpoints.RunCheckpoints(reference, str(tmp_path)).save(first_half, {"note": "x"})

  fresh = dg_mnist_tf.MnistReference(seed=1, **SIZES)  # other initial values, all overwritten
  resumed = dg_mnist_tf.ScriptLoop(fresh, data)
  assert checkpoints.RunCheckpoints(fresh, str(tmp_path)).restore_latest(resumed) == {
      "note": "x"}
  assert resumed.counter == BATCHES // 2
  half_records += _run(resumed, BATCHES)

  assert half_records == whole_records
  assert {update for _, r in whole_records for update in ("G", "D")
          if r[f"{update.lower()}_updates"]} == {"G", "D"}  # both branches ran
  assert resumed.state() == whole.state()
  resumed_variables = fresh.get()
  assert resumed_variables.keys() == whole_variables.keys()
  for name, value in whole_variables.items():
    np.testing.assert_array_equal(resumed_variables[name], value, err_msg=name)


def test_only_the_newest_checkpoints_are_kept(tmp_path):
  reference = dg_mnist_tf.MnistReference(seed=0, **SIZES)
  loop = dg_mnist_tf.ScriptLoop(reference, np.zeros((SIZES["batchsize"], 784), np.float32))
  saved = checkpoints.RunCheckpoints(reference, str(tmp_path), keep=2)
  for counter in (3, 10, 20):
    loop.counter = counter
    saved.save(loop, {})
  assert saved.counters() == [10, 20]
  assert not list(tmp_path.glob("ckpt-3.*"))

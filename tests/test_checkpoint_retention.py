"""Which checkpoints a run keeps: saves off the schedule never take a scheduled one's place."""

import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from deligan_jax.runs import checkpoints
from deligan_jax.study import plan


def test_an_interruption_save_is_kept_while_newest_and_costs_no_scheduled_checkpoint(tmp_path):
  retention = checkpoints.Retention(keep=2, every=4, last=16)
  manager = ocp.CheckpointManager(
      tmp_path, item_handlers=ocp.StandardCheckpointHandler(),
      options=ocp.CheckpointManagerOptions(preservation_policy=retention,
                                           enable_async_checkpointing=False))
  kept = {}
  for step in (4, 8, 10, 12, 14, 16):  # 10 and 14: saves on a signal, off the schedule
    manager.save(step, args=ocp.args.StandardSave({"w": np.full(3, step, np.float32)}))
    kept[step] = sorted(manager.all_steps())
  manager.close()
  assert kept == {4: [4], 8: [4, 8], 10: [4, 8, 10], 12: [8, 12], 14: [8, 12, 14],
                  16: [12, 16]}


def test_the_study_plan_expects_the_checkpoints_a_finished_run_keeps():
  config = ml_collections.ConfigDict(
      {"keep_checkpoints": 3, "checkpoint_every": 1000, "num_steps": 2500})
  assert plan.kept_checkpoints(config) == {1000, 2000, 2500}
  assert checkpoints.Retention.of(config).kept([1000, 1700, 2000, 2500]) == {1000, 2000, 2500}

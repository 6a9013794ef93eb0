"""Checkpoints of a reference-port run: the graph's variables and the loop's host state.

Each checkpoint at batch ``n`` is ``ckpt-n.*`` (``tf.compat.v1.train.Saver``: parameters,
batch-norm averages, Adam's slots and beta powers) plus ``state-n.json`` (the
:class:`~tests.reference.dg_mnist_tf.ScriptLoop`'s state and the runner's ``extra``), written
last and atomically, so a checkpoint counts only once its JSON exists.
"""

from __future__ import annotations

import glob
import json
import os
import re

import tensorflow as tf

tf1 = tf.compat.v1


class RunCheckpoints:
  """Saves and restores a port (``reference``) and its loop in ``directory``; keeps ``keep``."""

  def __init__(self, reference, directory: str, keep: int = 3):
    self.reference, self.directory, self.keep = reference, directory, keep
    os.makedirs(directory, exist_ok=True)
    with reference.graph.as_default():
      self.saver = tf1.train.Saver(tf1.global_variables(), max_to_keep=None)

  def counters(self) -> list[int]:
    """Batch counters of the complete checkpoints, oldest first."""
    names = (os.path.basename(p) for p in glob.glob(os.path.join(self.directory, "state-*.json")))
    return sorted(int(m.group(1)) for m in map(re.compile(r"state-(\d+)\.json$").match, names)
                  if m)

  def save(self, loop, extra: dict) -> None:
    counter = loop.counter
    with self.reference.graph.as_default():  # outside it, TF 2 takes the Saver for eager
      self.saver.save(self.reference.sess, os.path.join(self.directory, "ckpt"),
                      global_step=counter, write_meta_graph=False)
    path = os.path.join(self.directory, f"state-{counter}.json")
    with open(path + ".tmp", "w") as f:
      json.dump({"loop": loop.state(), "extra": extra}, f)
    os.replace(path + ".tmp", path)
    for old in self.counters()[:-self.keep]:
      for name in glob.glob(os.path.join(self.directory, f"ckpt-{old}.*")) + [
          os.path.join(self.directory, f"state-{old}.json")]:
        os.remove(name)

  def restore_latest(self, loop) -> dict | None:
    """Restores the newest checkpoint into the port and ``loop``; its ``extra``, or None."""
    counters = self.counters()
    if not counters:
      return None
    with self.reference.graph.as_default():
      self.saver.restore(self.reference.sess,
                         os.path.join(self.directory, f"ckpt-{counters[-1]}"))
    with open(os.path.join(self.directory, f"state-{counters[-1]}.json")) as f:
      state = json.load(f)
    loop.load_state(state["loop"])
    return state["extra"]

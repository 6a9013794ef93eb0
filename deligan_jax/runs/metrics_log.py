"""Where a run's scalar metrics go: ``metrics.jsonl`` and TensorBoard events."""

from __future__ import annotations

import json
import math
import os

import numpy as np
from tensorboardX import SummaryWriter

from deligan_jax.runs import atomic_files as files

METRICS_FILE = "metrics.jsonl"


def json_safe(value):
  """``value`` with NaN/inf floats as None and numpy scalars as Python ones (strict JSON)."""
  if isinstance(value, dict):
    return {key: json_safe(v) for key, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [json_safe(v) for v in value]
  if isinstance(value, np.generic):
    value = value.item()
  if isinstance(value, float) and not math.isfinite(value):
    return None
  return value


def read_metrics(workdir: str) -> list[dict]:
  """The records of ``metrics.jsonl`` (empty when there is none).

  A last line without its newline is a record cut short (the disk filled, the process was
  killed) and is left out: resumption writes it again.
  """
  path = os.path.join(workdir, METRICS_FILE)
  if not os.path.exists(path):
    return []
  with open(path) as f:
    whole_lines = f.read().split("\n")[:-1]
  return [json.loads(line) for line in whole_lines if line.strip()]


class MetricWriter:
  """Appends one JSON record per log step and mirrors it to TensorBoard.

  On resume, records past the restored step are dropped first (they belong to
  work that the checkpoint does not hold and will be redone).
  """

  def __init__(self, workdir: str, resume_step: int):
    self._path = os.path.join(workdir, METRICS_FILE)
    self._tensorboard_dir = os.path.join(workdir, "tensorboard")
    kept = [r for r in read_metrics(workdir) if r["step"] <= resume_step]
    files.write_atomic(self._path, "".join(json.dumps(r) + "\n" for r in kept))
    self._file = open(self._path, "a")
    self._tensorboard = SummaryWriter(self._tensorboard_dir, purge_step=resume_step + 1)

  def write(self, step: int, scalars: dict[str, float]) -> None:
    clean = json_safe(scalars)
    with files.naming(self._path):
      self._file.write(json.dumps({"step": step, **clean}) + "\n")
      self._file.flush()
    with files.naming(self._tensorboard_dir):
      for key, value in clean.items():
        if isinstance(value, (int, float)):  # TensorBoard takes scalars; labels stay in the JSON
          self._tensorboard.add_scalar(key, value, step)

  def close(self) -> None:
    # Both, even when the first fails (a full disk): a writer left open retries at exit.
    try:
      with files.naming(self._path):
        self._file.close()
    finally:
      with files.naming(self._tensorboard_dir):
        self._tensorboard.close()


class NoWriter:
  """A :class:`MetricWriter` that writes nothing (the processes of a run but the first)."""

  def __init__(self, workdir: str, resume_step: int):
    del workdir, resume_step

  def write(self, step: int, scalars: dict[str, float]) -> None:
    del step, scalars

  def close(self) -> None:
    pass

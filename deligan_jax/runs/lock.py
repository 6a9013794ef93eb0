"""One run, one writer: a workdir is owned by the run that holds its lock.

The lock is an advisory ``flock`` on ``workdir/run.lock``, which names its
owner (host, pid, since when). The kernel drops the lock when its process
ends, however it ends, so a lock file whose process was killed is free to
take; its stale owner is named when it is taken over. A clean exit empties
the file.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import os
import socket
from typing import Callable, Iterator

from absl import logging

from deligan_jax.errors import WorkdirBusy
from deligan_jax.step import distributed

LOCK_FILE = "run.lock"


def _describe(owner: dict) -> str:
  return (f"pid {owner.get('pid', '?')} on {owner.get('host', '?')} since "
          f"{owner.get('since', '?')}")


def _owner(f) -> dict:
  f.seek(0)
  text = f.read().strip()
  try:
    return json.loads(text) if text else {}
  except json.JSONDecodeError:
    return {"since": f"? (unreadable lock file: {text[:40]!r})"}


@contextlib.contextmanager
def owned(workdir: str) -> Iterator[Callable[[], None]]:
  """:func:`owned_by_this_process` for a run of one or several processes.

  Process 0 takes the lock for the whole run; the others hold none. When the
  workdir is busy every process raises WorkdirBusy with process 0's line.
  """
  if not distributed.is_multi_process():
    with owned_by_this_process(workdir) as claim:
      yield claim
    return
  with contextlib.ExitStack() as stack:
    refused = ""
    claim = lambda: None  # noqa: E731  (the others claim nothing)
    if distributed.is_primary():
      try:
        claim = stack.enter_context(owned_by_this_process(workdir))
      except WorkdirBusy as busy:
        refused = str(busy) or "busy"
    refused = distributed.from_primary(refused)
    if refused:
      raise WorkdirBusy(refused)
    yield claim


@contextlib.contextmanager
def owned_by_this_process(workdir: str) -> Iterator[Callable[[], None]]:
  """Holds ``workdir``'s lock for the block; raises WorkdirBusy when a live run holds it.

  Yields ``claim``, which writes this process into the lock file: a run calls
  it once its checks have passed, so that a run refused after taking the lock
  (a checkpoint of another config) leaves the workdir's files as they were.
  Creates ``workdir`` if needed (the lock lives there).
  """
  os.makedirs(workdir, exist_ok=True)
  path = os.path.join(workdir, LOCK_FILE)
  f = open(path, "a+")  # pylint: disable=consider-using-with  # held for the whole block
  claimed = []
  try:
    try:
      fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      raise WorkdirBusy(
          f"workdir {workdir} is in use by the run of {_describe(_owner(f))} ({path}); "
          "wait for it to end, or use another --workdir") from None

    def claim() -> None:
      stale = _owner(f)
      if stale:
        logging.warning("took over the lock of workdir %s left by %s, which ended without "
                        "releasing it", workdir, _describe(stale))
      f.seek(0)
      f.truncate()
      f.write(json.dumps({
          "host": socket.gethostname(), "pid": os.getpid(),
          "since": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}))
      f.flush()
      os.fsync(f.fileno())
      claimed.append(True)

    yield claim
    if claimed:
      f.seek(0)
      f.truncate()
  finally:
    f.close()  # drops the flock

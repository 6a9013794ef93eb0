"""One core per run, as the repeatable runs of docs/results.md were pinned.

XLA's CPU backend splits its work by the cores a process may use when it starts, so a run
adds its float32 sums in an order that depends on them (docs/training.md). Each run of a
study takes one core of the process's allowed set that no other run of this machine holds
(an advisory lock per core in the temporary folder), pins itself to it and asks XLA for
one thread, before JAX starts its backend. So a run's numbers do not depend on how many
workers share the machine, and ``xargs -P`` or a job array gets the same runs as the pool.
"""

from __future__ import annotations

import fcntl
import os
import tempfile

from absl import logging

# The flags of the pinned runs in docs/results.md.
SINGLE_THREAD_XLA_FLAGS = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
_held = []  # open lock files: a core stays this process's while it runs


def lock_dir() -> str:
  return os.path.join(tempfile.gettempdir(), f"deligan-study-cores-{os.getuid()}")


def pin_to_one_core() -> int:
  """Pins this process to a free allowed core (the first, if all are held); returns it.

  Also sets ``XLA_FLAGS`` for one thread; call before JAX computes anything.
  """
  allowed = sorted(os.sched_getaffinity(0))
  os.makedirs(lock_dir(), exist_ok=True)
  core = None
  for candidate in allowed:
    handle = open(os.path.join(lock_dir(), f"core_{candidate}.lock"), "w")
    try:
      fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      handle.close()
      continue
    _held.append(handle)
    core = candidate
    break
  if core is None:
    core = allowed[0]
    logging.warning("every allowed core (%s) holds a run already; this one shares core %d",
                    allowed, core)
  os.sched_setaffinity(0, {core})
  flags = os.environ.get("XLA_FLAGS", "")
  if SINGLE_THREAD_XLA_FLAGS not in flags:
    os.environ["XLA_FLAGS"] = f"{flags} {SINGLE_THREAD_XLA_FLAGS}".strip()
  return core

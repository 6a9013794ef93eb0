"""One run over several processes (hosts): JAX's multi-controller runtime.

``--config.distributed.enabled=True`` starts every process of a run with
:func:`initialize` (``jax.distributed.initialize``); the coordinator's address,
the number of processes and each one's id come from ``config.distributed`` or,
left unset, from the cluster (Cloud TPU, SLURM, Open MPI). On CPU the processes
exchange data through gloo.

Every process then runs the same program: the devices of all of them form the
``seeds`` x ``data`` mesh that one host's devices form
(:mod:`deligan_jax.step.device_layout`). Each process places the training set on its
own devices only (``jax.make_array_from_callback`` asks it for its addressable
shards; the sets are small, so every device holds a copy) and each batch is
drawn on the devices from it, so no process reads another's share of a batch.
Whatever touches a global array (a step, a checkpoint, the state for a picture)
runs in every process; what writes a file (config.json, metrics, pictures, the
workdir lock, checkpoint manifests) runs in process 0 alone
(:func:`is_primary`). orbax writes and reads checkpoints from all processes.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from typing import Callable, Iterator

from absl import logging
import jax
from jax.experimental import multihost_utils
import numpy as np

from deligan_jax.errors import DistributedError

# JAX's own deadline comes this long after ours, so that our one line, not its abort with
# a C++ stack trace, ends a start whose processes do not all meet.
_JAX_GRACE_S = 30
# A message from process 0 travels as this many bytes.
_MESSAGE_BYTES = 4096


def is_multi_process() -> bool:
  return jax.process_count() > 1


def is_primary() -> bool:
  """Whether this process writes the run's files (process 0; the only one on one host)."""
  return jax.process_index() == 0


def _give_up(message: str) -> None:
  # Without JAX's shutdown, which would wait for the processes that did not come or left;
  # from any thread (the start's watchdog runs while the main thread is in JAX's connect).
  sys.stderr.write(f"error: {message}\n")
  sys.stderr.flush()
  os._exit(1)  # pylint: disable=protected-access


def initialize(settings) -> None:
  """``jax.distributed.initialize`` with ``config.distributed``; nothing when not enabled.

  Fails with :class:`DistributedError`, or when the processes do not all meet within
  ``settings.initialization_timeout`` seconds with one line on stderr and status 1
  (JAX would abort with a stack trace later), never hangs.
  """
  if not settings.enabled:
    return
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  given = {field: settings[field] for field in ("coordinator_address", "num_processes",
                                                "process_id") if settings[field] is not None}
  timeout = settings.initialization_timeout
  who = (f"process {given['process_id']}" if "process_id" in given else "this process")
  where = given.get("coordinator_address", "the detected coordinator")
  watchdog = threading.Timer(timeout, _give_up, args=(
      f"{who} and the coordinator at {where} did not all meet within {timeout} s "
      "(config.distributed.initialization_timeout): start every process of the run with the "
      "same coordinator_address and num_processes, check that the address and port are "
      "reachable from every host, or raise the timeout",))
  watchdog.daemon = True
  watchdog.start()
  try:
    jax.distributed.initialize(**given, initialization_timeout=timeout + _JAX_GRACE_S,
                               heartbeat_timeout_seconds=settings.heartbeat_timeout)
  except (ValueError, RuntimeError) as error:
    last = _last_line(error)
    if "coordinator_address" in str(error) and "coordinator_address" not in given:
      raise DistributedError(
          "config.distributed.enabled=True, but no cluster (Cloud TPU, SLURM, Open MPI) was "
          "detected to name the coordinator: set config.distributed.coordinator_address, "
          f"num_processes and process_id ({last})") from None
    raise DistributedError(f"jax.distributed.initialize failed: {last}") from None
  finally:
    watchdog.cancel()
  if not is_primary():
    logging.set_verbosity(logging.ERROR)  # process 0 says what the run has to say


# How JAX's runtime reports, in Python, a collective with a process that has stopped (gloo on
# CPU; the coordination service once that process has missed its heartbeats).
_LOST_PROCESS_SIGNS = ("closed by peer", "reset by peer", "Broken pipe", "heartbeat timeout",
                       "stopped sending heartbeats")


def _lost_process(error: BaseException) -> bool:
  text = str(error)
  from_runtime = isinstance(error, jax.errors.JaxRuntimeError) or "Gloo" in text
  return from_runtime and any(sign in text for sign in _LOST_PROCESS_SIGNS)


@contextlib.contextmanager
def one_line_when_a_process_stops() -> Iterator[None]:
  """Ends this process with one line when another process of the run stops mid-run.

  A collective with a process that was killed fails with JAX's runtime error; this
  process then exits with status 1 at once, without JAX's shutdown, which would wait
  for the lost process. When the loss surfaces only as missed heartbeats
  (``config.distributed.heartbeat_timeout`` seconds), JAX ends the process itself.
  """
  try:
    yield
  except Exception as error:  # pylint: disable=broad-except
    if is_multi_process() and _lost_process(error):
      _give_up("another process of this run stopped (killed, crashed or preempted), so this "
               "one ends too: start every process again with the same command, and the run "
               f"resumes from its last checkpoint ({_last_line(error)})")
    raise


def _last_line(error: BaseException) -> str:
  text = str(error).strip()
  return text.splitlines()[-1] if text else type(error).__name__


def check_devices_used(idle_note: str | None) -> None:
  """Refuses a layout that leaves devices idle when the run spans several processes.

  A process whose devices all sit idle would have no part in any step.
  """
  if idle_note and is_multi_process():
    raise DistributedError(f"a run over several processes must use all their devices: "
                           f"{idle_note}")


def fetch(tree):
  """``tree``'s arrays as numpy on every process, also arrays sharded over several processes.

  A collective when there are several processes: every process must call it.
  """
  if not is_multi_process():
    return jax.device_get(tree)
  return multihost_utils.process_allgather(tree, tiled=True)


def batch_reached(state) -> int:
  """The batch ``state`` has reached (its first seed's, when stacked), in every process.

  A collective when there are several processes: every process must call it.
  """
  return int(np.ravel(fetch(state.step))[0])


def for_primary(tree):
  """``tree`` itself in a run of one process; else a numpy copy in process 0, None in the others.

  A collective when there are several processes: every process must call it.
  """
  if not is_multi_process():
    return tree
  tree = multihost_utils.process_allgather(tree, tiled=True)
  return tree if is_primary() else None


def any_process(flag: bool) -> bool:
  """Whether ``flag`` holds in any process (a collective), so that all take the same branch."""
  if not is_multi_process():
    return flag
  return bool(np.any(multihost_utils.process_allgather(np.int32(flag))))


def barrier(name: str) -> None:
  """Waits until every process has reached the barrier of this ``name``."""
  if is_multi_process():
    multihost_utils.sync_global_devices(name)


def from_primary(message: str) -> str:
  """Process 0's ``message`` (up to 4 kB of UTF-8), in every process."""
  if not is_multi_process():
    return message
  data = np.zeros(_MESSAGE_BYTES, np.uint8)
  encoded = message.encode()[:_MESSAGE_BYTES]
  data[:len(encoded)] = np.frombuffer(encoded, np.uint8)
  received = np.asarray(multihost_utils.broadcast_one_to_all(data))
  return received.tobytes().rstrip(b"\0").decode(errors="replace")


def primary_only(write: Callable[[], None], name: str) -> None:
  """Process 0 calls ``write``; the others wait until it has (a changed folder, say)."""
  if is_primary():
    write()
  barrier(name)

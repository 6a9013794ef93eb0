"""A full disk (or quota) said in one line: which run, its last complete checkpoint, what to do.

Whatever a command was writing when the disk filled (a checkpoint, samples, metrics.jsonl,
TensorBoard events, eval.json, a picture), the error is the same to the user: nothing
complete is lost, and the same command resumes once there is room. So the command line
(:func:`deligan_jax.cli.run`) asks :func:`cause` of every error, rather than each writer
catching its own. Libraries that report the error themselves on the way (orbax logs it from
its writer thread; a thread's traceback) are kept quiet by :func:`library_reports_quieted`.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import sys
import threading
from typing import Callable, Iterator

from deligan_jax.runs.workdir import CONFIG_FILE, is_run

FULL = {errno.ENOSPC: "No space left on device", errno.EDQUOT: "Disk quota exceeded"}
CHECKPOINT_DIR = "checkpoints"  # as deligan_jax.runs.checkpoints, which imports orbax

# tensorstore (orbax's array writer) reports OS errors in its message, not as OSError:
# 'Error writing local file "/w/checkpoints/16.orbax-checkpoint-tmp/...": ... [os_error_code='28']'
_CODE = re.compile(r"os_error_code='(\d+)'")
_QUOTED_PATH = re.compile(r'"(/[^"]+)"')


def cause(error: BaseException) -> BaseException | None:
  """The disk-full error that ``error`` is or came from (its causes and contexts), if any."""
  for link in _chain(error):
    if isinstance(link, OSError) and link.errno in FULL:
      return link
    code = _CODE.search(str(link))
    if (code and int(code[1]) in FULL) or any(text in str(link) for text in FULL.values()):
      return link
  return None


TRAINING_RESUMES = "training resumes from the last complete checkpoint"

# What a command that only writes tables does when run again.
TABLES_WRITTEN_AGAIN = "the tables are written again"


def message(error: BaseException, workdir: str | None = None,
            again: str = TRAINING_RESUMES) -> str:
  """The line for ``error``, which :func:`cause` finds full: where, the last complete
  checkpoint, what to do, and what running the command again does (``again``).

  The run is the folder holding a ``config.json`` above the file that could not be written;
  where that file is not known, ``workdir`` (the command's flag) or a run above it. Outside
  any run (``sample --out``, a comparison's tables) the line names the folder instead.
  """
  full = cause(error)
  reason = FULL.get(getattr(full, "errno", None)) or next(
      (text for text in FULL.values() if text in str(full)), FULL[errno.ENOSPC])
  path = _failed_path(error)
  writing = f"{reason}, writing {path}" if path else reason
  run = _run_folder(path or (workdir and os.path.join(workdir, CONFIG_FILE)))
  if run is None:
    folder = os.path.dirname(path) if path else workdir or os.getcwd()
    return (f"the disk of {folder} is full ({writing}). Free space there or write elsewhere, "
            f"then run the same command again: {again}")
  steps = _complete_checkpoints(run)
  last = (f"the last complete checkpoint is {steps[-1]}" if steps
          else "there is no complete checkpoint yet")
  return (f"the disk of workdir {run} is full ({writing}); {last}. Free space there or move the "
          f"workdir to a disk with room, then run the same command again: {again}")


def end(line: str) -> None:
  """Prints ``line`` and ends the process with status 1, skipping exit handlers.

  Libraries' exit handlers would retry their writes into the full disk and print each
  failure (tensorboardX flushes its events file). What is complete on disk is what a
  killed process leaves, which resumption is made for.
  """
  sys.stdout.flush()
  if isinstance(sys.stderr, _WithoutClosedLoopTracebacks):
    sys.stderr.write_last(line + "\n")
  else:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()
  os._exit(1)


@contextlib.contextmanager
def library_reports_quieted() -> Iterator[None]:
  """Keeps libraries from printing a disk-full error that the command will say in one line.

  Drops logged records carrying one (orbax logs its writer thread's error before raising
  it), and tracebacks of threads that die of one or that print one. Once one was seen, the failures that
  follow from it are dropped too (orbax's other writer threads find their event loop
  closed): the command is on its way to that line.
  """
  seen = []

  class DropDiskFull(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
      if record.exc_info and cause(record.exc_info[1]):
        seen.append(record.exc_info[1])
      return not (record.exc_info and (seen or _follows_a_failed_write(record.exc_info[1])))

  previous_hook = threading.excepthook

  def thread_hook(args) -> None:
    if cause(args.exc_value) is not None:
      seen.append(args.exc_value)
    elif not seen:
      previous_hook(args)

  previous_excepthook = sys.excepthook

  def excepthook(kind, error, trace) -> None:  # tensorstore's callbacks print errors with it
    if not (cause(error) or _follows_a_failed_write(error)):
      previous_excepthook(kind, error, trace)

  drop = DropDiskFull()
  root = logging.getLogger()
  root.addFilter(drop)
  for handler in root.handlers:
    handler.addFilter(drop)
  threading.excepthook, sys.excepthook = thread_hook, excepthook
  previous_stderr = sys.stderr
  sys.stderr = _WithoutClosedLoopTracebacks(previous_stderr, quiet=lambda: bool(seen))

  def restore() -> None:
    threading.excepthook, sys.excepthook = previous_hook, previous_excepthook
    sys.stderr = previous_stderr
    root.removeFilter(drop)
    for handler in root.handlers:
      handler.removeFilter(drop)

  try:
    yield
  except BaseException as error:
    # A disk-full error ends the command: the libraries' threads stay quiet until it has.
    if cause(error) is None:
      restore()
    raise
  restore()


class _WithoutClosedLoopTracebacks:
  """``stream`` less the tracebacks that end in ``RuntimeError: Event loop is closed``,
  and less every traceback once ``quiet()`` says a disk-full error was seen.

  tensorstore's callbacks print those themselves (``PyErr_Print``, past every hook) when
  orbax's event loop has closed after a failed write, from several threads at once, so
  their lines may interleave. Text outside a traceback passes straight through; a
  traceback's lines are held until its exception line: passed on, or dropped with every
  traceback line that follows if that line is the closed loop's.
  """

  def __init__(self, stream, quiet: Callable[[], bool] = lambda: False):
    self._quiet = quiet
    self._stream, self._lock = stream, threading.Lock()
    self._partial, self._held, self._dropping, self._ended = "", [], False, False
    self._line_open = False  # the last text passed on did not end its line

  def write(self, text: str) -> int:
    with self._lock:
      if self._ended:
        return len(text)
      if text.startswith("\r") and "\n" not in text:  # a progress bar's redraw, never a
        self._pass(text)                               # traceback's line: passed at once
        return len(text)
      pieces = (self._partial + text).splitlines(keepends=True)
      self._partial = pieces.pop() if pieces and not pieces[-1].endswith("\n") else ""
      for line in pieces:
        self._line(line)
      if self._partial and not self._held and not self._dropping \
          and not _TRACEBACK.startswith(self._partial[:len(_TRACEBACK)]):
        self._pass(self._partial)  # a progress bar's line, never ended by a newline
        self._partial = ""
    return len(text)

  def _line(self, line: str) -> None:
    if not line.strip():  # a blank line: part of a traceback being held, else passed on
      if self._held:
        self._held.append(line)
      else:
        self._pass(line)
      return
    in_traceback = line.startswith(_TRACEBACK) or line[:1].isspace()
    if line.strip() == _CLOSED_LOOP:
      self._held, self._dropping = [], True
    elif in_traceback and (self._held or self._dropping or line.startswith(_TRACEBACK)):
      if not self._dropping or line.startswith(_TRACEBACK):
        self._held.append(line)
    elif self._held:  # another error's exception line: its traceback is passed on
      if not self._quiet():
        self._pass("".join(self._held) + line)
      self._held, self._dropping = [], False
    else:
      self._pass(line)
      self._dropping = False

  def write_last(self, text: str) -> None:
    """Writes ``text`` on a line of its own as the stream's last words: a traceback still
    being printed by another thread (held, its exception line not yet come) is dropped, and
    so is all that is written afterwards, while the process ends."""
    with self._lock:
      self._ended = True
      self._stream.write("\n" + text if self._line_open else text)
      self._stream.flush()

  def _pass(self, text: str) -> None:
    if text:
      self._stream.write(text)
      self._line_open = not text.endswith("\n")

  def flush(self) -> None:
    self._stream.flush()

  def __getattr__(self, name):
    return getattr(self._stream, name)


_TRACEBACK = "Traceback (most recent call last):"
_CLOSED_LOOP = "RuntimeError: Event loop is closed"


def _follows_a_failed_write(error: BaseException | None) -> bool:
  """orbax's other writer threads finding their event loop closed by a failed write (they
  may report it before the failed write's own report)."""
  return isinstance(error, RuntimeError) and str(error) == "Event loop is closed"


def _failed_path(error: BaseException) -> str | None:
  """The file that ``error`` or one of its causes and contexts names, if any."""
  for link in _chain(error):
    if isinstance(link, OSError) and link.filename:
      return os.path.abspath(os.fsdecode(link.filename))
    quoted = _QUOTED_PATH.search(str(link))
    if quoted:
      return quoted[1]
  return None


def _chain(error: BaseException | None) -> Iterator[BaseException]:
  """``error``, then what it came from (its cause, else its context), each once."""
  seen = set()
  while error is not None and id(error) not in seen:
    seen.add(id(error))
    yield error
    error = error.__cause__ or error.__context__


def _run_folder(path: str | None) -> str | None:
  """The nearest folder above ``path`` that holds a run's config.json."""
  folder = os.path.dirname(path) if path else None
  while folder and folder != os.path.dirname(folder):
    if is_run(folder):
      return folder
    folder = os.path.dirname(folder)
  return None


def _complete_checkpoints(run: str) -> list[int]:
  """The steps of the complete checkpoints (orbax's folders named by their step alone)."""
  folder = os.path.join(run, CHECKPOINT_DIR)
  names = os.listdir(folder) if os.path.isdir(folder) else []
  return sorted(int(name) for name in names if name.isdigit())

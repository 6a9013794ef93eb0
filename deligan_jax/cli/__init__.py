"""What every command line shares: flags parsed, and user errors said in one line.

A user error (a bad flag, a missing workdir or file, a value out of range, bad
data, a damaged checkpoint) ends the program with one line on stderr and
status 1, never a traceback, and so does a full disk, whatever was being written
(:mod:`deligan_jax.runs.disk_full`); library INFO logging (orbax logs every save and
restore) is silenced.
"""

from __future__ import annotations

import sys
from typing import Callable

from absl import app
from absl import flags
from absl import logging
import ml_collections

from deligan_jax import errors
from deligan_jax.runs import compile_cache
from deligan_jax.runs import disk_full


# Flags that name a config file (ml_collections' config_flags).
CONFIG_FILE_FLAGS = ("config", "study")
# Errors whose message says all there is to say.
USER_ERRORS = (errors.UserError, app.UsageError, FileNotFoundError,
               NotADirectoryError, IsADirectoryError, PermissionError)


def parse_flags(argv: list[str]) -> list[str]:
  """absl's parser; a bad flag, config file or ``--config.X`` override is one line.

  Earlier versions' ``--config.distributed[=BOOL]`` is read as ``--config.distributed.enabled``.
  """
  argv = renamed_flags(argv)
  try:
    remaining = flags.FLAGS(argv)
  except flags.Error as e:  # a value that does not parse, is out of bounds, or is missing
    sys.exit(f"FATAL flags error: {_last_line(str(e))}")
  except (AttributeError, KeyError) as e:
    overrides = [a.split("=")[0] for a in argv if a.startswith("--config.")]
    sys.exit(f"FATAL flags error: unknown config field in {overrides}: {e}")
  for name in CONFIG_FILE_FLAGS:
    if name in flags.FLAGS and flags.FLAGS[name].value is not None:
      config = flags.FLAGS[name].value
      # ml_collections defers a config file that cannot be read to its first use.
      if not isinstance(config, ml_collections.ConfigDict):
        sys.exit(f"FATAL flags error: --{name}={flags.FLAGS[name].serialize().split('=', 1)[-1]}"
                 f" cannot be loaded: {_last_line(str(vars(config).get('_error', config)))}")
  return remaining


def renamed_flags(argv: list[str]) -> list[str]:
  """``argv`` with earlier versions' ``--config.distributed[=BOOL]`` as ``.enabled`` of it."""
  old = "--config.distributed"
  return [f"{old}.enabled{arg[len(old):]}" if arg == old or arg.startswith(f"{old}=") else arg
          for arg in argv]


def _last_line(message: str) -> str:
  """The error itself, where ml_collections put a whole traceback into the message."""
  last = message.strip().splitlines()[-1].strip() if message.strip() else message
  kind, _, text = last.partition(": ")
  return text if "Traceback" in message and kind.endswith("Error") else last


def _workdir_flag() -> str | None:
  return flags.FLAGS["workdir"].value if "workdir" in flags.FLAGS else None


def run(main: Callable[[list[str]], None],
        define_flags: Callable[[], None] | None = None,
        again: str | Callable[[], str] = disk_full.TRAINING_RESUMES) -> None:
  """``app.run(main)`` after ``define_flags()``, with one-line user errors, no INFO logging and
  the compilation cache. Flags are defined by the entry point, not on import (absl flags are
  global: two commands' modules may be imported together). ``again``: what the same command
  does when run again after a full disk, for its line (a callable where that depends on the
  flags)."""
  if define_flags is not None:
    define_flags()

  def quiet_main(argv: list[str]) -> None:
    if len(argv) > 1:
      sys.exit(f"error: unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.WARNING)
    compile_cache.enable()
    try:
      with disk_full.library_reports_quieted():
        main(argv)
    except Exception as error:  # pylint: disable=broad-except
      if disk_full.cause(error) is not None:
        what_again = again() if callable(again) else again
        disk_full.end(f"error: {disk_full.message(error, _workdir_flag(), what_again)}")
      if isinstance(error, USER_ERRORS):
        sys.exit(f"error: {error}")
      raise

  app.run(quiet_main, flags_parser=parse_flags)

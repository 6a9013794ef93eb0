"""Files written whole or not at all, and write errors that name the file meant."""

from __future__ import annotations

import contextlib
import os
from typing import Iterator


@contextlib.contextmanager
def naming(path: str, also: tuple[str, ...] = ()) -> Iterator[None]:
  """Re-raises an OSError of the writes inside that names no file (``write`` and
  ``flush`` do not), or names one of ``also`` (a temporary file), as naming ``path``:
  the file a user knows."""
  try:
    yield
  except OSError as error:
    if error.errno is not None and (error.filename is None or error.filename in also):
      raise OSError(error.errno, error.strerror, path) from error
    raise


def write_atomic(path: str, data: str | bytes) -> None:
  """Writes ``data`` to ``path`` through a temporary file and a rename.

  A process killed mid-write leaves the old file (or none), never a partial one; a write
  that fails (a full disk) removes its temporary file.
  """
  tmp = path + ".tmp"
  try:
    with naming(path, also=(tmp,)):
      with open(tmp, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)
      os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise

"""Files written whole or not at all."""

from __future__ import annotations

import os


def write_atomic(path: str, data: str | bytes) -> None:
  """Writes ``data`` to ``path`` through a temporary file and a rename.

  A process killed mid-write leaves the old file (or none), never a partial one; a write
  that fails (a full disk) removes its temporary file.
  """
  tmp = path + ".tmp"
  try:
    with open(tmp, "wb" if isinstance(data, bytes) else "w") as f:
      f.write(data)
    os.replace(tmp, path)
  except BaseException as error:
    if os.path.exists(tmp):
      os.remove(tmp)
    if isinstance(error, OSError) and error.filename is None:  # a write names no file
      raise OSError(error.errno, error.strerror, path) from error
    raise

"""Content checksums of a folder, to catch files damaged after they were written.

The manifest is a ``SHA256SUMS`` file in the folder, in ``sha256sum``'s format,
so ``cd <folder> && sha256sum -c SHA256SUMS`` checks it without this project.
"""

from __future__ import annotations

import hashlib
import os

from deligan_jax.runs import atomic_files as files

MANIFEST = "SHA256SUMS"


def _contents(folder: str) -> list[str]:
  """Every file under ``folder`` except the manifest, as sorted relative paths."""
  found = []
  for root, _, names in os.walk(folder):
    found += [os.path.relpath(os.path.join(root, name), folder) for name in names]
  return sorted(path for path in found if path not in (MANIFEST, MANIFEST + ".tmp"))


def _sha256(path: str) -> str:
  with open(path, "rb") as f:
    return hashlib.file_digest(f, "sha256").hexdigest()


def write_manifest(folder: str) -> None:
  """Records the SHA-256 of every file in ``folder``; written whole or not at all."""
  lines = [f"{_sha256(os.path.join(folder, path))}  {path}\n" for path in _contents(folder)]
  files.write_atomic(os.path.join(folder, MANIFEST), "".join(lines))


def has_manifest(folder: str) -> bool:
  return os.path.isfile(os.path.join(folder, MANIFEST))


def find_damage(folder: str) -> str | None:
  """What differs from the manifest (a file changed, missing or unreadable), or None.

  A folder without a manifest (written before checksums were recorded, or by a
  process killed between the write and its manifest) cannot be checked: None.
  """
  if not has_manifest(folder):
    return None
  try:
    with open(os.path.join(folder, MANIFEST)) as f:
      recorded = [line.rstrip("\n").split("  ", 1) for line in f if line.strip()]
  except (OSError, UnicodeDecodeError) as e:
    return f"its {MANIFEST} cannot be read ({e})"
  if not recorded or any(len(entry) != 2 for entry in recorded):
    return f"its {MANIFEST} is malformed"
  for digest, path in recorded:
    full = os.path.join(folder, path)
    if not os.path.isfile(full):
      return f"{path} is missing"
    try:
      actual = _sha256(full)
    except OSError as e:
      return f"{path} cannot be read ({e})"
    if actual != digest:
      return (f"{path} ({os.path.getsize(full)} bytes) does not match the SHA-256 recorded "
              "when it was written")
  return None

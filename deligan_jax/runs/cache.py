"""The user's cache: evaluation classifiers, transfer softmaxes, Inception weights and
features, compiled programs. ``$DELIGAN_CACHE_DIR``, else ``~/.cache/deligan_jax``.

A fitted scorer is an entry of two files, its parameters and a JSON of what it was fitted
on and how well it scores; the JSON is written last, so an entry counts only when both exist.
"""

from __future__ import annotations

import json
import os

from deligan_jax.runs import atomic_files

CACHE_ENV = "DELIGAN_CACHE_DIR"


def folder(configured: str | None = None) -> str:
  """The argument, ``$DELIGAN_CACHE_DIR``, or ~/.cache/deligan_jax."""
  return (configured or os.environ.get(CACHE_ENV)
          or os.path.join(os.path.expanduser("~"), ".cache", "deligan_jax"))


def has_entry(path: str, parameters_suffix: str) -> bool:
  return os.path.exists(path + parameters_suffix) and os.path.exists(path + ".json")


def write_entry(path: str, parameters_suffix: str, parameters: bytes, record: dict) -> None:
  """Stores an entry: ``path + parameters_suffix`` first, then its ``path.json`` record."""
  os.makedirs(os.path.dirname(path), exist_ok=True)
  atomic_files.write_atomic(path + parameters_suffix, parameters)
  atomic_files.write_atomic(path + ".json", json.dumps(record).encode())


def read_record(path: str) -> dict:
  with open(path + ".json") as f:
    return json.load(f)

"""JAX's persistent compilation cache, on by default for the command lines.

A second start of the same config then loads its compiled programs instead
of compiling them again. The cache lives in ``<cache dir>/jax`` (the cache
dir is ``$DELIGAN_CACHE_DIR`` or ``~/.cache/deligan_jax``, as for the
evaluation classifiers); ``DELIGAN_COMPILATION_CACHE`` names another folder,
or ``off`` switches it off. A ``JAX_COMPILATION_CACHE_DIR`` set by the caller
wins (JAX reads it itself). Processes can share the folder: JAX writes an
entry in place, and a process that reads one still being written by another
warns ("Error reading persistent compilation cache entry") and compiles the
program itself, so the results are the same.
"""

from __future__ import annotations

import os

import jax

from deligan_jax.runs import cache

ENV = "DELIGAN_COMPILATION_CACHE"
OFF = ("off", "0", "false", "no")


def folder() -> str | None:
  """Where compiled programs are cached; None when the cache is off or JAX's variable decides."""
  if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
    return None
  chosen = os.environ.get(ENV, "")
  if chosen.lower() in OFF:
    return None
  return os.path.expanduser(chosen) if chosen else os.path.join(cache.folder(), "jax")


def enable() -> None:
  """Turns the cache on, before the first compilation, for every program however quick."""
  path = folder()
  if path is None:
    return
  jax.config.update("jax_compilation_cache_dir", path)
  # Even a quick compilation is worth skipping: a start compiles dozens of them.
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)

"""What a run leaves in its workdir and how it is kept: the workdir itself (name, checks, lock),
checkpoints and their checksums, the metrics log, pictures, the stall watch and the compile
cache."""

import importlib

_SUBMODULES = ("atomic_files", "cache", "checkpoints", "checksums", "compile_cache", "lock",
               "metrics_log", "plots", "workdir")


def __getattr__(name: str):
  # Lazily, so that ``deligan_jax.runs.checkpoints.load_run`` works after ``import deligan_jax``.
  if name in _SUBMODULES:
    return importlib.import_module(f"{__name__}.{name}")
  raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

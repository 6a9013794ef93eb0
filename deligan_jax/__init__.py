"""DeLiGAN in JAX/Flax. Submodules load on first use (``deligan_jax.runs.checkpoints``,
``deligan_jax.sampling``, ...), so ``import deligan_jax`` alone imports neither JAX's
models nor TensorFlow."""

import importlib

_SUBMODULES = ("cli", "config", "data", "errors", "experiment", "mixture", "models", "runs",
               "sampling", "scores", "step", "training")


def __getattr__(name: str):
  if name in _SUBMODULES:
    return importlib.import_module(f"{__name__}.{name}")
  raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
  return sorted([*globals(), *_SUBMODULES])

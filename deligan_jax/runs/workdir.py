"""The folder a run goes to when ``train.py`` is given no ``--workdir``."""

from __future__ import annotations

import os

import ml_collections

DEFAULT_ROOT = "runs"


def default_workdir(config_file: str, config: ml_collections.ConfigDict) -> str:
  """``runs/<config file>[_<data>]_<model>``, e.g. runs/mnist_deligan, runs/toy_bimodal_gan.

  Named from what the config argument chose rather than from its spelling, so
  ``toy.py``, ``toy.py:deligan`` and ``toy.py:bimodal,deligan`` (one config)
  share a folder and the same command resumes the same run. The data name is
  left out when the config file is named after it (mnist.py trains on mnist).
  """
  stem = os.path.splitext(os.path.basename(config_file.split(":", 1)[0]))[0]
  parts = [stem]
  data = config.data.name.removeprefix(f"{stem}_")
  if data != stem:
    parts.append(data)
  parts.append(config.model)
  return os.path.join(DEFAULT_ROOT, "_".join(parts))

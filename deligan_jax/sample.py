r"""Draws samples from a trained run.

  python -m deligan_jax.sample --workdir runs/mnist --num 100 --out samples.png
  python -m deligan_jax.sample --workdir runs/mnist --num 100 --out z3.npy --component 3

``.png`` writes an image grid (or, for 2-D data, a scatter plot); ``.npy`` the raw
samples, shape (num, ...) in the data's scale. ``--component`` draws every
sample from one mixture component (DeLiGAN), latent class (MoE) or generator
(Ensemble).
"""

from __future__ import annotations

import os

import jax
import numpy as np
from absl import flags

from deligan_jax.runs import checkpoints
from deligan_jax import cli
from deligan_jax import models
from deligan_jax.runs import plots

FLAGS = flags.FLAGS


def define_flags() -> None:
  """The command line; defined by the entry point, not on import (absl flags are global)."""
  flags.DEFINE_string("workdir", None, "A training workdir (holds config.json and checkpoints/).")
  flags.DEFINE_integer("num", 100, "How many samples.", lower_bound=1)
  flags.DEFINE_string("out", None, "Output file: .png or .npy.")
  flags.DEFINE_integer("component", None, "Sample from this one component only.", lower_bound=0)
  flags.DEFINE_integer("seed", 0, "PRNG seed for the latents.")
  flags.mark_flags_as_required(["workdir", "out"])


def generate(workdir: str, num: int, seed: int = 0, component: int | None = None) -> np.ndarray:
  """``num`` samples from the latest checkpoint of ``workdir`` (batch norm in inference mode).

  eps as the run's ``latent.sample_noise`` says (:func:`models.for_sampling`).
  """
  config, model, state = checkpoints.load_run(workdir)
  if component is not None and not 0 <= component < model.num_components:
    raise cli.RequestError(f"--component must be in [0, {model.num_components}), got {component}")
  samples, _ = models.for_sampling(model, config).generate(
      state.params, state.batch_stats, jax.random.key(seed), num, train=False,
      component=component)
  return np.asarray(samples)


def main(argv):
  del argv
  extension = os.path.splitext(FLAGS.out)[1].lower()
  if extension not in (".png", ".npy"):
    raise cli.RequestError(f"--out must end in .png or .npy, got {FLAGS.out!r}")
  samples = generate(FLAGS.workdir, FLAGS.num, FLAGS.seed, FLAGS.component)
  if extension == ".npy":
    np.save(FLAGS.out, samples)
  elif samples.ndim == 2:
    title = f"{FLAGS.num} samples" + ("" if FLAGS.component is None else
                                      f", component {FLAGS.component}")
    plots.save_toy_scatter(samples, np.zeros((0, 2)), FLAGS.out, title)
  else:
    plots.save_image_grid(samples, FLAGS.out)
  print(f"wrote {samples.shape} samples to {FLAGS.out}")


if __name__ == "__main__":
  define_flags()
  cli.run(main)

r"""Draws samples from a trained run.

  python -m deligan_jax.cli.sample --workdir runs/mnist --num 100 --out samples.png
  python -m deligan_jax.cli.sample --workdir runs/mnist --num 100 --out z3.npy --component 3

``.png`` writes an image grid (or, for 2-D data, a scatter plot); ``.npy`` the raw
samples, shape (num, ...) in the data's scale. ``--component`` draws every
sample from one mixture component (DeLiGAN), latent class (MoE) or generator
(Ensemble). Samples are drawn as the run's config scores them (:mod:`deligan_jax.sampling`).
"""

from __future__ import annotations

import io
import os

import numpy as np
from absl import flags

from deligan_jax import cli
from deligan_jax import errors
from deligan_jax import sampling
from deligan_jax.runs import atomic_files
from deligan_jax.runs import plots

FLAGS = flags.FLAGS


def define_flags() -> None:
  flags.DEFINE_string("workdir", None, "A training workdir (holds config.json and checkpoints/).")
  flags.DEFINE_integer("num", 100, "How many samples.", lower_bound=1)
  flags.DEFINE_string("out", None, "Output file: .png or .npy.")
  flags.DEFINE_integer("component", None, "Sample from this one component only.", lower_bound=0)
  flags.DEFINE_integer("seed", 0, "PRNG seed for the latents.")
  flags.DEFINE_integer("step", None, "Sample this checkpoint (default: the latest).",
                       lower_bound=0)
  flags.DEFINE_float("sigma_scale", 1.0, "DeLiGAN: draw with the mixture's sigma times this "
                     "(GM-GAN's quality-diversity trade-off); 1: as trained.")
  flags.mark_flags_as_required(["workdir", "out"])


def main(argv):
  del argv
  extension = os.path.splitext(FLAGS.out)[1].lower()
  if extension not in (".png", ".npy"):
    raise errors.RequestError(f"--out must end in .png or .npy, got {FLAGS.out!r}")
  samples = sampling.from_run(FLAGS.workdir, FLAGS.num, FLAGS.seed, FLAGS.component, FLAGS.step,
                              FLAGS.sigma_scale)
  if extension == ".npy":
    buffer = io.BytesIO()
    np.save(buffer, samples)
    atomic_files.write_atomic(FLAGS.out, buffer.getvalue())  # whole or not at all
  elif samples.ndim == 2:
    title = f"{FLAGS.num} samples" + ("" if FLAGS.component is None else
                                      f", component {FLAGS.component}")
    plots.save_toy_scatter(samples, np.zeros((0, 2)), FLAGS.out, title)
  else:
    plots.save_image_grid(samples, FLAGS.out)
  scale = "" if FLAGS.sigma_scale == 1 else f" (sigma x {FLAGS.sigma_scale:g})"
  print(f"wrote {samples.shape} samples{scale} to {FLAGS.out}")


def run() -> None:
  cli.run(main, define_flags,
          again="the checkpoint is untouched and the same samples are drawn again")


if __name__ == "__main__":
  run()

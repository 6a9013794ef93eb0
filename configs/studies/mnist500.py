r"""The MNIST-500 study of docs/results.md as one study file: GAN and DeLiGAN at the paper's
schedule, seeds 0-4, and DeLiGAN with a forced D update, seeds 0-2.

  python -m deligan_jax.cli.study --study configs/studies/mnist500.py --workdir runs/mnist500
  python -m deligan_jax.cli.study --study configs/studies/mnist500.py --workdir runs/mnist500 \
      --print_commands        # one line per run: xargs -P 2 -I{} sh -c {}, or a job array
"""

import ml_collections


def get_config():
  s = ml_collections.ConfigDict()
  s.config = "configs/mnist.py"
  s.seeds = (0, 1, 2, 3, 4)
  s.baseline = "gan"
  # Every 1000th batch kept, so that the trajectory can score them.
  s.overrides = ("checkpoint_every=1000", "keep_checkpoints=40", "sample_every=1000")
  s.steps = (1000, 5000, 10000, 20000)
  s.arms = {
      "gan": {"model": "gan"},
      "deligan": {"model": "deligan"},
      # An extra D update at half the learning rate whenever G has run ahead.
      "deligan_forced": {"model": "deligan", "overrides": ("balance.forced_d_lr_factor=0.5",),
                         "seeds": (0, 1, 2)},
  }
  return s

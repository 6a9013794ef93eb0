r"""Short pilot of two remedies' strengths on MNIST-500: 2000 batches, seed 0.

Picks the larger fixed sigma and the mode-seeking weight that the screening
(``configs/studies/mnist_remedies.py``) runs: of each, the largest value whose FID at batch
2000 is at most 1.25 x official DeLiGAN's at batch 2000 (docs/results.md, "Remedies").

  python -m deligan_jax.cli.study --study configs/studies/mnist_remedies_pilot.py \
      --workdir runs/remedies_pilot
"""

import ml_collections


def get_config():
  s = ml_collections.ConfigDict()
  s.config = "configs/mnist.py"
  s.seeds = (0,)
  s.baseline = "deligan"
  s.overrides = ("num_steps=2000", "checkpoint_every=1000", "keep_checkpoints=40",
                 "sample_every=1000")
  s.steps = (1000,)
  s.arms = {"deligan": {"model": "deligan"}}
  for sigma in (0.5, 1.0, 2.0):
    s.arms[f"fixed_sigma_{sigma:g}".replace(".", "p")] = {"model": "deligan", "overrides": (
        "latent.train_sigma=False", f"latent.sigma_init_range=({sigma}, {sigma})")}
  # 100 and 1000 added once 10, the largest first tried, kept FID: where does it break?
  for weight in (0.1, 1.0, 10.0, 100.0, 1000.0):
    s.arms[f"mode_seeking_{weight:g}".replace(".", "p")] = {"model": "deligan", "overrides": (
        f"latent.mode_seeking_weight={weight}",)}
  return s

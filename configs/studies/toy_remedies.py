r"""The remedies of ``mnist_remedies.py`` on the toy bimodal data, seeds 0-4: do they remove the
seeds on which the toy DeLiGAN collapses (2 of 5 with the official settings, docs/results.md)?

  python -m deligan_jax.cli.study --study configs/studies/toy_remedies.py \
      --workdir runs/toy_remedies

Each arm trains the paper's 64000 batches, scored at batches 8000 and 32000 and at the end;
the official DeLiGAN is also scored with its sigma scaled at sampling time. The arms carry the
MNIST screening's over to the toy's settings: 400 components (one per training point, each
row of a batch drawing its component), sigma fixed at its initial 0.02 (GM-GAN's fixed
sigma; mu trains), the mode-seeking term at weight 10, the sigma regulariser x10 and x100 (official
0.1). The toy's latent dimension is already 2. Toy runs are scored on modes, not FID: no
selection rule applies; the table gives every seed.
"""

import ml_collections

SIGMA_REG = 0.1  # the official toy weight


def deligan(*overrides: str) -> dict:
  return {"model": "deligan", "overrides": overrides}


def get_config():
  s = ml_collections.ConfigDict()
  s.config = "configs/toy.py:bimodal"
  s.seeds = (0, 1, 2, 3, 4)
  s.baseline = "deligan"
  s.overrides = ("keep_checkpoints=8",)  # every 8000th batch, for the trajectory
  s.steps = (8000, 32000)
  s.sigma_scales = (2.0, 8.0, 32.0)
  s.sigma_scale_arms = ("deligan",)
  s.arms = {
      "gan": {"model": "gan"},
      "deligan": deligan(),
      "components_400": deligan("latent.num_components=400", "latent.assignment=random"),
      "fixed_sigma": deligan("latent.train_sigma=False"),
      "mode_seeking_10": deligan("latent.mode_seeking_weight=10.0"),
      "sigma_reg_x10": deligan(f"latent.sigma_reg={10 * SIGMA_REG!r}"),
      "sigma_reg_x100": deligan(f"latent.sigma_reg={100 * SIGMA_REG!r}"),
  }
  return s

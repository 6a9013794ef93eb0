r"""Screening the remedies for a DeLiGAN that draws one image per component, on MNIST-500.

Each arm trains 10000 batches of the paper's schedule (the collapse is complete by batch
5000), seeds 0-2, scored at batches 1000, 5000 and 10000; the official DeLiGAN's runs are
also scored at batch 10000 with their sigma scaled at sampling time (GM-GAN's trade-off).

  python -m deligan_jax.cli.study --study configs/studies/mnist_remedies.py \
      --workdir runs/remedies

The arms: the GAN and the official DeLiGAN; the authors' workarounds (sigma regulariser x10
and x100, latent dimension 10, 500 components: one per training image, each row of a
batch drawing its component, as the batch assignment needs one component per row); sigma
fixed as in GM-GAN's static variant (at 0.2, and at 0.5, the pilot's pick; mu still trains,
which that variant fixes too); MSGAN's mode-seeking
term (weight 10, the pilot's first pick, and 100, its pick once extended to 100 and 1000). Pilot: ``configs/studies/mnist_remedies_pilot.py``.

Selection rule, fixed before any screening run was scored: at batch 10000, among the rows
(arms, and scaled DeLiGAN) whose mean FID over seeds is at most 1.25 x the official
DeLiGAN's, the one with the highest mean diversity within a class (pixels, a ratio to real
test images'). docs/results.md, "Remedies", reports it with the trajectory beside it.
"""

import ml_collections

SIGMA_REG = 1 / 3  # the official weight


def deligan(*overrides: str) -> dict:
  return {"model": "deligan", "overrides": overrides}


def get_config():
  s = ml_collections.ConfigDict()
  s.config = "configs/mnist.py"
  s.seeds = (0, 1, 2)
  s.baseline = "deligan"
  s.overrides = ("num_steps=10000", "checkpoint_every=1000", "keep_checkpoints=40",
                 "sample_every=1000")
  s.steps = (1000, 5000)
  s.sigma_scales = (2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0)
  s.sigma_scale_arms = ("deligan",)
  s.selection = {"score": "within_class", "max_fid_ratio": 1.25}
  s.arms = {
      "gan": {"model": "gan"},
      "deligan": deligan(),
      "sigma_reg_x10": deligan(f"latent.sigma_reg={10 * SIGMA_REG!r}"),
      "sigma_reg_x100": deligan(f"latent.sigma_reg={100 * SIGMA_REG!r}"),
      "latent_dim_10": deligan("latent.dim=10"),
      "components_500": deligan("latent.num_components=500", "latent.assignment=random"),
      "fixed_sigma_0p2": deligan("latent.train_sigma=False"),
      # The pilot's picks: the largest value whose FID at batch 2000 is within 1.25 x DeLiGAN's.
      "fixed_sigma_0p5": deligan("latent.train_sigma=False", "latent.sigma_init_range=(0.5, 0.5)"),
      "mode_seeking_10": deligan("latent.mode_seeking_weight=10.0"),
      # The extended pilot's pick: 100 kept FID at batch 2000, 1000 broke it.
      "mode_seeking_100": deligan("latent.mode_seeking_weight=100.0"),
  }
  return s

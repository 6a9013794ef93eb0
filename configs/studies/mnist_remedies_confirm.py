r"""Confirming the screening's pick on MNIST-500: 500 components (one per training image)
against the GAN and the official DeLiGAN at the paper's schedule (40000 batches), seeds 0-4.

  python -m deligan_jax.cli.study --study configs/studies/mnist_remedies_confirm.py \
      --workdir runs/remedies_confirm

The pick is the screening's (``configs/studies/mnist_remedies.py``) under its selection rule;
this study states no rule of its own, since it confirms a pick rather than makes one.
The learning rate decays by epoch, not by a run's length, so a screening run continued from
its batch-10000 checkpoint is the same run as one started here: copying the screening's
seed folders of these arms into WORKDIR/<arm>/ saves their first 10000 batches. The official
DeLiGAN is also scored with its sigma scaled at sampling time (GM-GAN's trade-off; the
screening's best scale was 64). Its sigma keeps falling after batch 10000 (mean 5e-3 there,
8e-6 at batch 40000 on seed 0), so the scales reach up to where sigma times the scale is
about the screening's x64 at batch 10000 and beyond. The 500 components' sigma falls less
(3e-3 at batch 40000 on seed 0): scaled, its many components might draw varied images rather
than one each. docs/results.md, "Remedies", reports both.
"""

import ml_collections


def get_config():
  s = ml_collections.ConfigDict()
  s.config = "configs/mnist.py"
  s.seeds = (0, 1, 2, 3, 4)
  s.baseline = "gan"
  s.also_compared_with = ("deligan",)
  s.overrides = ("checkpoint_every=1000", "keep_checkpoints=40", "sample_every=1000")
  s.steps = (1000, 5000, 10000, 20000)
  s.sigma_scales = (32.0, 64.0, 128.0, 1e3, 1e4, 4e4, 1e5)
  s.sigma_scale_arms = ("deligan", "components_500")
  s.arms = {
      "gan": {"model": "gan"},
      "deligan": {"model": "deligan"},
      "components_500": {"model": "deligan", "overrides": ("latent.num_components=500",
                                                           "latent.assignment=random")},
  }
  return s

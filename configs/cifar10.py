r"""CIFAR-10, the 2000 images of the official selection, docs/paper.md §3: ``cifar10.py:<model>``.

The semi-supervised Improved-GAN discriminator (10 class logits), N = d = 100,
each batch 1 D then 3 G updates, 1200 epochs::

  python train.py --config configs/cifar10.py --workdir runs/cifar10
  python train.py --config configs/cifar10.py:gan --workdir runs/cifar10_gan
  python train.py --config configs/cifar10.py:deligan --workdir runs/c \
      --config.data.dir=../shared/data/cifar10 --config.augment=color,translation,cutout

Models: gan, gan++, ensemble, nx, moe, deligan (default). Nx-GAN multiplies the
generator's widths by N = 100: too large for most machines.
"""

from deligan_jax import config as config_lib
from deligan_jax.models import MODELS


def get_config(arg: str | None = None):
  parts = config_lib.parse_arg(arg, {"model": MODELS}, {"model": "deligan"})
  config = config_lib.improved_gan_config(parts["model"])
  config.objective = "semi_supervised"
  config.num_steps = 24_000          # 1200 epochs x 20 batches
  config.steps_per_dispatch = 20
  config.log_every = 20
  config.sample_every = 2_000
  config.checkpoint_every = 2_000

  config.data.name = "cifar10"

  config.network.name = "cifar10"
  config.network.generator_width = 128   # 512, 256, 128 channels
  config.network.discriminator_width = 96  # 96, then 192 channels
  config.network.mbd_kernels = 100
  config.network.init_examples = 500

  config.latent.sigma_init_range = (-0.2, 0.2)
  # The official CIFAR script computes and logs the sigma term but never adds it.
  config.latent.sigma_reg = 0.0

  config.optim.lr = 3e-4
  config.optim.decay_start_epoch = 800.0
  config.optim.decay_end_epoch = 1200.0

  config.balance.kind = "fixed"
  config.balance.inner_updates = 4   # 1 D update, then 3 G updates
  config.balance.fixed_d_updates = 1
  return config

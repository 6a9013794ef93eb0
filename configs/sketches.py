r"""TU-Berlin sketches (a list of categories), docs/paper.md §3: ``configs/sketches.py:<model>``.

Thresholded, inverted, dilated 32x32 sketches with their left-right flips;
N = d = 100; the streak balancing rule with a forced half-lr D update; 3900 epochs::

  python train.py --config configs/sketches.py --workdir runs/sketches
  python train.py --config configs/sketches.py:gan --workdir runs/sketches_gan
  python train.py --config configs/sketches.py --workdir runs/s \
      --config.data.dir=../shared/data/sketches/tu_berlin \
      --config.data.categories='("cat", "dog", "sheep")'

Models: gan, gan++, ensemble, nx, moe, deligan (default). Categories: every
category folder found, unless ``data.categories`` names some. ``num_steps`` is
3900 epochs of the 40 shared categories (64 batches each); for C categories of
80 sketches, 3900 epochs are ``3900 * (160 * C // 100)`` batches.
"""

from deligan_jax import config as config_lib
from deligan_jax.models import MODELS


def get_config(arg: str | None = None):
  parts = config_lib.parse_arg(arg, {"model": MODELS}, {"model": "deligan"})
  config = config_lib.improved_gan_config(parts["model"])
  config.num_steps = 249_600         # 3900 epochs x 64 batches (40 categories x 160)
  config.steps_per_dispatch = 16
  config.log_every = 64
  config.sample_every = 6_400
  config.checkpoint_every = 6_400

  config.data.name = "sketches"

  config.network.name = "sketches"
  config.network.generator_width = 40    # 160, 80, 40 channels
  config.network.discriminator_width = 20  # 20, 20, 40, 80 channels
  config.network.mbd_kernels = 50
  config.network.init_examples = 400

  config.latent.sigma_init_range = (0.2, 0.2)
  config.latent.sigma_reg = 0.05

  config.optim.lr = 1e-4
  config.optim.decay_start_epoch = 2600.0
  config.optim.decay_end_epoch = 3900.0

  config.balance.kind = "streak"
  config.balance.inner_updates = 5
  config.balance.g_streak = 5
  config.balance.d_streak = 2
  config.balance.thres_up = 0.003
  config.balance.thres_down = 0.003
  config.balance.t1_init = 0.70
  config.balance.forced_d_lr_factor = 0.5
  # The official sketch script probes with D's noise and dropout on (training mode).
  config.balance.probe_train_mode = True
  # ... once per batch, before the forced D update; a G update's loss stands in for the next.
  config.balance.probe_reuse = True
  return config

r"""2-D toy data (400 points), docs/paper.md §3: ``configs/toy.py:<data>,<model>``.

  python train.py --config configs/toy.py --workdir runs/toy
  python train.py --config configs/toy.py:bimodal,gan --workdir runs/toy_gan
  python train.py --config configs/toy.py:unimodal,ensemble --workdir runs/toy_ens
  python train.py --config configs/toy.py:points,deligan --config.data.path=pts.npy \
      --workdir runs/toy_pts

Data: bimodal (default), unimodal, points (any (N, 2) .npy). bimodal and unimodal keep the
official toy settings; points trains with those that suited other 2-D data (docs/training.md).
Models: gan, gan++, ensemble, nx, moe, deligan (default).
"""

from deligan_jax import config as config_lib
from deligan_jax.models import MODELS

DATA = {"bimodal": "toy_bimodal", "unimodal": "toy_unimodal", "points": "points"}


def get_config(arg: str | None = None):
  parts = config_lib.parse_arg(arg, {"data": tuple(DATA), "model": MODELS},
                               {"data": "bimodal", "model": "deligan"})
  config = config_lib.base_config()
  config.model = parts["model"]
  config.num_steps = 64_000          # 8000 epochs x 8 batches
  config.steps_per_dispatch = 100
  config.log_every = 100
  config.sample_every = 8_000
  config.checkpoint_every = 8_000
  config.num_plot_samples = 500

  config.data.name = DATA[parts["data"]]

  config.network.name = "toy"
  config.network.generator_width = 32
  config.network.discriminator_width = 32
  config.network.expand_activation = "tanh"
  config.network.linear_init = "uniform_unit_scaling"  # TensorFlow 0.10's default

  config.latent.dim = 2
  config.latent.num_components = 50
  # The official toy script trains with eps ~ U(-1, 1).
  config.latent.noise = "uniform"
  # ... one eps per batch, reused by its 5 updates.
  config.latent.eps_draw = "per_batch"
  config.latent.sigma_init_range = (0.02, 0.02)
  config.latent.sigma_reg = 0.1

  config.optim.lr = 1e-4
  config.optim.decay_start_epoch = None
  config.optim.decay_end_epoch = None

  config.balance.kind = "count"
  config.balance.thres_up = 0.01
  config.balance.thres_down = 0.001
  config.balance.t1_init = 0.73

  if parts["data"] == "points":
    # A user's own points: the settings that covered the modes of rings, spirals and uneven
    # blobs (benchmarks/toy_points_defaults.py; docs/training.md, "Your own points"). Under
    # the rule above, D stopped getting updates and few modes were covered; one D and one
    # G update per batch covered nearly all, with Glorot and a new eps per update at least
    # as well as with TensorFlow 0.10's initialiser and one eps per batch.
    config.network.linear_init = "glorot_uniform"
    config.latent.eps_draw = "per_update"
    config.balance.kind = "fixed"
    config.balance.inner_updates = 2
    config.balance.fixed_d_updates = 1
  return config

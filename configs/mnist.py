r"""MNIST, 500 training images (the last 50 of each digit), docs/paper.md §3.

The argument picks the model (default deligan)::

  python train.py --config configs/mnist.py --workdir runs/mnist
  python train.py --config configs/mnist.py:gan --workdir runs/mnist_gan
  python train.py --config configs/mnist.py:deligan --workdir runs/m \
      --config.data.dir=../shared/data/mnist --config.num_steps=2000

Models: gan, gan++, ensemble, nx, moe, deligan.
"""

from deligan_jax import config as config_lib
from deligan_jax.models import MODELS


def get_config(arg: str | None = None):
  parts = config_lib.parse_arg(arg, {"model": MODELS}, {"model": "deligan"})
  config = config_lib.base_config()
  config.model = parts["model"]
  return config

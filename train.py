"""Trains a model: ``python train.py --config configs/mnist.py`` (see deligan_jax/cli/train.py)."""

from deligan_jax.cli import train

if __name__ == "__main__":
  train.run()

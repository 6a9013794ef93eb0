"""Evaluates a trained run: ``python eval.py --workdir runs/mnist`` (deligan_jax/cli/evaluate.py)"""

from deligan_jax.cli import evaluate

if __name__ == "__main__":
  evaluate.run()

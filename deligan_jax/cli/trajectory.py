r"""Scores over training: each arm's seeds evaluated at chosen checkpoints, with a band over seeds.

  python -m deligan_jax.cli.trajectory --workdir runs/mnist500 \
      --models gan,deligan,deligan_forced --steps 1000,5000,10000,20000,40000

See :mod:`deligan_jax.scores.trajectory` for what is scored and written.
"""

from __future__ import annotations

import os

from absl import flags

from deligan_jax import cli
from deligan_jax import errors
from deligan_jax.scores.trajectory import trajectory

FLAGS = flags.FLAGS

def define_flags() -> None:
  flags.DEFINE_string("workdir", None, "A folder of arms (see deligan_jax.scores.trajectory).")
  flags.DEFINE_list("models", None, "Arms (folders of --workdir) in order; default all.")
  flags.DEFINE_list("steps", ["1000", "5000", "10000", "20000", "40000"],
                    "Checkpoints (batches) to score.")
  flags.DEFINE_integer("num_samples", None, "Samples scored per checkpoint (eval.py's default).")
  flags.DEFINE_string("cache_dir", None, "Where the evaluation classifier is cached.")
  flags.mark_flags_as_required(["workdir"])


def main(argv):
  del argv
  try:
    steps = [int(step) for step in FLAGS.steps]
  except ValueError as e:
    raise errors.RequestError(f"--steps must be batch numbers, got {FLAGS.steps}") from e
  trajectory(FLAGS.workdir, FLAGS.models, steps, FLAGS.num_samples, FLAGS.cache_dir)
  with open(os.path.join(FLAGS.workdir, "trajectory.md")) as f:
    print(f.read())
  print(f"wrote {os.path.join(FLAGS.workdir, 'trajectory.png')}")


def run() -> None:
  cli.run(main, define_flags,
          again="checkpoints already scored are kept and the others are scored")


if __name__ == "__main__":
  run()

r"""Trains a DeLiGAN (or baseline) model.

  python train.py --config configs/mnist.py            # -> runs/mnist_deligan
  python train.py --config configs/mnist.py --workdir runs/mnist
  python train.py --config configs/toy.py:bimodal,gan --workdir runs/toy_gan \
      --config.num_steps=8000

Any config field can be overridden (``--config.batch_size=8``); unknown fields,
invalid values, bad data and unusable workdirs are refused before anything is
written. Re-running with the same workdir resumes from its latest checkpoint.
Without --workdir the run goes to runs/<config>[_<data>]_<recipe or model> (see
deligan_jax/runs/workdir.py), named on the first line of output.
"""

import sys

from absl import flags
from ml_collections import config_flags

from deligan_jax import cli
from deligan_jax import config as config_lib
from deligan_jax import training
from deligan_jax.runs import workdir as workdir_lib
from deligan_jax.step import distributed

FLAGS = flags.FLAGS


def define_flags() -> None:
  flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and pictures "
                      "(default: runs/<config>[_<data>]_<recipe or model>).")
  config_flags.DEFINE_config_file(
      "config", None, "Experiment config file, optionally with an argument: path[:arg].",
      lock_config=True)
  flags.mark_flags_as_required(["config"])


def main(argv):
  del argv
  config_lib.validate(FLAGS.config)
  # With several processes the mesh then spans the devices of all of them.
  distributed.initialize(FLAGS.config.distributed)
  try:
    workdir = FLAGS.workdir
    if workdir is None:
      workdir = workdir_lib.default_workdir(config_flags.get_config_filename(FLAGS["config"]),
                                            FLAGS.config)
      if distributed.is_primary():
        print(f"workdir: {workdir} (the default for this config; --workdir chooses another)",
              flush=True)
    with distributed.one_line_when_a_process_stops():
      training.train_and_evaluate(FLAGS.config, workdir)
  except training.Interrupted as stop:
    sys.exit(f"interrupted by {stop}")
  except training.NonFinite as error:
    sys.exit(f"stopped: {error}")
  except training.Stalled as error:
    sys.exit(f"stalled: {error}")


def run() -> None:
  cli.run(main, define_flags)


if __name__ == "__main__":
  run()

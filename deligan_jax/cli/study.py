r"""Runs a study: named arms (a model plus config overrides) times seeds, scored and tabulated.

  python -m deligan_jax.cli.study --study configs/studies/mnist_remedies.py \
      --workdir runs/remedies                   # train, score, tabulate; resumes when rerun
  python -m deligan_jax.cli.study --study configs/studies/mnist_remedies.py \
      --workdir runs/remedies --print_commands  # one line per run, for xargs -P or a job array
  python -m deligan_jax.cli.study --workdir runs/remedies --tabulate

A study file (``deligan_jax/study/plan.py`` says what it holds) lists the arms. Each
(arm, seed) run is its own process, ``--workers`` at a time (default: one per core this
process may use), pinned to one core with XLA on one thread (``deligan_jax/study/pinning.py``),
so its numbers do not depend on how many run beside it. A run trains to its last batch, or
resumes from its latest checkpoint, then scores its kept checkpoints at the study's
``steps`` and its last one (and its sigma scales), each evaluation kept and reused. A run
already done is scored where it is not yet, and otherwise left. The tables then compare
every arm with the baseline arm, and with the arms of ``also_compared_with``
(``deligan_jax/study/report.py``).

``--print_commands`` writes ``WORKDIR/study_plan.json`` and prints the command of each run,
the one the pool runs: ``xargs -P 2 -I{} sh -c {}`` over its lines, or a job array
with one line per task, then ``--tabulate``.
"""

from __future__ import annotations

import os
import shlex
import sys

from absl import flags
from ml_collections import config_flags

from deligan_jax import cli
from deligan_jax import errors
from deligan_jax.runs import disk_full
from deligan_jax.study import plan

FLAGS = flags.FLAGS


def define_flags() -> None:
  config_flags.DEFINE_config_file("study", None, "A study file (see deligan_jax/study/plan.py).")
  flags.DEFINE_string("workdir", None, "The study's folder: study_plan.json, a folder per arm, "
                      "logs and the tables.")
  flags.DEFINE_integer("workers", None, "Runs at a time (default: one per core this process "
                       "may use).", lower_bound=1)
  flags.DEFINE_bool("print_commands", False, "Only print each run's command, one per line.")
  flags.DEFINE_bool("tabulate", False, "Only tabulate the runs scored so far.")
  flags.DEFINE_string("run", None, "ARM:SEED: train and score that one run, pinned to a core "
                      "(the command each worker runs).")
  flags.mark_flags_as_required(["workdir"])


def _study() -> plan.Study:
  """The study of --study, recorded in the workdir, or the workdir's recorded one."""
  if FLAGS.study is None:
    return plan.read(FLAGS.workdir)
  study = plan.Study.from_config(FLAGS.study)
  plan.record(study, FLAGS.workdir)
  return study


def run_one(spec: str) -> None:
  arm, _, seed = spec.rpartition(":")
  study = plan.read(FLAGS.workdir)
  if arm not in study.arms or not seed.isdigit() or int(seed) not in study.seeds_of(arm):
    raise errors.RequestError(f"--run={spec}: not ARM:SEED of this study (arms "
                              f"{list(study.arms)}, seeds {list(study.seeds)})")
  from deligan_jax.study import pinning  # before JAX's backend starts
  core = pinning.pin_to_one_core()
  print(f"{arm} seed {seed}: pinned to core {core}", flush=True)
  from deligan_jax import training
  from deligan_jax.study import run
  try:
    run.train_and_score(study, FLAGS.workdir, arm, int(seed))
  except training.Interrupted as stop:  # the same lines as train.py's
    sys.exit(f"interrupted by {stop}")
  except training.NonFinite as error:
    sys.exit(f"stopped: {error}")
  except training.Stalled as error:
    sys.exit(f"stalled: {error}")


def main(argv):
  del argv
  if FLAGS.run is not None:
    run_one(FLAGS.run)
    return
  study = _study()
  if FLAGS.print_commands:
    for arm, seed in study.runs():
      print(shlex.join(plan.run_command(FLAGS.workdir, arm, seed)))
    return
  from deligan_jax.study import report  # scoring code: only when tabulating
  if not FLAGS.tabulate:
    from deligan_jax.study import pool
    workers = FLAGS.workers or len(os.sched_getaffinity(0))
    runs = study.runs()
    print(f"{len(runs)} runs ({len(study.arms)} arms, seeds {list(study.seeds)}), "
          f"{workers} at a time, under {FLAGS.workdir}", flush=True)
    failed = pool.run_all([(f"{arm} seed {seed}", plan.run_command(FLAGS.workdir, arm, seed),
                            plan.log_path(FLAGS.workdir, arm, seed)) for arm, seed in runs],
                          workers)
    if failed:
      report.write(study, FLAGS.workdir)
      raise errors.RequestError(f"{len(failed)} of {len(runs)} runs failed ({', '.join(failed)})"
                                f"; their logs under {os.path.join(FLAGS.workdir, 'logs')} say "
                                "why; the same command resumes the study")
  if report.write(study, FLAGS.workdir) is None:
    raise errors.RequestError(f"{FLAGS.workdir}: no run of the study is scored yet")
  with open(os.path.join(FLAGS.workdir, f"{report.TABLES}.md")) as f:
    print(f.read())


def run() -> None:
  cli.run(main, define_flags,
          again=lambda: disk_full.TABLES_WRITTEN_AGAIN if FLAGS.tabulate else
          "finished runs are kept and the others resume from their last complete checkpoints")


if __name__ == "__main__":
  run()

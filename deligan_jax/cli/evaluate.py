r"""Evaluates a trained run: scores, the memorisation check and their pictures.

  python eval.py --workdir runs/mnist      # or: deligan-eval, python -m deligan_jax.cli.evaluate
  python eval.py --workdir runs/toy --num_samples 2000

Writes eval.json and eval_report.md (plus pictures) into the workdir. Image
scores (MNIST, CIFAR-10, sketches) use a classifier the project trains on the
run's dataset (cached under --cache_dir or $DELIGAN_CACHE_DIR) and compare
with that dataset's real test set; they are labelled classifier-based.
CIFAR-10 and sketch runs are also scored by the paper's protocol on
Inception-v3 pool3 features (m-IS of a transfer softmax, Inception FID/KID),
labelled "paper protocol"; it needs `python -m deligan_jax.cli.fetch_inception`
once, and scores the official count (CIFAR-10 5000, sketches 50000) unless
--num_samples (about a second per image on a CPU: use a few hundred for a quick look).
"""

from absl import flags

from deligan_jax import cli
from deligan_jax import errors
from deligan_jax.scores import evaluation

FLAGS = flags.FLAGS


def define_flags() -> None:
  flags.DEFINE_string("workdir", None, "A training workdir (or one seed folder of it).")
  flags.DEFINE_integer("num_samples", None, "Samples to score (default: with the paper "
                       "protocol the official count, CIFAR-10 5000, sketches 50000; else 5000 "
                       "images, 2000 points).",
                       lower_bound=2)
  flags.DEFINE_string("cache_dir", None, "Where the evaluation classifier is cached.")
  flags.DEFINE_integer("seed", 0, "PRNG seed of the evaluated samples.")
  flags.DEFINE_integer("classifier_steps", evaluation.CLASSIFIER_STEPS,
                       "Training steps of the evaluation classifier.")
  flags.DEFINE_integer("step", None, "Score this checkpoint (default: the latest); outputs go "
                       "to WORKDIR/eval_steps/<step>/.", lower_bound=0)
  flags.DEFINE_float("sigma_scale", 1.0, "DeLiGAN: score samples drawn with the mixture's sigma "
                     "times this; outputs go to <out>/sigma_scale_<s>/ unless 1.")
  flags.DEFINE_bool("paper_protocol", True, "CIFAR-10, sketches: also the paper's Inception-based "
                    "scores.")
  flags.mark_flags_as_required(["workdir"])


def main(argv):
  del argv
  try:
    evaluation.evaluate(FLAGS.workdir, FLAGS.num_samples, FLAGS.cache_dir, FLAGS.seed,
                        FLAGS.classifier_steps, FLAGS.paper_protocol, FLAGS.step,
                        FLAGS.sigma_scale)
  except errors.WeightsError as e:
    raise errors.RequestError(f"{e} (or pass --nopaper_protocol)") from e
  out_dir = evaluation.output_dir(FLAGS.workdir, FLAGS.step, FLAGS.sigma_scale)
  with open(f"{out_dir}/{evaluation.REPORT}") as f:
    print(f.read())


def run() -> None:
  cli.run(main, define_flags,
          again="the checkpoint is untouched and is scored again, to the same numbers")


if __name__ == "__main__":
  run()

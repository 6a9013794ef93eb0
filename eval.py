r"""Evaluates a trained run: scores, the memorisation check and their pictures.

  python eval.py --workdir runs/mnist
  python eval.py --workdir runs/toy --num_samples 2000

Writes eval.json and eval_report.md (plus pictures) into the workdir. Image
scores (MNIST, CIFAR-10, sketches) use a classifier the project trains on the
run's dataset (cached under --cache_dir or $DELIGAN_CACHE_DIR) and compare
with that dataset's real test set; they are labelled classifier-based.
"""

from absl import flags

from deligan_jax import cli
from deligan_jax import evaluation

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "A training workdir (or one seed folder of it).")
flags.DEFINE_integer("num_samples", None, "Samples to score (default 5000 images, 2000 points).",
                     lower_bound=2)
flags.DEFINE_string("cache_dir", None, "Where the evaluation classifier is cached.")
flags.DEFINE_integer("seed", 0, "PRNG seed of the evaluated samples.")
flags.DEFINE_integer("classifier_steps", 2000, "Training steps of the evaluation classifier.")
flags.mark_flags_as_required(["workdir"])


def main(argv):
  del argv
  evaluation.evaluate(FLAGS.workdir, FLAGS.num_samples, FLAGS.cache_dir, FLAGS.seed,
                      FLAGS.classifier_steps)
  with open(f"{FLAGS.workdir}/{evaluation.REPORT}") as f:
    print(f.read())


if __name__ == "__main__":
  cli.run(main)

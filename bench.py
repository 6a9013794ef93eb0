r"""Benchmarks the fused train step; see deligan_jax/bench.py.

  python bench.py --config configs/mnist.py [--quick] [--json]
"""

from absl import app

from deligan_jax import bench

if __name__ == "__main__":
  bench.define_flags()
  app.run(bench.main)

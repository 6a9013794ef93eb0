"""How a run's seeds and batch are laid out over the devices: a ``seeds`` x ``data`` mesh.

``num_seeds`` independent runs spread over the ``seeds`` axis (no communication
between them), and each run's batch splits over the ``data`` axis. Both sizes
must divide what they split, so the paper's batch of 50 on 8 devices uses 2 of
them for one seed, and all 8 for 4 or 8 seeds. The layout that uses the most
devices is chosen, with more of them on seeds (free parallelism) on a tie;
devices left idle are named with the ``num_seeds`` that would use them.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from jax.sharding import Mesh

SEEDS_AXIS = "seeds"
DATA_AXIS = "data"


def _divisors(n: int) -> list[int]:
  return [d for d in range(1, n + 1) if n % d == 0]


@dataclasses.dataclass(frozen=True)
class Layout:
  """``seeds`` x ``data`` devices of ``num_devices`` for ``num_seeds`` runs of ``batch_size``."""
  seeds: int
  data: int
  num_devices: int
  num_seeds: int
  batch_size: int

  @classmethod
  def plan(cls, num_devices: int, num_seeds: int, batch_size: int) -> Layout:
    best = max(((s, d) for s in _divisors(math.gcd(num_seeds, num_devices))
                for d in _divisors(num_devices // s) if batch_size % d == 0),
               key=lambda sd: (sd[0] * sd[1], sd[0]))
    return cls(*best, num_devices, num_seeds, batch_size)

  @property
  def used(self) -> int:
    return self.seeds * self.data

  def idle_note(self, devices) -> str | None:
    """One line naming the idle ``devices`` (all of the pool) and the flag that would use them."""
    if self.used == len(devices):
      return None
    idle = ", ".join(str(d) for d in devices[self.used:])
    # The batch splits over at most `data_max` of the devices; seeds fill the rest.
    data_max = max(d for d in _divisors(self.num_devices) if self.batch_size % d == 0)
    seeds_needed = self.num_devices // data_max
    num_seeds = -(-self.num_seeds // seeds_needed) * seeds_needed
    return (f"{len(devices) - self.used} of {len(devices)} devices idle ({idle}): "
            f"batch_size={self.batch_size} splits over {self.data} and num_seeds="
            f"{self.num_seeds} over {self.seeds}; --config.num_seeds={num_seeds} "
            "would use all of them")

  def mesh(self, devices) -> Mesh:
    """The ``seeds`` x ``data`` mesh over the first ``used`` of ``devices``."""
    grid = np.asarray(devices[:self.used], dtype=object).reshape(self.seeds, self.data)
    return Mesh(grid, (SEEDS_AXIS, DATA_AXIS))

"""Noticing a balance that has stopped for good.

Under a threshold rule one network can stop receiving updates for the rest of a
run: once the probe g sits above the rule's ceiling and G cannot lower it, every
update goes to G and D never trains again (the other way round when g stays
below the floor). The run then spends its whole budget learning nothing, with
``d_fraction`` at 0. A run is *stalled* when one network had no update in each
of the last ``windows`` log windows while the probe's window means stayed within
``probe_tolerance`` of each other; an ordinary late phase, where updates are
rare but the probe still moves, is not.
"""

from __future__ import annotations

import collections
import dataclasses
import math
from typing import Sequence

ACTIONS = ("warn", "stop")
# Each network's update counts in a log window's summary; a forced D update is D's.
UPDATE_COUNTS = {"D": ("d_updates", "forced_d_updates"), "G": ("g_updates",)}


def updates_of(network: str, summary: dict) -> int:
  """How many updates ``network`` (``'D'`` or ``'G'``) had in one log window."""
  return sum(summary.get(key, 0) for key in UPDATE_COUNTS[network])


def stalled_network(recent: Sequence[dict], windows: int, probe_tolerance: float) -> str | None:
  """``'D'`` or ``'G'`` if that network stalled over the last ``windows`` summaries, else None.

  Each summary holds a log window's update counts (:data:`UPDATE_COUNTS`) and
  mean probe ``g_loss``; ``windows`` = 0 never reports.
  """
  if windows == 0 or len(recent) < windows:
    return None
  last = list(recent)[-windows:]
  probes = [summary["g_loss"] for summary in last]
  if not all(math.isfinite(p) for p in probes) or max(probes) - min(probes) > probe_tolerance:
    return None
  for network in UPDATE_COUNTS:
    if all(updates_of(network, summary) == 0 for summary in last):
      return network
  return None


def message(network: str, summary: dict, windows: int, batches: int, seed: int) -> str:
  """What a stalled run says, with the options that avoid it."""
  other = "G" if network == "D" else "D"
  return (f"seed {seed}: {network} has had no update for {windows} log windows ({batches} "
          f"batches) while the probe g stayed at {summary['g_loss']:.4f} (thres "
          f"{summary['thres']:.3f}): the balance has stalled and every update goes to {other}. "
          "Rules that avoid it: --config.balance.forced_d_lr_factor=0.5 (an extra D update "
          "whenever G runs ahead), --config.balance.kind=fixed (a fixed D/G schedule), or a "
          "higher --config.balance.thres_max; --config.stall.action=stop ends such a run")


@dataclasses.dataclass
class StallWatch:
  """Each seed's recent log windows, and the network it was first reported stalled on."""
  windows: int
  probe_tolerance: float
  num_seeds: int
  recent: list = dataclasses.field(init=False)
  stalled: list = dataclasses.field(init=False)

  def __post_init__(self):
    self.recent = [collections.deque(maxlen=max(self.windows, 1)) for _ in range(self.num_seeds)]
    self.stalled = [None] * self.num_seeds

  def observe(self, summaries: Sequence[dict]) -> list[str | None]:
    """Adds one window per seed; returns, per seed, the network that has just stalled.

    A seed is reported once: later windows return None for it.
    """
    newly = []
    for k, summary in enumerate(summaries):
      self.recent[k].append(summary)
      network = (None if self.stalled[k] else
                 stalled_network(self.recent[k], self.windows, self.probe_tolerance))
      self.stalled[k] = self.stalled[k] or network
      newly.append(network)
    return newly

  def label(self) -> str:
    """For the progress bar: e.g. ``'D'``, or ``'s0:D s3:G'`` over several seeds."""
    if self.num_seeds == 1:
      return self.stalled[0] or ""
    return " ".join(f"s{k}:{network}" for k, network in enumerate(self.stalled) if network)

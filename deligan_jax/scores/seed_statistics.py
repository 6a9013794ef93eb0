"""Statistics over seeds: a score's mean and spread, and whether two models really differ.

A comparison of GANs runs each model a handful of times (seeds), so a difference
between two models' means is only a finding when it is larger than what the
seeds' own spread produces. :func:`bootstrap_difference` gives the 95%
confidence interval of the difference of means by the percentile bootstrap:
each model's seeds are resampled with replacement, independently (the seeds of
two models are not paired), and the difference is recomputed each time. An
interval that contains 0 says the seeds cannot tell the models apart.

With few seeds (3 to 5) the percentile interval is narrower than the truth (a
resample cannot leave the range of the observed values), so it is a lower
bound on the uncertainty, not a test to lean on near its edge. With one seed on
either side there is no interval at all: every resample is that seed.
"""

from __future__ import annotations

import dataclasses

import numpy as np

CONFIDENCE = 0.95
RESAMPLES = 10_000
# Fewer seeds than this on either side: the interval is shown but not called a finding (with 2
# seeds a resampled mean takes only 3 values).
MIN_SEEDS = 3


def finite(values) -> np.ndarray:
  """The finite values of a sequence of numbers, as float64."""
  values = np.asarray(values, np.float64)
  return values[np.isfinite(values)]


def mean_std(values) -> tuple[float, float]:
  """Mean and sample standard deviation (ddof 1) of the finite values.

  The mean is NaN when there are none, the standard deviation when there are fewer than 2.
  """
  kept = finite(values)
  mean = float(kept.mean()) if kept.size else float("nan")
  return mean, float(kept.std(ddof=1)) if kept.size > 1 else float("nan")


def decimals(value: float, digits: int = 3) -> int:
  """Decimals to print ``value`` with: ``digits``, more where that would leave < 2 significant.

  A collapsed mixture's spread (4e-4) is not zero, and a table must not say it is.
  """
  if not np.isfinite(value) or value == 0:
    return digits
  return max(digits, 1 - int(np.floor(np.log10(abs(value)))))


def number_cell(value: float, digits: int = 3) -> str:
  """``'1.250'``, ``'0.00042'``; ``'n/a'`` when not finite."""
  return f"{value:.{decimals(value, digits)}f}" if np.isfinite(value) else "n/a"


def mean_std_cell(values, digits: int = 3) -> str:
  """``'1.250 ± 0.100'``; the mean alone for one value, ``'n/a'`` for none."""
  mean, std = mean_std(values)
  if not np.isfinite(mean):
    return "n/a"
  places = decimals(mean, digits)
  return f"{mean:.{places}f} ± {std:.{places}f}" if np.isfinite(std) else f"{mean:.{places}f}"


@dataclasses.dataclass(frozen=True)
class Difference:
  """``mean(a) - mean(b)`` with its bootstrap confidence interval ``[low, high]``.

  ``seeds``: the finite values behind it, (len(a), len(b)). The interval is NaN
  below 2 on either side.
  """
  estimate: float
  low: float
  high: float
  seeds: tuple[int, int]

  @property
  def excludes_zero(self) -> bool:
    return self.low > 0 or self.high < 0

  @property
  def is_finding(self) -> bool:
    """The interval excludes 0 and each side has at least :data:`MIN_SEEDS` seeds."""
    return self.excludes_zero and min(self.seeds) >= MIN_SEEDS

  def cell(self, digits: int = 3) -> str:
    """``'+0.120 [+0.020, +0.230] *'``, starred when :attr:`is_finding`."""
    if not np.isfinite(self.estimate):
      return "n/a"
    fewest = min(self.seeds)
    places = decimals(self.estimate, digits)
    if fewest < 2:
      return f"{self.estimate:+.{places}f} [no interval: 1 seed]"
    mark = " *" if self.is_finding else f" ({fewest} seeds)" if fewest < MIN_SEEDS else ""
    return (f"{self.estimate:+.{places}f} [{self.low:+.{places}f}, {self.high:+.{places}f}]"
            f"{mark}")


def bootstrap_difference(a, b, confidence: float = CONFIDENCE, resamples: int = RESAMPLES,
                         seed: int = 0) -> Difference:
  """``mean(a) - mean(b)`` and its percentile-bootstrap interval over the seeds of each.

  Non-finite values are left out; NaN when either side has none, and a NaN
  interval when either side has one value. The same inputs and ``seed`` give the
  same interval.
  """
  a, b = finite(a), finite(b)
  seeds = (int(a.size), int(b.size))
  if not (a.size and b.size):
    return Difference(float("nan"), float("nan"), float("nan"), seeds)
  if min(seeds) < 2:
    return Difference(float(a.mean() - b.mean()), float("nan"), float("nan"), seeds)
  rng = np.random.default_rng(seed)
  means_a = rng.choice(a, (resamples, a.size)).mean(axis=1)
  means_b = rng.choice(b, (resamples, b.size)).mean(axis=1)
  tail = 100 * (1 - confidence) / 2
  low, high = np.percentile(means_a - means_b, [tail, 100 - tail])
  return Difference(float(a.mean() - b.mean()), float(low), float(high), seeds)

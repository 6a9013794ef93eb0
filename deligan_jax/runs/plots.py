"""Pictures of a run: sample grids, toy scatter plots and loss curves (PNG files)."""

from __future__ import annotations

import io
import math
import os
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402

from deligan_jax.runs import atomic_files  # noqa: E402


def image_grid(images: np.ndarray, columns: int | None = None, pad: int = 1) -> np.ndarray:
  """Tiles (n, H, W, C) images in [-1, 1] into one uint8 (rows*H, cols*W, C) image."""
  images = np.asarray(images, np.float32)
  n, height, width, channels = images.shape
  columns = columns or math.ceil(math.sqrt(n))
  rows = math.ceil(n / columns)
  grid = np.zeros((rows * (height + pad) + pad, columns * (width + pad) + pad, channels),
                  np.uint8)
  pixels = np.clip((images + 1.0) * 127.5 + 0.5, 0, 255).astype(np.uint8)
  for index, image in enumerate(pixels):
    r, c = divmod(index, columns)
    top, left = pad + r * (height + pad), pad + c * (width + pad)
    grid[top:top + height, left:left + width] = image
  return grid


def save_image_grid(images: np.ndarray, path: str, columns: int | None = None) -> None:
  """Writes a grid of images in [-1, 1] as a PNG."""
  grid = image_grid(images, columns)
  buffer = io.BytesIO()
  plt.imsave(buffer, grid[..., 0] if grid.shape[-1] == 1 else grid, format="png",
             cmap="gray" if grid.shape[-1] == 1 else None, vmin=0, vmax=255)
  atomic_files.write_atomic(path, buffer.getvalue())


def save_toy_scatter(generated: np.ndarray, real: np.ndarray, path: str, title: str) -> None:
  """Generated points beside the training points, both on [-1, 1]^2 (as the paper plots)."""
  fig, axes = plt.subplots(1, 2, figsize=(8, 4), sharex=True, sharey=True)
  for ax, points, name, colour in ((axes[0], generated, "generated", "tab:red"),
                                   (axes[1], real, "training", "tab:blue")):
    ax.scatter(points[:, 0], points[:, 1], s=4, c=colour, alpha=0.6)
    ax.set_title(f"{name} ({len(points)})")
    ax.set_xlim(-1, 1)
    ax.set_ylim(-1, 1)
    ax.set_aspect("equal")
  fig.suptitle(title)
  fig.tight_layout()
  _save(fig, path)


def save_loss_curves(records: Sequence[dict], path: str,
                     keys: Sequence[str] = ("g_loss", "d_loss", "thres", "d_fraction",
                                            "sigma_mean", "test_accuracy")) -> None:
  """One panel per metric over training steps, from metrics.jsonl records."""
  keys = [k for k in keys if any(r.get(k) is not None for r in records)]
  fig, axes = plt.subplots(len(keys), 1, figsize=(7, 2.2 * len(keys)), sharex=True,
                           squeeze=False)
  for ax, key in zip(axes[:, 0], keys):
    points = [(r["step"], r[key]) for r in records if r.get(key) is not None]
    ax.plot(*zip(*points), lw=1)
    ax.set_ylabel(key)
    ax.grid(alpha=0.3)
  axes[-1, 0].set_xlabel("batch")
  fig.tight_layout()
  _save(fig, path)


def save_side_by_side(left: np.ndarray, right: np.ndarray, path: str,
                      titles: tuple[str, str]) -> None:
  """Two image grids side by side, e.g. samples and their nearest training images."""
  fig, axes = plt.subplots(1, 2, figsize=(8, 4.3))
  for ax, images, title in zip(axes, (left, right), titles):
    grid = image_grid(images)
    ax.imshow(grid[..., 0] if grid.shape[-1] == 1 else grid, cmap="gray", vmin=0, vmax=255)
    ax.set_title(title)
    ax.axis("off")
  fig.tight_layout()
  _save(fig, path)


def save_image_scatter(points: np.ndarray, images: np.ndarray, path: str, title: str) -> None:
  """Images (n, H, W, C) in [-1, 1] drawn at 2-D points (an embedding of their latents)."""
  from matplotlib.offsetbox import AnnotationBbox, OffsetImage

  fig, ax = plt.subplots(figsize=(8, 8))
  pixels = np.clip((np.asarray(images) + 1.0) / 2.0, 0.0, 1.0)
  for (x, y), image in zip(points, pixels):
    box = OffsetImage(image[..., 0] if image.shape[-1] == 1 else image, zoom=1.0, cmap="gray")
    ax.add_artist(AnnotationBbox(box, (x, y), frameon=False))
  ax.scatter(points[:, 0], points[:, 1], s=2, alpha=0.0)  # sets the axes' limits
  ax.set_title(title)
  fig.tight_layout()
  _save(fig, path)


def save_comparison(scores: dict[str, list[dict]], columns, path: str) -> None:
  """One bar panel per score: each model's mean over seeds, its sample std as error bar."""
  fig, axes = plt.subplots(1, len(columns), figsize=(3.2 * len(columns), 3.4), squeeze=False)
  models = list(scores)
  for ax, (key, title, higher) in zip(axes[0], columns):
    values = [np.array([run[key] for run in scores[m]], np.float64) for m in models]
    values = [v[np.isfinite(v)] for v in values]
    for i, v in enumerate(values):
      if v.size:
        ax.bar(i, v.mean(), yerr=v.std(ddof=1) if v.size > 1 else None, color="tab:blue",
               capsize=3)
      else:  # a score this model does not have (e.g. a GAN's spread within a component)
        ax.text(i, 0, "n/a", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(len(models)), models, rotation=45, ha="right")
    ax.set_title(f"{title} ({'higher' if higher else 'lower'} is better)", fontsize=9)
  fig.tight_layout()
  _save(fig, path)


def _band(ax, xs, per_seed: np.ndarray, label: str, color, log: bool = False) -> None:
  """Mean over seeds (rows) as a line, ± one std as a shaded band; NaN cells left out.

  ``log``: on a log axis, both taken of log10 of the values (a geometric mean and a
  band of a factor either side), so that a band never reaches 0 or below. On a linear axis a
  band stops at 0 where no seed is below it: a count or a distance can't be negative.
  """
  non_negative = not (per_seed < 0).any()
  if log:
    per_seed = np.log10(np.where(per_seed > 0, per_seed, np.nan))
  keep = np.isfinite(per_seed).any(axis=0)
  per_seed = per_seed[:, keep]
  if not per_seed.size:
    return
  xs, mean = np.asarray(xs)[keep], np.nanmean(per_seed, axis=0)
  # Where one seed alone has a value (a run still training), no band: a sample std needs two.
  several = np.isfinite(per_seed).sum(axis=0) > 1
  std = np.zeros_like(mean)
  std[several] = np.nanstd(per_seed[:, several], axis=0, ddof=1)
  low, high = mean - std, mean + std
  if log:
    mean, low, high = 10 ** mean, 10 ** low, 10 ** high
    ax.set_yscale("log")
  elif non_negative:
    low = np.maximum(low, 0.0)
  ax.plot(xs, mean, marker="o" if len(xs) < 20 else None, color=color, label=label)
  ax.fill_between(xs, low, high, color=color, alpha=0.2)


def _colors(count: int) -> list:
  """``count`` distinct colours: matplotlib's ten, then a 20-colour map's."""
  cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
  return cycle[:count] if count <= len(cycle) else [plt.cm.tab20(i % 20) for i in range(count)]


def save_quality_diversity(points: dict[str, tuple[list[float], list[float]]], path: str,
                           x_title: str, y_title: str,
                           variants: dict[str, dict[str, str]] | None = None,
                           variants_label: str = "the arm sampled another way") -> None:
  """One point per arm at its mean over seeds, with ± one sample std as error bars (cut at
  0), each arm a colour and marker of its own, named with its seed count in the legend.

  ``points``: ``{row: (x values, y values)}``, one value per seed. ``variants``: ``{arm:
  {row: tag}}``, the rows of a line through ``arm``'s point, in order along it: ``arm``
  itself (untagged; first where left out) and rows of ``points`` that are ``arm`` sampled
  another way (a sigma scale). Those are drawn small in the arm's colour, tagged, and the
  line is the arm's trade-off curve; the legend names only the arms and ``variants_label``.
  Rows that fall on one spot share a tag (``first–last``). Real images are the dashed line
  at x = 1 (the diversity within a class is a ratio to theirs). The y axis is logarithmic
  where the means span more than a factor of 5 (FIDs of broken and good arms).
  """
  variants = variants or {}
  variant_of = {row: arm for arm, rows in variants.items() for row in rows if row != arm}
  arms = [row for row in points if row not in variant_of]
  colors = dict(zip(arms, _colors(len(arms))))
  fig, ax = plt.subplots(figsize=(10, 6))
  markers = "osD^vP*Xph"
  # One std each way, the lower bar stopping at 0: neither score can be negative.
  spread = lambda v: ([[max(0.0, min(v.std(ddof=1), v.mean()))], [v.std(ddof=1)]]
                      if v.size > 1 else None)
  values = {}
  for row, (xs, ys) in points.items():
    xs, ys = np.asarray(xs, np.float64), np.asarray(ys, np.float64)
    keep = np.isfinite(xs) & np.isfinite(ys)
    if keep.any():
      values[row] = (xs[keep], ys[keep])
  curves = {}
  for k, arm in enumerate(arms):
    if arm in values:
      xs, ys = values[arm]
      ax.errorbar(xs.mean(), ys.mean(), xerr=spread(xs), yerr=spread(ys),
                  fmt=markers[k % len(markers)], color=colors[arm], capsize=3,
                  label=f"{arm} ({xs.size} seeds)")
    line = variants.get(arm, {})
    line = line if arm in line else {arm: None, **line}
    curves[arm] = []
    for row, tag in line.items():
      if row not in values:
        continue
      vx, vy = values[row]
      if row != arm:
        ax.errorbar(vx.mean(), vy.mean(), xerr=spread(vx), yerr=spread(vy), fmt=".",
                    color=colors[arm], capsize=2, elinewidth=0.6, alpha=0.7)
      curves[arm].append((None if row == arm else tag, vx.mean(), vy.mean()))
    if len(curves[arm]) > 1:
      ax.plot([x for _, x, _ in curves[arm]], [y for _, _, y in curves[arm]],
              color=colors[arm], linewidth=0.8, linestyle=":")
  means = [ys.mean() for _, ys in values.values()]
  if means and min(means) > 0 and max(means) > 5 * min(means):
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
  ax.axvline(1.0, color="0.4", linestyle="--", linewidth=1, label="real test images")
  if any(tag is not None for curve in curves.values() for tag, _, _ in curve):
    ax.plot([], [], color="0.3", linewidth=0.8, linestyle=":", marker=".", label=variants_label)
  ax.set_xlabel(x_title)
  ax.set_ylabel(y_title)
  ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
  fig.tight_layout()
  for arm, curve in curves.items():  # tagged once the axes are laid out, in display units
    for (x, y), tags in _spots(ax, curve):
      text = tags[0] if len(tags) == 1 else f"{tags[0]}–{tags[-1]}"
      ax.annotate(text, (x, y), xytext=(5, 4), textcoords="offset points", fontsize=7,
                  color=colors[arm])
  _save(fig, path)


def _spots(ax, curve: list[tuple[str | None, float, float]], pixels: float = 12.0):
  """A curve's points grouped where they fall within ``pixels`` of the group's first point:
  ``[((x, y) of the group's first point, [its tags]), ...]``, groups with a tag only."""
  groups = []
  for tag, x, y in curve:
    at = ax.transData.transform((x, y))
    if groups and np.hypot(*(at - groups[-1][0])) < pixels:
      groups[-1][2].append(tag)
    else:
      groups.append((at, (x, y), [tag]))
  return [(xy, [t for t in tags if t is not None]) for _, xy, tags in groups
          if any(t is not None for t in tags)]


def save_panels(pictures: dict[str, str], path: str, columns: int = 3) -> None:
  """Pictures already drawn (PNG files), side by side, each titled."""
  rows = -(-len(pictures) // columns)
  fig, axes = plt.subplots(rows, columns, figsize=(4 * columns, 4.3 * rows), squeeze=False)
  for ax, (title, picture) in zip(axes.flat, pictures.items()):
    ax.imshow(plt.imread(picture))
    ax.set_title(title, fontsize=9)
  for ax in axes.flat:
    ax.axis("off")
  fig.tight_layout()
  _save(fig, path)


def save_trajectory(scores: dict, columns, curves: dict, curve_titles, path: str,
                    real: dict | None = None, log_keys=()) -> None:
  """Scores at each evaluated step and training curves, per arm, mean over seeds ± std.

  ``scores``: ``{arm: {step: {seed: scores}}}``; ``curves``: ``{arm: {key: {seed:
  {batch: value}}}}`` with the titles ``curve_titles`` ((key, title)); those of
  ``log_keys`` on a log axis (geometric mean and band); ``real`` (``{key: value}``),
  the same scores of real test images, as dashed lines.
  """
  panels = len(columns) + len(curve_titles)
  width = min(panels, 4)
  rows = -(-panels // width)
  fig, axes = plt.subplots(rows, width, figsize=(3.6 * width, 3.0 * rows), squeeze=False)
  colors = _colors(len(scores))
  for ax, (key, title, higher) in zip(axes.flat, columns):
    for (arm, by_step), color in zip(scores.items(), colors):
      steps = sorted(by_step)
      seeds = sorted({seed for step in steps for seed in by_step[step]})
      grid = np.full((max(len(seeds), 1), len(steps)), np.nan)
      for j, step in enumerate(steps):
        for seed, run in by_step[step].items():
          value = run.get(key)
          grid[seeds.index(seed), j] = np.nan if value is None else value
      _band(ax, steps, grid, arm, color, log=key in log_keys)
    if real and key in real:
      ax.axhline(real[key], color="0.4", linestyle="--", linewidth=1, label="real test images")
    ax.set_title(f"{title} ({'higher' if higher else 'lower'} is better)", fontsize=9)
  for ax, (key, title) in zip(list(axes.flat)[len(columns):], curve_titles):
    for (arm, by_key), color in zip(curves.items(), colors):
      per_seed = list(by_key[key].values())
      batches = sorted({b for curve in per_seed for b in curve})
      if not batches:
        continue
      grid = np.array([[curve.get(b, np.nan) for b in batches] for curve in per_seed])
      _band(ax, batches, grid, arm, color, log=key in log_keys)
    ax.set_title(title, fontsize=9)
  for ax in axes.flat[:panels]:
    ax.set_xlabel("batch", fontsize=8)
  for ax in axes.flat[panels:]:
    ax.axis("off")
  axes.flat[0].legend(fontsize=8)
  fig.tight_layout()
  _save(fig, path)


def _save(fig, path: str) -> None:
  """Writes ``fig`` whole or not at all (a full disk leaves the previous picture)."""
  buffer = io.BytesIO()
  fig.savefig(buffer, dpi=100, format=os.path.splitext(path)[1][1:] or "png")
  plt.close(fig)
  atomic_files.write_atomic(path, buffer.getvalue())

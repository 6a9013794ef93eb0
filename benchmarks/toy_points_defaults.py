r"""Which settings of ``configs/toy.py:points`` cover the modes of a user's 2-D data.

  nice -n 19 python -m benchmarks.toy_points_defaults --out /tmp/points_defaults
  python -m benchmarks.toy_points_defaults --steps 200 --width 32 --datasets ring  # smoke

Three 2-D data sets made here, each a mixture of Gaussian modes inside the toy generator's
(-1, 1) range: ``ring`` (8 equal modes on a circle), ``spiral`` (10 equal modes along a
spiral arm) and ``uneven`` (5 blobs weighted 40/30/15/10/5 %). On each, GAN and DeLiGAN train
at ``--seeds`` seeds (one program per arm, ``num_seeds``) with larger networks
(``--depth`` hidden layers of ``--width`` units, ``--activation`` ReLU) under two settings:

* ``official``: the toy experiment's, TensorFlow 0.10's initialiser (uniform unit scaling)
  and one eps per batch, reused by its updates;
* ``glorot``: Glorot-uniform initialisation and a new eps for every update;
* ``*_alternating``: either, with one D update and one G update per batch instead of the toy's
  balancing rule (which gives D an update only while its probe says D is losing).

Every seed is scored on ``--samples`` samples drawn as ``eval.py`` draws them, by
``scores.metrics.toy_mode_stats``: modes covered (a mode with at least one high-quality
sample nearest to it) and the high-quality fraction (samples within 3 std of a mode). Prints
a markdown table (mean ± std over seeds, and every seed) and writes ``results.json`` in
``--out``. ``--tabulate a/results.json,b/results.json`` prints one table of several runs.
"""

import json
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import numpy as np  # noqa: E402  (after the path above)
from absl import app  # noqa: E402
from absl import flags  # noqa: E402

FLAGS = flags.FLAGS

OFFICIAL = {"network.linear_init": "uniform_unit_scaling", "latent.eps_draw": "per_batch"}
GLOROT = {"network.linear_init": "glorot_uniform", "latent.eps_draw": "per_update"}
# One D update, then one G update, per batch: no probe, no threshold.
ALTERNATING = {"balance.kind": "fixed", "balance.inner_updates": 2, "balance.fixed_d_updates": 1}
SETTINGS = {"official": OFFICIAL, "glorot": GLOROT,
            "official_alternating": OFFICIAL | ALTERNATING,
            "glorot_alternating": GLOROT | ALTERNATING}


def official_balance() -> dict:
  """The paper's toy experiment's balancing rule (configs/toy.py:bimodal), whatever the
  ``points`` defaults are: the settings without ``_alternating`` train under it."""
  from configs import toy  # noqa: PLC0415  (imports JAX)
  from deligan_jax import config as config_lib  # noqa: PLC0415
  return config_lib.flatten({"balance": toy.get_config("bimodal").balance.to_dict()})


def datasets(num_points: int = 400, seed: int = 0) -> dict[str, tuple]:
  """name -> (points (num_points, 2), mode centres (k, 2), per-axis std, mode weights)."""
  ring = 0.8 * np.stack([np.cos(a := np.arange(8) * 2 * np.pi / 8), np.sin(a)], axis=1)
  t = np.linspace(0.0, 1.0, 10)
  spiral = (0.2 + 0.65 * t)[:, None] * np.stack([np.cos(3 * np.pi * t), np.sin(3 * np.pi * t)],
                                                axis=1)
  uneven = np.array([[-0.6, -0.6], [0.6, -0.6], [0.0, 0.0], [-0.6, 0.6], [0.6, 0.6]])
  specs = {"ring": (ring, 0.04, np.full(8, 1 / 8)),
           "spiral": (spiral, 0.025, np.full(10, 1 / 10)),
           "uneven": (uneven, 0.08, np.array([0.4, 0.3, 0.15, 0.1, 0.05]))}
  rng = np.random.default_rng(seed)
  out = {}
  for name, (centres, std, weights) in specs.items():
    modes = rng.choice(len(centres), num_points, p=weights)
    points = centres[modes] + std * rng.standard_normal((num_points, 2))
    out[name] = (points.astype(np.float32), centres, std, weights)
  return out


def run_arm(points_path: str, model: str, setting: str, workdir: str) -> list[dict]:
  """Trains one arm at every seed; returns each seed's ``toy_mode_stats`` input samples."""
  from configs import toy  # noqa: PLC0415  (imports JAX)
  from deligan_jax import sampling  # noqa: PLC0415
  from deligan_jax import training  # noqa: PLC0415
  from deligan_jax.runs import checkpoints  # noqa: PLC0415

  config = toy.get_config(f"points,{model}")
  overrides = {"data.path": points_path, "num_seeds": FLAGS.seeds, "num_steps": FLAGS.steps,
               "network.toy_hidden_layers": FLAGS.depth, "network.toy_activation": FLAGS.activation,
               "network.generator_width": FLAGS.width,
               "network.discriminator_width": FLAGS.width,
               "sample_every": FLAGS.steps, "checkpoint_every": FLAGS.steps,
               "steps_per_dispatch": 100, "log_every": 100, "stall.windows": 0,
               **official_balance(), **SETTINGS[setting]}
  config.update_from_flattened_dict(overrides)
  training.train_and_evaluate(config, workdir)
  samples = []
  for seed_dir in checkpoints.run_workdirs(config, workdir):
    samples.append(sampling.from_run(seed_dir, FLAGS.samples, seed=1))
  return samples


def main(argv):
  del argv
  from deligan_jax.scores import metrics  # noqa: PLC0415

  if FLAGS.tabulate:
    rows = []
    for path in FLAGS.tabulate:
      with open(path) as f:
        rows += json.load(f)["results"]
    print(table(rows))
    return
  os.makedirs(FLAGS.out, exist_ok=True)
  results = []
  for name, (points, centres, std, _) in datasets().items():
    if name not in FLAGS.datasets:
      continue
    path = os.path.join(FLAGS.out, f"{name}.npy")
    np.save(path, points)
    for model in FLAGS.models:
      for setting in FLAGS.settings:
        workdir = os.path.join(FLAGS.out, f"{name}_{model}_{setting}")
        for seed, samples in enumerate(run_arm(path, model, setting, workdir)):
          stats = metrics.toy_mode_stats(samples, centres, std)
          results.append({"data": name, "model": model, "setting": setting, "seed": seed,
                          "modes": len(centres), "modes_covered": stats["modes_covered"],
                          "high_quality": stats["high_quality_fraction"]})
          print(json.dumps(results[-1]), flush=True)
  with open(os.path.join(FLAGS.out, "results.json"), "w") as f:
    json.dump({"flags": {k: FLAGS[k].value for k in ("steps", "seeds", "width", "depth",
                                                     "activation", "samples")},
               "results": results}, f, indent=1)
  print(table(results))


def table(results: list[dict]) -> str:
  """Markdown: per data set, model and setting, modes covered and high-quality %: mean ± the
  standard deviation over seeds (n - 1 in the denominator), and each seed's modes covered."""
  lines = ["| data | model | setting | modes covered | high quality % | per seed (covered) |",
           "| --- | --- | --- | --- | --- | --- |"]
  arms = dict.fromkeys((r["data"], r["model"], r["setting"]) for r in results)
  for data, model, setting in arms:
    rows = [r for r in results if (r["data"], r["model"], r["setting"]) == (data, model, setting)]
    covered = np.array([r["modes_covered"] for r in rows], float)
    quality = 100 * np.array([r["high_quality"] for r in rows])
    lines.append(f"| {data} | {model} | {setting} | {covered.mean():.1f} ± "
                 f"{covered.std(ddof=1):.1f} of {rows[0]['modes']} | {quality.mean():.0f} ± "
                 f"{quality.std(ddof=1):.0f} | {', '.join(str(int(c)) for c in covered)} |")
  return "\n".join(lines)


if __name__ == "__main__":
  flags.DEFINE_string("out", "/tmp/points_defaults", "Where data, runs and results go.")
  flags.DEFINE_list("datasets", ["ring", "spiral", "uneven"], "Which data sets.")
  flags.DEFINE_list("models", ["gan", "deligan"], "Which models.")
  flags.DEFINE_list("settings", list(SETTINGS), "Which settings.")
  flags.DEFINE_integer("steps", 3000, "Batches per run.")
  flags.DEFINE_integer("seeds", 3, "Seeds per arm.")
  flags.DEFINE_integer("width", 256, "Hidden units per layer (G and D).")
  flags.DEFINE_integer("depth", 4, "Hidden layers (G and D).")
  flags.DEFINE_string("activation", "relu", "Their activation (the paper's: tanh).")
  flags.DEFINE_integer("samples", 1000, "Samples scored per seed.")
  flags.DEFINE_list("tabulate", [], "Only print the table of these results.json files.")
  app.run(main)

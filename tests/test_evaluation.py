"""eval.py, the classifier and the comparison, end to end at tiny budgets."""

import json
import os
import shutil
import subprocess
import sys

import ml_collections
import numpy as np
import pytest

from deligan_jax import training
from deligan_jax.cli import compare as compare_cli
from deligan_jax.scores import classifier
from deligan_jax.scores import compare
from deligan_jax.scores import metrics
from deligan_jax.scores import evaluation
from deligan_jax.runs import plots
from tests.conftest import REPO, small_config
from tests.process_output import own_lines


def mnist_config(data_dir, variant="deligan"):
  config = small_config("mnist", variant)
  config.data.dir = data_dir
  return config


def test_memorisation_check_spots_copies():
  rng = np.random.default_rng(0)
  train = rng.uniform(-1, 1, (50, 4, 4, 1))
  test = rng.uniform(-1, 1, (80, 4, 4, 1))
  copies = evaluation.memorisation(train[:20] + 1e-3, train, test)
  fresh = evaluation.memorisation(rng.uniform(-1, 1, (20, 4, 4, 1)), train, test)
  assert copies["fraction_closer_than_test_p1"] == 1.0
  np.testing.assert_array_equal(copies["nearest_train_index"], np.arange(20))
  assert fresh["fraction_closer_than_test_p1"] < 0.2
  assert copies["sample_to_train_median"] < fresh["sample_to_train_median"]


def test_memorisation_leaves_out_test_images_it_trained_on():
  rng = np.random.default_rng(2)
  train = rng.uniform(-1, 1, (30, 4, 4, 1))
  fresh = rng.uniform(-1, 1, (10, 4, 4, 1))
  mixed = evaluation.memorisation(train[:5], train, np.concatenate([train[:20], fresh]))
  assert mixed["num_unseen_test_images"] == 10
  assert mixed["test_to_train_p1"] > 0 and mixed["fraction_closer_than_test_p1"] == 1.0
  seen = evaluation.memorisation(train[:5], train, train[:20])
  assert seen["num_unseen_test_images"] == 0
  assert np.isnan(seen["fraction_closer_than_test_p1"]) and np.isnan(seen["test_to_train_p1"])


def test_nearest_neighbours_match_brute_force(monkeypatch):
  monkeypatch.setattr(metrics, "_ROWS_PER_CHUNK", 3)  # several blocks of queries
  rng = np.random.default_rng(1)
  queries, references = rng.normal(size=(7, 3, 3, 1)), rng.normal(size=(11, 3, 3, 1))
  distances, indices = metrics.nearest_reference(queries, references)
  brute = np.linalg.norm(queries.reshape(7, 1, -1) - references.reshape(1, 11, -1), axis=-1)
  np.testing.assert_array_equal(indices, brute.argmin(1))
  np.testing.assert_allclose(distances, brute.min(1), rtol=1e-6)


def test_pictures_keep_rgb_colours(tmp_path):
  import matplotlib.image

  red = -np.ones((4, 8, 8, 3), np.float32)
  red[..., 0] = 1.0
  plots.save_image_grid(red, str(tmp_path / "grid.png"))
  np.testing.assert_array_equal(matplotlib.image.imread(tmp_path / "grid.png")[1, 1, :3], [1, 0, 0])
  plots.save_side_by_side(red, red, str(tmp_path / "pair.png"), ("a", "b"))
  pixels = matplotlib.image.imread(tmp_path / "pair.png")[..., :3]
  assert np.any(np.all(pixels == [1, 0, 0], axis=-1))


def test_eval_on_a_toy_run(tmp_path):
  config = small_config("toy", "bimodal,deligan")
  training.train_and_evaluate(config, str(tmp_path))
  results = evaluation.evaluate(str(tmp_path), num_samples=200)
  assert set(results["modes"]) >= {"modes_covered", "high_quality_fraction", "mode_kl",
                                   "fraction_per_mode"}
  assert (tmp_path / "eval_samples.png").is_file()
  assert json.loads((tmp_path / "eval.json").read_text())["modes"] == results["modes"]
  assert "modes_covered" in (tmp_path / "eval_report.md").read_text()
  # The official toy plots eps ~ N(0, 1) (display_z); it trains on U(-1, 1).
  assert results["sample_noise"] == "normal"
  assert "samples of eps ~ N(0, 1)" in (tmp_path / "eval_report.md").read_text()
  config_path = tmp_path / "config.json"
  saved = json.loads(config_path.read_text())
  saved["latent"]["sample_noise"] = "training"
  config_path.write_text(json.dumps(saved))
  training_noise = evaluation.evaluate(str(tmp_path), num_samples=200)
  assert training_noise["sample_noise"] == "uniform"


def test_eval_on_an_mnist_run_writes_every_output(tmp_path, mnist_dir):
  """With the shipped classifier put in the cache (training and caching one:
  ``test_classifier.py::test_classifier_learns_an_easy_task_and_is_cached``)."""
  run = tmp_path / "run"
  training.train_and_evaluate(mnist_config(mnist_dir), str(run))
  os.makedirs(tmp_path / "cache")
  for suffix in (".json", ".msgpack"):
    shutil.copy(classifier.SHIPPED_MNIST + suffix, tmp_path / "cache")
  env = dict(os.environ, PYTHONPATH=str(REPO))
  result = subprocess.run(
      [sys.executable, "eval.py", "--workdir", str(run), "--num_samples", "64",
       "--cache_dir", str(tmp_path / "cache"), "--classifier_steps", "300"],
      cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
  assert result.returncode == 0, result.stderr[-3000:]
  saved = json.loads((run / "eval.json").read_text())
  for key in ("inception_score", "modified_inception_score", "m_is_per_class", "fid", "kid",
              "precision", "recall", "memorisation", "classifier_test_accuracy"):
    assert key in saved, key
  assert "classifier-based" in saved["score_kind"]
  assert len(saved["m_is_per_class"]) == 10
  assert saved["fid"] >= 0 and 0 <= saved["precision"] <= 1
  for picture in ("eval_nearest_neighbours.png", "eval_mixture_tsne.png", "eval_components.png"):
    assert (run / picture).stat().st_size > 1000, picture
  spread = saved["diversity"]
  assert 1 <= spread["distinct_samples"] <= 64 and spread["num_compared"] == 64
  assert spread["distinct_real"] >= 60  # 1% of real images have a neighbour that close
  assert 0 <= spread["spread_within_component_min"] <= spread["spread_within_component"]
  assert spread["spread_real_within_class"] < spread["spread_real"]  # a class is tighter
  assert 0 <= saved["classes_covered"] <= 10 and sum(saved["predicted_class_shares"]) == \
      pytest.approx(1.0)
  within = saved["within_class"]
  qualified = [entry for entry in within["per_class"].values() if entry["qualified"]]
  assert within["classes_qualified"] == len(qualified) and len(within["per_class"]) == 10
  assert all(entry["count"] >= 10 for entry in qualified)
  report = (run / "eval_report.md").read_text()
  assert "classifier-based" in report and "m-IS per predicted class" in report
  assert "## Diversity within a class" in report
  assert "## Diversity" in report and "within one component" in report
  assert "classifier-based" in result.stdout
  assert saved["classifier_steps"] == 300
  assert saved["classifier_test_accuracy"] == classifier.shipped_mnist().test_accuracy


def test_compare_end_to_end_on_toy(tmp_path):
  config = small_config("toy", "bimodal")
  scores = compare_cli.train_and_compare(config, ["gan", "deligan"], 2, str(tmp_path),
                                         num_samples=100)
  assert set(scores) == {"gan", "deligan"} and all(len(v) == 2 for v in scores.values())
  table = (tmp_path / "comparison.md").read_text()
  assert "| gan |" in table and "| deligan |" in table and "±" in table
  assert (tmp_path / "comparison.png").is_file()
  assert (tmp_path / "deligan" / "seed_0" / "eval.json").is_file()


def test_compare_tabulates_the_paper_protocol_beside_its_real_floors(tmp_path, monkeypatch):
  """Each seed's paper-protocol numbers reach the table as mean ± std, with the real floors.

  Training and evaluation are stand-ins (a real CIFAR-10 run with Inception features is the
  slow ``test_paper_scores.py::test_eval_of_a_cifar_run_adds_the_paper_protocol``).
  """
  runs = {"gan": [1.5, 2.5], "deligan": [3.0, 5.0]}  # paper-protocol m-IS per seed
  asked = []

  def evaluate(workdir, num_samples, cache, classifier_steps, paper_protocol):
    asked.append((num_samples, paper_protocol))
    model, seed = workdir.split("/")[-2], int(workdir[-1])
    m_is = runs[model][seed]
    real = {"num_test": 1000, "num_train": 2000, "test_modified_inception_score": [1.7, 0.2],
            "train_fid_vs_test": 33.6, "train_kid_vs_test": [0.0, 0.0],
            "same_size": {"num_train": 500, "train_fid_vs_test": 65.5}}
    results = {"model": model, "step": 80, "num_samples": num_samples,
               "modified_inception_score": [1.0, 0.0], "inception_score": [1.0, 0.0], "fid": 9.0,
               "kid": [0.1, 0.0], "precision": 0.5, "recall": 0.0,
               "memorisation": {"fraction_closer_than_test_p1": 0.0},
               "paper_protocol": {"modified_inception_score": [m_is, 0.1],
                                  "fid_vs_test": 10 * m_is, "kid_vs_test": [m_is / 10, 0.0],
                                  "real": real}}
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, "eval.json"), "w") as f:
      json.dump(results, f)
    return results

  monkeypatch.setattr(compare_cli.training, "train_and_evaluate", lambda config, workdir: None)
  monkeypatch.setattr(compare_cli.checkpoints, "run_workdirs",
                      lambda config, workdir: [f"{workdir}/seed_{k}" for k in range(2)])
  monkeypatch.setattr(compare_cli.evaluation, "evaluate", evaluate)
  scores = compare_cli.train_and_compare(small_config("cifar10"), ["gan", "deligan"], 2,
                                         str(tmp_path), num_samples=500, paper_protocol=True)
  assert asked == [(500, True)] * 4
  assert [s["m_is_paper"] for s in scores["deligan"].values()] == [3.0, 5.0]
  table = (tmp_path / "comparison.md").read_text()
  assert "m-IS, paper protocol ↑" in table and "Inception FID vs test ↓" in table
  deligan = next(line for line in table.splitlines() if line.startswith("| deligan (2 seeds) |"))
  # Sample std (ddof 1) of 3 and 5: sqrt(2).
  assert deligan.endswith("| 4.000 ± 1.414 | 40.000 ± 14.142 | 0.400 ± 0.141 |"), deligan
  assert "m-IS of the 1000 test images 1.700 ± 0.200" in table
  assert "500 training images vs the test images 65.500" in table


def image_evaluation(arm, m_is=2.0, fid=3.0, **fields):
  """An MNIST run's eval.json with the scores every image evaluation has, ``fields`` added."""
  return {"model": arm, "dataset": "mnist", "step": 40000, "num_samples": 5000,
          "modified_inception_score": [m_is, 0.1], "inception_score": [2.0, 0.0], "fid": fid,
          "kid": [0.01, 0.0], "precision": 0.5, "recall": 0.4,
          "memorisation": {"fraction_closer_than_test_p1": 0.0}, "classes_covered": 10,
          **fields}


def write_evaluations(root, arm, m_is_per_seed, spread_within=None):
  for seed, m_is in enumerate(m_is_per_seed):
    folder = root / arm / f"seed_{seed}"
    folder.mkdir(parents=True)
    diversity = {"distinct_samples": 100 * m_is, "spread_samples": 9.0}
    if spread_within is not None:
      diversity["spread_within_component"] = spread_within
    (folder / "eval.json").write_text(json.dumps(image_evaluation(arm, m_is,
                                                                  diversity=diversity)))


def test_tabulate_gives_every_seed_and_each_pair_s_difference_with_its_interval(tmp_path):
  """Arms trained elsewhere (one folder each) are tabulated with their bootstrap intervals.

  Each arm's seeds are constant in m-IS, so every bootstrap resample has the same mean
  and each interval is the point difference itself.
  """
  write_evaluations(tmp_path, "gan", [2.0, 2.0, 2.0])
  write_evaluations(tmp_path, "deligan", [2.5, 2.5], spread_within=0.5)
  write_evaluations(tmp_path, "deligan_forced", [3.0, 3.0, 3.0], spread_within=1.5)
  scores = compare.tabulate(str(tmp_path), ["gan", "deligan", "deligan_forced"])
  assert [s["m_is"] for s in scores["deligan"].values()] == [2.5, 2.5]
  assert np.isnan(scores["gan"]["seed_0"]["component_spread"])
  lines = (tmp_path / "comparison.md").read_text().splitlines()
  row = lambda start: next(l for l in lines if l.startswith(start)).removesuffix(" |").split(" | ")
  titles = row("| model |")
  m_is = titles.index("m-IS ↑")
  assert row("| deligan − gan |")[m_is] == "+0.500 [+0.500, +0.500] (2 seeds)"
  assert row("| deligan_forced − gan |")[m_is] == "+1.000 [+1.000, +1.000] *"
  assert row("| deligan_forced − deligan |")[m_is] == "+0.500 [+0.500, +0.500] (2 seeds)"
  spread = titles.index("spread within a component ↑")
  assert row("| deligan_forced − gan |")[spread] == "n/a"
  assert row("| deligan_forced − deligan |")[spread] == "+1.000 [+1.000, +1.000] (2 seeds)"
  assert row("| deligan − gan |")[spread] == "n/a"
  # Every seed has its own row, named by its folder, with the batch and count it was scored at.
  assert row("| gan | seed_2 |")[2:4] == ["40000", "5000"]
  assert row("| gan | seed_2 |")[m_is + 3] == "2.000"
  assert "mnist runs at batch 40000, 5000 samples" in lines[0]
  assert not any("Unlike runs pooled" in l for l in lines)


def test_real_scores_are_the_real_test_images_counterparts_of_the_compared_columns():
  results = {"real_test_inception_score": [9.8, 0.1], "real_test_modified_inception_score":
             [1.09, 0.03], "diversity": {"distinct_real": 4970, "spread_real": 20.1,
                                         "spread_real_within_class": 17.5},
             "within_class": {"pixels": 0.8, "features": 0.9, "classes_qualified": 9}}
  assert compare.real_scores(results) == {"m_is": 1.09, "is": 9.8, "distinct": 4970,
                                          "spread": 20.1, "component_spread": 17.5,
                                          "within_class": 1.0, "within_class_features": 1.0}
  scored = compare.seed_scores(image_evaluation("deligan",
                                                within_class=results["within_class"]))
  assert (scored["within_class"], scored["within_class_features"],
          scored["within_class_classes"]) == (0.8, 0.9, 9)
  # Without the test images their scores are NaN, stored as null: left out.
  missing = {"real_test_inception_score": [None, None],
             "real_test_modified_inception_score": [None, None]}
  assert compare.real_scores(missing) == {}
  assert compare.real_scores({"real_test_inception_score": [float("nan")] * 2,
                              "real_test_modified_inception_score": [float("nan")] * 2}) == {}
  assert compare.real_scores({"modes": {}}) == {}  # toy data: no real counterparts
  assert set(compare.real_scores(results)) <= {key for key, _, _ in compare.IMAGE_COLUMNS}


def test_tabulate_names_seeds_by_folder_and_flags_seeds_scored_unlike(tmp_path):
  write_evaluations(tmp_path, "gan", [2.0, 2.2, 2.4])
  write_evaluations(tmp_path, "deligan", [2.5, 2.7])
  (tmp_path / "gan" / "seed_1" / "eval.json").unlink()  # not evaluated yet
  late = tmp_path / "deligan" / "seed_1" / "eval.json"
  late.write_text(late.read_text().replace('"step": 40000', '"step": 33000'))
  newer = tmp_path / "gan" / "seed_2" / "eval.json"  # one written since the seed was recorded
  newer.write_text(json.dumps({**json.loads(newer.read_text()), "sample_seed": 0}))
  scores = compare.tabulate(str(tmp_path), ["gan", "deligan"])
  assert list(scores["gan"]) == ["seed_0", "seed_2"]  # seed_2 keeps its name
  lines = (tmp_path / "comparison.md").read_text().splitlines()
  assert "runs at batch 33000/40000" in lines[0]
  assert any(l.startswith("**Unlike runs pooled:**") for l in lines)
  assert any(l.startswith("| deligan | seed_1 | 33000 | 5000 | 2.700 |") for l in lines)
  assert any(l.startswith("| gan | seed_2 | 40000 |") for l in lines)


def test_compare_tabulate_on_the_command_line(tmp_path):
  write_evaluations(tmp_path, "gan", [1.0, 2.0])
  write_evaluations(tmp_path, "deligan", [2.0, 4.0])
  result = subprocess.run([sys.executable, "-m", "deligan_jax.cli.compare", "--tabulate",
                           "--workdir", str(tmp_path)], cwd=REPO, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=300)
  assert result.returncode == 0, result.stderr[-2000:]
  assert "| gan − deligan |" in result.stdout  # default order: sorted folder names
  empty = subprocess.run([sys.executable, "-m", "deligan_jax.cli.compare", "--tabulate",
                          "--workdir", str(tmp_path / "gan" / "seed_0")], cwd=REPO,
                         capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=300)
  assert empty.returncode == 1 and len(own_lines(empty.stderr.strip())) == 1
  assert "holds no evaluated runs" in empty.stderr


@pytest.mark.slow
def test_mnist_classifier_reaches_99_percent(tmp_path, mnist_dir):
  config = ml_collections.ConfigDict({"name": "mnist", "dir": mnist_dir})
  trained = classifier.train_classifier(config, str(tmp_path))
  assert trained.test_accuracy >= 0.99, trained.test_accuracy
  cached = classifier.train_classifier(config, str(tmp_path))  # from the cache
  assert cached.test_accuracy == trained.test_accuracy

"""The study command: a study file read and checked, runs pinned, pooled, resumed, tabulated."""

import dataclasses
import json
import os
import re
import shlex
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest

from deligan_jax.errors import ConfigError
from deligan_jax.runs import checkpoints
from deligan_jax.runs import plots
from deligan_jax.study import plan
from deligan_jax.study import report
from tests.conftest import REPO
from tests.conftest import load_config
from tests.test_cli import one_line_refusal
from tests.test_evaluation import image_evaluation

TOY_STUDY = '''
import ml_collections

def get_config():
  s = ml_collections.ConfigDict()
  s.config = "TOY_CONFIG:bimodal"
  s.seeds = (0, 1)
  s.baseline = "deligan"
  s.overrides = ("num_steps=8", "steps_per_dispatch=4", "log_every=4", "sample_every=8",
                 "checkpoint_every=4", "keep_checkpoints=5", "batch_size=8",
                 "latent.num_components=8")
  s.steps = (4,)
  s.num_samples = 200
  s.sigma_scales = (3.0,)
  s.sigma_scale_arms = ("deligan",)
  s.arms = {"gan": {"model": "gan"}, "deligan": {"model": "deligan"}}
  ARMS
  return s
'''


def study_file(tmp_path, arms: str = "", name: str = "study.py"):
  path = tmp_path / name
  path.write_text(TOY_STUDY.replace("ARMS", arms).replace("TOY_CONFIG",
                                                           str(REPO / "configs" / "toy.py")))
  return path


def run_study(*args, cwd=REPO, cores=None):
  """The study command; ``cores``: its own folder of core locks, apart from other studies'."""
  env = dict(os.environ, PYTHONPATH=str(REPO))
  if cores is not None:
    env["TMPDIR"] = str(cores)
  return subprocess.run([sys.executable, "-m", "deligan_jax.cli.study", *map(str, args)],
                        cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def load(path):
  return plan.Study.from_config(plan.load_config_file(str(path), ""))


def test_overrides_are_typed_as_config_flags_types_them(tmp_path):
  study = load(study_file(tmp_path, 's.arms["fixed"] = {"model": "deligan", "overrides": ('
                                    '"latent.train_sigma=False", '
                                    '"latent.sigma_init_range=(1.5, 1.5)", '
                                    '"latent.assignment=random", "latent.sigma_reg=3")}'))
  config = study.run_config("fixed", 1)
  assert config.latent.train_sigma is False and tuple(config.latent.sigma_init_range) == (1.5, 1.5)
  assert config.latent.assignment == "random" and config.latent.sigma_reg == 3.0
  assert config.seed == 1 and config.num_steps == 8 and config.model == "deligan"
  assert config.data.name == "toy_bimodal"  # the config file's own argument kept
  assert os.path.isabs(study.config.partition(":")[0])  # commands run from any folder


@pytest.mark.parametrize("arms, message", [
    ('s.baseline = "nope"', "study.baseline: 'nope' is not one of the arms"),
    ('s.arms["x"] = {"model": "deligan", "overrides": ("latent.nope=1",)}',
     "study arm 'x': cannot set config.latent.nope"),
    ('s.arms["x"] = {"model": "deligan", "overrides": ("latent.dim",)}',
     "override 'latent.dim' is not field=value"),
    ('s.arms["x"] = {"model": "deligan", "overrides": ("latent.sigma_reg=-1",)}',
     "config.latent.sigma_reg: must be >= 0"),
    ('s.arms["x"] = {"model": "gan", "overrides": ("latent.train_sigma=False",)}',
     "config.latent.train_sigma"),
    ('s.sigma_scale_arms = ("gan",)', "'gan' is a 'gan' arm; only DeLiGAN"),
    ('s.seeds = (0, 0)', "study.seeds: distinct seeds"),
    ('s.steps = (2,)', "study.steps: arm 'deligan' would not keep the checkpoints of batches [2]"),
    ('s.steps = (0, 4)', "study.steps: arm 'deligan' trains 8 batches, so it has no checkpoint of "
     "batches [0]"),
    ('s.steps = (12,)', "trains 8 batches, so it has no checkpoint of batches [12]"),
    ('s.overrides = s.overrides + ("num_steps=24",)',
     "arm 'deligan' would not keep the checkpoints of batches [4] (checkpoint_every=4, "
     "keep_checkpoints=5, num_steps=24)"),
    ('s.colour = "red"', "study: unknown fields ['colour']"),
    ('s.also_compared_with = ("nope",)', "study.also_compared_with: ['nope'] are not arms"),
    ('s.also_compared_with = ("deligan",)', "other than the baseline, each once, got ['deligan']"),
    ('s.selection = {"score": "fid"}', "study.selection.score: one of ['m_is', 'is', 'precision'"),
    ('s.selection = {"max_fid_ratio": 0}', "study.selection.max_fid_ratio: a positive number"),
    ('s.selection = {"max_fid_ratio": "abc"}', "max_fid_ratio: a positive number, got 'abc'"),
    ('s.selection = {"scor": "is"}', "study.selection: {'score': ..., 'max_fid_ratio': ...}"),
])
def test_a_study_that_cannot_run_is_refused_naming_its_field(tmp_path, arms, message):
  with pytest.raises(ConfigError, match=re.escape(message)):
    load(study_file(tmp_path, arms))


@pytest.mark.parametrize("name", ["mnist500", "mnist_remedies", "mnist_remedies_pilot",
                                  "mnist_remedies_confirm", "toy_remedies"])
def test_shipped_studies_build_and_validate_every_arm(name):
  study = load(REPO / "configs" / "studies" / f"{name}.py")  # every arm's config validated
  assert study.baseline in study.arms and study.runs()
  if name == "mnist500":
    assert [seed for arm, seed in study.runs() if arm == "deligan_forced"] == [0, 1, 2]
    assert len(study.runs()) == 13
  if name == "mnist_remedies":
    many = study.run_config("components_500", 0)
    assert (many.latent.num_components, many.latent.assignment, many.batch_size) == (
        500, "random", 50)
    assert study.run_config("sigma_reg_x100", 2).latent.sigma_reg == pytest.approx(100 / 3)


def test_the_docs_example_is_the_shipped_mnist500_study():
  text = (REPO / "docs" / "studies.md").read_text()
  code = re.search(r"```python\n(def get_config\(\):\n.*?)```", text, re.S).group(1)
  namespace = {}
  exec("import ml_collections\n" + code, namespace)
  example = plan.Study.from_config(namespace["get_config"]())
  assert example == load(REPO / "configs" / "studies" / "mnist500.py")


def test_print_commands_gives_the_pool_s_command_of_each_run_seed_by_seed(tmp_path):
  workdir = tmp_path / "study"
  result = run_study("--study", study_file(tmp_path), "--workdir", workdir, "--print_commands")
  assert result.returncode == 0, result.stderr[-3000:]
  lines = result.stdout.strip().splitlines()
  study = plan.read(str(workdir))
  assert [shlex.split(line) for line in lines] == [
      plan.run_command(str(workdir), arm, seed) for arm, seed in study.runs()]
  assert [line.rsplit("--run=", 1)[1] for line in lines] == [  # the baseline first
      "deligan:0", "gan:0", "deligan:1", "gan:1"]
  assert not (workdir / "deligan").exists()  # nothing trained


def test_bad_study_input_is_one_line(tmp_path):
  one_line_refusal(run_study("--study", study_file(tmp_path, 's.baseline = "nope"'),
                             "--workdir", tmp_path / "w"), "study.baseline: 'nope'")
  one_line_refusal(run_study("--study", tmp_path / "missing.py", "--workdir", tmp_path / "w"),
                   "--study=", "cannot be loaded")
  one_line_refusal(run_study("--workdir", tmp_path / "w", "--tabulate"), "holds no study_plan.json")
  run_study("--study", study_file(tmp_path), "--workdir", tmp_path / "w", "--print_commands")
  one_line_refusal(run_study("--workdir", tmp_path / "w", "--run", "gan:7"),
                   "--run=gan:7: not ARM:SEED of this study")
  one_line_refusal(run_study("--workdir", tmp_path / "w", "--tabulate"),
                   "no run of the study is scored yet")
  assert sorted(os.listdir(tmp_path / "w")) == ["study_plan.json"]


def test_a_run_pins_itself_to_one_free_core_with_one_xla_thread(tmp_path):
  """Two runs at once take two cores where two are allowed; each asks XLA for one thread."""
  script = ("import os, sys; from deligan_jax.study import pinning; "
            "core = pinning.pin_to_one_core(); "
            "print(core, sorted(os.sched_getaffinity(0)), os.environ['XLA_FLAGS'], flush=True); "
            "sys.stdin.read()")  # holds its core until both have printed
  env = dict(os.environ, PYTHONPATH=str(REPO), TMPDIR=str(tmp_path), XLA_FLAGS="--xla_dump_to=x")
  procs = [subprocess.Popen([sys.executable, "-c", script], env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True) for _ in range(2)]
  outputs = [p.stdout.readline().split(" ", 2) for p in procs]
  for p in procs:
    p.communicate(timeout=120)
  allowed = sorted(os.sched_getaffinity(0))
  cores = sorted(int(out[0]) for out in outputs)
  for core, affinity, flags in outputs:
    assert affinity == f"[{core}]"
    assert flags.strip() == "--xla_dump_to=x " + "--xla_cpu_multi_thread_eigen=false " \
        "intra_op_parallelism_threads=1"
  assert cores == (allowed[:2] if len(allowed) > 1 else allowed * 2)


@pytest.fixture(scope="module")
def toy_study(tmp_path_factory):
  """A 2-arm, 2-seed toy study trained, scored and tabulated by the pool."""
  root = tmp_path_factory.mktemp("study")
  result = run_study("--study", study_file(root), "--workdir", root / "w", "--workers", "2",
                     cores=root)
  assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
  return root, result


def test_the_pool_trains_scores_and_tabulates_every_run_against_the_baseline(toy_study):
  root, result = toy_study
  workdir = root / "w"
  for arm in ("gan", "deligan"):
    for seed in (0, 1):
      run = workdir / arm / f"seed_{seed}"
      for step in (4, 8):
        scored = json.loads((run / "eval_steps" / f"{step:07d}" / "eval.json").read_text())
        assert (scored["step"], scored["num_samples"]) == (step, 200)
      assert json.loads((run / "config.json").read_text())["seed"] == seed
      log = (workdir / "logs" / f"{arm}_seed_{seed}.log").read_text()
      assert f"{arm} seed {seed}: pinned to core" in log
  scaled = workdir / "deligan" / "seed_1" / "eval_steps" / "0000008" / "sigma_scale_3"
  assert json.loads((scaled / "eval.json").read_text())["sigma_scale"] == 3.0
  table = (workdir / "study.md").read_text()
  # Differences against the baseline only, the scaled arm a row of its own.
  assert "| gan − deligan |" in table and "| deligan_sigma_x3 − deligan |" in table
  assert "| gan − deligan_sigma_x3 |" not in table
  assert table in result.stdout
  for picture in ("study.png", "trajectory.png"):
    assert (workdir / picture).stat().st_size > 1000
  scores = json.loads((workdir / "study.json").read_text())
  assert set(scores) == {"gan", "deligan", "deligan_sigma_x3"}


def test_a_rerun_trains_and_scores_nothing_again_and_a_cut_run_resumes_exactly(toy_study):
  root, _ = toy_study
  workdir = root / "w"
  watched = [workdir / "gan" / "seed_0" / "checkpoints",
             workdir / "deligan" / "seed_1" / "eval_steps" / "0000004" / "eval.json"]
  before = [os.stat(path).st_mtime_ns for path in watched]
  # A run cut after its checkpoint of batch 4: its last checkpoint and scores gone.
  cut = workdir / "gan" / "seed_1"
  _, _, uninterrupted = checkpoints.load_run(str(cut))
  shutil.rmtree(cut / "checkpoints" / "8")
  shutil.rmtree(cut / "eval_steps" / "0000008")
  result = run_study("--workdir", workdir, cores=root)  # the study recorded in the workdir
  assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
  assert [os.stat(path).st_mtime_ns for path in watched] == before
  _, _, resumed = checkpoints.load_run(str(cut))
  assert int(resumed.step) == 8
  for a, b in zip(jax.tree.leaves(resumed.params), jax.tree.leaves(uninterrupted.params)):
    np.testing.assert_array_equal(a, b)
  assert (cut / "eval_steps" / "0000008" / "eval.json").is_file()


def test_selection_rule_takes_the_most_diverse_arm_within_the_fid_limit():
  study = plan.Study(config="c", seeds=(0, 1), baseline="deligan",
                     arms={a: plan.Arm("deligan") for a in ("deligan", "wide", "broken")},
                     selection_score="within_class")
  scores = {"deligan": {"s0": {"fid": 100.0, "within_class": 0.2},
                        "s1": {"fid": 110.0, "within_class": 0.3}},
            "wide": {"s0": {"fid": 120.0, "within_class": 0.6},
                     "s1": {"fid": 140.0, "within_class": 0.5}},  # FID 130 <= 1.25 x 105
            "broken": {"s0": {"fid": 300.0, "within_class": 0.9},
                       "s1": {"fid": 300.0, "within_class": 0.9}}}
  selection = report.select(study, scores)
  assert selection["selected"] == "wide" and selection["fid_limit"] == pytest.approx(131.25)
  scores["wide"]["s1"]["fid"] = 150.0  # mean 135: over the limit
  assert report.select(study, scores)["selected"] == "deligan"
  assert "Selected: `deligan`" in report.selection_lines(study, report.select(study, scores))
  no_rule = dataclasses.replace(study, selection_score="")  # a confirmation picks nothing
  assert report.select(no_rule, scores) is None


def test_quality_diversity_names_the_arms_and_tags_their_scaled_rows(monkeypatch, tmp_path):
  drawn = {}
  monkeypatch.setattr(plots, "_save", lambda fig, path: drawn.update(fig=fig))
  points = {"gan": ([0.2, 0.3], [900.0, 950.0]), "deligan": ([0.8, 0.82], [130.0, 140.0]),
            "deligan_sigma_x2": ([0.8, 0.82], [130.0, 140.1]),   # on the arm's point
            "deligan_sigma_x4": ([0.8, 0.82], [130.1, 140.1]),   # ... and so share a tag
            "deligan_sigma_x64": ([0.9, 0.92], [120.0, 118.0]),
            "deligan_sigma_x256": ([0.97, 0.95], [700.0, 650.0])}
  scaled = {"deligan": {f"deligan_sigma_x{s}": f"x{s}" for s in (2, 4, 64, 256)}}
  plots.save_quality_diversity(points, str(tmp_path / "qd.png"), "x", "y", variants=scaled,
                               variants_label="scaled")
  ax = drawn["fig"].axes[0]
  assert sorted(t.get_text() for t in ax.get_legend().get_texts()) == [
      "deligan (2 seeds)", "gan (2 seeds)", "real test images", "scaled"]
  assert sorted(t.get_text() for t in ax.texts) == ["x256", "x2–x4", "x64"]
  curve = [line for line in ax.lines if line.get_linestyle() == ":" and len(line.get_xdata())]
  assert len(curve) == 1 and list(curve[0].get_ydata()) == pytest.approx([135, 135.05, 135.1, 119, 675])


def test_an_arm_s_curve_runs_in_the_given_order_and_without_the_arm_s_own_point(
    monkeypatch, tmp_path):
  drawn = []
  monkeypatch.setattr(plots, "_save", lambda fig, path: drawn.append(fig.axes[0]))
  points = {"d": ([0.8], [130.0]), "d_x0.5": ([0.6], [150.0]), "d_x2": ([0.9], [120.0])}
  line = {"d_x0.5": "x0.5", "d": None, "d_x2": "x2"}  # the arm at scale 1, between its scales
  for missing in (False, True):
    if missing:
      points["d"] = ([float("nan")], [float("nan")])
    plots.save_quality_diversity(points, str(tmp_path / "qd.png"), "x", "y",
                                 variants={"d": line})
    ax = drawn[-1]
    curve = [l for l in ax.lines if l.get_linestyle() == ":" and len(l.get_xdata())]
    assert list(curve[0].get_xdata()) == ([0.6, 0.9] if missing else [0.6, 0.8, 0.9])
    assert sorted(t.get_text() for t in ax.texts) == ["x0.5", "x2"]


def test_only_a_study_that_states_a_rule_selects():
  screening = load(REPO / "configs" / "studies" / "mnist_remedies.py")
  assert (screening.selection_score, screening.selection_max_fid_ratio) == ("within_class", 1.25)
  assert load(REPO / "configs" / "studies" / "mnist_remedies_confirm.py").selection_score == ""


def test_an_empty_selection_is_the_default_rule(tmp_path):
  study = load(study_file(tmp_path, "s.selection = {}"))
  assert (study.selection_score, study.selection_max_fid_ratio) == ("within_class", 1.25)


def test_tabulating_reads_the_scores_written_and_scores_nothing(toy_study, tmp_path):
  """Tabulating while runs still train must not score their checkpoints under them."""
  root, _ = toy_study
  workdir = tmp_path / "w"
  shutil.copytree(root / "w", workdir)
  shutil.rmtree(workdir / "gan" / "seed_0" / "eval_steps" / "0000004")
  (workdir / "deligan" / "seed_2").mkdir()  # a run whose process has not written its config
  result = run_study("--workdir", workdir, "--tabulate", cores=root)
  assert result.returncode == 0, result.stderr[-3000:]
  assert not (workdir / "gan" / "seed_0" / "eval_steps" / "0000004").exists()
  assert "gan: 1 of 2 seeds have no evaluation of batch 4 yet" in result.stderr
  scores = json.loads((workdir / "trajectory.json").read_text())["scores"]
  assert sorted(scores["gan"]["4"]) == ["seed_1"] and sorted(scores["gan"]["8"]) == [
      "seed_0", "seed_1"]
  assert sorted(scores["deligan"]["4"]) == ["seed_0", "seed_1"]


def test_rows_are_compared_with_each_named_arm_too_each_pair_once(toy_study, tmp_path):
  root, _ = toy_study
  workdir = tmp_path / "w"
  shutil.copytree(root / "w", workdir)
  recorded = json.loads((workdir / plan.STUDY_FILE).read_text())
  assert "also_compared_with" in recorded
  recorded["also_compared_with"] = ["gan"]
  (workdir / plan.STUDY_FILE).write_text(json.dumps(recorded))
  result = run_study("--workdir", workdir, "--tabulate", cores=root)
  assert result.returncode == 0, result.stderr[-3000:]
  table = (workdir / "study.md").read_text()
  differences = re.findall(r"^\| (\S+ − \S+) \|", table, re.M)
  assert differences == ["gan − deligan", "deligan_sigma_x3 − deligan",
                         "deligan_sigma_x3 − gan"]
  recorded.pop("also_compared_with")  # a plan written before the field reads as ()
  assert plan.Study.from_json(json.dumps(recorded)).also_compared_with == ()
  recorded["a_later_field"] = 1  # and one written by a later version reads
  assert plan.Study.from_json(json.dumps(recorded)).baseline == "deligan"


def test_compare_sends_a_study_s_folder_to_the_study_command(toy_study):
  root, _ = toy_study
  result = subprocess.run([sys.executable, "-m", "deligan_jax.cli.compare", "--tabulate",
                           "--workdir", str(root / "w")], cwd=REPO, capture_output=True,
                          text=True, timeout=300, env=dict(os.environ, PYTHONPATH=str(REPO)))
  one_line_refusal(result, f"{root / 'w'} is a study's folder (its runs score into "
                   f"eval_steps/): tabulate it with python -m deligan_jax.cli.study --workdir "
                   f"{root / 'w'} --tabulate")


def test_the_confirmation_resumes_the_screening_s_runs_of_its_arms(tmp_path):
  """Its docstring says to copy the screening's seed folders in: the workdir check lets each
  copied run go on to the paper's schedule."""
  from deligan_jax.runs import workdir
  studies = REPO / "configs" / "studies"
  screening, confirmation = (load(studies / f"{name}.py")
                             for name in ("mnist_remedies", "mnist_remedies_confirm"))
  for arm in confirmation.arms:
    run = tmp_path / arm
    workdir.record_config(screening.run_config(arm, 2), str(run))
    workdir.check(confirmation.run_config(arm, 2), str(run))
    assert confirmation.run_config(arm, 2).num_steps == 40_000


def test_the_named_diverse_recipe_is_the_confirmed_arm():
  """``configs/mnist.py:deligan_diverse`` is the run its evidence comes from, seed for seed."""
  confirmation = load(REPO / "configs" / "studies" / "mnist_remedies_confirm.py")
  named = load_config("mnist", "deligan_diverse")
  assert named.recipe == "deligan_diverse"  # a name, changing no setting: the arm has none
  named.recipe = ""
  for override in (*confirmation.overrides, "seed=3"):
    plan.apply_override(named, override, "test")
  assert named.to_dict() == confirmation.run_config("components_500", 3).to_dict()
  assert load_config("mnist").latent.num_components == 50  # the official recipe stays the default


def test_an_image_study_writes_its_pick_and_its_pictures(tmp_path, monkeypatch):
  """report.write on MNIST-like evaluations: the rule's pick appended to study.md, the
  quality-diversity plot and each arm's component grid drawn."""
  study = load(study_file(tmp_path, 's.arms["wide"] = {"model": "deligan"}'))
  study = dataclasses.replace(study, selection_score="within_class")
  found = {}
  for arm, fid, ratio in (("gan", 300.0, 0.2), ("deligan", 100.0, 0.8), ("wide", 110.0, 0.9)):
    runs = {}
    for seed in (0, 1):
      folder = tmp_path / "w" / arm / f"seed_{seed}"
      folder.mkdir(parents=True)
      plots.save_image_grid(np.full((4, 28, 28, 1), seed / 2, np.float32),
                            str(folder / report.COMPONENTS_PICTURE))
      runs[f"seed_{seed}"] = (str(folder), image_evaluation(
          arm, fid=fid + seed, step=8, num_samples=200,
          within_class={"pixels": ratio, "features": ratio, "classes_qualified": 10}))
    found[arm] = runs
  monkeypatch.setattr(report, "collect", lambda *args: found)
  monkeypatch.setattr(report.trajectory, "trajectory", lambda *args, **kwargs: None)
  report.write(study, str(tmp_path / "w"))
  text = (tmp_path / "w" / "study.md").read_text()
  assert "**Selected: `wide`** (within_class 0.900, FID 110.5)" in text  # 110.5 <= 1.25 x 100.5
  for picture in ("quality_diversity.png", "components.png"):
    assert (tmp_path / "w" / picture).stat().st_size > 0

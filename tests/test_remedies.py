"""The remedies for a mixture that draws one image per component, each as a config option.

Fixed sigma (as in GM-GAN's static variant, which fixes mu too), MSGAN's mode-seeking term
and a sampling-time sigma scale; the official defaults leave each off.
"""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deligan_jax import config as config_lib
from deligan_jax import experiment as experiment_lib
from deligan_jax import mixture
from deligan_jax import sampling
from deligan_jax import training
from deligan_jax.errors import RequestError
from deligan_jax.runs import checkpoints
from deligan_jax.scores import evaluation
from deligan_jax.step import mode_seeking
from deligan_jax.step import state as state_lib
from deligan_jax.step import updates
from tests.conftest import load_config, small_config
from tests.test_training import run_cli


def test_official_defaults_leave_every_remedy_off():
  for name in ("toy", "mnist", "cifar10", "sketches"):
    latent = load_config(name).latent
    assert latent.train_sigma and latent.mode_seeking_weight == 0.0


def test_five_hundred_components_need_the_random_assignment_at_batch_fifty():
  config = load_config("mnist")
  config.latent.num_components = 500
  with pytest.raises(config_lib.ConfigError, match="must equal batch_size=50, got 500"):
    config_lib.validate(config)
  config.latent.assignment = "random"  # each row draws its component (the paper's text)
  config_lib.validate(config)


@pytest.mark.parametrize("field, value, model, message", [
    ("train_sigma", False, "gan", "only DeLiGAN has a mixture"),
    ("mode_seeking_weight", -1.0, "deligan", "must be >= 0"),
])
def test_remedy_values_that_cannot_work_are_refused(field, value, model, message):
  config = load_config("mnist", model)
  config.latent[field] = value
  with pytest.raises(config_lib.ConfigError, match=f"config.latent.{field}: {message}"):
    config_lib.validate(config)


def trained_mixture(workdir, **latent):
  config = small_config("toy", "bimodal,deligan")
  config.balance.kind = "fixed"  # 1 D update, then 4 of G and the mixture, every batch
  config.balance.fixed_d_updates = 1
  for field, value in latent.items():
    config.latent[field] = value
  state = training.train_and_evaluate(config, str(workdir))
  sigma = state.params["mixture"]["sigma"]
  return state.params["mixture"], np.full(sigma.shape, config.latent.sigma_init_range[0],
                                          np.float32)


def test_fixed_sigma_stays_at_its_initial_value_while_mu_trains(tmp_path):
  fixed, initial = trained_mixture(tmp_path / "fixed", train_sigma=False,
                                   sigma_init_range=(0.7, 0.7))
  np.testing.assert_array_equal(fixed["sigma"], initial)
  trained, _ = trained_mixture(tmp_path / "trained", sigma_init_range=(0.7, 0.7))
  assert not np.allclose(trained["sigma"], initial)
  assert not np.allclose(fixed["mu"], trained["mu"])  # mu trains, differently without sigma's


def small_step(weight, model="deligan"):
  config = small_config("mnist", model)
  config.latent.mode_seeking_weight = weight
  experiment = experiment_lib.Experiment.from_config(config)
  step = updates.Step(experiment.model, experiment.rule, experiment.step_config, 16)
  examples = jax.random.uniform(jax.random.key(5), (16, 28, 28, 1), minval=-1, maxval=1)
  state = state_lib.init_state(experiment.model, experiment.rule, 0, examples)
  return step, state, {"real": examples[:8]}


def test_mode_seeking_ratio_against_a_direct_computation():
  step, state, _ = small_step(1.0)
  model, params, stats = step.model, state.params, state.batch_stats
  key = jax.random.key(3)
  fake, _ = model.generate(params, stats, key, 8, train=True)
  z1, ids = model.latent(params["mixture"], key, 8)
  # The second draw: the same rows' components (row r: component r), new eps.
  eps = mixture.noise(jax.random.split(jax.random.fold_in(key, mode_seeking.PAIR_TAG))[1],
                      (8, 6), model.noise)
  z2 = params["mixture"]["mu"][ids] + params["mixture"]["sigma"][ids] * eps
  fake2, _ = model.decode(params, stats, z2, ids, train=True)
  expected = float(jnp.mean(jnp.abs(fake2 - fake)) / jnp.mean(jnp.abs(z2 - z1)))
  ratio = float(mode_seeking.ratio(model, params, stats, key, fake))
  assert ratio == pytest.approx(expected, rel=1e-6) and ratio > 0
  np.testing.assert_array_equal(ids, np.arange(8))


@pytest.mark.parametrize("model", ["deligan", "gan"])
def test_mode_seeking_term_adds_its_weight_over_the_ratio_to_g_loss_only(model):
  key = jax.random.key(4)
  parts = {}
  for weight in (0.0, 2.0):
    step, state, data = small_step(weight, model)
    trainable = {"generator": state.params["generator"], "mixture": state.params["mixture"]}
    (adversarial, regulariser), _ = updates.generator_objective(
        step, trainable, state.params, state.batch_stats, key, data)
    parts[weight] = (float(adversarial), float(regulariser))
  step, state, _ = small_step(2.0, model)
  fake, _ = step.model.generate(state.params, state.batch_stats, key, 8, train=True)
  ratio = mode_seeking.ratio(step.model, state.params, state.batch_stats, key, fake)
  assert parts[2.0][0] == parts[0.0][0]  # the adversarial part is the official one
  assert parts[2.0][1] - parts[0.0][1] == pytest.approx(2.0 / (float(ratio) + 1e-5), rel=1e-5)


def test_mode_seeking_gradient_reaches_sigma():
  step, state, data = small_step(1.0)
  (_, _), grads = updates.generator_grads(step, state.params, state.batch_stats,
                                          jax.random.key(2), data)
  step0, _, _ = small_step(0.0)
  (_, _), grads0 = updates.generator_grads(step0, state.params, state.batch_stats,
                                           jax.random.key(2), data)
  assert not np.allclose(grads["mixture"]["sigma"], grads0["mixture"]["sigma"])


@pytest.fixture(scope="module")
def toy_runs(tmp_path_factory):
  root = tmp_path_factory.mktemp("runs")
  for model in ("deligan", "gan"):
    training.train_and_evaluate(small_config("toy", f"bimodal,{model}"), str(root / model))
  return root


def test_sigma_scale_draws_with_sigma_times_the_scale(toy_runs):
  run = str(toy_runs / "deligan")
  config, model, state = checkpoints.load_run(run)
  scaled = state.replace(params={**state.params, "mixture": {
      "mu": state.params["mixture"]["mu"], "sigma": 3.0 * state.params["mixture"]["sigma"]}})
  np.testing.assert_array_equal(sampling.from_run(run, 50, sigma_scale=3.0),
                                sampling.draw_as_scored(model, config, scaled, 50))
  np.testing.assert_array_equal(sampling.from_run(run, 50, sigma_scale=1.0),
                                sampling.from_run(run, 50))
  assert not np.array_equal(sampling.from_run(run, 50, sigma_scale=3.0),
                            sampling.from_run(run, 50))


@pytest.mark.parametrize("run, scale, message", [
    ("deligan", 0.0, "--sigma_scale must be positive, got 0.0"),
    ("gan", 2.0, "--sigma_scale scales a mixture's sigma; a 'gan' run has no mixture"),
])
def test_sigma_scale_that_cannot_apply_is_refused(toy_runs, run, scale, message):
  with pytest.raises(RequestError, match=message):
    sampling.from_run(str(toy_runs / run), 5, sigma_scale=scale)


def test_scaled_evaluation_records_its_scale_in_a_folder_of_its_own(toy_runs):
  run = toy_runs / "deligan"
  plain = evaluation.evaluate(str(run), num_samples=200)
  scaled = evaluation.evaluate(str(run), num_samples=200, sigma_scale=4.0)
  assert plain["sigma_scale"] == 1.0 and scaled["sigma_scale"] == 4.0
  stored = json.loads((run / "sigma_scale_4" / "eval.json").read_text())
  assert stored["sigma_scale"] == 4.0
  assert json.loads((run / "eval.json").read_text())["sigma_scale"] == 1.0
  assert "sigma times 4" in (run / "sigma_scale_4" / "eval_report.md").read_text()
  assert scaled["modes"] != plain["modes"]


def test_the_command_lines_take_the_sigma_scale(toy_runs, tmp_path):
  run = toy_runs / "deligan"
  out = tmp_path / "scaled.npy"
  drawn = run_cli("-m", "deligan_jax.cli.sample", "--workdir", str(run), "--num", "50", "--out",
                  str(out), "--sigma_scale", "3")
  assert drawn.returncode == 0, drawn.stderr[-3000:]
  assert drawn.stdout.strip() == f"wrote (50, 2) samples (sigma x 3) to {out}"
  np.testing.assert_array_equal(np.load(out), sampling.from_run(str(run), 50, sigma_scale=3.0))
  scored = run_cli("eval.py", "--workdir", str(run), "--num_samples", "200", "--sigma_scale", "5")
  assert scored.returncode == 0, scored.stderr[-3000:]
  assert json.loads((run / "sigma_scale_5" / "eval.json").read_text())["sigma_scale"] == 5.0

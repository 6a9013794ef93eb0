"""The fused train step: which networks a balanced update moves, schedules, determinism."""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deligan_jax.models import networks
from deligan_jax.step import optim
from deligan_jax.experiment import Experiment
from deligan_jax.step import updates
from deligan_jax.step.driver import StepDriver
from tests.conftest import small_config


def make_trainer(experiment="toy", variant="deligan", inner_updates=5, n=64, config=None,
                 **overrides):
  config = config or small_config(experiment, variant)
  for key, value in overrides.items():
    config[key] = value
  experiment = Experiment.from_config(config)
  experiment = dataclasses.replace(
      experiment, rule=dataclasses.replace(experiment.rule, inner_updates=inner_updates))
  rng = np.random.default_rng(0)
  x = rng.uniform(-1, 1, (n, *networks.SAMPLE_SHAPES[config.network.name])).astype(np.float32)
  return experiment.driver(x, train_labels=rng.integers(0, 10, n))


def changed(before, after):
  return {name: not jax.tree.all(jax.tree.map(np.array_equal, before[name], after[name]))
          for name in before}


@pytest.mark.parametrize("experiment", ["toy", "mnist"])
def test_g_above_thres_moves_generator_and_mixture_only(experiment):
  trainer = make_trainer(experiment, inner_updates=1)
  state = trainer.init_state(0)
  state = state.replace(balance=state.balance.replace(thres=jnp.float32(-1e9)))
  before = jax.device_get(state.params)
  state, metrics = trainer.run(state, 1)
  assert int(metrics["g_updates"][0]) == 1 and int(metrics["d_updates"][0]) == 0
  assert changed(before, jax.device_get(state.params)) == {
      "generator": True, "mixture": True, "discriminator": False}


@pytest.mark.parametrize("experiment", ["toy", "mnist"])
def test_g_below_thres_moves_discriminator_only(experiment):
  trainer = make_trainer(experiment, inner_updates=1)
  state = trainer.init_state(0)
  state = state.replace(balance=state.balance.replace(thres=jnp.float32(1e9)))
  before = jax.device_get(state.params)
  state, metrics = trainer.run(state, 1)
  assert int(metrics["d_updates"][0]) == 1
  assert changed(before, jax.device_get(state.params)) == {
      "generator": False, "mixture": False, "discriminator": True}


def test_metrics_and_update_counts():
  trainer = make_trainer("toy", inner_updates=5)
  state = trainer.init_state(0)
  state, metrics = trainer.run(state, 6)
  assert int(state.step) == 6
  for key in ("g_loss", "d_loss", "g_updates", "d_updates", "thres", "lr", "sigma_mean"):
    assert metrics[key].shape == (6,), key
  np.testing.assert_array_equal(metrics["g_updates"] + metrics["d_updates"], 5)


def test_sigma_mean_is_the_mean_size_of_sigma_whatever_its_sign():
  trainer = make_trainer("toy", inner_updates=1)
  state = trainer.init_state(0)
  sigma = state.params["mixture"]["sigma"]
  flipped = sigma * jnp.where(jnp.arange(sigma.shape[0]) % 2 == 0, -1.0, 1.0)[:, None]
  state = state.replace(params={**state.params, "mixture": {**state.params["mixture"],
                                                            "sigma": flipped}})
  state, metrics = trainer.run(state, 1)
  after = np.asarray(jax.device_get(state.params)["mixture"]["sigma"])
  assert (after < 0).any()
  assert float(metrics["sigma_mean"][0]) == pytest.approx(np.abs(after).mean(), rel=1e-6)


def test_same_seed_same_result_and_different_seed_differs():
  def run(seed):
    trainer = make_trainer("toy")
    state, _ = trainer.run(trainer.init_state(seed), 8)
    return jax.device_get(state.params)

  a, b, c = run(0), run(0), run(1)
  assert jax.tree.all(jax.tree.map(np.array_equal, a, b))
  assert not np.array_equal(a["mixture"]["mu"], c["mixture"]["mu"])


def test_two_dispatches_equal_one():
  trainer = make_trainer("toy")
  once, _ = trainer.run(trainer.init_state(3), 8)
  twice, _ = trainer.run(trainer.init_state(3), 4)
  twice, _ = trainer.run(twice, 4)
  assert jax.tree.all(jax.tree.map(np.array_equal, jax.device_get(once),
                                   jax.device_get(twice)))


@pytest.mark.parametrize("eps_draw, distinct_keys_per_batch", [("per_batch", 1),
                                                                ("per_update", 5)])
def test_eps_is_drawn_once_per_batch_or_once_per_update(eps_draw, distinct_keys_per_batch,
                                                        monkeypatch):
  """The official toy loop reuses one z for a batch's 5 updates; MNIST draws one per update."""
  config = small_config("toy", "deligan")
  config.latent.eps_draw = eps_draw
  trainer = make_trainer("toy", n=16, config=config)
  seen = []
  update = updates.balanced_update

  def recording_update(step, carry, latent_key, data, update_index):
    jax.debug.callback(lambda key: seen.append(bytes(np.asarray(key))),
                       jax.random.key_data(latent_key))
    return update(step, carry, latent_key, data, update_index)

  monkeypatch.setattr(updates, "balanced_update", recording_update)
  jax.block_until_ready(trainer.run(trainer.init_state(0), 2))
  assert len(seen) == 10
  assert [len(set(seen[5 * b:5 * b + 5])) for b in range(2)] == [distinct_keys_per_batch] * 2
  assert set(seen[:5]).isdisjoint(seen[5:])  # a new draw every batch either way


def test_learning_rate_schedule_matches_the_paper():
  # MNIST: 5e-4 * min(4 - epoch/1000, 3) / 3.
  for epoch in (0, 500, 1000, 1500, 2500, 3999, 4000, 4500):
    want = min(4 - epoch / 1000.0, 3) / 3
    got = float(optim.learning_rate_factor(jnp.int32(epoch), 1000.0, 4000.0))
    assert got == pytest.approx(max(want, 0.0), abs=1e-6), epoch
  assert float(optim.learning_rate_factor(jnp.int32(10), None, None)) == 1.0


def test_learning_rate_reaches_the_optimisers():
  config_lr = 2e-3
  trainer = make_trainer("toy", n=16, steps_per_dispatch=2)
  trainer = StepDriver(
      trainer.model, trainer.rule,
      dataclasses.replace(trainer.config, learning_rate=config_lr, mixture_learning_rate=7e-4,
                          decay_start_epoch=0.0, decay_end_epoch=4.0),
      np.zeros((16, 2), np.float32), trainer.mesh)
  state, metrics = trainer.run(trainer.init_state(0), 4)  # 2 batches per epoch
  np.testing.assert_allclose(metrics["lr"], config_lr * np.array([1, 1, 0.75, 0.75]),
                             rtol=1e-6)
  hyper = state.opt_state["mixture"].hyperparams["learning_rate"]
  assert float(hyper) == pytest.approx(7e-4 * 0.75)


def test_batch_size_must_fit_the_data():
  with pytest.raises(ValueError, match="larger than the training set"):
    make_trainer("toy", n=4)


def test_mixed_precision_keeps_float32_parameters_and_optimiser_state():
  config = small_config("mnist", "deligan")
  config.network.dtype = "bfloat16"
  x = np.random.default_rng(0).uniform(-1, 1, (32, 28, 28, 1)).astype(np.float32)
  trainer = Experiment.from_config(config).driver(x)
  state, metrics = trainer.run(trainer.init_state(0), 4)
  floats = [leaf for leaf in jax.tree.leaves((state.params, state.opt_state, state.batch_stats))
            if jnp.issubdtype(leaf.dtype, jnp.floating)]
  assert floats and all(leaf.dtype == jnp.float32 for leaf in floats)
  assert np.all(np.isfinite(metrics["g_loss"])) and np.all(np.isfinite(metrics["d_loss"]))
  # The computation itself runs in bfloat16.
  hlo = trainer.lower(trainer.init_state(0), 1).as_text()
  assert "bf16" in hlo


def test_cifar10_step_semi_supervised_one_d_then_three_g_updates_with_augmentation():
  """One fused CIFAR-10 step: the 'fixed' rule, class-logit D, DiffAugment on."""
  config = small_config("cifar10", "deligan", batch_size=4)
  config.augment = "color,translation,cutout"
  trainer = make_trainer(config=config, inner_updates=4, n=16)
  state = trainer.init_state(0)
  before = jax.device_get(state.params)
  state, metrics = trainer.run(state, 2)
  assert metrics["d_updates"].tolist() == [1, 1] and metrics["g_updates"].tolist() == [3, 3]
  assert np.all(np.isfinite(metrics["d_loss"])) and np.all(np.isfinite(metrics["g_loss"]))
  assert np.all(metrics["g_loss"] < 0)  # -mean(softplus(Z(fake)))
  assert all(changed(before, jax.device_get(state.params)).values())
  test_x = np.random.default_rng(5).uniform(-1, 1, (10, 32, 32, 3)).astype(np.float32)
  predictions = trainer.classify(state, test_x)  # batches of 4: the last one filled up
  assert predictions.shape == (10,) and set(predictions) <= set(range(10))
  np.testing.assert_array_equal(predictions[:8], trainer.classify(state, test_x[:8]))


@pytest.mark.slow
def test_sketch_rule_forces_a_half_lr_d_update_after_a_g_streak():
  """Every G update wins (thres below any g): from the 2nd batch on, the streak of
  5 > g_streak = 3 forces one D update at half the learning rate before the updates.

  Slow: the fast suite checks the forced half-lr update against the official script,
  composed as the step composes it, in ``tests/test_reference_theano.py::
  test_sketch_probe_schedule_and_forced_update_match_the_script_over_two_batches``.
  """
  config = small_config("sketches", "deligan", batch_size=4)
  config.balance.g_streak = 3
  config.balance.thres_init = -1.0
  trainer = make_trainer(config=config, inner_updates=5, n=16)
  state = trainer.init_state(0)
  d_before = jax.device_get(state.params["discriminator"])
  state, metrics = trainer.run(state, 3)
  assert metrics["forced_d_updates"].tolist() == [0, 1, 1]
  assert metrics["g_updates"].tolist() == [5, 5, 5]
  assert not jax.tree.all(jax.tree.map(np.array_equal, d_before,
                                       jax.device_get(state.params["discriminator"])))
  d_opt = state.opt_state["discriminator"]
  # The forced update's half rate is not left in the optimiser.
  assert float(d_opt.hyperparams["learning_rate"]) == pytest.approx(config.optim.lr)


def test_training_mode_probe_uses_d_noise_and_dropout():
  trainer = make_trainer(config=small_config("sketches", "deligan", batch_size=4), n=16)
  state = trainer.init_state(0)
  probes = {}
  for train_mode in (False, True):
    step = dataclasses.replace(trainer.step, rule=dataclasses.replace(
        trainer.step.rule, probe_train_mode=train_mode))
    probe = jax.jit(functools.partial(updates.probe, step))
    probes[train_mode] = [float(probe(state.params, state.batch_stats, jax.random.key(k)))
                          for k in (1, 1, 2)]
  assert probes[True][0] == probes[True][1] and probes[False][0] == probes[False][1]
  assert probes[True][0] != probes[False][0]  # noise, dropout and batch statistics on


@pytest.mark.parametrize("name, lr, epochs, formula", [
    # dg_cifar.py: args.learning_rate * np.minimum(3. - epoch/400., 1.), 1200 epochs.
    ("cifar10", 3e-4, 1200, lambda e: min(3.0 - e / 400.0, 1.0)),
    # dg_sketches.py: args.learning_rate * np.minimum(3.-epoch/1300., 1.), 3900 epochs (the
    # forced D update takes half of it: lrd).
    ("sketches", 1e-4, 3900, lambda e: min(3.0 - e / 1300.0, 1.0)),
])
def test_cifar_and_sketch_schedules_equal_the_scripts_formulas_every_epoch(name, lr, epochs,
                                                                          formula):
  from tests.conftest import load_config
  config = load_config(name)
  o = config.optim
  assert o.lr == lr and config.num_steps % epochs == 0  # whole epochs
  factors = optim.learning_rate_factor(jnp.arange(epochs), o.decay_start_epoch,
                                       o.decay_end_epoch)
  want = np.float32(lr) * np.array([formula(e) for e in range(epochs)], np.float32)
  np.testing.assert_allclose(np.float32(lr) * np.asarray(factors), want, rtol=1e-6, atol=1e-12)
  if name == "sketches":
    assert config.balance.forced_d_lr_factor == 0.5

"""The balancing rule: the on-device state machine against the official rules (the toy's from
the reference port, tests/reference/dg_toy_tf.py; MNIST's transcribed here)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deligan_jax.step import balancing


f32 = np.float32  # the device keeps thres in float32; so does the reference


def reference_toy(g_per_batch, batches_per_epoch, number=f32):
  """The reference port's count rule (the official toy loop); returns decisions and thres.

  ``number``: float32 as the device (default), or the script's Python float.
  """
  dg_toy_tf = pytest.importorskip("tests.reference.dg_toy_tf")
  rule = dg_toy_tf.CountRule(number)
  decisions, thresholds = [], []
  for b, gs in enumerate(g_per_batch):
    if b % batches_per_epoch == 0:
      rule.start_epoch()
    rule.start_batch()
    for g in gs:
      decisions.append(bool(g > rule.thres))
      rule.record(decisions[-1])
    thresholds.append(rule.thres)
  return decisions, np.asarray(thresholds)


def reference_mnist(g_per_batch):
  """The official MNIST loop (docs/paper.md §3), transcribed literally."""
  thres, count1, count2, t1 = f32(1.0), 0, 0, f32(0.70)
  decisions, thresholds = [], []
  for gs in g_per_batch:
    if count1 > 3:
      thres = min(thres + f32(0.003), f32(1.0))
      count1 = 0
    if count2 < -1:
      thres = max(thres - f32(0.003), t1)
      count2 = 0
    for g in gs:
      if g > thres:
        decisions.append(True)
        count1 += 1
        count2 = 0
      else:
        decisions.append(False)
        count2 -= 1
        count1 = 0
    thresholds.append(thres)
  return decisions, thresholds


def device_rule(rule, g_per_batch, batches_per_epoch):
  """The package's functions, jitted as the train step uses them."""

  def batch(state, xs):
    index, gs = xs
    state = jax.tree.map(lambda a, b: jnp.where(index % batches_per_epoch == 0, a, b),
                         balancing.start_epoch(rule, state), state)
    state = balancing.start_batch(rule, state)

    def inner(state, g):
      update_g = balancing.update_generator(rule, state, g, None)
      return balancing.record(rule, state, update_g), update_g

    state, decisions = jax.lax.scan(inner, state, gs)
    return state, (decisions, state.thres)

  g = jnp.asarray(g_per_batch, jnp.float32)
  _, (decisions, thres) = jax.jit(lambda s, x: jax.lax.scan(batch, s, x))(
      balancing.BalanceState.create(rule), (jnp.arange(len(g)), g))
  return np.asarray(decisions).reshape(-1).tolist(), np.asarray(thres)


def random_losses(seed, batches, level, spread):
  # float32 values, so host and device compare identical numbers with thres.
  rng = np.random.default_rng(seed)
  drift = level + 0.2 * np.sin(np.arange(batches) / 40.0)
  return (drift[:, None] + spread * rng.standard_normal((batches, 5))).astype(np.float32)


TOY = balancing.BalanceRule(kind="count", thres_up=0.01, thres_down=0.001, t1_init=0.73)
MNIST = balancing.BalanceRule(kind="streak")


@pytest.mark.parametrize("level", [0.6, 0.75, 0.95])
def test_toy_rule_matches_reference(level):
  g = random_losses(0, 3000, level, 0.1)
  want_decisions, want_thres = reference_toy(g, 8)
  got_decisions, got_thres = device_rule(TOY, g, 8)
  np.testing.assert_array_equal(got_thres, want_thres)
  assert got_decisions == want_decisions
  assert 0 < np.mean(want_decisions) < 1  # both branches exercised


def test_toy_rule_lowers_t1_after_long_d_runs():
  g = np.zeros((12_000, 5), np.float32)  # D wins every time: thres falls to t1, t1 to 0.70
  _, want_thres = reference_toy(g, 8)
  _, got_thres = device_rule(TOY, g, 8)
  np.testing.assert_array_equal(got_thres, want_thres)
  assert want_thres[-1] == pytest.approx(0.70)
  assert min(want_thres[:8000]) > 0.70  # t1 (0.73) held thres up before it moved


def test_toy_rule_in_float32_lags_the_scripts_float64_by_at_most_one_t1_step():
  """The script's thres is a Python float. At the floor, 'thres > t1' compares sums of hundreds
  of 0.001 steps, which round differently in float32: a side may take one step more, which
  resets its count at another batch and moves t1 an epoch later (docs/fidelity.md)."""
  g = np.zeros((12_000, 5), np.float32)
  _, script_thres = reference_toy(g, 8, number=float)
  _, got_thres = device_rule(TOY, g, 8)
  differs = np.abs(got_thres - script_thres) > 1e-5
  assert differs.any()
  assert np.abs(got_thres - script_thres).max() < 0.005 + 1e-5
  assert got_thres[-1] == pytest.approx(script_thres[-1], abs=1e-6) == pytest.approx(0.70)


@pytest.mark.parametrize("level", [0.7, 0.85, 1.0])
def test_mnist_rule_matches_reference(level):
  g = random_losses(1, 3000, level, 0.08)
  want_decisions, want_thres = reference_mnist(g)
  got_decisions, got_thres = device_rule(MNIST, g, 10)
  np.testing.assert_array_equal(got_thres, want_thres)
  assert got_decisions == want_decisions
  assert 0 < np.mean(want_decisions) < 1


def test_mnist_rule_bounds():
  high = np.full((500, 5), 5.0, np.float32)
  low = np.full((500, 5), -1.0, np.float32)
  _, thres_high = device_rule(MNIST, high, 10)
  _, thres_low = device_rule(MNIST, low, 10)
  assert thres_high.max() == pytest.approx(1.0)
  assert thres_low.min() == pytest.approx(0.70, abs=1e-6)


def test_fixed_rule_decides_by_position_and_keeps_no_state():
  rule = balancing.BalanceRule(kind="fixed", inner_updates=4, fixed_d_updates=1)
  state = balancing.BalanceState.create(rule)
  decisions = [bool(balancing.update_generator(rule, state, None, jnp.int32(k)))
               for k in range(4)]
  assert decisions == [False, True, True, True]  # 1 D update, then 3 G updates
  assert balancing.start_batch(rule, state) is state
  assert balancing.record(rule, state, jnp.bool_(True)) is state


@pytest.mark.parametrize("factor, expected", [(0.5, True), (0.0, False)])
def test_forced_d_update_follows_the_g_streak(factor, expected):
  rule = balancing.BalanceRule(kind="streak", g_streak=5, forced_d_lr_factor=factor)
  state = balancing.BalanceState.create(rule)
  for _ in range(6):  # six G updates in a row: more than g_streak
    state = balancing.record(rule, state, jnp.bool_(True))
  assert bool(balancing.forces_discriminator_update(rule, state)) == expected
  assert not bool(balancing.forces_discriminator_update(rule, balancing.start_batch(rule, state)))

"""A stalled balance is reported once, and optionally ends the run."""

import json

import pytest

from deligan_jax.step import stall
from deligan_jax import training
from tests.conftest import load_config


def window(g_loss, g_updates=100, d_updates=0, thres=1.0):
  return {"g_loss": g_loss, "g_updates": g_updates, "d_updates": d_updates, "thres": thres}


@pytest.mark.parametrize("windows, expected", [
    ([window(1.4408)] * 5, "D"),
    ([window(0.3, g_updates=0, d_updates=100)] * 5, "G"),
    ([window(1.4408)] * 4, None),                                     # too few windows yet
    ([window(1.40), window(1.41), window(1.42), window(1.43), window(1.44)], None),  # probe moves
    ([window(1.4408)] * 4 + [window(1.4408, d_updates=1)], None),     # D had one update
    ([window(float("nan"), g_updates=3, d_updates=0)] * 5, None),     # no probe (fixed rule)
    ([dict(window(1.4408), forced_d_updates=50)] * 5, None),          # D trains by forced updates
    ([dict(window(1.4408), forced_d_updates=0)] * 5, "D"),
])
def test_stalled_network_needs_every_window_idle_and_a_flat_probe(windows, expected):
  assert stall.stalled_network(windows, 5, 1e-3) == expected


def test_a_stall_is_reported_once_per_seed():
  watch = stall.StallWatch(windows=2, probe_tolerance=1e-3, num_seeds=2)
  seen = [watch.observe([window(1.44), window(1.0, d_updates=3)]) for _ in range(4)]
  assert seen == [[None, None], ["D", None], [None, None], [None, None]]
  assert watch.label() == "s0:D"


def stalling_toy_config(action: str):
  """Larger toy networks under the official count rule: D stops for good near batch 60.

  With Glorot-initialised layers; TF 0.10's wider default initialiser keeps this seed going.
  """
  config = load_config("toy", "bimodal,gan")
  config.network.linear_init = "glorot_uniform"
  config.network.toy_hidden_layers = 4
  config.network.toy_activation = "relu"
  config.network.generator_width = 256
  config.network.discriminator_width = 256
  config.num_steps = 260
  config.steps_per_dispatch = 20
  config.log_every = 20
  config.sample_every = 260
  config.checkpoint_every = 260
  config.stall.windows = 5
  config.stall.action = action
  return config


def test_a_stalled_run_says_so_or_stops(tmp_path):
  with pytest.raises(training.Stalled, match=r"D has had no update for 5 log windows .*"
                     r"forced_d_lr_factor") as stopped:
    training.train_and_evaluate(stalling_toy_config("stop"), str(tmp_path))
  step = stopped.value.step
  assert step < 260
  assert (tmp_path / "checkpoints" / str(step)).is_dir()
  records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert [r for r in records if "stalled" in r] == [
      {"step": step, "stalled": "D", "stalled_windows": 5}]
  idle = [r for r in records if "d_updates" in r][-5:]
  assert all(r["d_updates"] == 0 for r in idle) and idle[-1]["step"] == step

  # The same run, resumed with the default action, warns again once and trains to the end.
  resumed = stalling_toy_config("warn")
  resumed.num_steps = 300
  state = training.train_and_evaluate(resumed, str(tmp_path))
  assert int(state.step) == 300
  records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  stalls = [r for r in records if "stalled" in r]
  assert len(stalls) == 2 and stalls[1]["step"] == step + 5 * 20

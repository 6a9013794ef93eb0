"""Run by tests/test_multidevice.py in a fresh process with 8 simulated CPU devices.

Trains the same small config on a 1-device mesh and on an 8-device mesh and
prints, as JSON, the largest difference of the parameters and of the trained
networks' outputs on fixed inputs.

The bias of a layer followed by batch norm has a gradient of exactly zero in
exact arithmetic (batch norm subtracts it again), so in floats it is rounding
noise, which Adam scales up to steps of size lr. Those biases cannot change any
output and are left out of the parameter comparison.
"""

import json
import sys

import jax
import numpy as np

from deligan_jax import balancing, input_pipeline, models, train_step
from tests.conftest import small_config


def train(config, x, devices, num_batches):
  trainer = train_step.Trainer(models.build(config),
                               balancing.BalanceRule.from_config(config.balance),
                               train_step.StepConfig.from_config(config), x,
                               train_step.make_mesh(devices))
  state, _ = trainer.train(trainer.init_state(0), num_batches)
  return jax.device_get(state)


def main(experiment, variant):
  config = small_config(experiment, variant)
  if experiment == "toy":
    x = input_pipeline.toy_points("bimodal", 64)
  else:
    x = np.random.default_rng(0).uniform(-1, 1, (32, 28, 28, 1)).astype(np.float32)
  one = train(config, x, jax.devices()[:1], 6)
  eight = train(config, x, jax.devices()[:8], 6)
  diffs = [float(np.max(np.abs(a - b)))
           for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(one.params),
                                   jax.tree.leaves(eight.params))
           if a.size and not (experiment == "mnist" and _before_batch_norm(path))]
  model = models.build(config)
  key = jax.random.key(42)
  outputs = []
  for state in (one, eight):
    # Training mode: batch statistics cancel the pre-batch-norm biases exactly.
    fake, _ = model.generate(state.params, state.batch_stats, key, config.batch_size, True)
    logits, _ = model.discriminate(state.params, state.batch_stats, x[:config.batch_size], True)
    outputs.append((fake, logits))
  output_diff = max(float(np.max(np.abs(a - b))) for a, b in zip(*outputs))
  print(json.dumps({"devices": len(jax.devices()), "max_abs_diff": max(diffs),
                    "output_diff": output_diff,
                    "thres_equal": bool(one.balance.thres == eight.balance.thres)}))


# The MNIST networks' layers followed by batch norm (networks.MnistGenerator/Discriminator).
PRE_BATCH_NORM = {"Conv_1", "Conv_2", "Dense_0", "ConvTranspose_0", "ConvTranspose_1"}


def _before_batch_norm(path) -> bool:
  names = [getattr(k, "key", None) for k in path]
  return names[-1] == "bias" and names[-2] in PRE_BATCH_NORM


if __name__ == "__main__":
  main(*sys.argv[1:])

"""The per-epoch shuffle: a uniform bijection, drawn at a cost independent of the data's size."""

import collections

import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import pytest

from deligan_jax.step import batches as shuffle
from deligan_jax.experiment import Experiment
from tests.conftest import small_config


@pytest.mark.parametrize("n", [1, 2, 3, 5, 16, 17, 400, 1025, 60000])
def test_permutation_of_range_n(n):
  order = np.asarray(shuffle.permute(jax.random.key(n), n, jnp.arange(n)))
  np.testing.assert_array_equal(np.sort(order), np.arange(n))


def test_positions_evaluate_the_same_permutation():
  key, n = jax.random.key(3), 1000
  whole = np.asarray(shuffle.permute(key, n, jnp.arange(n)))
  part = np.asarray(shuffle.permute(key, n, jnp.arange(250, 300)))
  np.testing.assert_array_equal(part, whole[250:300])


def test_every_ordering_is_about_equally_likely():
  # All 24 orders of 4 items over 24000 keys: each count ~ 1000 +- 31.
  draw = jax.jit(jax.vmap(lambda k: shuffle.permute(jax.random.key(k), 4, jnp.arange(4))))
  counts = collections.Counter(map(tuple, np.asarray(draw(jnp.arange(24000))).tolist()))
  assert len(counts) == 24
  assert 850 < min(counts.values()) and max(counts.values()) < 1150


def test_each_item_lands_uniformly_over_positions():
  # Where each of 10 items lands, over 4000 keys: chi-square with 81 degrees of freedom
  # (its 99.9% quantile is 124).
  draw = jax.jit(jax.vmap(lambda k: shuffle.permute(jax.random.key(k), 10, jnp.arange(10))))
  orders = np.asarray(draw(jnp.arange(4000)))
  counts = np.zeros((10, 10))
  for order in orders:
    counts[np.arange(10), order] += 1
  assert ((counts - 400) ** 2 / 400).sum() < 124


def test_an_epoch_of_batches_draws_each_sample_once_and_epochs_differ():
  config = small_config("toy", "bimodal,gan")  # batch 8
  trainer = Experiment.from_config(config).driver(np.zeros((100, 2), np.float32))
  step = trainer.step
  key = jax.random.key(0)
  indices = jax.jit(lambda key, epoch, position: shuffle.batch_indices(
      key, epoch, position, step.config.batch_size, step.num_samples, step.config.batch_order))
  epochs = [np.concatenate([np.asarray(indices(key, epoch, position))
                            for position in range(trainer.step.batches_per_epoch)])
            for epoch in range(2)]
  for drawn in epochs:
    assert len(drawn) == 96 and len(set(drawn.tolist())) == 96 and drawn.max() < 100
  assert not np.array_equal(epochs[0], epochs[1])


def test_no_value_of_the_step_grows_with_the_training_set():
  # Apart from the training set itself, every array the step computes is sized by the
  # batch and the networks: a full permutation of the data would be an array of n.
  n = 1_000_003
  config = small_config("toy", "bimodal,deligan")
  trainer = Experiment.from_config(config).driver(np.zeros((n, 2), np.float32))
  state = jax.eval_shape(trainer.init_state, 0)
  jaxpr = jax.make_jaxpr(trainer._run_batches, static_argnums=2)(state, trainer.train_set, 2)

  def sizes(jaxpr):
    for eqn in jaxpr.eqns:
      yield from (np.prod(v.aval.shape) for v in eqn.outvars if hasattr(v.aval, "shape"))
      for sub in jax.extend.core.jaxprs_in_params(eqn.params):
        yield from sizes(sub)

  assert max(sizes(jaxpr.jaxpr)) < 100_000


def test_the_compiled_step_does_not_hold_the_training_set():
  # The training set is an argument of the step: a constant would put every sample into
  # the program (16 MB of text for 1,000,000 points), and compiling would grow with it.
  config = small_config("toy", "bimodal,deligan")

  def program_chars(n):
    trainer = Experiment.from_config(config).driver(np.random.default_rng(0).uniform(-1, 1, (n, 2)))
    return len(trainer.lower(trainer.init_state(0), 2).as_text())

  assert abs(program_chars(1_000_003) - program_chars(400)) < 1000

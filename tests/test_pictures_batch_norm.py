"""CIFAR-10 and sketch pictures are drawn with G's batch statistics, as the official samplefun."""

import jax
import numpy as np

from deligan_jax import experiment as experiment_lib
from deligan_jax import models
from deligan_jax import sampling
from deligan_jax.step import state as state_lib
from tests.conftest import small_config


def cifar_run():
  config = small_config("cifar10", "deligan")
  experiment = experiment_lib.Experiment.from_config(config)
  examples = jax.random.uniform(jax.random.key(1), (16, 32, 32, 3), minval=-1, maxval=1)
  return config, experiment.model, state_lib.init_state(experiment.model, experiment.rule, 0,
                                                        examples)


def test_component_draws_are_rows_of_whole_batches_normalised_by_their_own_statistics():
  config, model, state = cifar_run()
  assert config.sample_batch_norm == "batch" and config.batch_size == model.num_components
  sampler = models.for_sampling(model, config)
  per_component = sampling.draw_components(sampler, state, 3, seed=4, batch_norm="batch",
                                           batch_size=config.batch_size)
  batches = sampling.draw(sampler, state, 3 * config.batch_size, 4, "batch", config.batch_size)
  for c, draws in enumerate(per_component):
    np.testing.assert_array_equal(draws, batches[c::config.batch_size])
  running = sampling.draw_components(sampler, state, 3, seed=4)
  assert not np.allclose(per_component[0], running[0])  # not the running averages


def test_training_pictures_are_the_samples_as_scored(tmp_path, monkeypatch):
  from deligan_jax import training
  from deligan_jax.runs import plots
  config, model, state = cifar_run()
  drawn = {}
  monkeypatch.setattr(plots, "save_image_grid", lambda images, path: drawn.update(x=images))
  training.plot_samples(model, state, config, np.zeros((1, 32, 32, 3)), str(tmp_path / "s.png"))
  np.testing.assert_array_equal(drawn["x"], sampling.draw_as_scored(
      model, config, state, config.num_plot_samples, seed=config.seed))

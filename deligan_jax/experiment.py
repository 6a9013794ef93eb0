"""The one assembly point: a config -> the model, balancing rule and step a run needs.

Training, evaluation, sampling, the benchmarks and the tests all build a run's parts
here, so that a config means the same thing wherever it is read.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from deligan_jax import models
from deligan_jax.models import networks
from deligan_jax.step import balancing
from deligan_jax.step import driver as driver_lib
from deligan_jax.step import state as state_lib
from deligan_jax.step import updates


@dataclasses.dataclass(frozen=True)
class Experiment:
  """A config's model, balancing rule and step hyperparameters."""
  config: ml_collections.ConfigDict
  model: models.GanModel
  rule: balancing.BalanceRule
  step_config: updates.StepConfig

  @classmethod
  def from_config(cls, config: ml_collections.ConfigDict) -> Experiment:
    return cls(config, models.build(config), balancing.BalanceRule.from_config(config.balance),
               updates.StepConfig.from_config(config))

  def driver(self, train_x: np.ndarray, mesh=None, num_seeds: int | None = None,
             train_labels: np.ndarray | None = None) -> driver_lib.StepDriver:
    """The jitted step on ``train_x``, over ``mesh`` (default: every device)."""
    return driver_lib.StepDriver(
        self.model, self.rule, self.step_config, train_x,
        driver_lib.make_mesh() if mesh is None else mesh,
        self.config.num_seeds if num_seeds is None else num_seeds, train_labels=train_labels)

  def abstract_state(self) -> state_lib.TrainState:
    """The shapes and dtypes of one seed's train state: what a checkpoint holds."""
    shape = (self.config.network.init_examples, *networks.SAMPLE_SHAPES[self.config.network.name])
    return jax.eval_shape(
        lambda: state_lib.init_state(self.model, self.rule, 0, jnp.zeros(shape)))

"""The jitted driver: :func:`~deligan_jax.step.updates.train_step` over K batches per dispatch,
on a ``seeds`` x ``data`` device mesh.

``lax.scan`` runs K batches per dispatch; the training set stays on the device and is
passed in, so that compiling does not grow with it. The step is written for the global
batch of one seed: on the mesh (:mod:`deligan_jax.step.device_layout`) stacked seeds are
sharded over ``seeds`` and each seed's real samples over ``data``; the training set is
replicated. XLA partitions the computation, and batch norm and minibatch discrimination
keep whole-batch semantics.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from deligan_jax import errors
from deligan_jax.models import GanModel
from deligan_jax.step import balancing
from deligan_jax.step import batches
from deligan_jax.step import device_layout
from deligan_jax.step import distributed
from deligan_jax.step import state as state_lib
from deligan_jax.step import updates


def make_mesh(devices=None) -> Mesh:
  """A 1-D mesh over ``devices`` (default: all): the pool a driver lays seeds and data out on."""
  devices = jax.devices() if devices is None else devices
  return Mesh(np.asarray(devices), (device_layout.DATA_AXIS,))


class StepDriver:
  """Owns the jitted step for one model, rule and (device-resident) training set.

  With ``num_seeds = S > 1`` the state holds S independent runs stacked on a
  leading axis (seeds ``seed .. seed + S - 1``), trained by one compiled program
  (``vmap`` over the state on accelerators, a loop over seeds on CPU; the data is shared).

  The devices of ``mesh`` are the pool: ``layout`` spreads the seeds and each
  seed's batch over as many of them as divide those (``idle_note`` names the rest).
  """

  def __init__(self, model: GanModel, rule: balancing.BalanceRule,
               step_config: updates.StepConfig, train_x: np.ndarray, mesh: Mesh,
               num_seeds: int = 1, train_labels: np.ndarray | None = None):
    if step_config.batch_size > len(train_x):
      raise errors.ConfigError(f"config.batch_size={step_config.batch_size} is larger than "
                               f"the training set ({len(train_x)} samples)")
    if step_config.objective == "semi_supervised" and train_labels is None:
      raise ValueError("the semi-supervised objective needs the training set's labels")
    pool = list(mesh.devices.flat)
    self.layout = device_layout.Layout.plan(len(pool), num_seeds, step_config.batch_size)
    self.idle_note = self.layout.idle_note(pool)
    distributed.check_devices_used(self.idle_note)  # before placing anything on them
    self.mesh = self.layout.mesh(pool)
    self.num_seeds = num_seeds
    self.replicated = NamedSharding(self.mesh, P())
    self.state_sharding = (NamedSharding(self.mesh, P(device_layout.SEEDS_AXIS))
                           if num_seeds > 1 else self.replicated)
    self.step = updates.Step(model, rule, step_config, num_samples=len(train_x),
                             batch_sharding=NamedSharding(self.mesh, P(device_layout.DATA_AXIS)))
    train_x = np.asarray(train_x, np.float32)
    self.train_set = {"x": self._replicate(train_x)}
    if train_labels is not None:
      self.train_set["labels"] = self._replicate(np.asarray(train_labels, np.int32))
    self._run = jax.jit(self._run_seeds if num_seeds > 1 else self._run_batches,
                        static_argnums=2, donate_argnums=0)

  @property
  def model(self):
    return self.step.model

  @property
  def rule(self):
    return self.step.rule

  @property
  def config(self) -> updates.StepConfig:
    return self.step.config

  def _replicate(self, array: np.ndarray) -> jax.Array:
    # From a callback, so that every host of a multi-host mesh supplies its devices.
    return jax.make_array_from_callback(array.shape, self.replicated, lambda index: array[index])

  def init_state(self, seed: int) -> state_lib.TrainState:
    """A fresh state (stacked over seeds when ``num_seeds > 1``), laid out over the mesh.

    Data-dependent initialisation sees the first ``init_examples`` samples of epoch 0's
    order (the labelled stream's, semi-supervised): the official CIFAR-10 and sketch scripts
    call ``init_param(trainx[:500])`` (``[:400]``) on the array whose batches they then
    train on in order.
    """
    create = functools.partial(state_lib.init_state, self.model, self.rule,
                               examples=self._init_examples)
    if self.num_seeds > 1:
      seeds = seed + jnp.arange(self.num_seeds)
      return jax.jit(jax.vmap(create), out_shardings=self.state_sharding)(seeds)
    return jax.jit(create, out_shardings=self.state_sharding)(seed)

  def _init_examples(self, run_key: jax.Array) -> jax.Array:
    """The first ``init_examples`` samples of epoch 0 under the run's key."""
    cfg = self.config
    tag = state_lib.LABELLED_TAG if cfg.objective == "semi_supervised" else state_lib.SHUFFLE_TAG
    count = min(cfg.init_examples, self.step.num_samples)
    order = batches.batch_indices(jax.random.fold_in(run_key, tag), 0, 0, count,
                                  self.step.num_samples, "fixed")
    return self.train_set["x"][order]  # one gather, once: take_rows' loop would slow compiling

  def lower(self, state: state_lib.TrainState, num_batches: int):
    """The step for ``num_batches`` batches, lowered for ahead-of-time compilation."""
    with jax.default_matmul_precision(self.config.matmul_precision):
      return self._run.lower(self._placed(state), self.train_set, num_batches)

  def run(self, state: state_lib.TrainState,
          num_batches: int) -> tuple[state_lib.TrainState, dict]:
    """Trains ``num_batches`` batches in one dispatch; metrics have leading dim K.

    ``state`` is donated: use the returned state afterwards.
    """
    # Part of the program's cache key: a float32 run on a GPU computes in float32, not TF32.
    with jax.default_matmul_precision(self.config.matmul_precision):
      return self._run(self._placed(state), self.train_set, num_batches)

  def _placed(self, state: state_lib.TrainState) -> state_lib.TrainState:
    # A state restored or stacked on the host side may have another layout; a no-op otherwise.
    return jax.device_put(state, self.state_sharding)

  def classify(self, state: state_lib.TrainState, x: np.ndarray) -> np.ndarray:
    """A semi-supervised D's class predictions for ``x`` (see ``GanModel.classify``)."""
    return self.model.classify(state.params, state.batch_stats, x, self.config.batch_size)

  # --- inside jit ---------------------------------------------------------

  def _run_batches(self, state: state_lib.TrainState, train_set: dict, num_batches: int):
    return jax.lax.scan(lambda s, _: updates.train_step(self.step, s, train_set), state,
                        length=num_batches)

  def _run_seeds(self, states: state_lib.TrainState, train_set: dict, num_batches: int):
    """``_run_batches`` over S stacked states.

    vmap on accelerators, where the seeds run in parallel, and wherever seeds
    are spread over devices (each device then runs its own). On one CPU device
    a loop over seeds (``lax.map``): vmap would turn the G/D ``cond`` into
    computing both updates and selecting, about three times the work per seed there.
    """
    run = functools.partial(self._run_batches, train_set=train_set, num_batches=num_batches)
    if self.layout.seeds == 1 and jax.default_backend() == "cpu":
      return jax.lax.map(run, states)
    return jax.vmap(run, spmd_axis_name=device_layout.SEEDS_AXIS)(states)

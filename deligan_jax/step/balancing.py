"""The G/D balancing rule of the official code (docs/paper.md §3), as an on-device state machine.

Each batch runs ``inner_updates`` balanced updates. Before each one, the
generator loss ``g = BCE(D(G(z)), 1)`` is probed on a fresh latent batch; if
``g > thres`` the generator (and the mixture) is updated, otherwise the
discriminator. ``thres`` itself moves with the history of decisions:

* ``'count'`` (toy): a signed counter, +1 per G update and -1 per D update. At
  the start of a batch, ``count > count_up`` raises thres by ``thres_up`` (at most
  ``thres_max``); ``count < count_down`` while thres > t1 lowers it by
  ``thres_down`` (not below t1); both reset the counter. At the start of an
  epoch, ``count < t1_count`` lowers the floor t1 by ``t1_step`` (not below
  ``t1_floor``).
* ``'streak'`` (MNIST): at the start of a batch, more than ``g_streak`` G updates
  in a row raise thres by ``thres_up``; ``d_streak`` D updates in a row lower it
  by ``thres_down``, not below t1 (= ``t1_init``); the streak is then reset.
  With ``forced_d_lr_factor > 0`` (sketches), raising thres also forces one D
  update at that fraction of the learning rate before the batch's updates.
  The probe runs the networks in inference mode (MNIST), or in training mode
  with ``probe_train_mode`` (sketches: D's noise and dropout on, G's batch norm
  on batch statistics), as each official script does. ``probe_reuse`` (sketches)
  probes once at the start of a batch; a G update's own loss then stands in for
  the next probe, and a D update is followed by a fresh one.
* ``'fixed'`` (CIFAR-10): no probe and no threshold; the first
  ``fixed_d_updates`` of each batch's updates go to D, the rest to G.

All functions are pure and jittable; the state is a pytree carried in the
train state, so no decision needs a host round trip.
"""

from __future__ import annotations

import dataclasses

import flax.struct
import jax
import jax.numpy as jnp

RULES = ("count", "streak", "fixed")


@dataclasses.dataclass(frozen=True)
class BalanceRule:
  """The rule's constants; defaults are the MNIST values of the official code."""
  kind: str = "streak"
  inner_updates: int = 5
  thres_init: float = 1.0
  thres_max: float = 1.0
  thres_up: float = 0.003
  thres_down: float = 0.003
  t1_init: float = 0.70
  # 'count' rule only.
  count_up: int = 10
  count_down: int = -150
  t1_count: int = -1000
  t1_step: float = 0.005
  t1_floor: float = 0.70
  # 'streak' rule only.
  g_streak: int = 3
  d_streak: int = 2
  forced_d_lr_factor: float = 0.0  # 0: no forced D update
  probe_train_mode: bool = False
  # One probe per batch, before the forced D update; then a G update's own loss (before its
  # step) or, after a D update, a fresh probe decides the next update (the sketch script).
  probe_reuse: bool = False
  # 'fixed' rule only.
  fixed_d_updates: int = 1

  @classmethod
  def from_config(cls, balance_config) -> BalanceRule:
    return cls(**dict(balance_config))


class BalanceState(flax.struct.PyTreeNode):
  """thres and its bookkeeping. ``count`` is the toy's signed counter or the G streak."""
  thres: jax.Array
  t1: jax.Array
  count: jax.Array
  d_count: jax.Array

  @classmethod
  def create(cls, rule: BalanceRule) -> BalanceState:
    return cls(thres=jnp.float32(rule.thres_init), t1=jnp.float32(rule.t1_init),
               count=jnp.int32(0), d_count=jnp.int32(0))


def start_epoch(rule: BalanceRule, state: BalanceState) -> BalanceState:
  """Once per epoch, before its first batch: the toy rule may lower its floor t1."""
  if rule.kind != "count":
    return state
  t1 = jnp.where(state.count < rule.t1_count,
                 jnp.maximum(state.t1 - rule.t1_step, rule.t1_floor), state.t1)
  return state.replace(t1=t1.astype(jnp.float32))


def forces_discriminator_update(rule: BalanceRule, state: BalanceState) -> jax.Array | bool:
  """Whether this batch starts with a forced D update (sketches); read before start_batch."""
  if rule.kind != "streak" or rule.forced_d_lr_factor <= 0:
    return False
  return state.count > rule.g_streak


def start_batch(rule: BalanceRule, state: BalanceState) -> BalanceState:
  """Before a batch's inner updates: move thres according to recent decisions."""
  if rule.kind == "fixed":
    return state
  if rule.kind == "count":
    raise_it = state.count > rule.count_up
    thres = jnp.where(raise_it, jnp.minimum(state.thres + rule.thres_up, rule.thres_max),
                      state.thres)
    count = jnp.where(raise_it, 0, state.count)
    lower_it = (count < rule.count_down) & (thres > state.t1)
    thres = jnp.where(lower_it, jnp.maximum(thres - rule.thres_down, state.t1), thres)
    count = jnp.where(lower_it, 0, count)
    return state.replace(thres=thres.astype(jnp.float32), count=count.astype(jnp.int32))
  raise_it = state.count > rule.g_streak
  thres = jnp.where(raise_it, jnp.minimum(state.thres + rule.thres_up, rule.thres_max),
                    state.thres)
  lower_it = state.d_count >= rule.d_streak
  thres = jnp.where(lower_it, jnp.maximum(thres - rule.thres_down, state.t1), thres)
  return state.replace(thres=thres.astype(jnp.float32),
                       count=jnp.where(raise_it, 0, state.count).astype(jnp.int32),
                       d_count=jnp.where(lower_it, 0, state.d_count).astype(jnp.int32))


def update_generator(rule: BalanceRule, state: BalanceState, g: jax.Array | None,
                     update_index: jax.Array) -> jax.Array:
  """The decision: update G (True) when the probed generator loss exceeds thres.

  Under the 'fixed' rule, by position in the batch (``g`` is not probed, None).
  """
  if rule.kind == "fixed":
    return update_index >= rule.fixed_d_updates
  return g > state.thres


def record(rule: BalanceRule, state: BalanceState, updated_generator: jax.Array) -> BalanceState:
  """Book-keeping after one inner update."""
  if rule.kind == "fixed":
    return state
  if rule.kind == "count":
    return state.replace(count=(state.count + jnp.where(updated_generator, 1, -1))
                         .astype(jnp.int32))
  return state.replace(
      count=jnp.where(updated_generator, state.count + 1, 0).astype(jnp.int32),
      d_count=jnp.where(updated_generator, 0, state.d_count + 1).astype(jnp.int32))

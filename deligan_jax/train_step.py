"""The fused, jitted train step: K batches of balanced G/D updates per dispatch.

One batch = ``inner_updates`` balanced updates on the same real batch (spec §3).
Each update probes ``g`` with batch norm in inference mode, then takes one Adam
step of G and the mixture (``g > thres``) or of D (otherwise), chosen with
``lax.cond`` on device (the 'fixed' rule chooses by position, without probe).
With the semi-supervised objective (CIFAR-10) each batch also draws a labelled
batch; with an augmentation policy every image D trains on is augmented
(:mod:`deligan_jax.augment`). ``lax.scan`` runs K batches per dispatch; the training set stays
on the device and is passed in, so that compiling does not grow with it. Batches are drawn from
a per-epoch permutation (:mod:`deligan_jax.shuffle`, evaluated only at the batch's positions).

All randomness derives from the state's key and the global batch index, so a
run resumed from a checkpoint draws exactly what an uninterrupted run draws.

Devices: the step is written for the global batch of one seed. On a ``seeds`` x
``data`` mesh (:mod:`deligan_jax.device_layout`) stacked seeds are sharded over
``seeds`` and each seed's real samples over ``data``; the training set is
replicated. XLA partitions the computation, and batch norm and minibatch
discrimination keep whole-batch semantics.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from deligan_jax import augment
from deligan_jax import balancing
from deligan_jax import config as config_lib
from deligan_jax import device_layout
from deligan_jax import losses
from deligan_jax import mixture
from deligan_jax import optim
from deligan_jax import shuffle
from deligan_jax import train_state
from deligan_jax.models import GanModel


def make_mesh(devices=None) -> Mesh:
  """A 1-D mesh over ``devices`` (default: all): the pool a Trainer lays seeds and data out on."""
  devices = jax.devices() if devices is None else devices
  return Mesh(np.asarray(devices), (device_layout.DATA_AXIS,))


class Trainer:
  """Owns the jitted step for one model, rule and (device-resident) training set.

  With ``num_seeds = S > 1`` the state holds S independent runs stacked on a
  leading axis (seeds ``seed .. seed + S - 1``), trained by one compiled program
  (``vmap`` over the state on accelerators, a loop over seeds on CPU; the data is shared).

  The devices of ``mesh`` are the pool: ``layout`` spreads the seeds and each
  seed's batch over as many of them as divide those (``idle_note`` names the rest).
  """

  def __init__(self, model: GanModel, rule: balancing.BalanceRule,
               step_config: train_state.StepConfig,
               train_x: np.ndarray, mesh: Mesh, num_seeds: int = 1,
               train_labels: np.ndarray | None = None):
    if step_config.batch_size > len(train_x):
      raise config_lib.ConfigError(f"config.batch_size={step_config.batch_size} is larger than "
                                   f"the training set ({len(train_x)} samples)")
    if step_config.objective == "semi_supervised" and train_labels is None:
      raise ValueError("the semi-supervised objective needs the training set's labels")
    self.model = model
    self.rule = rule
    self.config = step_config
    pool = list(mesh.devices.flat)
    self.layout = device_layout.Layout.plan(len(pool), num_seeds, step_config.batch_size)
    self.idle_note = self.layout.idle_note(pool)
    self.mesh = self.layout.mesh(pool)
    self.num_seeds = num_seeds
    self.replicated = NamedSharding(self.mesh, P())
    self.batch_sharding = NamedSharding(self.mesh, P(device_layout.DATA_AXIS))
    self.state_sharding = (NamedSharding(self.mesh, P(device_layout.SEEDS_AXIS))
                           if num_seeds > 1 else self.replicated)
    self.num_samples, self.batches_per_epoch = len(train_x), len(train_x) // step_config.batch_size
    train_x = np.asarray(train_x, np.float32)
    self.train_set = {"x": self._replicate(train_x)}
    if train_labels is not None:
      self.train_set["labels"] = self._replicate(np.asarray(train_labels, np.int32))
    self.optimizers = {name: optim.adam(step_config.b1, step_config.b2,
                                        step_config.adam_epsilon)
                       for name in optim.OPTIMISED}
    self._train = jax.jit(self._train_seeds if num_seeds > 1 else self._train_batches,
                          static_argnums=2, donate_argnums=0)

  def _replicate(self, array: np.ndarray) -> jax.Array:
    # From a callback, so that every host of a multi-host mesh supplies its devices.
    return jax.make_array_from_callback(array.shape, self.replicated, lambda index: array[index])

  def init_state(self, seed: int) -> train_state.TrainState:
    """A fresh state (stacked over seeds when ``num_seeds > 1``), laid out over the mesh.

    Data-dependent initialisation sees the first ``init_examples`` samples of epoch 0's
    order (the labelled stream's, semi-supervised): the official CIFAR-10 and sketch scripts
    call ``init_param(trainx[:500])`` (``[:400]``) on the array whose batches they then
    train on in order.
    """
    create = functools.partial(train_state.init_state, self.model, self.rule,
                               examples=self._init_examples)
    if self.num_seeds > 1:
      seeds = seed + jnp.arange(self.num_seeds)
      return jax.jit(jax.vmap(create), out_shardings=self.state_sharding)(seeds)
    return jax.jit(create, out_shardings=self.state_sharding)(seed)

  def lower(self, state: train_state.TrainState, num_batches: int):
    """The step for ``num_batches`` batches, lowered for ahead-of-time compilation."""
    return self._train.lower(self._placed(state), self.train_set, num_batches)

  def train(self, state: train_state.TrainState,
            num_batches: int) -> tuple[train_state.TrainState, dict]:
    """Trains ``num_batches`` batches in one dispatch; metrics have leading dim K.

    ``state`` is donated: use the returned state afterwards.
    """
    return self._train(self._placed(state), self.train_set, num_batches)

  def _placed(self, state: train_state.TrainState) -> train_state.TrainState:
    # A state restored or stacked on the host side may have another layout; a no-op otherwise.
    return jax.device_put(state, self.state_sharding)

  def classify(self, state: train_state.TrainState, x: np.ndarray) -> np.ndarray:
    """A semi-supervised D's class predictions (inference mode) for ``x``.

    In training-sized batches: minibatch discrimination sums over the batch, so
    its features depend on the batch size. The last batch is filled up with
    images from the start (repeated as often as needed) and their predictions dropped.
    """
    size = self.config.batch_size
    padded = np.resize(x, (-(-len(x) // size) * size, *x.shape[1:]))
    predictions = [np.asarray(self._predict_classes(state.params, state.batch_stats,
                                                    padded[start:start + size]))
                   for start in range(0, len(padded), size)]
    return np.concatenate(predictions)[:len(x)]

  # --- inside jit ---------------------------------------------------------

  def _train_batches(self, state: train_state.TrainState, train_set: dict, num_batches: int):
    return jax.lax.scan(lambda s, _: self._train_batch(s, train_set), state, length=num_batches)

  def _train_seeds(self, states: train_state.TrainState, train_set: dict, num_batches: int):
    """``_train_batches`` over S stacked states.

    vmap on accelerators, where the seeds run in parallel, and wherever seeds
    are spread over devices (each device then runs its own). On one CPU device
    a loop over seeds (``lax.map``): vmap would turn the G/D ``cond`` into
    computing both updates and selecting, about three times the work per seed there.
    """
    train = functools.partial(self._train_batches, train_set=train_set, num_batches=num_batches)
    if self.layout.seeds == 1 and jax.default_backend() == "cpu":
      return jax.lax.map(train, states)
    return jax.vmap(train, spmd_axis_name=device_layout.SEEDS_AXIS)(states)

  def _train_batch(self, state: train_state.TrainState, train_set: dict):
    cfg, rule = self.config, self.rule
    base = jax.random.wrap_key_data(state.key)
    epoch = state.step // self.batches_per_epoch
    position = state.step % self.batches_per_epoch
    data = self._batch_data(train_set, base, epoch, position)
    batch_key = jax.random.fold_in(jax.random.fold_in(base, train_state.LATENTS_TAG), state.step)

    balance = jax.tree.map(functools.partial(jnp.where, position == 0),
                           balancing.start_epoch(rule, state.balance), state.balance)
    forced_d = balancing.forces_discriminator_update(rule, balance)
    balance = balancing.start_batch(rule, balance)
    factor = optim.learning_rate_factor(epoch, cfg.decay_start_epoch, cfg.decay_end_epoch)
    opt_state = self._with_learning_rates(state.opt_state, factor)
    params, batch_stats = state.params, state.batch_stats
    # With probe_reuse (sketches), one probe opens the batch, before the forced D update.
    first_g = (self._probe(params, batch_stats, jax.random.fold_in(batch_key,
                                                                   rule.inner_updates + 1))
               if rule.probe_reuse else None)
    if rule.forced_d_lr_factor > 0:
      params, batch_stats, opt_state = self._forced_discriminator_update(
          forced_d, params, batch_stats, opt_state, factor,
          jax.random.fold_in(batch_key, rule.inner_updates), data)

    def inner(carry, update_index):
      # 'per_batch': every update of the batch reuses the first one's key, hence its eps.
      latent_key = jax.random.fold_in(batch_key, update_index if cfg.eps_draw == "per_update"
                                      else 0)
      if not rule.probe_reuse:
        return self.balanced_update(carry, latent_key, data, update_index)
      return self.reusing_update(carry, latent_key, data, update_index)

    carry = (params, batch_stats, opt_state, balance)
    if rule.probe_reuse:
      carry = (*carry, first_g)
    carry, (g, update_g, loss) = jax.lax.scan(inner, carry, jnp.arange(rule.inner_updates))
    params, batch_stats, opt_state, balance = carry[:4]

    g_updates = jnp.sum(update_g.astype(jnp.int32))
    d_updates = rule.inner_updates - g_updates
    d_loss_total = jnp.sum(jnp.where(update_g, 0.0, loss))
    # Read and removed by the loop, which stops on the first non-finite batch.
    metrics = {
        "finite_losses": jnp.all(jnp.isfinite(loss)) & (
            True if rule.kind == "fixed" else jnp.all(jnp.isfinite(g))),
        "finite_params": jnp.all(jnp.array([jnp.all(jnp.isfinite(leaf))
                                            for leaf in jax.tree.leaves(params)])),
        "g_loss": jnp.nanmean(g),
        "d_loss": jnp.where(d_updates > 0, d_loss_total / jnp.maximum(d_updates, 1), jnp.nan),
        "g_updates": g_updates,
        "d_updates": d_updates,
        "thres": balance.thres,
        "lr": factor * cfg.learning_rate,
    }
    if rule.forced_d_lr_factor > 0:
      metrics["forced_d_updates"] = forced_d.astype(jnp.int32)
    if self.model.has_mixture:
      metrics["sigma_mean"] = jnp.mean(params["mixture"]["sigma"])
      metrics["sigma_reg"] = mixture.sigma_regularizer(params["mixture"])
    new_state = state.replace(step=state.step + 1, params=params, batch_stats=batch_stats,
                              opt_state=opt_state, balance=balance)
    return new_state, metrics

  def balanced_update(self, carry, latent_key, data, update_index):
    """One update of a batch: probe g, then one step of G (``g > thres``) or of D.

    ``carry = (params, batch_stats, opt_state, balance)``; returns the new carry and
    ``(g, updated_generator, loss)``. Also the entry point of the step-level
    equivalence tests against the reference port of the official code.
    """
    params, batch_stats, opt_state, balance = carry
    g = None if self.rule.kind == "fixed" else self._probe(params, batch_stats, latent_key)
    carry, (g, update_g, loss, _) = self._decide_and_update(carry, g, latent_key, data,
                                                            update_index)
    return carry, (g, update_g, loss)

  def reusing_update(self, carry, latent_key, data, update_index):
    """One update under the official sketch schedule: decide on the g carried in.

    ``carry = (params, batch_stats, opt_state, balance, g)``. The next g is this update's
    own generator loss before the step (adversarial part) after a G update, a fresh
    probe after a D update. Returns the new carry and ``(g, updated_generator, loss)``.
    """
    carry, g = carry[:4], carry[4]
    carry, (g, update_g, loss, g_loss) = self._decide_and_update(carry, g, latent_key, data,
                                                                 update_index)
    params, batch_stats = carry[:2]
    next_g = jax.lax.cond(update_g, lambda: g_loss,
                          lambda: self._probe(params, batch_stats,
                                              jax.random.fold_in(latent_key, 5)))
    return (*carry, next_g), (g, update_g, loss)

  def _decide_and_update(self, carry, g, latent_key, data, update_index):
    """G (``g > thres``, or by position under 'fixed') or D takes one step; the rule records it."""
    params, batch_stats, opt_state, balance = carry
    rule = self.rule
    update_g = balancing.update_generator(rule, balance, g, update_index)
    params, batch_stats, opt_state, loss, g_loss = jax.lax.cond(
        update_g, self._generator_update, self._discriminator_update,
        params, batch_stats, opt_state, latent_key, data)
    balance = balancing.record(rule, balance, update_g)
    # Without a probe, g is the loss of the G updates themselves.
    g = jnp.where(update_g, loss, jnp.nan) if g is None else g
    return (params, batch_stats, opt_state, balance), (g, update_g, loss, g_loss)

  def _with_learning_rates(self, opt_state, factor):
    cfg = self.config
    return {name: optim.with_learning_rate(
        s, factor * (cfg.mixture_learning_rate if name == "mixture" else cfg.learning_rate))
            for name, s in opt_state.items()}

  def _forced_discriminator_update(self, forced, params, batch_stats, opt_state, factor,
                                   key, data):
    """The sketch rule's extra D update at ``forced_d_lr_factor`` of the learning rate."""

    def update(params, batch_stats, opt_state):
      d_opt = optim.with_learning_rate(
          opt_state["discriminator"],
          factor * self.config.learning_rate * self.rule.forced_d_lr_factor)
      params, batch_stats, new_opt_state, _, _ = self._discriminator_update(
          params, batch_stats, {**opt_state, "discriminator": d_opt}, key, data)
      new_opt_state["discriminator"] = optim.with_learning_rate(
          new_opt_state["discriminator"], factor * self.config.learning_rate)
      return params, batch_stats, new_opt_state

    return jax.lax.cond(forced, update, lambda *carry: carry, params, batch_stats, opt_state)

  def _batch_data(self, train_set, base, epoch, position) -> dict[str, jax.Array]:
    """This batch's real samples (and, semi-supervised, a labelled batch and its labels)."""
    indices = self._batch_indices(jax.random.fold_in(base, train_state.SHUFFLE_TAG), epoch,
                                  position)
    data = {"real": self._shard(shuffle.take_rows(train_set["x"], indices))}
    if self.config.objective == "semi_supervised":
      # Like the official code: the same images, in another order, as the labelled set.
      indices = self._batch_indices(jax.random.fold_in(base, train_state.LABELLED_TAG), epoch,
                                    position)
      data["labelled"] = self._shard(shuffle.take_rows(train_set["x"], indices))
      data["labels"] = self._shard(shuffle.take_rows(train_set["labels"], indices))
    return data

  def _init_examples(self, run_key: jax.Array) -> jax.Array:
    """The first ``init_examples`` samples of epoch 0 under the run's key."""
    tag = (train_state.LABELLED_TAG if self.config.objective == "semi_supervised"
           else train_state.SHUFFLE_TAG)
    count = min(self.config.init_examples, self.num_samples)
    order = shuffle.permute(jax.random.fold_in(jax.random.fold_in(run_key, tag), 0),
                            self.num_samples, jnp.arange(count))
    return self.train_set["x"][order]  # one gather, once: take_rows' loop would slow compiling

  def _batch_indices(self, shuffle_key, epoch, position):
    """Entries ``position * B .. + B`` of this epoch's order, at a cost independent of its size.

    ``batch_order='fixed'``: every epoch takes epoch 0's order (the official CIFAR-10 and
    sketch loops draw one permutation before training).
    """
    size = self.config.batch_size
    order = 0 if self.config.batch_order == "fixed" else epoch
    return shuffle.permute(jax.random.fold_in(shuffle_key, order), self.num_samples,
                           position * size + jnp.arange(size))

  def _shard(self, x):
    return jax.lax.with_sharding_constraint(x, self.batch_sharding)

  def _probe(self, params, batch_stats, latent_key):
    """The balancing probe g = BCE(D(G(z)), 1), in inference or training mode (the rule's).

    In training mode the batch-norm statistics it computes are discarded: a
    probe is a measurement.
    """
    train = self.rule.probe_train_mode
    key = jax.random.fold_in(latent_key, 3)
    fake, _ = self.model.generate(params, batch_stats, latent_key, self.config.batch_size,
                                  train=train)
    if self.config.augment:  # g then measures the loss G's updates minimise
      fake = augment.apply(jax.random.fold_in(key, 10), fake, self.config.augment)
    logits, _ = self.model.discriminate(params, batch_stats, fake, train=train, key=key)
    return losses.generator_loss(losses.real_logit(logits))

  def _apply(self, name, grads, opt_state, params):
    updates, new_opt_state = self.optimizers[name].update(grads, opt_state[name], params[name])
    return optax.apply_updates(params[name], updates), new_opt_state

  def _discriminate_sets(self, params, batch_stats, sets, key):
    """D's logits for each of several equal-sized batches, and D's new batch stats.

    ``d_batch_norm='joint'``: one D call, whose batch norm normalises all sets
    as one batch (minibatch discrimination still compares each set only within
    itself). ``'separate'``: one D call per set, as the official code's D(real)
    and D(fake); each updates the running averages in turn.

    With an augmentation policy, each set is augmented first (its own key).
    """
    if self.config.augment:
      sets = [augment.apply(jax.random.fold_in(key, 10 + i), x, self.config.augment)
              for i, x in enumerate(sets)]
    if self.config.d_batch_norm == "joint":
      logits, d_stats = self.model.discriminate(params, batch_stats, jnp.concatenate(sets),
                                                train=True, groups=len(sets), key=key)
      return jnp.split(logits, len(sets)), d_stats
    logits = []
    for i, x in enumerate(sets):
      set_logits, d_stats = self.model.discriminate(params, batch_stats, x, train=True,
                                                    key=jax.random.fold_in(key, 20 + i))
      batch_stats = {**batch_stats, "discriminator": d_stats}
      logits.append(set_logits)
    return logits, batch_stats["discriminator"]

  def _generator_update(self, params, batch_stats, opt_state, latent_key, data):
    """One Adam step of G and the mixture on G's loss (plus the sigma term).

    Returns the new params, batch stats and optimiser state, the loss and its
    adversarial part (both before the step).
    """
    (loss, (new_stats, g_loss)), grads = self.generator_grads(params, batch_stats, latent_key,
                                                              data)
    new_params, new_opt_state = dict(params), dict(opt_state)
    for name in grads:
      new_params[name], new_opt_state[name] = self._apply(name, grads[name], opt_state, params)
    return new_params, new_stats, new_opt_state, loss, g_loss

  def generator_grads(self, params, batch_stats, latent_key, data):
    """G's loss, ``(new batch stats, adversarial part)`` and its gradients for G and the mixture.

    Like the official code, every network run in training mode updates its
    batch-norm running averages, whichever network the step optimises: the
    inference-mode probe depends on them. D sees the generated batch alone
    (as the official code) unless its batch norm is 'joint' (then with the real
    batch, whose statistics it shares).
    """
    def loss_fn(trainable):
      (adversarial, regulariser), new_stats = self.generator_objective(
          trainable, params, batch_stats, latent_key, data)
      return adversarial + regulariser, (new_stats, adversarial)

    trainable = {"generator": params["generator"], "mixture": params["mixture"]}
    return jax.value_and_grad(loss_fn, has_aux=True)(trainable)

  def generator_objective(self, trainable, params, batch_stats, latent_key, data):
    """G's loss on ``trainable = {'generator', 'mixture'}`` in two parts, and the new stats.

    Returns ``((adversarial, regulariser), stats)``: G's loss on D's logits and the
    weighted sigma term (0 without a mixture); :meth:`_generator_update` steps their sum.
    """
    d_key = jax.random.fold_in(latent_key, 4)  # 0 and 1 are split(latent_key)'s halves
    with_real = bool(batch_stats["discriminator"]) and self.config.d_batch_norm == "joint"
    p = {**params, **trainable}
    fake, g_stats = self.model.generate(p, batch_stats, latent_key, self.config.batch_size,
                                        train=True)
    sets = (data["real"], fake) if with_real else (fake,)
    logits, d_stats = self._discriminate_sets(p, batch_stats, sets, d_key)
    if self.config.objective == "semi_supervised":
      adversarial = losses.semi_supervised_generator_loss(logits[-1])
    else:
      adversarial = losses.generator_loss(logits[-1])
    regulariser = (self.config.sigma_reg * mixture.sigma_regularizer(trainable["mixture"])
                   if self.model.has_mixture else jnp.float32(0.0))
    return (adversarial, regulariser), {"generator": g_stats, "discriminator": d_stats}

  def _discriminator_update(self, params, batch_stats, opt_state, latent_key, data):
    """One Adam step of D on real (label 1) and generated (label 0) samples.

    Returns the new params, batch stats and optimiser state, D's loss before the
    step, and NaN (no generator loss; the shape of :meth:`_generator_update`'s).
    """
    (loss, new_stats), grads = self.discriminator_grads(params, batch_stats, latent_key, data)
    new_params, new_opt_state = dict(params), dict(opt_state)
    new_params["discriminator"], new_opt_state["discriminator"] = self._apply(
        "discriminator", grads, opt_state, params)
    return new_params, new_stats, new_opt_state, loss, jnp.float32(jnp.nan)

  def discriminator_grads(self, params, batch_stats, latent_key, data):
    """D's loss, the new batch stats of both networks and D's gradients.

    Semi-supervised: plus the cross-entropy of the labelled batch's classes.
    """
    fake, g_stats = self.model.generate(params, batch_stats, latent_key,
                                        self.config.batch_size, train=True)
    fake = jax.lax.stop_gradient(fake)
    semi_supervised = self.config.objective == "semi_supervised"
    sets = ((data["labelled"], data["real"], fake) if semi_supervised
            else (data["real"], fake))

    def loss_fn(d_params):
      p = {**params, "discriminator": d_params}
      logits, d_stats = self._discriminate_sets(p, batch_stats, sets,
                                                jax.random.fold_in(latent_key, 2))
      if semi_supervised:
        loss = losses.semi_supervised_discriminator_loss(logits[0], data["labels"], *logits[1:])
      else:
        loss = losses.discriminator_loss(*logits)
      return loss, d_stats

    (loss, d_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params["discriminator"])
    return (loss, {"generator": g_stats, "discriminator": d_stats}), grads

  @functools.partial(jax.jit, static_argnums=0)
  def _predict_classes(self, params, batch_stats, x):
    logits, _ = self.model.discriminate(params, batch_stats, x, train=False)
    return jnp.argmax(logits, axis=-1)

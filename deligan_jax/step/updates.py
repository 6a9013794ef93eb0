"""One batch of DeLiGAN training, as pure functions: the algorithm of the paper and its code.

A batch is ``inner_updates`` balanced updates on the same real samples:

1. draw the batch's real samples (and, semi-supervised, a labelled batch);
2. the sketch rule may first force one D update at a fraction of the learning rate;
3. each update probes ``g = BCE(D(G(z)), 1)``, then takes one Adam step of G and the
   mixture (``g > thres``) or of D (otherwise), chosen on device with ``lax.cond``
   (the 'fixed' rule chooses by position, without a probe);
4. the balancing rule records who moved; the learning rate follows the epoch.

Every function here is pure: it takes the parameters, batch-norm statistics, optimiser
states, keys and the batch, plus a static :class:`Step` (model, rule, hyperparameters),
and returns new ones. The jitted driver (:mod:`deligan_jax.step.driver`) runs
:func:`train_step` over K batches per dispatch on a device mesh.

All randomness derives from the state's key and the global batch index, so a run resumed
from a checkpoint draws exactly what an uninterrupted run draws.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import optax
from jax.sharding import NamedSharding

from deligan_jax import mixture
from deligan_jax.models import GanModel
from deligan_jax.step import augment
from deligan_jax.step import balancing
from deligan_jax.step import batches
from deligan_jax.step import losses
from deligan_jax.step import mode_seeking
from deligan_jax.step import optim
from deligan_jax.step import state as state_lib


@dataclasses.dataclass(frozen=True)
class StepConfig:
  """The static hyperparameters of the step."""
  batch_size: int
  learning_rate: float
  mixture_learning_rate: float
  sigma_reg: float
  decay_start_epoch: float | None = None
  decay_end_epoch: float | None = None
  b1: float = 0.5
  b2: float = 0.999
  objective: str = "bce"          # see losses.OBJECTIVES
  augment: str = ""               # DiffAugment policy, e.g. 'color,translation,cutout'
  init_examples: int = 500        # real examples of the data-dependent init pass
  d_batch_norm: str = "separate"  # see config.D_BATCH_NORM
  adam_epsilon: str = "sqrt_v_hat"  # see optim.ADAM_EPSILONS
  eps_draw: str = "per_update"    # see config.EPS_DRAWS
  batch_order: str = "reshuffle"  # see config.BATCH_ORDERS
  train_sigma: bool = True        # False: sigma stays at its initial value (GM-GAN's fixed sigma)
  mode_seeking_weight: float = 0.0  # MSGAN's term in G's loss (mode_seeking.py); 0: off
  matmul_precision: str = "highest"  # see config.MATMUL_PRECISIONS

  @classmethod
  def from_config(cls, config) -> StepConfig:
    o = config.optim
    return cls(
        batch_size=config.batch_size,
        learning_rate=o.lr,
        mixture_learning_rate=o.lr if o.mixture_lr is None else o.mixture_lr,
        sigma_reg=config.latent.sigma_reg,
        decay_start_epoch=o.decay_start_epoch,
        decay_end_epoch=o.decay_end_epoch,
        b1=o.b1,
        b2=o.b2,
        objective=config.objective,
        augment=config.augment,
        init_examples=config.network.init_examples,
        d_batch_norm=config.network.d_batch_norm,
        adam_epsilon=o.adam_epsilon,
        eps_draw=config.latent.eps_draw,
        batch_order=config.batch_order,
        train_sigma=config.latent.train_sigma,
        mode_seeking_weight=config.latent.mode_seeking_weight,
        matmul_precision=config.network.matmul_precision)


@dataclasses.dataclass(frozen=True)
class Step:
  """What the step closes over: the model, the balancing rule, the hyperparameters and the
  training set's size. ``batch_sharding`` (set by the driver on a mesh) lays each batch of
  real samples out over the mesh's ``data`` axis."""
  model: GanModel
  rule: balancing.BalanceRule
  config: StepConfig
  num_samples: int
  batch_sharding: NamedSharding | None = None

  @property
  def batches_per_epoch(self) -> int:
    return self.num_samples // self.config.batch_size


# --- one batch ----------------------------------------------------------------


def train_step(step: Step, state: state_lib.TrainState, train_set: dict):
  """One batch: ``inner_updates`` balanced updates; returns the new state and its metrics."""
  cfg, rule = step.config, step.rule
  carry, data, batch_key, factor, forced_d = open_batch(step, state, train_set)

  def inner(carry, update_index):
    return inner_update(step, carry, batch_key, data, update_index)

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
  if step.model.has_mixture:
    # |sigma|: the sign of a component's scale is free (z = mu + sigma * eps), its size is not.
    metrics["sigma_mean"] = jnp.mean(jnp.abs(mixture.scale(params["mixture"])))
    metrics["sigma_reg"] = mixture.sigma_regularizer(params["mixture"])
  new_state = state.replace(step=state.step + 1, params=params, batch_stats=batch_stats,
                            opt_state=opt_state, balance=balance)
  return new_state, metrics


def open_batch(step: Step, state: state_lib.TrainState, train_set: dict):
  """What comes before a batch's updates: its data, the rule's move of thres, the sketch
  rule's first probe and forced D update.

  Returns ``(carry, data, batch_key, factor, forced_d)``: the carry of the first
  :func:`inner_update`, the batch, its latent key, the learning-rate factor and whether
  D's update was forced.
  """
  cfg, rule = step.config, step.rule
  base = jax.random.wrap_key_data(state.key)
  epoch = state.step // step.batches_per_epoch
  position = state.step % step.batches_per_epoch
  data = draw_batch(step, train_set, base, epoch, position)
  batch_key = jax.random.fold_in(jax.random.fold_in(base, state_lib.LATENTS_TAG), state.step)

  balance = jax.tree.map(functools.partial(jnp.where, position == 0),
                         balancing.start_epoch(rule, state.balance), state.balance)
  forced_d = balancing.forces_discriminator_update(rule, balance)
  balance = balancing.start_batch(rule, balance)
  factor = optim.learning_rate_factor(epoch, cfg.decay_start_epoch, cfg.decay_end_epoch)
  opt_state = with_learning_rates(step, state.opt_state, factor)
  params, batch_stats = state.params, state.batch_stats
  # With probe_reuse (sketches), one probe opens the batch, before the forced D update.
  first_g = (probe(step, params, batch_stats, jax.random.fold_in(batch_key,
                                                                 rule.inner_updates + 1))
             if rule.probe_reuse else None)
  if rule.forced_d_lr_factor > 0:
    params, batch_stats, opt_state = forced_discriminator_update(
        step, forced_d, params, batch_stats, opt_state, factor,
        jax.random.fold_in(batch_key, rule.inner_updates), data)
  carry = (params, batch_stats, opt_state, balance)
  if rule.probe_reuse:
    carry = (*carry, first_g)
  return carry, data, batch_key, factor, forced_d


def inner_update(step: Step, carry, batch_key, data, update_index):
  """Update ``update_index`` of the batch: the rule's update with this update's latent key."""
  # 'per_batch': every update of the batch reuses the first one's key, hence its eps.
  latent_key = jax.random.fold_in(batch_key, update_index if step.config.eps_draw == "per_update"
                                  else 0)
  update = reusing_update if step.rule.probe_reuse else balanced_update
  return update(step, carry, latent_key, data, update_index)


def draw_batch(step: Step, train_set: dict, base_key: jax.Array, epoch: jax.Array,
               position: jax.Array) -> dict[str, jax.Array]:
  """This batch's real samples (and, semi-supervised, a labelled batch and its labels)."""
  cfg = step.config

  def rows(tag, name):
    indices = batches.batch_indices(jax.random.fold_in(base_key, tag), epoch, position,
                                    cfg.batch_size, step.num_samples, cfg.batch_order)
    return _shard(step, batches.take_rows(train_set[name], indices))

  data = {"real": rows(state_lib.SHUFFLE_TAG, "x")}
  if cfg.objective == "semi_supervised":
    # Like the official code: the same images, in another order, as the labelled set.
    data["labelled"] = rows(state_lib.LABELLED_TAG, "x")
    data["labels"] = rows(state_lib.LABELLED_TAG, "labels")
  return data


def _shard(step: Step, x: jax.Array) -> jax.Array:
  if step.batch_sharding is None:
    return x
  return jax.lax.with_sharding_constraint(x, step.batch_sharding)


# --- one update -----------------------------------------------------------------


def balanced_update(step: Step, carry, latent_key, data, update_index):
  """One update of a batch: probe g, then one step of G (``g > thres``) or of D.

  ``carry = (params, batch_stats, opt_state, balance)``; returns the new carry and
  ``(g, updated_generator, loss)``. Also the entry point of the step-level
  equivalence tests against the reference ports of the official code.
  """
  params, batch_stats, _, _ = carry
  g = None if step.rule.kind == "fixed" else probe(step, params, batch_stats, latent_key)
  carry, (g, update_g, loss, _) = _decide_and_update(step, carry, g, latent_key, data,
                                                     update_index)
  return carry, (g, update_g, loss)


def reusing_update(step: Step, carry, latent_key, data, update_index):
  """One update under the official sketch schedule: decide on the g carried in.

  ``carry = (params, batch_stats, opt_state, balance, g)``. The next g is this update's
  own generator loss before the step (adversarial part) after a G update, a fresh
  probe after a D update. Returns the new carry and ``(g, updated_generator, loss)``.
  """
  carry, g = carry[:4], carry[4]
  carry, (g, update_g, loss, g_loss) = _decide_and_update(step, carry, g, latent_key, data,
                                                          update_index)
  params, batch_stats = carry[:2]
  next_g = jax.lax.cond(update_g, lambda: g_loss,
                        lambda: probe(step, params, batch_stats,
                                      jax.random.fold_in(latent_key, 5)))
  return (*carry, next_g), (g, update_g, loss)


def _decide_and_update(step: Step, carry, g, latent_key, data, update_index):
  """G (``g > thres``, or by position under 'fixed') or D takes one step; the rule records it."""
  params, batch_stats, opt_state, balance = carry
  update_g = balancing.update_generator(step.rule, balance, g, update_index)
  params, batch_stats, opt_state, loss, g_loss = jax.lax.cond(
      update_g, functools.partial(generator_update, step),
      functools.partial(discriminator_update, step),
      params, batch_stats, opt_state, latent_key, data)
  balance = balancing.record(step.rule, balance, update_g)
  # Without a probe, g is the loss of the G updates themselves.
  g = jnp.where(update_g, loss, jnp.nan) if g is None else g
  return (params, batch_stats, opt_state, balance), (g, update_g, loss, g_loss)


def probe(step: Step, params, batch_stats, latent_key):
  """The balancing probe g = BCE(D(G(z)), 1), in inference or training mode (the rule's).

  In training mode the batch-norm statistics it computes are discarded: a
  probe is a measurement.
  """
  train = step.rule.probe_train_mode
  key = jax.random.fold_in(latent_key, 3)
  fake, _ = step.model.generate(params, batch_stats, latent_key, step.config.batch_size,
                                train=train)
  if step.config.augment:  # g then measures the loss G's updates minimise
    fake = augment.apply(jax.random.fold_in(key, 10), fake, step.config.augment)
  logits, _ = step.model.discriminate(params, batch_stats, fake, train=train, key=key)
  return losses.generator_loss(losses.real_logit(logits))


# --- G's update -----------------------------------------------------------------


def generator_update(step: Step, params, batch_stats, opt_state, latent_key, data):
  """One Adam step of G and the mixture on G's loss (plus the sigma term).

  Returns the new params, batch stats and optimiser state, the loss and its
  adversarial part (both before the step).
  """
  (loss, (new_stats, g_loss)), grads = generator_grads(step, params, batch_stats, latent_key,
                                                       data)
  new_params, new_opt_state = dict(params), dict(opt_state)
  for name in grads:
    new_params[name], new_opt_state[name] = _adam_step(step, grads[name], opt_state[name],
                                                       params[name])
  return new_params, new_stats, new_opt_state, loss, g_loss


def generator_grads(step: Step, params, batch_stats, latent_key, data):
  """G's loss, ``(new batch stats, adversarial part)`` and its gradients for G and the mixture.

  Like the official code, every network run in training mode updates its
  batch-norm running averages, whichever network the step optimises: the
  inference-mode probe depends on them. D sees the generated batch alone
  (as the official code) unless its batch norm is 'joint' (then with the real
  batch, whose statistics it shares).
  """
  def loss_fn(trainable):
    if step.model.has_mixture and not step.config.train_sigma:
      fixed = {key: jax.lax.stop_gradient(value) if key in mixture.SIGMA_KEYS.values() else value
               for key, value in trainable["mixture"].items()}
      trainable = {**trainable, "mixture": fixed}
    (adversarial, regulariser), new_stats = generator_objective(
        step, trainable, params, batch_stats, latent_key, data)
    return adversarial + regulariser, (new_stats, adversarial)

  trainable = {"generator": params["generator"], "mixture": params["mixture"]}
  return jax.value_and_grad(loss_fn, has_aux=True)(trainable)


def generator_objective(step: Step, trainable, params, batch_stats, latent_key, data):
  """G's loss on ``trainable = {'generator', 'mixture'}`` in two parts, and the new stats.

  Returns ``((adversarial, regulariser), stats)``: G's loss on D's logits and the
  weighted sigma term (0 without a mixture) plus the weighted mode-seeking term (0
  unless asked for); :func:`generator_update` steps their sum.
  """
  cfg = step.config
  d_key = jax.random.fold_in(latent_key, 4)  # 0 and 1 are split(latent_key)'s halves
  with_real = bool(batch_stats["discriminator"]) and cfg.d_batch_norm == "joint"
  p = {**params, **trainable}
  fake, g_stats = step.model.generate(p, batch_stats, latent_key, cfg.batch_size, train=True)
  sets = (data["real"], fake) if with_real else (fake,)
  logits, d_stats = _discriminate_sets(step, p, batch_stats, sets, d_key)
  if cfg.objective == "semi_supervised":
    adversarial = losses.semi_supervised_generator_loss(logits[-1])
  else:
    adversarial = losses.generator_loss(logits[-1])
  regulariser = (cfg.sigma_reg * mixture.sigma_regularizer(trainable["mixture"])
                 if step.model.has_mixture else jnp.float32(0.0))
  if cfg.mode_seeking_weight > 0:
    regulariser += cfg.mode_seeking_weight * mode_seeking.term(
        mode_seeking.ratio(step.model, p, batch_stats, latent_key, fake))
  return (adversarial, regulariser), {"generator": g_stats, "discriminator": d_stats}


# --- D's updates ----------------------------------------------------------------


def discriminator_update(step: Step, params, batch_stats, opt_state, latent_key, data):
  """One Adam step of D on real (label 1) and generated (label 0) samples.

  Returns the new params, batch stats and optimiser state, D's loss before the
  step, and NaN (no generator loss; the shape of :func:`generator_update`'s).
  """
  (loss, new_stats), grads = discriminator_grads(step, params, batch_stats, latent_key, data)
  new_params, new_opt_state = dict(params), dict(opt_state)
  new_params["discriminator"], new_opt_state["discriminator"] = _adam_step(
      step, grads, opt_state["discriminator"], params["discriminator"])
  return new_params, new_stats, new_opt_state, loss, jnp.float32(jnp.nan)


def discriminator_grads(step: Step, params, batch_stats, latent_key, data):
  """D's loss, the new batch stats of both networks and D's gradients.

  Semi-supervised: plus the cross-entropy of the labelled batch's classes.
  """
  fake, g_stats = step.model.generate(params, batch_stats, latent_key, step.config.batch_size,
                                      train=True)
  fake = jax.lax.stop_gradient(fake)
  semi_supervised = step.config.objective == "semi_supervised"
  sets = ((data["labelled"], data["real"], fake) if semi_supervised
          else (data["real"], fake))

  def loss_fn(d_params):
    p = {**params, "discriminator": d_params}
    logits, d_stats = _discriminate_sets(step, p, batch_stats, sets,
                                         jax.random.fold_in(latent_key, 2))
    if semi_supervised:
      loss = losses.semi_supervised_discriminator_loss(logits[0], data["labels"], *logits[1:])
    else:
      loss = losses.discriminator_loss(*logits)
    return loss, d_stats

  (loss, d_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params["discriminator"])
  return (loss, {"generator": g_stats, "discriminator": d_stats}), grads


def forced_discriminator_update(step: Step, forced, params, batch_stats, opt_state, factor,
                                key, data):
  """The sketch rule's extra D update at ``forced_d_lr_factor`` of the learning rate."""
  learning_rate = factor * step.config.learning_rate

  def update(params, batch_stats, opt_state):
    d_opt = optim.with_learning_rate(opt_state["discriminator"],
                                     learning_rate * step.rule.forced_d_lr_factor)
    params, batch_stats, new_opt_state, _, _ = discriminator_update(
        step, params, batch_stats, {**opt_state, "discriminator": d_opt}, key, data)
    new_opt_state["discriminator"] = optim.with_learning_rate(
        new_opt_state["discriminator"], learning_rate)
    return params, batch_stats, new_opt_state

  return jax.lax.cond(forced, update, lambda *carry: carry, params, batch_stats, opt_state)


def _discriminate_sets(step: Step, params, batch_stats, sets, key):
  """D's logits for each of several equal-sized batches, and D's new batch stats.

  ``d_batch_norm='joint'``: one D call, whose batch norm normalises all sets
  as one batch (minibatch discrimination still compares each set only within
  itself). ``'separate'``: one D call per set, as the official code's D(real)
  and D(fake); each updates the running averages in turn.

  With an augmentation policy, each set is augmented first (its own key).
  """
  cfg = step.config
  if cfg.augment:
    sets = [augment.apply(jax.random.fold_in(key, 10 + i), x, cfg.augment)
            for i, x in enumerate(sets)]
  if cfg.d_batch_norm == "joint":
    logits, d_stats = step.model.discriminate(params, batch_stats, jnp.concatenate(sets),
                                              train=True, groups=len(sets), key=key)
    return jnp.split(logits, len(sets)), d_stats
  logits = []
  for i, x in enumerate(sets):
    set_logits, d_stats = step.model.discriminate(params, batch_stats, x, train=True,
                                                  key=jax.random.fold_in(key, 20 + i))
    batch_stats = {**batch_stats, "discriminator": d_stats}
    logits.append(set_logits)
  return logits, batch_stats["discriminator"]


# --- Adam -----------------------------------------------------------------------


def optimizer(config: StepConfig) -> optax.GradientTransformation:
  """The Adam of G, D and the mixture alike (each keeps its own state and learning rate)."""
  return optim.adam(config.b1, config.b2, config.adam_epsilon)


def _adam_step(step: Step, grads, opt_state, params):
  updates, new_opt_state = optimizer(step.config).update(grads, opt_state, params)
  return optax.apply_updates(params, updates), new_opt_state


def with_learning_rates(step: Step, opt_state, factor):
  """Each optimiser's state with its learning rate at ``factor`` of the configured one."""
  cfg = step.config
  return {name: optim.with_learning_rate(
      s, factor * (cfg.mixture_learning_rate if name == "mixture" else cfg.learning_rate))
          for name, s in opt_state.items()}

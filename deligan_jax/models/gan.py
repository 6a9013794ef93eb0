"""The six models of the paper (docs/paper.md §2) over one code path.

All six share the discriminator and the generator network; they differ only in
what the generator is fed and how its parameters are laid out:

* ``gan``: G(eps)
* ``gan++``: G(act(Dense_N(eps))), one extra dense layer of N units
* ``ensemble``: N generators stacked in one pytree; generator i makes row i
* ``nx``: G(eps) with every hidden width multiplied by N
* ``moe``: G([one_hot(i), eps])
* ``deligan``: G(mu_i + sigma_i * eps), the learned mixture prior

A :class:`GanModel` is a bundle of pure functions over explicit pytrees:
``params = {'generator', 'discriminator', 'mixture'}`` and
``batch_stats = {'generator', 'discriminator'}`` (empty dicts where unused).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from deligan_jax.models import conv
from deligan_jax import mixture
from deligan_jax.models import networks

MODELS = ("gan", "gan++", "ensemble", "nx", "moe", "deligan")
# The eps each official script draws for the samples it scores or plots, by network; others
# use their training noise. MNIST scores 5000 samples of U(-1, 1) (trained on N(0, 1)); the
# toy plots a fixed N(0, 1) batch, display_z (trained on U(-1, 1)).
SAMPLING_NOISE = {"mnist": "uniform", "toy": "normal"}
ACTIVATIONS = {"tanh": jnp.tanh, "relu": nn.relu}
Pytree = Any


class LatentGenerator(nn.Module):
  """The generator network behind each model's input layout.

  ``network_cls`` is a generator from :mod:`deligan_jax.models.networks`; it is
  instantiated once (or, for ``ensemble``, vmapped into ``num_components``
  copies whose batch norm shares statistics over the whole batch, so the
  ensemble sees the same normalisation as a single generator would).
  """
  variant: str
  num_components: int
  network_cls: type[nn.Module]
  network_kwargs: tuple[tuple[str, Any], ...] = ()  # e.g. (('width', 16),), hashable
  expand_activation: str = "tanh"
  expand_init_std: float | None = None  # GAN++'s dense layer: N(0, std); None: flax's default

  def make_network(self, **overrides) -> nn.Module:
    return self.network_cls(**dict(self.network_kwargs), **overrides)

  @nn.compact
  def __call__(self, z: jax.Array, ids: jax.Array, train: bool) -> jax.Array:
    n = self.num_components
    if self.variant == "gan++":
      kernel_init = ({} if self.expand_init_std is None
                     else {"kernel_init": nn.initializers.normal(self.expand_init_std)})
      z = ACTIVATIONS[self.expand_activation](nn.Dense(n, name="expand", **kernel_init)(z))
    elif self.variant == "moe":
      z = jnp.concatenate([jax.nn.one_hot(ids, n, dtype=z.dtype), z], axis=-1)
    if self.variant != "ensemble":
      return self.make_network(name="network")(z, train)
    # Row r belongs to generator r mod N: lay rows out as (N, rows per generator).
    ensemble = nn.vmap(
        self.network_cls,
        variable_axes={"params": 0, "batch_stats": 0},
        split_rngs={"params": True},
        in_axes=(0, None),
        axis_size=n,
        axis_name="ensemble")
    per_generator = z.reshape(-1, n, z.shape[-1]).swapaxes(0, 1)
    out = ensemble(**dict(self.network_kwargs), bn_axis_name="ensemble", name="network")(
        per_generator, train)
    return out.swapaxes(0, 1).reshape(z.shape[0], *out.shape[2:])


def _variables(params: Pytree, batch_stats: Pytree) -> dict[str, Pytree]:
  return {"params": params, "batch_stats": batch_stats} if batch_stats else {"params": params}


@dataclasses.dataclass(frozen=True)
class GanModel:
  """One of the six models: its networks and latent prior, as pure functions."""
  variant: str
  generator: LatentGenerator
  discriminator: nn.Module
  latent_dim: int
  num_components: int
  assignment: mixture.Assignment = "batch"
  noise: mixture.Noise = "normal"
  mu_init: mixture.Initializer = mixture.uniform(-1.0, 1.0)
  sigma_init: mixture.Initializer = mixture.constant(0.2)
  sigma_parameterisation: mixture.SigmaParameterisation = "free"
  learn_weights: bool = False

  @property
  def has_mixture(self) -> bool:
    return self.variant == "deligan"

  @property
  def has_components(self) -> bool:
    """Whether a sample's component id shapes it (DeLiGAN, MoE-GAN, Ensemble-GAN)."""
    return self.variant in ("deligan", "moe", "ensemble")

  def init(self, key: jax.Array, examples: jax.Array) -> tuple[Pytree, Pytree]:
    """Returns ``(params, batch_stats)``, initialised on a batch of real ``examples``.

    Weight-normalised layers take their data-dependent initialisation from this
    pass (D on ``examples``; G on one latent code per component, as the official
    CIFAR-10 and sketch code's one batch of 100 codes; both in training mode);
    other layers only read the examples' shape.
    """
    g_key, d_key, m_key = jax.random.split(key, 3)
    n = self.num_components
    mixture_params = (mixture.init(m_key, n, self.latent_dim, self.mu_init, self.sigma_init,
                                   sigma_parameterisation=self.sigma_parameterisation,
                                   learn_weights=self.learn_weights)
                      if self.has_mixture else {})
    z, ids = self.latent(mixture_params, jax.random.fold_in(key, 3), n)
    g_vars = self.generator.init(g_key, z, ids, train=True)
    d_vars = self.discriminator.init(_rngs(d_key, params=True), jnp.asarray(examples, jnp.float32),
                                     train=True)
    params = {"generator": g_vars["params"], "discriminator": d_vars["params"],
              "mixture": mixture_params}
    batch_stats = {"generator": g_vars.get("batch_stats", {}),
                   "discriminator": d_vars.get("batch_stats", {})}
    return params, batch_stats

  def latent(self, mixture_params: Pytree, key: jax.Array, n: int,
             component: int | None = None) -> tuple[jax.Array, jax.Array]:
    """The generator's input batch ``z`` (n, d) and each row's component id."""
    if self.has_mixture:
      return mixture.sample(mixture_params, key, n, self.assignment, self.noise, component)
    ids_key, eps_key = jax.random.split(key)
    # GAN, GAN++ and Nx-GAN have no components: their ids are unused, all 0.
    ids = (mixture.component_ids(ids_key, n, self.num_components, self.assignment, component)
           if self.has_components else jnp.zeros((n,), jnp.int32))
    return mixture.noise(eps_key, (n, self.latent_dim), self.noise), ids

  def generate(self, params: Pytree, batch_stats: Pytree, key: jax.Array, n: int,
               train: bool, component: int | None = None) -> tuple[jax.Array, Pytree]:
    """Samples ``n`` outputs; returns them and the generator's new batch stats.

    In ``train`` mode batch norm uses batch statistics and the returned stats are
    updated; otherwise running averages are used and returned unchanged. ``component``:
    one id or an (n,) array of per-row ids (:func:`deligan_jax.mixture.component_ids`).
    Under ``jax.jit``, ``n`` and ``train`` are static; :class:`deligan_jax.sampling.Sampler`
    wraps this for a loaded run.
    """
    if self.variant == "ensemble" and component is None and n % self.num_components:
      # Every generator makes the same number of rows: draw whole rounds, keep n.
      rounds = -(-n // self.num_components)
      out, stats = self.generate(params, batch_stats, key, rounds * self.num_components, train)
      return out[:n], stats
    z, ids = self.latent(params["mixture"], key, n, component)
    if self.variant == "ensemble" and component is not None:
      g_params, g_stats = params["generator"], batch_stats["generator"]
      return self._ensemble_member(g_params, g_stats, component, z), g_stats
    return self.decode(params, batch_stats, z, ids, train)

  def decode(self, params: Pytree, batch_stats: Pytree, z: jax.Array, ids: jax.Array,
             train: bool) -> tuple[jax.Array, Pytree]:
    """G's outputs for latent codes ``z`` (n, d) of components ``ids`` (n,), and its new stats."""
    g_params, g_stats = params["generator"], batch_stats["generator"]
    if not train:
      return self.generator.apply(_variables(g_params, g_stats), z, ids, train=False), g_stats
    out, updates = self.generator.apply(_variables(g_params, g_stats), z, ids, train=True,
                                        mutable=["batch_stats"])
    return out, updates.get("batch_stats", g_stats)

  def _ensemble_member(self, g_params: Pytree, g_stats: Pytree, component: int,
                       z: jax.Array) -> jax.Array:
    """Applies generator ``component`` of an ensemble alone (inference mode)."""
    member = {collection: jax.tree.map(lambda leaf: leaf[component], tree["network"])
              for collection, tree in _variables(g_params, g_stats).items()}
    return self.generator.make_network(parent=None).apply(member, z, train=False)

  def discriminate(self, params: Pytree, batch_stats: Pytree, x: jax.Array,
                   train: bool, groups: int = 1,
                   key: jax.Array | None = None) -> tuple[jax.Array, Pytree]:
    """Logits for samples ``x``; returns them and D's new batch stats.

    Logits are (B,), or (B, K) class logits for a semi-supervised D.
    ``groups``: ``x`` is that many equal sets (e.g. real then generated) that
    minibatch discrimination compares only within themselves. ``key`` drives
    D's input noise and dropout in training mode (needed where D has them).
    """
    d_params, d_stats = params["discriminator"], batch_stats["discriminator"]
    variables = _variables(d_params, d_stats)
    if not train:
      return self.discriminator.apply(variables, x, train=False, groups=groups), d_stats
    rngs = {} if key is None else _rngs(key)
    logits, updates = self.discriminator.apply(variables, x, train=True, groups=groups,
                                               rngs=rngs, mutable=["batch_stats"])
    return logits, updates.get("batch_stats", d_stats)

  def classify(self, params: Pytree, batch_stats: Pytree, x, batch_size: int):
    """A semi-supervised D's class predictions (inference mode) for ``x``, as numpy.

    In batches of ``batch_size`` (the training batch): minibatch discrimination sums over
    the batch, so its features depend on the batch size. The last batch is filled up with
    images from the start (repeated as often as needed) and their predictions dropped.
    """
    padded = np.resize(x, (-(-len(x) // batch_size) * batch_size, *x.shape[1:]))
    predictions = [np.asarray(self._predict_classes(params, batch_stats,
                                                    padded[start:start + batch_size]))
                   for start in range(0, len(padded), batch_size)]
    return np.concatenate(predictions)[:len(x)]

  @functools.partial(jax.jit, static_argnums=0)
  def _predict_classes(self, params, batch_stats, x):
    logits, _ = self.discriminate(params, batch_stats, x, train=False)
    return jnp.argmax(logits, axis=-1)


def _rngs(key: jax.Array, params: bool = False) -> dict[str, jax.Array]:
  """The PRNG streams of D's stochastic layers (and of ``init``'s parameters)."""
  noise_key, dropout_key = jax.random.split(jax.random.fold_in(key, 1))
  streams = {"noise": noise_key, "dropout": dropout_key}
  return {"params": key, **streams} if params else streams


def _initializer(low_high: tuple[float, float]) -> mixture.Initializer:
  low, high = low_high
  return mixture.constant(low) if low == high else mixture.uniform(low, high)


def build(config) -> GanModel:
  """The model named by ``config.model`` with the networks of ``config.network``."""
  net, latent = config.network, config.latent
  if config.model not in MODELS:
    raise ValueError(f"config.model must be one of {MODELS}, got {config.model!r}")
  width = net.generator_width
  if config.model == "nx":
    width *= latent.num_components
  dtype = jnp.dtype(net.dtype)
  generator_kwargs = {"width": width, "dtype": dtype}
  discriminator_kwargs = {"width": net.discriminator_width, "dtype": dtype}
  if net.name == "toy":
    toy_kwargs = {"depth": net.toy_hidden_layers, "activation": net.toy_activation,
                  "linear_init": net.linear_init}
    generator_kwargs.update(toy_kwargs)
    discriminator_kwargs.update(toy_kwargs)
  else:
    impl = conv.default_impl() if net.conv_impl == "auto" else net.conv_impl
    generator_kwargs.update(conv_impl=impl)
    discriminator_kwargs.update(mbd_kernels=net.mbd_kernels, mbd_dims=net.mbd_dims,
                                conv_impl=impl)
  if net.name == "mnist":
    generator_kwargs.update(linear_init=net.linear_init)
  if net.name in ("cifar10", "sketches"):
    generator_kwargs.update(channels=networks.SAMPLE_SHAPES[net.name][-1])
  if net.name == "cifar10":
    # Semi-supervised: one logit per class (Improved-GAN); otherwise one real/fake logit.
    discriminator_kwargs.update(num_classes=10 if config.objective == "semi_supervised" else 1)
  generator = LatentGenerator(
      variant=config.model,
      num_components=latent.num_components,
      network_cls=networks.GENERATORS[net.name],
      network_kwargs=tuple(sorted(generator_kwargs.items())),
      expand_activation=net.expand_activation,
      # The official CIFAR-10 and sketch code's Lasagne DenseLayer(W=Normal(0.05)).
      expand_init_std=0.05 if net.name in ("cifar10", "sketches") else None)
  return GanModel(
      variant=config.model,
      generator=generator,
      discriminator=networks.DISCRIMINATORS[net.name](**discriminator_kwargs),
      latent_dim=latent.dim,
      num_components=latent.num_components,
      assignment=latent.assignment,
      noise=latent.noise,
      mu_init=_initializer(tuple(latent.mu_init_range)),
      sigma_init=_initializer(tuple(latent.sigma_init_range)),
      sigma_parameterisation=latent.sigma_parameterisation,
      learn_weights=latent.learn_weights)


def for_sampling(model: GanModel, config) -> GanModel:
  """``model`` drawing the eps of ``config.latent.sample_noise``: evaluation and pictures."""
  if config.latent.sample_noise == "training":
    return model
  return dataclasses.replace(model, noise=SAMPLING_NOISE.get(config.network.name, model.noise))

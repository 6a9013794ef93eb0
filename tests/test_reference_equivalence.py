"""Step-level equivalence with the reference port of the official scripts (tests/reference/).

Both implementations start from the same parameters (the project's, copied into the port),
see the same real batches and the same eps, and take the same sequence of balanced updates
(``Trainer.balanced_update``, the step's own update). After every update the test compares
the probe g, which network was updated, the loss, every parameter and every batch-norm
running statistic, and the rule's state.

Tolerances (float32): one update changes a parameter by at most lr (Adam); the two sides
differ by reassociated float32 sums (convolutions as im2col vs TF's kernels, batch moments)
at ~1e-7 relative per op, and Adam's epsilon sits on sqrt(v) in TF but on sqrt(v_hat) in
optax (a relative difference of about 3e-7 / |grad| in the first step's size). After k
updates the differences compound through the networks, so parameters are compared with
``atol = ATOL_PER_UPDATE * k`` on top of ``RTOL``; g and the losses (scalars from whole-batch
means) to ``SCALAR_TOL``.

A bias that feeds a batch norm has zero gradient in exact arithmetic (the normalisation
removes it), so each side's Adam steps it on its own rounding noise, by up to lr per update
(in either direction);
it enters only the running mean (which then differs by as much) and the inference-mode
output. Those biases and their batch norm's running mean are compared to ``2 lr * updates``.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deligan_jax import balancing
from deligan_jax import mixture
from deligan_jax import train_state
from deligan_jax import train_step
from deligan_jax.models import build
from tests.conftest import small_config

tf = pytest.importorskip("tensorflow")
from tests.reference import dg_mnist_tf  # noqa: E402
from tests.reference import dg_toy_tf  # noqa: E402

pytestmark = pytest.mark.reference

RTOL = 1e-4
ATOL_PER_UPDATE = 2e-6
SCALAR_TOL = 1e-5


# --- parameter layouts: project pytree path <-> port variable name --------------------------

def _flip_transpose(kernel):
  """flax ConvTranspose HWIO (correlation) <-> TF conv2d_transpose [h, w, out, in]."""
  return np.ascontiguousarray(np.asarray(kernel)[::-1, ::-1].transpose(0, 1, 3, 2))


_IDENTITY = np.asarray


def mnist_layout():
  """(project path, port name, to_port) for every MNIST parameter and running statistic."""
  rows = [(("params", "mixture", "mu"), "g_z"), (("params", "mixture", "sigma"), "g_sig")]
  g = ("params", "generator", "network")
  gs = ("batch_stats", "generator", "network")
  rows += [(g + ("Dense_0", "kernel"), "gen/g_h0/w"), (g + ("Dense_0", "bias"), "gen/g_h0/b")]
  for flax_bn, tf_bn, prefix in (("bn0", "g_bn0", "fc_"), ("bn1", "g_bn1", ""),
                                 ("bn2", "g_bn3", "")):
    rows += [(g + (flax_bn, "scale"), f"gen/{tf_bn}/{prefix}gamma"),
             (g + (flax_bn, "bias"), f"gen/{tf_bn}/{prefix}beta"),
             (gs + (flax_bn, "mean"), f"gen/{tf_bn}/ema_mean"),
             (gs + (flax_bn, "var"), f"gen/{tf_bn}/ema_var")]
  for i, tf_layer in enumerate(("g_h1", "g_h3", "g_h4")):
    rows += [(g + (f"ConvTranspose_{i}", "kernel"), f"gen/{tf_layer}/w", _flip_transpose),
             (g + (f"ConvTranspose_{i}", "bias"), f"gen/{tf_layer}/b")]
  d, ds = ("params", "discriminator"), ("batch_stats", "discriminator")
  for i in range(3):
    rows += [(d + (f"Conv_{i}", "kernel"), f"disc/d_h{i}_conv/w"),
             (d + (f"Conv_{i}", "bias"), f"disc/d_h{i}_conv/b")]
  for bn in ("bn1", "bn2"):
    rows += [(d + (bn, "scale"), f"disc/d_{bn}/gamma"), (d + (bn, "bias"), f"disc/d_{bn}/beta"),
             (ds + (bn, "mean"), f"disc/d_{bn}/moving_mean"),
             (ds + (bn, "var"), f"disc/d_{bn}/moving_variance")]
  rows += [(d + ("MinibatchDiscrimination_0", "theta"), "disc/d_MD/theta"),
           (d + ("MinibatchDiscrimination_0", "log_scale"), "disc/d_MD/lws"),
           (d + ("Dense_0", "kernel"), "disc/d_h8_lin/Matrix"),
           (d + ("Dense_0", "bias"), "disc/d_h8_lin/bias")]
  return [(r[0], r[1], r[2] if len(r) > 2 else _IDENTITY) for r in rows]


def toy_layout():
  rows = [(("params", "mixture", "mu"), "g_z"), (("params", "mixture", "sigma"), "g_sig")]
  for i, layer in enumerate(("g_l1", "g_l2")):
    rows += [(("params", "generator", "network", f"Dense_{i}", "kernel"), f"gen0/{layer}/w"),
             (("params", "generator", "network", f"Dense_{i}", "bias"), f"gen0/{layer}/b")]
  for i, layer in enumerate(("d_l1", "d_l2")):
    rows += [(("params", "discriminator", f"Dense_{i}", "kernel"), f"disc/{layer}/w"),
             (("params", "discriminator", f"Dense_{i}", "bias"), f"disc/{layer}/b")]
  return [(path, name, _IDENTITY) for path, name in rows]


# Port names of the biases that feed a batch norm, and of that batch norm's running mean.
_NOISE_STEPPED = ("gen/g_h0/b", "gen/g_bn0/ema_mean", "gen/g_h1/b", "gen/g_bn1/ema_mean",
                  "gen/g_h3/b", "gen/g_bn3/ema_mean", "disc/d_h1_conv/b", "disc/d_bn1/moving_mean",
                  "disc/d_h2_conv/b", "disc/d_bn2/moving_mean")


def _leaf(tree, path):
  for key in path:
    tree = tree[key]
  return tree


def _project_values(params, batch_stats, layout, has_mixture):
  trees = {"params": params, "batch_stats": batch_stats}
  return {name: to_port(_leaf(trees, path)) for path, name, to_port in layout
          if has_mixture or path[1] != "mixture"}


# --- the two sides ----------------------------------------------------------------------------

class ProjectSide:
  """The project's Trainer driven one balanced update at a time."""

  def __init__(self, config, real_shape):
    self.config = config
    self.model = build(config)
    self.rule = balancing.BalanceRule.from_config(config.balance)
    train_x = np.zeros((config.batch_size, *real_shape), np.float32)
    self.trainer = train_step.Trainer(self.model, self.rule,
                                      train_state.StepConfig.from_config(config), train_x,
                                      train_step.make_mesh(jax.devices()[:1]))
    state = self.trainer.init_state(config.seed)
    opt_state = self.trainer._with_learning_rates(state.opt_state, 1.0)
    self.initial = (state.params, state.batch_stats, opt_state, state.balance)
    self.carry = self.initial
    self._update = jax.jit(self.trainer.balanced_update)

  def reset(self):
    self.carry = self.initial

  def eps(self, latent_key):
    """The eps the step draws from ``latent_key`` (mixture.sample's and GanModel.latent's)."""
    shape = (self.config.batch_size, self.config.latent.dim)
    return np.asarray(mixture.noise(jax.random.split(latent_key)[1], shape,
                                    self.config.latent.noise))

  def set_thres(self, thres):
    balance = self.carry[3].replace(thres=jnp.float32(thres))
    self.carry = (*self.carry[:3], balance)

  def start_batch(self):
    self.carry = (*self.carry[:3], balancing.start_batch(self.rule, self.carry[3]))

  def update(self, latent_key, real, index):
    self.carry, (g, update_g, loss) = self._update(self.carry, latent_key,
                                                   {"real": jnp.asarray(real)}, index)
    return float(g), bool(update_g), float(loss)


def _reference_update(reference, rule_thres, eps, real, lr, flat_real):
  g = reference.probe(eps)
  update_g = g > rule_thres
  real = real.reshape(len(real), -1) if flat_real else real
  if update_g:
    loss = reference.update_generator(eps, lr, real)
  else:
    loss = reference.update_discriminator(real, eps, lr)
  return g, update_g, loss


def _assert_same_state(project, reference, layout, has_mixture, updates, where):
  ours = _project_values(project.carry[0], project.carry[1], layout, has_mixture)
  theirs = reference.get()
  lr = project.config.optim.lr
  for name, value in ours.items():
    atol = (2 * lr if name in _NOISE_STEPPED else ATOL_PER_UPDATE) * updates
    np.testing.assert_allclose(value, theirs[name], rtol=RTOL, atol=atol,
                               err_msg=f"{name} after {where}")


def _real_batches(shape, count, batch_size, seed=0):
  return np.random.default_rng(seed).uniform(-1, 1, (count, batch_size, *shape)).astype(
      np.float32)


# --- configurations ---------------------------------------------------------------------------

# Compiling the step and building the graph dominate a test's time: each configuration is
# built once per session and reset to its initial state by each test.
@functools.lru_cache(maxsize=None)
def _mnist(model, d_batch_norm="separate"):
  config = small_config("mnist", model, batch_size=8)
  config.network.mbd_kernels = 4 * config.network.discriminator_width  # the script's df_dim*4
  config.network.mbd_dims = 5
  config.network.conv_impl = "im2col"
  config.network.d_batch_norm = d_batch_norm
  project = ProjectSide(config, (28, 28, 1))
  reference = dg_mnist_tf.MnistReference(
      model=model, d_batch_norm=d_batch_norm, batchsize=config.batch_size,
      z_dim=config.latent.dim, gf_dim=config.network.generator_width,
      df_dim=config.network.discriminator_width, learningrate=config.optim.lr)
  return config, project, reference, mnist_layout(), (28, 28, 1), True


@functools.lru_cache(maxsize=None)
def _toy(model):
  config = small_config("toy", f"unimodal,{model}", batch_size=8)
  project = ProjectSide(config, (2,))
  reference = dg_toy_tf.ToyReference(model=model, batchsize=config.batch_size,
                                     learningrate=config.optim.lr)
  return config, project, reference, toy_layout(), (2,), False


def _reset(project, reference, layout, has_mixture):
  """Both sides at the project's initial state; the port's Adam slots and step counts at 0."""
  project.reset()
  reference.reset()
  reference.set(_project_values(project.carry[0], project.carry[1], layout, has_mixture))


def _run_scripted(setup, decisions):
  """Forces the decision sequence (thres just below/above the port's g) and compares."""
  config, project, reference, layout, shape, flat_real = setup
  has_mixture = config.model == "deligan"
  _reset(project, reference, layout, has_mixture)
  _assert_same_state(project, reference, layout, has_mixture, 0, "copying")
  reals = _real_batches(shape, len(decisions), config.batch_size)
  for k, (decision, real) in enumerate(zip(decisions, reals)):
    latent_key = jax.random.fold_in(jax.random.key(7), k)
    eps = project.eps(latent_key)
    thres = reference.probe(eps) + (-0.05 if decision == "G" else 0.05)
    project.set_thres(thres)
    g, update_g, loss = project.update(latent_key, real, k)
    g_ref, update_g_ref, loss_ref = _reference_update(reference, thres, eps, real,
                                                      config.optim.lr, flat_real)
    where = f"update {k + 1} ({decision})"
    assert update_g == update_g_ref == (decision == "G"), where
    np.testing.assert_allclose(g, g_ref, rtol=SCALAR_TOL, err_msg=f"g at {where}")
    np.testing.assert_allclose(loss, loss_ref, rtol=SCALAR_TOL, err_msg=f"loss at {where}")
    _assert_same_state(project, reference, layout, has_mixture, k + 1, where)


DECISIONS = "DGGDGD"


@pytest.mark.parametrize("model", ["deligan", "gan"])
def test_toy_matches_the_official_script_update_by_update(model):
  _run_scripted(_toy(model), DECISIONS)


@pytest.mark.parametrize("model", ["deligan", "gan"])
def test_mnist_matches_the_official_script_update_by_update(model):
  _run_scripted(_mnist(model), DECISIONS)


def test_mnist_joint_batch_norm_matches_the_port_with_the_same_change():
  _run_scripted(_mnist("deligan", d_batch_norm="joint"), "DGD")


def test_mnist_rule_state_matches_over_a_batch_boundary():
  """Natural decisions (the rule's own thres) over two batches of 5 updates each."""
  config, project, reference, layout, shape, flat_real = _mnist("deligan")
  _reset(project, reference, layout, True)
  rule = dg_mnist_tf.StreakRule()
  # Start where both branches happen: thres at the first probe's value.
  latent_key = jax.random.fold_in(jax.random.key(7), 0)
  rule.thres = reference.probe(project.eps(latent_key)) - 0.001
  project.set_thres(rule.thres)
  reals = _real_batches(shape, 2, config.batch_size)
  decisions = []
  for batch in range(2):
    rule.start_batch()
    project.start_batch()
    for index in range(5):
      k = 5 * batch + index
      latent_key = jax.random.fold_in(jax.random.key(7), k)
      eps = project.eps(latent_key)
      g, update_g, loss = project.update(latent_key, reals[batch], index)
      g_ref, update_g_ref, loss_ref = _reference_update(reference, rule.thres, eps,
                                                        reals[batch], config.optim.lr, flat_real)
      rule.record(update_g_ref)
      where = f"update {k + 1}"
      assert update_g == update_g_ref, where
      decisions.append("G" if update_g else "D")
      np.testing.assert_allclose(g, g_ref, rtol=SCALAR_TOL, err_msg=f"g at {where}")
      np.testing.assert_allclose(loss, loss_ref, rtol=SCALAR_TOL, err_msg=f"loss at {where}")
      balance = project.carry[3]
      np.testing.assert_allclose(float(balance.thres), rule.thres, rtol=1e-6, err_msg=where)
      assert (int(balance.count), -int(balance.d_count)) == (rule.count1, rule.count2), where
      _assert_same_state(project, reference, layout, True, k + 1, where)
  assert "G" in decisions and "D" in decisions, decisions

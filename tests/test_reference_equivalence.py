"""Step-level equivalence with the reference port of the official scripts (tests/reference/).

Both implementations start from the same parameters (the project's, copied into the port),
see the same real batches and the same eps, and take the same sequence of balanced updates
(``updates.balanced_update``, the step's own update). After every update the test compares
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

import collections
import copy
import functools
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deligan_jax.step import balancing
from deligan_jax.models import networks
from deligan_jax import mixture
from deligan_jax.step import state as train_state
from deligan_jax.step import updates
from deligan_jax.step.driver import StepDriver, make_mesh
from deligan_jax.data import datasets
from deligan_jax.models import build
from tests.conftest import load_config, small_config
from tests.test_input_pipeline import write_idx

scipy_stats = pytest.importorskip("scipy.stats")
tf = pytest.importorskip("tensorflow")
from tests.reference import dg_mnist_tf  # noqa: E402
from tests.reference import dg_toy_tf  # noqa: E402

pytestmark = pytest.mark.reference

RTOL = 1e-4
ATOL_PER_UPDATE = 2e-6
SCALAR_TOL = 1e-5
# Gradients: float32 backprop through the same ops, reassociated sums (~1e-6 relative).
GRAD_RTOL = 1e-4


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
  """The project's step driven one balanced update at a time."""

  def __init__(self, config, real_shape):
    self.config = config
    self.model = build(config)
    self.rule = balancing.BalanceRule.from_config(config.balance)
    train_x = np.zeros((config.batch_size, *real_shape), np.float32)
    self.trainer = StepDriver(self.model, self.rule, updates.StepConfig.from_config(config),
                              train_x, make_mesh(jax.devices()[:1]))
    state = self.trainer.init_state(config.seed)
    opt_state = updates.with_learning_rates(self.trainer.step, state.opt_state, 1.0)
    self.initial = (state.params, state.batch_stats, opt_state, state.balance)
    self.carry = self.initial
    self._update = jax.jit(functools.partial(updates.balanced_update, self.trainer.step))

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


@pytest.mark.parametrize("model", ["deligan", pytest.param("gan", marks=pytest.mark.slow)])
def test_mnist_matches_the_official_script_update_by_update(model):
  """The GAN (slow) runs DeLiGAN's networks and updates with z = eps: the fast suite has
  those in ``[deligan]`` and the mixture-free latent in the toy ``[gan]``."""
  _run_scripted(_mnist(model), DECISIONS)


@pytest.mark.slow
def test_mnist_joint_batch_norm_matches_the_port_with_the_same_change():
  """A non-default option (slow); the default separate batch norm is in the fast suite."""
  _run_scripted(_mnist("deligan", d_batch_norm="joint"), "DGD")


@pytest.mark.slow
def test_mnist_rule_state_matches_over_a_batch_boundary():
  """Natural decisions (the rule's own thres) over two batches of 5 updates each.

  Slow: the fast suite runs the rule's natural decisions over batch boundaries inside one
  dispatch in ``test_mnist_fused_batches_match_the_scripts_loop_at_a_decayed_learning_rate``.
  """
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


# --- initial parameters: the scripts' TensorFlow 0.10 initialisers ----------------------------

# Where the project's default initial state is not the script's (docs/fidelity.md): the MNIST
# generator's first layer keeps Glorot-uniform (network.linear_init='uniform_unit_scaling' is
# the script's), and its batch norms' running variances start at flax's 1, where the script's
# moving averages of tensors start at 0.
MNIST_INIT_DEVIATIONS = ("gen/g_h0/w", "gen/g_bn0/ema_var", "gen/g_bn1/ema_var",
                         "gen/g_bn3/ema_var")
KS_P_MIN = 1e-3  # p-value below which two pooled samples are not one distribution


def _initial_draws(config, reference, layout, draws):
  """Each variable's values pooled over ``draws`` initialisations of either side."""
  model = build(config)
  examples = np.zeros((config.batch_size, *networks.SAMPLE_SHAPES[config.network.name]),
                      np.float32)
  has_mixture = config.model == "deligan"
  ours, theirs = collections.defaultdict(list), collections.defaultdict(list)
  for seed in range(draws):
    params, batch_stats = model.init(jax.random.key(seed), examples)
    for name, value in _project_values(params, batch_stats, layout, has_mixture).items():
      ours[name].append(np.ravel(value))
    drawn = reference.draw_initial()
    for name in ours:
      theirs[name].append(np.ravel(drawn[name]))
  return ({name: np.concatenate(v) for name, v in ours.items()},
          {name: np.concatenate(v) for name, v in theirs.items()})


def _differing_initialisers(ours, theirs):
  """Names whose values differ: constants exactly, random draws by a two-sample KS test."""
  differing = []
  for name, values in ours.items():
    reference_values = theirs[name]
    if reference_values.min() == reference_values.max():
      same = np.array_equal(values, reference_values)
    else:
      same = scipy_stats.ks_2samp(values, reference_values).pvalue > KS_P_MIN
    if not same:
      differing.append(name)
  return differing


def test_toy_initial_parameters_are_drawn_as_tensorflow_0_10_draws_them():
  config, _, reference, layout, _, _ = _toy("deligan")
  ours, theirs = _initial_draws(config, reference, layout, draws=20)
  assert _differing_initialisers(ours, theirs) == []
  # The comparison tells the initialisers apart: Glorot (TF 2's default) is refused.
  glorot = copy.deepcopy(config)
  glorot.network.linear_init = "glorot_uniform"
  ours_glorot, _ = _initial_draws(glorot, reference, layout, draws=20)
  assert set(_differing_initialisers(ours_glorot, theirs)) >= {"gen0/g_l1/w", "disc/d_l1/w"}


def test_mnist_initial_parameters_are_tensorflow_0_10s_but_the_listed_deviations():
  config, _, reference, layout, _, _ = _mnist("deligan")
  ours, theirs = _initial_draws(config, reference, layout, draws=4)
  assert _differing_initialisers(ours, theirs) == list(MNIST_INIT_DEVIATIONS)
  # Their numbers: g_h0's bound sqrt(6 / (fan_in + fan_out)) against sqrt(3 / fan_in).
  fan_in, fan_out = config.latent.dim, 64 * config.network.generator_width
  assert np.abs(ours["gen/g_h0/w"]).max() <= np.sqrt(6 / (fan_in + fan_out))
  assert np.abs(theirs["gen/g_h0/w"]).max() > 0.9 * np.sqrt(3 / fan_in)
  for name in MNIST_INIT_DEVIATIONS[1:]:
    assert (ours[name] == 1).all() and (theirs[name] == 0).all()
  official = copy.deepcopy(config)
  official.network.linear_init = "uniform_unit_scaling"
  ours_official, _ = _initial_draws(official, reference, layout, draws=4)
  assert "gen/g_h0/w" not in _differing_initialisers(ours_official, theirs)


# --- the 500 MNIST training images ------------------------------------------------------------

def test_mnist_training_images_are_the_ones_the_script_selects_index_for_index(tmp_path):
  """On 1000 images whose first two pixels encode their index (i // 256, i % 256)."""
  rng = np.random.default_rng(0)
  n = 1000
  images = np.zeros((n, 28, 28), np.uint8)
  images[:, 0, 0], images[:, 0, 1] = np.arange(n) // 256, np.arange(n) % 256
  labels = rng.integers(0, 10, n).astype(np.uint8)
  for prefix in ("train", "t10k"):
    write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", images)
    write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", labels)
  config = load_config("mnist")
  config.data.dir, config.data.source = str(tmp_path), "files"
  ours = datasets.load(config.data).x.reshape(-1, 28 * 28)
  theirs = dg_mnist_tf.select_training_images(images.reshape(n, -1).astype(np.float64),
                                              np.eye(10)[labels])

  def indices(x):
    pixels = np.rint((x[:, :2] + 1) * 255 / 2).astype(int)
    return 256 * pixels[:, 0] + pixels[:, 1]

  assert ours.shape == theirs.shape == (500, 784)
  np.testing.assert_array_equal(indices(ours), indices(theirs))
  np.testing.assert_allclose(ours, theirs, atol=1e-6)


# --- the learning-rate schedule ---------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def _trainer(make_setup, batches_per_epoch):
  """A step driver of the DeLiGAN model of ``make_setup`` (``_toy``, ``_mnist``) on
  ``batches_per_epoch`` batches of random real samples."""
  config, project, _, _, shape, _ = make_setup("deligan")
  train_x = _real_batches(shape, batches_per_epoch, config.batch_size).reshape(-1, *shape)
  return StepDriver(project.model, project.rule, updates.StepConfig.from_config(config), train_x,
                    make_mesh(jax.devices()[:1]))


# Batches of a dispatch in the tests below: one compiled step serves them all.
FUSED_BATCHES = 2


def test_mnist_learning_rate_at_chosen_batches_is_the_scripts_formula():
  """10 batches an epoch, as MNIST-500 in batches of 50; the step's lr against the script's."""
  config = _mnist("deligan")[0]
  trainer = _trainer(_mnist, 10)
  fresh = trainer.init_state(0)
  for start in (0, 9_998, 10_000, 10_010, 24_999, 39_990, 39_998):
    state = jax.tree.map(jnp.copy, fresh).replace(step=jnp.int32(start))
    state, metrics = trainer.run(state, FUSED_BATCHES)
    for k, batch in enumerate(range(start, start + FUSED_BATCHES)):
      want = dg_mnist_tf.learning_rate(config.optim.lr, batch // 10)
      np.testing.assert_allclose(metrics["lr"][k], want, rtol=1e-6, atol=1e-12, err_msg=batch)
    for name in ("generator", "discriminator", "mixture"):  # the last batch's
      np.testing.assert_allclose(state.opt_state[name].hyperparams["learning_rate"], want,
                                 rtol=1e-6, atol=1e-12, err_msg=f"{name} at {batch}")


# --- the fused K-batch loop -------------------------------------------------------------------

def _fused_against_script(make_setup, batches_per_epoch, loop, run_batch, lr_of, start_batch):
  """``StepDriver.run`` over ``FUSED_BATCHES`` batches (one dispatch) against the port's loop.

  ``batches_per_epoch`` batches an epoch. The port's loop (``loop.rule``;
  ``run_batch(loop, real, eps, lr)`` runs one batch) gets the batches and eps the step
  draws, and the project's thres, set just below the first probe so that both networks get
  updates; ``lr_of(epoch)`` is the script's learning rate. Returns the G updates per batch.
  """
  config, project, reference, layout, shape, flat_real = make_setup("deligan")
  has_mixture = config.model == "deligan"
  trainer = _trainer(make_setup, batches_per_epoch)
  state = trainer.init_state(config.seed).replace(step=jnp.int32(start_batch))
  base = jax.random.wrap_key_data(state.key)
  per_update = config.latent.eps_draw == "per_update"

  def eps_of(batch):
    batch_key = jax.random.fold_in(jax.random.fold_in(base, train_state.LATENTS_TAG), batch)
    return [project.eps(jax.random.fold_in(batch_key, k if per_update else 0))
            for k in range(project.rule.inner_updates)]

  reference.reset()
  reference.set(_project_values(state.params, state.batch_stats, layout, has_mixture))
  loop.rule.thres = reference.probe(eps_of(start_batch)[0]) - 0.001
  state = state.replace(balance=state.balance.replace(thres=jnp.float32(loop.rule.thres)))
  records = []
  for batch in range(start_batch, start_batch + FUSED_BATCHES):
    epoch, position = divmod(batch, trainer.step.batches_per_epoch)
    if position == 0 and hasattr(loop.rule, "start_epoch"):
      loop.rule.start_epoch()
    real = np.asarray(updates.draw_batch(trainer.step, trainer.train_set, base, epoch,
                                         position)["real"])
    records.append(run_batch(loop, real.reshape(len(real), -1) if flat_real else real,
                             eps_of(batch), lr_of(epoch)))
  state, metrics = trainer.run(state, FUSED_BATCHES)
  num_updates = FUSED_BATCHES * project.rule.inner_updates
  fused = types.SimpleNamespace(carry=(state.params, state.batch_stats), config=config)
  _assert_same_state(fused, reference, layout, has_mixture, num_updates,
                     "the fused batches")
  g_updates = [r["g_updates"] for r in records]
  np.testing.assert_array_equal(metrics["g_updates"], g_updates)
  np.testing.assert_allclose(metrics["thres"], [r["thres"] for r in records], rtol=1e-6)
  return g_updates


def _toy_run_batch(loop, real, eps, lr):
  assert all(np.array_equal(e, eps[0]) for e in eps)  # one z for the batch's 5 updates
  return loop.run_batch(real, eps[0], lr)


def test_toy_fused_batches_match_the_scripts_loop_with_one_z_per_batch():
  config, _, reference = _toy("deligan")[:3]
  assert config.latent.eps_draw == "per_batch"
  loop = dg_toy_tf.ScriptLoop(reference)
  # One batch an epoch: the count rule's epoch start runs before each batch.
  g_updates = _fused_against_script(_toy, 1, loop, _toy_run_batch,
                                    lambda epoch: reference.learningrate, 0)
  assert 0 < sum(g_updates) < 5 * FUSED_BATCHES, g_updates


def test_mnist_fused_batches_match_the_scripts_loop_at_a_decayed_learning_rate():
  """From batch 25000 (epoch 2500 at 10 batches an epoch), where the script's lr is half."""
  config, _, reference = _mnist("deligan")[:3]
  assert dg_mnist_tf.learning_rate(config.optim.lr, 2500) == pytest.approx(0.5 * config.optim.lr)
  loop = dg_mnist_tf.ScriptLoop(reference, data=np.zeros((0, 784)))
  g_updates = _fused_against_script(
      _mnist, 10, loop, lambda loop, real, eps, lr: loop.run_batch(real, eps, lr),
      lambda epoch: dg_mnist_tf.learning_rate(config.optim.lr, epoch), 25_000)
  assert 0 < sum(g_updates) < 5 * FUSED_BATCHES, g_updates


# --- the mixture's gradients: adversarial part and sigma term apart ----------------------------

@pytest.mark.parametrize("setup", [_toy, _mnist], ids=["toy", "mnist"])
def test_mixture_gradients_match_the_script_part_by_part(setup):
  """The sigma term's gradient can hide an error in the adversarial part of dL/dsigma."""
  config, project, reference, layout, shape, flat_real = setup("deligan")
  _reset(project, reference, layout, True)
  params, batch_stats = project.carry[:2]
  latent_key = jax.random.key(11)
  eps = project.eps(latent_key)
  real = _real_batches(shape, 1, config.batch_size)[0]
  trainable = {"generator": params["generator"], "mixture": params["mixture"]}

  @jax.jit
  def parts(trainable):
    def part(index):
      def loss(trainable):
        return updates.generator_objective(project.trainer.step, trainable, params, batch_stats,
                                           latent_key, {"real": jnp.asarray(real)})[0][index]
      return jax.grad(loss)(trainable)["mixture"]
    return {"adversarial": part(0), "regulariser": part(1)}

  ours = parts(trainable)
  theirs = reference.mixture_gradients(eps, real.reshape(len(real), -1) if flat_real else real)
  np.testing.assert_array_equal(ours["regulariser"]["mu"], 0)  # the sigma term has no mu
  np.testing.assert_array_equal(theirs["regulariser"][0], 0)
  for name, key, want in (("adversarial", "mu", theirs["adversarial"][0]),
                          ("adversarial", "sigma", theirs["adversarial"][1]),
                          ("regulariser", "sigma", theirs["regulariser"][1])):
    got = np.asarray(ours[name][key])
    assert np.abs(want).max() > 0, f"{name} d/d{key} is zero: nothing compared"
    np.testing.assert_allclose(got, want, rtol=GRAD_RTOL, atol=GRAD_RTOL * np.abs(want).max(),
                               err_msg=f"{name} part of dL/d{key}")

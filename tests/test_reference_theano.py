"""The CIFAR-10 and sketch experiments against the PyTensor transcription of the official
Theano code (tests/reference/improved_gan_nn_pytensor.py and the two scripts' ports).

Tolerances (float32) are stated where they are used, with their reason.
"""

from __future__ import annotations

import dataclasses
import functools
import types

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from deligan_jax.step import balancing
from deligan_jax import config as config_lib
from deligan_jax.models import conv
from deligan_jax import sampling
from deligan_jax import mixture
from deligan_jax.models import networks
from deligan_jax.step import batches
from deligan_jax.step import optim
from deligan_jax.step import state as train_state
from deligan_jax.step import updates
from deligan_jax.step.driver import StepDriver, make_mesh
from deligan_jax.data import dataset as dataset_lib
from deligan_jax.models import build
from tests.conftest import small_config

pytensor = pytest.importorskip("pytensor")
from tests.reference import dg_cifar_pytensor  # noqa: E402
from tests.reference import dg_sketches_pytensor  # noqa: E402
from tests.reference import improved_gan_nn_pytensor as nn_ref  # noqa: E402

pytestmark = pytest.mark.reference


def _function(inputs, outputs, updates=None):
  return pytensor.function(inputs, outputs, updates=updates, mode=nn_ref.MODE)


def test_transposed_convolution_matches_theano_half_border_alignment():
  """Deconv2DLayer = conv_transpose2d with the generator's padding, kernel (in, out, h, w) -> HWIO.

  Both sum the same 25 * 3 products per output in another order: 1e-5 absolute on outputs of
  magnitude ~10.
  """
  rng = np.random.default_rng(0)
  x = rng.normal(size=(2, 3, 8, 8)).astype(np.float32)
  w = rng.normal(size=(3, 4, 5, 5)).astype(np.float32)
  layer = nn_ref.Deconv2DLayer(nn_ref.InputLayer((2, 3, 8, 8)), (2, 4, 16, 16), (5, 5),
                               nonlinearity=None)
  layer.W.set_value(w)
  image = pytensor.tensor.tensor4()
  theirs = _function([image], nn_ref.get_output(layer, image))(x)
  ours = conv.conv_transpose2d(jnp.asarray(x.transpose(0, 2, 3, 1)),
                               jnp.asarray(w.transpose(2, 3, 0, 1)), (2, 2),
                               networks._HALF_TRANSPOSE_5X5_STRIDE2)
  np.testing.assert_allclose(np.asarray(ours).transpose(0, 3, 1, 2), theirs, atol=1e-5)
  shifted = conv.conv_transpose2d(jnp.asarray(x.transpose(0, 2, 3, 1)),
                                  jnp.asarray(w.transpose(2, 3, 0, 1)), (2, 2), "SAME")
  assert np.abs(np.asarray(shifted).transpose(0, 3, 1, 2) - theirs).max() > 1.0


def test_adam_matches_the_official_adam_updates():
  """optim.adam('inside_sqrt_v_hat') against nn.py's adam_updates over 4 steps, lr 0.1.

  Gradients span 1e-5 .. 3, where the epsilon's place matters (g / sqrt(g^2 + 1e-8)).
  Both compute in float32, where ``1 - 0.999^t`` carries the rounding of 0.999 (1.3e-5
  relative at t = 1) in whichever order each side evaluates it: up to ~1e-5 relative on a
  step of at most lr = 0.1, so 5e-6 absolute after 4 steps.
  """
  rng = np.random.default_rng(1)
  start = rng.normal(size=6).astype(np.float32)
  targets = (np.array([1e-5, -3e-5, 1e-4, 0.3, -1.0, 3.0], np.float32) * 0.5)
  param = pytensor.shared(start.copy())
  cost = pytensor.tensor.sum(param * targets)  # gradient = targets, every step
  step = _function([], [], updates=nn_ref.adam_updates([param], cost, lr=0.1, mom1=0.5))
  adam = optim.adam(0.5, 0.999, "inside_sqrt_v_hat")
  ours = jnp.asarray(start)
  state = optim.with_learning_rate(adam.init(ours), 0.1)
  for _ in range(4):
    step()
    updates, state = adam.update(jnp.asarray(targets), state, ours)
    ours = optax.apply_updates(ours, updates)
    np.testing.assert_allclose(np.asarray(ours), param.get_value(), rtol=0, atol=5e-6)
  optax_form = optim.adam(0.5, 0.999, "sqrt_v_hat")
  plain = optax.apply_updates(jnp.asarray(start), optax_form.update(
      jnp.asarray(targets), optim.with_learning_rate(optax_form.init(jnp.asarray(start)), 0.1),
      jnp.asarray(start))[0])
  first = optax.apply_updates(jnp.asarray(start), adam.update(
      jnp.asarray(targets), optim.with_learning_rate(adam.init(jnp.asarray(start)), 0.1),
      jnp.asarray(start))[0])
  assert abs(float(plain[0] - first[0])) > 0.01  # at |g| = 5e-6 the two forms differ


def test_cifar_subset_is_the_official_selection_index_for_index():
  """The project's subset against the script's own lines, on images whose pixels are their index."""
  n = 5000
  index = np.arange(n)
  images = np.zeros((n, 32, 32, 3), np.uint8)
  images[..., 0], images[..., 1] = (index % 256)[:, None, None], (index // 256)[:, None, None]
  labels = (index % 10).astype(np.int32)
  official_x = (-127.5 + images.transpose(0, 3, 1, 2).astype(np.float32)) / 128.  # cifar10_data
  theirs, their_labels, _, _ = dg_cifar_pytensor.select_training_subset(official_x, labels)
  ours, our_labels = dataset_lib.random_subset(images, labels, 2000, 1)
  ours = dataset_lib.to_model_scale(ours, "cifar10")
  decode = lambda x: np.rint(x[:, 0, 0, :2] * 128 + 127.5).astype(int) @ np.array([1, 256])
  np.testing.assert_array_equal(decode(ours), decode(theirs.transpose(0, 2, 3, 1)))
  np.testing.assert_array_equal(our_labels, their_labels)
  np.testing.assert_array_equal(ours, theirs.transpose(0, 2, 3, 1))  # the scale, exactly


def test_fixed_batch_order_repeats_epoch_zero_and_reshuffle_does_not():
  key = jax.random.key(3)
  orders = {}
  for batch_order in config_lib.BATCH_ORDERS:
    orders[batch_order] = [np.concatenate([
        np.asarray(batches.batch_indices(key, epoch, position, 5, 20, batch_order))
        for position in range(4)]) for epoch in range(3)]
  for epoch_order in orders["fixed"] + orders["reshuffle"]:
    assert sorted(epoch_order) == list(range(20))  # every sample once per epoch
  assert all((order == orders["fixed"][0]).all() for order in orders["fixed"])
  np.testing.assert_array_equal(orders["fixed"][0], orders["reshuffle"][0])
  assert (orders["reshuffle"][1] != orders["reshuffle"][0]).any()


def test_samples_for_scoring_use_batch_statistics_when_asked():
  """'batch': each batch of batch_size from G in training mode, as the official samplefun."""
  config = small_config("sketches", "deligan", batch_size=4)
  model = build(config)
  params, batch_stats = model.init(jax.random.key(0), np.zeros((4, 32, 32, 1), np.float32))
  # Running averages away from their initial values, so that the two modes differ.
  batch_stats = jax.tree.map(lambda leaf: leaf + 0.5, batch_stats)
  state = types.SimpleNamespace(params=params, batch_stats=batch_stats)
  samples = sampling.draw(model, state, 10, seed=2, batch_norm="batch",
                                        batch_size=4)
  key = jax.random.key(2)
  expected = np.concatenate([np.asarray(model.generate(
      params, batch_stats, jax.random.fold_in(key, i), 4, train=True)[0]) for i in range(3)])
  np.testing.assert_allclose(samples, expected[:10], atol=1e-6)
  running = sampling.draw(model, state, 10, seed=2)
  assert np.abs(running - samples).max() > 0.01


# --- step-level equivalence: CIFAR-10 ---------------------------------------------------------

def _conv_to_port(direction):
  """HWIO correlation kernel -> Lasagne's (out, in, h, w) convolution (flipped) filter."""
  return np.ascontiguousarray(np.asarray(direction).transpose(3, 2, 0, 1)[:, :, ::-1, ::-1])


def _dense_nhwc_to_port(kernel, channels):
  """G's dense kernel: columns in (h, w, c) order -> the script's reshape order (c, h, w)."""
  kernel = np.asarray(kernel)
  return kernel.reshape(len(kernel), 4, 4, channels).transpose(0, 3, 1, 2).reshape(len(kernel), -1)


def _improved_gan_layout(conv_layers, nin_layers, mbd_layer, out_layer, width):
  """(project path, port name, to_port) for every trained parameter of G, D and the mixture."""
  g = ("generator", "network")
  rows = [(("mixture", "mu"), "gen1.z", np.asarray), (("mixture", "sigma"), "gen1.sig", np.asarray),
          (g + ("Dense_0", "kernel"), "gen2.W", lambda k: _dense_nhwc_to_port(k, 4 * width)),
          (g + ("bn0", "bias"), "gen2.b",
           lambda b: np.asarray(b).reshape(4, 4, 4 * width).transpose(2, 0, 1).reshape(-1))]
  for i, port in ((0, "gen4"), (1, "gen5")):
    rows += [(g + (f"ConvTranspose_{i}", "kernel"), f"{port}.W",
              lambda k: np.asarray(k).transpose(2, 3, 0, 1)),
             (g + (f"bn{i + 1}", "bias"), f"{port}.b", np.asarray)]
  out = g + ("WeightNormConvTranspose_0",)
  rows += [(out + ("direction",), "gen6.W", lambda k: np.asarray(k).transpose(2, 3, 0, 1)),
           (out + ("bias",), "gen6.b", np.asarray), (out + ("scale",), "gen6.g", np.asarray)]
  d = ("discriminator",)
  for i, index in enumerate(conv_layers):
    rows += [(d + (f"WeightNormConv_{i}", "direction"), f"disc{index}.W", _conv_to_port)]
    rows += [(d + (f"WeightNormConv_{i}", p), f"disc{index}.{q}", np.asarray)
             for p, q in (("bias", "b"), ("scale", "g"))]
  for i, index in enumerate((*nin_layers, out_layer)):
    rows += [(d + (f"WeightNormDense_{i}", p), f"disc{index}.{q}", np.asarray)
             for p, q in (("direction", "W"), ("bias", "b"), ("scale", "g"))]
  rows += [(d + ("MinibatchDiscrimination_0", p), f"disc{mbd_layer}.{q}", np.asarray)
           for p, q in (("theta", "theta"), ("log_scale", "log_weight_scale"), ("bias", "b"))]
  return rows


CIFAR_LAYOUT = functools.partial(_improved_gan_layout, (2, 3, 4, 6, 7, 8, 10), (11, 12), 14, 15)


def _leaf(tree, path):
  for key in path:
    tree = tree[key]
  return tree


def _to_port(params, layout):
  return {name: to_port(_leaf(params, path)) for path, name, to_port in layout}


def _nchw(x):
  return np.ascontiguousarray(np.asarray(x).transpose(0, 3, 1, 2))


def _eps(key, shape):
  """The eps that model.latent / mixture.sample draw from ``key``."""
  return np.asarray(mixture.noise(jax.random.split(key)[1], shape, "normal"))


def _small(name):
  """The small config and its model without D's input noise and dropout.

  Random streams cannot be shared with the port, so neither side has them.
  """
  config = small_config(name, "deligan", batch_size=8)
  config.network.conv_impl = "im2col"
  model = build(config)
  model = dataclasses.replace(model, discriminator=model.discriminator.clone(
      input_noise=0.0, dropout_rate=0.0))
  return config, model, balancing.BalanceRule.from_config(config.balance)


TRAIN_SIZE = 24  # three batches of 8: the init pass reads the labelled stream's first two


@functools.lru_cache(maxsize=None)
def _cifar():
  config, model, rule = _small("cifar10")
  rng = np.random.default_rng(4)
  train_x = rng.uniform(-1, 1, (TRAIN_SIZE, 32, 32, 3)).astype(np.float32)
  trainer = StepDriver(model, rule, updates.StepConfig.from_config(config), train_x,
                       make_mesh(jax.devices()[:1]),
                       train_labels=rng.integers(0, 10, TRAIN_SIZE).astype(np.int32))
  reference = dg_cifar_pytensor.CifarReference(
      batch_size=8, z_dim=config.latent.dim, gen_dim=config.network.generator_width,
      disc_dim=config.network.discriminator_width, mbd_kernels=config.network.mbd_kernels,
      mbd_dims=config.network.mbd_dims, input_noise=0.0, dropout_p=0.0)
  layout = CIFAR_LAYOUT(config.network.generator_width)
  # One compiled init, shared by every CIFAR-10 test (compiling dominates their cost).
  return config, trainer, reference, layout, train_x, trainer.init_state(SEED)


SEED = 1

# Tolerances (float32). Data-dependent init: both normalise the same pre-activations by their
# batch moments, summed in another order: 1e-4 relative. Gradients of the first update: the
# same sums through ~12 layers, 1e-3 relative plus 1e-6 absolute for entries that cancel to
# ~0. Parameters: one official Adam step moves each entry by at most lr * |g| / sqrt(g^2 +
# 1e-8) <= lr, and equal gradients give equal steps up to that 1e-3 relative: RTOL 1e-4 on
# the parameter plus ATOL_PER_UPDATE = lr / 10 per update.
GRAD_RTOL, GRAD_ATOL = 1e-3, 1e-6


def _assert_params(ours, theirs, atol, where):
  for name, value in ours.items():
    np.testing.assert_allclose(value, theirs[name], rtol=1e-4, atol=atol,
                               err_msg=f"{name} {where}")


def _before_init_pass(params, layout, mbd):
  """``params`` in the port's names, with the script's initial values of what its init pass
  sets: weight-norm scales 1, D's and G's output biases 0, minibatch discrimination's
  log-scale 0 and bias -1 (``mbd``: its layer's name)."""
  before = _to_port(params, layout)
  for name in before:
    if name.endswith(".g"):
      before[name] = np.ones_like(before[name])
    elif name.endswith(".b") and name.startswith("disc") or name == "gen6.b":
      before[name] = np.zeros_like(before[name])
  before[f"{mbd}.log_weight_scale"] = np.zeros_like(before[f"{mbd}.log_weight_scale"])
  before[f"{mbd}.b"] = -np.ones_like(before[f"{mbd}.b"])
  return before


def _assert_init_pass(reference, params, layout, mbd, init_key, z_dim, images, other_images):
  """The project's initialised ``params`` equal the port's ``init_param(images)`` from the
  same directions and G's eps (rtol 1e-4, atol 1e-6), and ``other_images`` give other scales."""
  before = _before_init_pass(params, layout, mbd)
  reference.set(before)
  reference.noise.set_value(_eps(jax.random.fold_in(init_key, 3), (8, z_dim)))
  reference.init_param(_nchw(images))
  _assert_params(_to_port(params, layout), reference.get(), 1e-6, "after the init pass")
  reference.set(before)
  reference.init_param(_nchw(other_images))
  assert np.abs(reference.get()["disc2.g"] - _to_port(params, layout)["disc2.g"]).max() > 1e-3


def test_cifar_data_dependent_init_matches_the_script():
  """The trainer's init pass against the script's ``init_param(trainx[:N])``, where trainx is
  the labelled array in training order: N = init_examples = the first two labelled batches
  of epoch 0 (the script: trainx[:500], its first five batches). G: one code per component.
  """
  config, trainer, reference, layout, train_x, state = _cifar()
  init_key, run_key = jax.random.split(jax.random.key(SEED))
  labelled = jax.random.fold_in(run_key, train_state.LABELLED_TAG)
  first = np.concatenate([np.asarray(batches.batch_indices(labelled, 0, position, 8, TRAIN_SIZE,
                                                           config.batch_order))
                          for position in range(config.network.init_examples // 8)])
  # Another set of 16 images initialises differently: the check sees which images were used.
  _assert_init_pass(reference, state.params, layout, "disc14", init_key, config.latent.dim,
                    train_x[first], np.delete(train_x, first[:8], axis=0)[:16])


def _cifar_batch(seed):
  rng = np.random.default_rng(seed)
  return {"labelled": rng.uniform(-1, 1, (8, 32, 32, 3)).astype(np.float32),
          "real": rng.uniform(-1, 1, (8, 32, 32, 3)).astype(np.float32),
          "labels": rng.integers(0, 10, 8).astype(np.int32)}


def _first_moment_gradients(opt_state, name, b1):
  """The raw gradient of an optimiser's first step: Adam's m is then (1 - b1) * g (exact in
  float32 for b1 = 0.5), so the update under test also yields the gradient it took."""
  return jax.tree.map(lambda m: np.asarray(m) / (1 - b1), opt_state[name].inner_state[0].mu)


@functools.lru_cache(maxsize=None)
def _cifar_updates():
  """Two batches of the 'fixed' rule, D, G, G, G, on both sides from the same start: what
  each side holds after every update, and the raw gradients of the first D and first G step.
  """
  config, trainer, reference, layout, _, state = _cifar()
  reference.reset_optimiser()
  reference.set(_to_port(state.params, layout))
  carry = (state.params, state.batch_stats,
           updates.with_learning_rates(trainer.step, state.opt_state, 1.0), state.balance)
  update = jax.jit(functools.partial(updates.balanced_update, trainer.step))
  lr = np.float32(config.optim.lr)
  steps, grads = [], {}
  for batch in range(2):
    data = _cifar_batch(batch)
    for index in range(4):
      k = 4 * batch + index
      key = jax.random.fold_in(jax.random.key(7), k)
      reference.noise.set_value(_eps(key, (8, config.latent.dim)))
      if k == 0:
        grads["their_d"] = dict(zip(reference.param_names(reference.disc_params),
                                    reference.disc_grads(_nchw(data["labelled"]), data["labels"],
                                                         _nchw(data["real"]))))
      if k == 1:
        their_list = reference.gen_grads()
        grads["their_g"] = dict(zip(reference.param_names(reference.gen_params),
                                    their_list[:-1]))
        grads["their_sigma_term"] = their_list[-1]
        grads["params_at_g"] = carry[0]
      carry, (_, update_g, loss) = update(carry, key, data, index)
      if index == 0:
        loss_lab, loss_unl, _ = reference.train_batch_disc(
            _nchw(data["labelled"]), data["labels"], _nchw(data["real"]), lr)
        their_loss = loss_lab + loss_unl
      else:
        their_loss = reference.train_batch_gen(lr)[2]
      if k == 0:
        grads["our_d"] = _first_moment_gradients(carry[2], "discriminator", config.optim.b1)
      if k == 1:
        grads["our_g"] = {name: _first_moment_gradients(carry[2], name, config.optim.b1)
                          for name in ("generator", "mixture")}
      steps.append((bool(update_g), float(loss), float(their_loss),
                    _to_port(carry[0], layout), reference.get()))
  return config, layout, steps, grads


def _assert_grads(ours, theirs, what):
  """Every parameter the script trains; the project's untrained scales get zero gradient."""
  assert set(theirs) <= set(ours), set(theirs) - set(ours)
  for name, value in ours.items():
    expected = theirs.get(name, np.zeros_like(value))
    np.testing.assert_allclose(value, expected, rtol=GRAD_RTOL, atol=GRAD_ATOL,
                               err_msg=f"{what} {name}")


def test_cifar_first_update_gradients_match_the_script():
  """The raw gradients of the first D step and of the first G step (G's network and the
  mixture's mu and sigma), each side at the same parameters; then sigma's regulariser."""
  config, layout, _, grads = _cifar_updates()
  params = grads["params_at_g"]
  ours = _to_port({"discriminator": grads["our_d"],
                   **{k: params[k] for k in ("generator", "mixture")}},
                  [row for row in layout if row[0][0] == "discriminator"])
  _assert_grads(ours, grads["their_d"], "D gradient")
  ours = _to_port({**grads["our_g"], "discriminator": params["discriminator"]},
                  [row for row in layout if row[0][0] != "discriminator"])
  # The script computes the sigma term but never adds it; so does the config (weight 0): mu's
  # and sigma's gradients are their adversarial part alone on both sides.
  assert config.latent.sigma_reg == 0.0
  _assert_grads(ours, grads["their_g"], "G gradient (adversarial part)")
  regulariser = jax.grad(mixture.sigma_regularizer)(params["mixture"])["sigma"]
  np.testing.assert_allclose(0.05 * np.asarray(regulariser), grads["their_sigma_term"],
                             rtol=1e-5, err_msg="the sigma term's gradient")


def test_cifar_updates_match_the_script_one_d_then_three_g():
  """Two batches of the 'fixed' rule: D, G, G, G, each compared after its step."""
  config, _, steps, _ = _cifar_updates()
  lr = np.float32(config.optim.lr)
  for k, (update_g, loss, their_loss, ours, theirs) in enumerate(steps):
    where = f"after update {k + 1} ({'G' if update_g else 'D'})"
    assert update_g == (k % 4 > 0), where
    np.testing.assert_allclose(loss, their_loss, rtol=1e-5, err_msg=f"loss {where}")
    _assert_params(ours, theirs, lr / 10 * (k + 1), where)


# --- step-level equivalence: sketches ---------------------------------------------------------

SKETCH_LAYOUT = functools.partial(_improved_gan_layout, (2, 3, 5, 7), (8,), 10, 11)


@functools.lru_cache(maxsize=None)
def _sketches():
  """The small sketch config, its driver on one batch of 8, the port, and the initial state."""
  config, model, rule = _small("sketches")
  batch = np.random.default_rng(0).uniform(-1, 1, (8, 32, 32, 1)).astype(np.float32)
  trainer = StepDriver(model, rule, updates.StepConfig.from_config(config), batch,
                       make_mesh(jax.devices()[:1]))
  reference = dg_sketches_pytensor.SketchReference(
      batch_size=8, z_dim=config.latent.dim, gen_dim=config.network.generator_width,
      disc_dim=config.network.discriminator_width, mbd_kernels=config.network.mbd_kernels,
      mbd_dims=config.network.mbd_dims, input_noise=0.0, dropout_p=0.0)
  layout = SKETCH_LAYOUT(config.network.generator_width)
  return config, rule, trainer, reference, layout, batch, trainer.init_state(1)


def test_sketch_first_update_gradients_match_the_script():
  """The raw gradients at the initial parameters, for one eps: D's, and G's and the
  mixture's in two parts, the adversarial loss's and the sigma term's (weight 0.05, which
  the sketch script adds to G's loss). Tolerances as for CIFAR-10's gradients."""
  config, _, trainer, reference, layout, batch, state = _sketches()
  assert config.latent.sigma_reg == 0.05
  reference.set(_to_port(state.params, layout))
  key = jax.random.key(3)
  reference.noise.set_value(_eps(key, (8, config.latent.dim)))
  data = {"real": jnp.asarray(batch)}

  @jax.jit
  def gradients(params, batch_stats):
    _, d_grads = updates.discriminator_grads(trainer.step, params, batch_stats, key, data)
    trainable = {k: params[k] for k in ("generator", "mixture")}
    parts = [jax.grad(lambda t, index=index: updates.generator_objective(
        trainer.step, t, params, batch_stats, key, data)[0][index])(trainable)
             for index in (0, 1)]  # the adversarial part and the sigma term
    return d_grads, parts

  d_grads, (adversarial, regulariser) = gradients(state.params, state.batch_stats)
  d_layout = [row for row in layout if row[0][0] == "discriminator"]
  their_d = dict(zip(reference.param_names(reference.disc_params),
                     reference.disc_grads(_nchw(batch))))
  _assert_grads(_to_port({"discriminator": d_grads}, d_layout), their_d, "D gradient")

  their = reference.gen_grads()
  their_adversarial = dict(zip(reference.param_names(reference.gen_params), their[:-1]))
  g_layout = [row for row in layout if row[0][0] != "discriminator"]
  _assert_grads(_to_port(adversarial, g_layout), their_adversarial,
                "G gradient (adversarial part)")
  assert all(not np.any(leaf) for leaf in jax.tree.leaves(
      {k: v for k, v in regulariser.items() if k != "mixture"}))
  np.testing.assert_array_equal(regulariser["mixture"]["mu"], 0)
  np.testing.assert_allclose(regulariser["mixture"]["sigma"], their[-1], rtol=1e-5,
                             err_msg="the sigma term's gradient")


def test_sketch_probe_schedule_and_forced_update_match_the_script_over_two_batches():
  """Natural decisions over two batches of the sketch rule, the first opening with a forced
  half-lr D update (a G streak of 6 carried in), run update by update as ``train_step``
  composes them (``updates.open_batch``, then ``updates.inner_update`` for each update).
  After each update: the decision, the g that decided it (1e-5 relative) and every parameter
  (tolerance as for CIFAR-10 per update). After each batch: thres and the streak counters.
  """
  config, rule, trainer, reference, layout, batch, state = _sketches()
  assert rule.probe_reuse and rule.probe_train_mode and rule.forced_d_lr_factor == 0.5
  reference.reset_optimiser()
  reference.set(_to_port(state.params, layout))
  reference.count1, reference.count2, reference.t1, reference.thres = 0, 0, 0.70, 1.0
  open_batch = jax.jit(functools.partial(updates.open_batch, trainer.step))
  inner_update = jax.jit(functools.partial(updates.inner_update, trainer.step))
  lr = np.float32(config.optim.lr)
  base = jax.random.wrap_key_data(state.key)
  seen, done = set(), 0
  for number in range(2):
    batch_key = jax.random.fold_in(jax.random.fold_in(base, train_state.LATENTS_TAG), number)
    if number == 0:  # a G streak of 6 carried in; thres at the batch's first probe
      first = _eps(jax.random.fold_in(batch_key, rule.inner_updates + 1), (8, config.latent.dim))
      reference.noise.set_value(first)
      g0 = float(reference.batch_gen()[2])
      reference.count1, reference.thres = 6, g0 - 0.004
      state = state.replace(balance=state.balance.replace(count=jnp.int32(6),
                                                          thres=jnp.float32(g0 - 0.004)))
    order = np.asarray(batches.batch_indices(
        jax.random.fold_in(base, train_state.SHUFFLE_TAG), 0, 0, config.batch_size, len(batch),
        config.batch_order))

    def noise(call, k, batch_key=batch_key):
      key = {"first": jax.random.fold_in(batch_key, rule.inner_updates + 1),
             "forced": jax.random.fold_in(batch_key, rule.inner_updates),
             "update": jax.random.fold_in(batch_key, k),
             "probe": jax.random.fold_in(jax.random.fold_in(batch_key, k), 5)}[call]
      return _eps(key, (8, config.latent.dim))

    events, theirs_after = [], []
    reference.run_batch(_nchw(batch[order]), lr, lr / 2, noise,
                        lambda event, value: events.append((event, float(value))),
                        after=lambda: theirs_after.append(reference.get()))
    carry, data, key, _, forced = open_batch(state, trainer.train_set)
    ours = [("forced", None, carry[0])] if bool(forced) else []
    for k in range(rule.inner_updates):
      carry, (g, update_g, _) = inner_update(carry, key, data, k)
      ours.append(("G" if bool(update_g) else "D", float(g), carry[0]))
    assert [e for e, _, _ in ours] == [e for e, _ in events], events
    for (event, their_g), (_, g, params), theirs in zip(events, ours, theirs_after):
      done += 1
      where = f"after update {done} ({event}) of batch {number + 1}"
      if g is not None:
        np.testing.assert_allclose(g, their_g, rtol=1e-5, err_msg=f"deciding g {where}")
      _assert_params(_to_port(params, layout), theirs, lr / 10 * done, where)
    balance = carry[3]
    where = f"after batch {number + 1} ({''.join(e for e, _ in events)})"
    np.testing.assert_allclose(float(balance.thres), reference.thres, rtol=1e-6, err_msg=where)
    assert (int(balance.count), -int(balance.d_count)) == (
        reference.count1, reference.count2), where
    state = state.replace(step=state.step + 1, params=carry[0], batch_stats=carry[1],
                          opt_state=carry[2], balance=balance)
    seen.update(e for e, _ in events)
  assert seen == {"forced", "G", "D"}, seen


# --- what the step-level tests leave out: initialisers, init, schedules, the loop, the rule ---

def test_sketch_data_dependent_init_matches_the_script():
  """The sketch driver's init pass against the script's ``init_param(trainx[:400])``: D on the
  first ``init_examples`` images of epoch 0's order (here all 8 of the one-batch set), G on
  one code per component; every weight-norm scale and bias and minibatch discrimination's
  log-scale and bias. Tolerance as for CIFAR-10's init; other images give other scales.
  """
  config, _, trainer, reference, layout, batch, state = _sketches()
  init_key, run_key = jax.random.split(jax.random.key(1))
  order = np.asarray(batches.batch_indices(jax.random.fold_in(run_key, train_state.SHUFFLE_TAG),
                                           0, 0, 8, len(batch), config.batch_order))
  np.testing.assert_array_equal(trainer._init_examples(run_key), batch[order])
  _assert_init_pass(reference, state.params, layout, "disc10", init_key, config.latent.dim,
                    batch[order], batch[order] * 0.5)


def test_cifar_batches_pair_as_the_scripts_loop_pairs_them():
  """The step's labelled and unlabelled batches against the port's ``training_batches`` (the
  script's loop): each epoch every image once in each stream, the two streams in different
  orders, and the same pairs (labelled batch t, unlabelled batch t) in the same order every
  epoch. The orders themselves are other draws (the script's RandomState, the run's key)."""
  n, size, epochs = 60, 10, 3
  theirs = list(dg_cifar_pytensor.training_batches(
      np.zeros((n, 1)), np.zeros(n), np.zeros((n, 1)), np.random.RandomState(1), size, epochs))
  config = small_config("cifar10", batch_size=size)
  step = updates.Step(build(config), balancing.BalanceRule.from_config(config.balance),
                      updates.StepConfig.from_config(config), num_samples=n)
  train_set = {"x": jnp.arange(n, dtype=jnp.float32)[:, None], "labels": jnp.arange(n)}
  draw = jax.jit(lambda e, p: updates.draw_batch(step, train_set, jax.random.key(1), e, p))
  ours = []
  for epoch in range(epochs):
    for position in range(n // size):
      data = draw(epoch, position)
      ours.append((np.asarray(data["labelled"][:, 0]).astype(int), np.asarray(data["real"][:, 0])
                   .astype(int)))
      np.testing.assert_array_equal(data["labels"], ours[-1][0])
  per_epoch = n // size
  for pairs in (theirs, ours):
    assert len(pairs) == epochs * per_epoch
    for epoch in range(epochs):
      this = pairs[epoch * per_epoch:(epoch + 1) * per_epoch]
      for stream in (0, 1):
        assert sorted(np.concatenate([p[stream] for p in this])) == list(range(n))
      assert any((p[0] != p[1]).any() for p in this)  # two orders
      for (lab, unl), (lab0, unl0) in zip(this, pairs[:per_epoch]):
        np.testing.assert_array_equal(lab, lab0)
        np.testing.assert_array_equal(unl, unl0)


class _ScriptedLosses:
  """The port's three functions, returning generator losses from a stream instead of networks
  (a G update returns its pre-update loss, as a Theano function's outputs do)."""

  def __init__(self, losses):
    self.losses = iter(losses)

  def batch_gen(self):
    return None, None, next(self.losses)

  def train_batch_gen(self, lr):
    return None, None, next(self.losses)

  def train_batch_disc(self, x, lr):
    return np.float32(0), np.float32(0)


def test_sketch_rule_raises_and_lowers_thres_as_the_script():
  """The sketch rule's thres, streaks and forced updates against the port's ``run_batch`` (the
  script's loop body) over 600 batches of scripted losses that drift around thres, so that G
  streaks force D updates and raise thres and D streaks lower it to t1 = 0.70. The port gets
  one loss per call; the project decides update k of batch b on the loss the script's run
  reads there (the batch's probe, then each update's own), as ``probe_reuse`` does.
  Decisions, counters and forced updates exact; thres rtol 1e-5: the script keeps it in
  Python floats, the device in float32, and 0.003 steps round differently in each."""
  from tests.conftest import load_config

  rule = balancing.BalanceRule.from_config(load_config("sketches").balance)
  batches_, per_batch = 600, rule.inner_updates + 1  # a probe, then one loss per update
  rng = np.random.default_rng(0)
  drift = 0.85 + 0.25 * np.sin(np.arange(batches_) / 30.0)
  losses = (drift[:, None] + 0.05 * rng.standard_normal((batches_, per_batch))).astype(np.float32)
  reference = object.__new__(dg_sketches_pytensor.SketchReference)
  scripted = _ScriptedLosses(losses.ravel())
  reference.batch_gen, reference.train_batch_gen = scripted.batch_gen, scripted.train_batch_gen
  reference.train_batch_disc = scripted.train_batch_disc
  reference.noise = types.SimpleNamespace(set_value=lambda value: None)
  reference.count1, reference.count2 = 0, 0
  reference.t1, reference.thres = 0.70, 1.0  # the script's Python floats
  theirs = []
  for _ in range(batches_):
    events = []
    reference.run_batch(None, np.float32(1e-4), np.float32(5e-5), lambda call, k: None,
                        lambda event, value: events.append(event))
    theirs.append((events, reference.thres, reference.count1, reference.count2))

  @jax.jit
  def project(state, gs):
    forced = balancing.forces_discriminator_update(rule, state)
    state = balancing.start_batch(rule, state)

    def inner(state, k):
      update_g = balancing.update_generator(rule, state, gs[k], k)
      return balancing.record(rule, state, update_g), update_g

    state, decisions = jax.lax.scan(inner, state, jnp.arange(rule.inner_updates))
    return state, forced, decisions

  state = balancing.BalanceState.create(rule)
  thresholds = []
  for b, (events, thres, count1, count2) in enumerate(theirs):
    state, forced, decisions = project(state, jnp.asarray(losses[b]))
    ours = (["forced"] if bool(forced) else []) + ["G" if d else "D" for d in decisions]
    assert ours == events, b
    np.testing.assert_allclose(float(state.thres), thres, rtol=1e-5, err_msg=str(b))
    assert (int(state.count), -int(state.d_count)) == (count1, count2), b
    thresholds.append(float(state.thres))
  steps = np.diff(thresholds)
  assert (steps < 0).sum() > 10 and (steps > 0).sum() > 10  # both paths, many times
  assert min(thresholds) == pytest.approx(0.70, abs=1e-6)
  assert sum("forced" in events for events, *_ in theirs) > 10

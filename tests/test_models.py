"""The six models and the networks: shapes, the ensemble's layout, minibatch discrimination."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deligan_jax import models
from deligan_jax.models import networks
from tests.conftest import examples, small_config


@pytest.mark.parametrize("experiment", ["toy", "mnist", "cifar10", "sketches"])
@pytest.mark.parametrize("variant", models.MODELS)
def test_every_model_builds_and_has_the_right_shapes(experiment, variant):
  config = small_config(experiment, variant)
  classes = (10,) if config.objective == "semi_supervised" else ()
  model = models.build(config)
  shape = networks.SAMPLE_SHAPES[config.network.name]
  params, stats = model.init(jax.random.key(0), examples(shape))
  assert bool(params["mixture"]) == (variant == "deligan")
  for train in (False, True):
    x, new_stats = model.generate(params, stats, jax.random.key(1), config.batch_size, train)
    assert x.shape == (config.batch_size, *shape)
    assert np.all(np.abs(x) <= 1.0) and np.all(np.isfinite(x))  # tanh output
    logits, _ = model.discriminate(params, stats, x, train, key=jax.random.key(2))
    assert logits.shape == (config.batch_size, *classes)
    assert jax.tree.structure(new_stats) == jax.tree.structure(stats["generator"])


def test_nx_multiplies_the_generator_width():
  gan = models.build(small_config("toy", "gan"))
  nx = models.build(small_config("toy", "nx"))
  p_gan, _ = gan.init(jax.random.key(0), examples((2,)))
  p_nx, _ = nx.init(jax.random.key(0), examples((2,)))
  assert p_gan["generator"]["network"]["Dense_0"]["kernel"].shape == (2, 32)
  assert p_nx["generator"]["network"]["Dense_0"]["kernel"].shape == (2, 32 * 8)


def test_gan_plus_plus_and_moe_inputs():
  pp = models.build(small_config("toy", "gan++"))
  p, _ = pp.init(jax.random.key(0), examples((2,)))
  assert p["generator"]["expand"]["kernel"].shape == (2, 8)
  moe = models.build(small_config("toy", "moe"))
  p, _ = moe.init(jax.random.key(0), examples((2,)))
  assert p["generator"]["network"]["Dense_0"]["kernel"].shape == (8 + 2, 32)


@pytest.mark.parametrize("experiment", ["toy", "mnist"])
def test_ensemble_row_r_comes_from_generator_r(experiment):
  config = small_config(experiment, "ensemble")
  model = models.build(config)
  shape = networks.SAMPLE_SHAPES[config.network.name]
  params, stats = model.init(jax.random.key(0), examples(shape))
  leaves = jax.tree.leaves(params["generator"])
  assert all(leaf.shape[0] == 8 for leaf in leaves)  # one stacked pytree, not 8 objects
  key = jax.random.key(3)
  together, _ = model.generate(params, stats, key, 16, train=False)
  z, _ = model.latent(params["mixture"], key, 16)
  for row in (0, 5, 13):
    member = model._ensemble_member(params["generator"], stats["generator"], row % 8,
                                    z[row:row + 1])
    np.testing.assert_allclose(together[row], member[0], rtol=2e-5, atol=2e-6)
  # The generators differ: the same latent through two members gives two outputs.
  a = model._ensemble_member(params["generator"], stats["generator"], 0, z[:1])
  b = model._ensemble_member(params["generator"], stats["generator"], 1, z[:1])
  assert not np.allclose(a, b)


def test_ensemble_batch_norm_uses_whole_batch_statistics():
  config = small_config("mnist", "ensemble")
  model = models.build(config)
  params, stats = model.init(jax.random.key(0), examples((28, 28, 1)))
  _, new_stats = model.generate(params, stats, jax.random.key(1), 8, train=True)
  mean = new_stats["network"]["bn0"]["mean"]
  # Every member saw the same (whole-batch) statistics, so their running means agree.
  np.testing.assert_allclose(mean, np.broadcast_to(mean[:1], mean.shape), rtol=1e-5, atol=1e-7)
  assert not np.allclose(mean, 0)


def test_minibatch_discrimination_matches_a_direct_computation():
  layer = networks.MinibatchDiscrimination(num_kernels=4, kernel_dim=3)
  x = jax.random.normal(jax.random.key(0), (6, 5))
  variables = layer.init(jax.random.key(1), x)
  out = np.asarray(layer.apply(variables, x))
  theta = np.asarray(variables["params"]["theta"], np.float64)
  scale = np.exp(np.asarray(variables["params"]["log_scale"], np.float64))
  weight = theta * scale / np.sqrt((theta ** 2).sum(0))
  m = np.einsum("bf,fkc->bkc", np.asarray(x, np.float64), weight)
  o = np.zeros((6, 4))
  for i in range(6):
    for j in range(6):  # j = i included, as the official MNIST code
      o[i] += np.exp(-np.abs(m[i] - m[j]).sum(-1))
  o /= o.sum()
  np.testing.assert_allclose(out[:, :5], x, rtol=1e-6)
  np.testing.assert_allclose(out[:, 5:], o, rtol=1e-4, atol=1e-7)


def test_mnist_generator_at_batch_50():
  model = models.build(small_config("mnist", "deligan", batch_size=50))
  params, stats = model.init(jax.random.key(0), examples((28, 28, 1)))
  g = params["generator"]["network"]
  assert g["Dense_0"]["kernel"].shape == (6, 4 * 4 * 4 * 4)
  x, _ = model.generate(params, stats, jax.random.key(1), 50, train=True)
  assert x.shape == (50, 28, 28, 1)


def test_discriminator_probe_mode_uses_running_statistics():
  model = models.build(small_config("mnist", "gan"))
  params, stats = model.init(jax.random.key(0), examples((28, 28, 1)))
  x = jax.random.uniform(jax.random.key(2), (8, 28, 28, 1), minval=-1, maxval=1)
  eval_logits, same = model.discriminate(params, stats, x, train=False)
  train_logits, updated = model.discriminate(params, stats, x, train=True)
  assert jax.tree.all(jax.tree.map(jnp.array_equal, same, stats["discriminator"]))
  assert not np.allclose(eval_logits, train_logits)
  assert not np.allclose(updated["bn1"]["mean"], stats["discriminator"]["bn1"]["mean"])


def test_minibatch_discrimination_groups_equal_separate_calls():
  layer = networks.MinibatchDiscrimination(num_kernels=4, kernel_dim=3)
  real = jax.random.normal(jax.random.key(0), (5, 7))
  fake = jax.random.normal(jax.random.key(1), (5, 7)) * 0.1
  variables = layer.init(jax.random.key(2), real)
  together = layer.apply(variables, jnp.concatenate([real, fake]), groups=2)
  apart = jnp.concatenate([layer.apply(variables, real), layer.apply(variables, fake)])
  np.testing.assert_allclose(together, apart, rtol=1e-6)
  assert not np.allclose(together, layer.apply(variables, jnp.concatenate([real, fake])))


@pytest.mark.parametrize("experiment, official, training", [
    ("mnist", "uniform", "normal"),    # scores 5000 samples of U(-1, 1); trains on N(0, 1)
    ("toy", "normal", "uniform"),      # plots display_z ~ N(0, 1); trains on U(-1, 1)
    ("cifar10", "normal", "normal"),   # scores with its training noise
])
def test_samples_for_scores_and_pictures_draw_the_official_eps_or_the_training_eps(
    experiment, official, training):
  config = small_config(experiment, "gan", batch_size=4)
  model = models.build(config)
  assert config.latent.sample_noise == "official"
  for setting, kind in (("official", official), ("training", training)):
    config.latent.sample_noise = setting
    eps, _ = models.for_sampling(model, config).latent({}, jax.random.key(0), 4000)
    assert (float(np.abs(eps).max()) <= 1.0) == (kind == "uniform"), setting
    np.testing.assert_allclose(np.std(eps), 1.0 if kind == "normal" else 1 / np.sqrt(3),
                               rtol=0.05, err_msg=setting)
  assert model.noise == training  # training itself is unchanged

"""The bench's PyTorch peer computes what the JAX MNIST model computes, given the same weights."""

import jax
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from deligan_jax import models  # noqa: E402
from benchmarks import torch_peer  # noqa: E402
from tests.conftest import load_config  # noqa: E402


@pytest.fixture(scope="module")
def both():
  config = load_config("mnist")
  model = models.build(config)
  rng = np.random.default_rng(0)
  params, batch_stats = jax.jit(model.init)(jax.random.key(0),
                                            rng.uniform(-1, 1, (8, 28, 28, 1)))
  # Running statistics away from their initial 0 and 1, so inference mode is tested too.
  batch_stats = jax.tree.map(lambda s: s + rng.uniform(0.1, 0.5, s.shape).astype(np.float32),
                             batch_stats)
  params = jax.tree.map(lambda p: p + rng.normal(0, 0.05, p.shape).astype(np.float32), params)
  return model, params, batch_stats, rng


def torch_model(params, batch_stats):
  """Fresh modules per test: training mode moves torch's running averages."""
  generator, discriminator = torch_peer.Generator(), torch_peer.Discriminator()
  torch_peer.from_jax(generator, discriminator, params, batch_stats)
  return generator, discriminator


@pytest.mark.parametrize("train", [True, False])
def test_generator_matches(both, train):
  model, params, batch_stats, rng = both
  generator, _ = torch_model(params, batch_stats)
  z = rng.normal(size=(16, 30)).astype(np.float32)
  variables = {"params": params["generator"], "batch_stats": batch_stats["generator"]}
  apply = jax.jit(lambda v, z: model.generator.apply(v, z, None, train=train,
                                                     mutable=["batch_stats"])[0])
  expected = apply(variables, z)
  generator.train(train)
  with torch.no_grad():
    got = generator(torch.from_numpy(z)).permute(0, 2, 3, 1).numpy()
  assert got.shape == expected.shape == (16, 28, 28, 1)
  np.testing.assert_allclose(got, expected, atol=2e-5)


@pytest.mark.parametrize("train", [True, False])
def test_discriminator_matches(both, train):
  model, params, batch_stats, rng = both
  _, discriminator = torch_model(params, batch_stats)
  x = rng.uniform(-1, 1, (2 * 8, 28, 28, 1)).astype(np.float32)
  expected, _ = jax.jit(model.discriminate, static_argnames=("train", "groups"))(
      params, batch_stats, x, train=train, groups=2)
  discriminator.train(train)
  with torch.no_grad():
    got = discriminator(torch.from_numpy(x).permute(0, 3, 1, 2), groups=2).numpy()
  assert got.shape == expected.shape == (16,)
  np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)

"""Differentiable sampling from a model or a loaded run (sampling.Sampler), and the package's
lazily imported submodules."""

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deligan_jax import errors
from deligan_jax import models
from deligan_jax import sampling
from tests.conftest import REPO, examples, small_config


@pytest.fixture(scope="module")
def toy():
  config = small_config("toy", "bimodal,deligan")
  model = models.build(config)
  params, batch_stats = model.init(jax.random.key(0), examples((2,)))
  return config, model, params, batch_stats


def test_sampler_of_a_run_uses_its_training_noise_unless_told(toy):
  config, model, _, _ = toy
  assert config.latent.noise == "uniform"   # the toy trains on U(-1, 1) ...
  assert sampling.Sampler.of_run(config, model).noise == "uniform"
  # ... and eval.py's samples use the official N(0, 1).
  assert sampling.Sampler.of_run(config, model, "as_scored").noise == "normal"
  assert sampling.Sampler.of_run(config, model, "normal").noise == "normal"
  with pytest.raises(errors.RequestError, match="noise must be one of"):
    sampling.Sampler.of_run(config, model, "gaussian")


def test_sampler_is_jitted_and_differentiated_wrt_the_mixture_and_g(toy):
  config, model, params, batch_stats = toy
  sampler = sampling.Sampler.of_run(config, model)
  key = jax.random.key(3)
  x = jax.jit(sampler, static_argnames="n")(params, batch_stats, key, n=16)
  assert isinstance(x, jax.Array) and x.shape == (16, 2)
  np.testing.assert_allclose(x, model.generate(params, batch_stats, key, 16, train=False)[0],
                             rtol=1e-6)

  def loss(mixture_params, generator_params):
    p = dict(params, mixture=mixture_params, generator=generator_params)
    return jnp.sum(sampler(p, batch_stats, key, 16) ** 2)

  grads = jax.jit(jax.grad(loss, argnums=(0, 1)))(params["mixture"], params["generator"])
  # Each against a finite difference in one entry (float64 would be tighter; 1e-2 suffices).
  for argnum, tree in enumerate((params["mixture"], params["generator"])):
    leaf_path, leaf = jax.tree_util.tree_flatten_with_path(tree)[0][0]
    bump = 1e-2
    bumped = jax.tree_util.tree_map_with_path(
        lambda path, a: a.at[(0,) * a.ndim].add(bump) if path == leaf_path else a, tree)
    args = [params["mixture"], params["generator"]]
    numeric = (loss(*args[:argnum], bumped, *args[argnum + 1:]) - loss(*args)) / bump
    analytic = jax.tree_util.tree_flatten(grads[argnum])[0][0][(0,) * leaf.ndim]
    assert abs(float(analytic)) > 1e-4
    np.testing.assert_allclose(analytic, numeric, rtol=0.05)


def test_sampler_takes_per_row_component_ids_under_jit(toy):
  config, model, params, batch_stats = toy
  sampler = sampling.Sampler.of_run(config, model)
  ids = jnp.array([3, 3, 0, 7], jnp.int32)
  x = jax.jit(sampler, static_argnames="n")(params, batch_stats, jax.random.key(1), n=4,
                                             component=ids)
  one = sampler(params, batch_stats, jax.random.key(1), 4, component=3)
  np.testing.assert_allclose(x[:2], one[:2], rtol=1e-6)   # same eps rows, same component
  with pytest.raises(ValueError, match=r"component must be in \[0, 8\), got 9"):
    sampler(params, batch_stats, jax.random.key(1), 4, component=9)


def test_a_loaded_run_is_differentiated_through_its_mixture_and_draw_as_scored_stays_numpy(
    tmp_path):
  from deligan_jax import training
  from deligan_jax.runs import checkpoints
  training.train_and_evaluate(small_config("toy", "bimodal,deligan"), str(tmp_path))
  config, model, state = checkpoints.load_run(str(tmp_path))
  sampler = sampling.Sampler.of_run(config, model)
  grads = jax.grad(lambda m: jnp.mean(sampler(dict(state.params, mixture=m), state.batch_stats,
                                              jax.random.key(0), 8)))(state.params["mixture"])
  assert set(grads) == {"mu", "sigma"} and float(jnp.abs(grads["mu"]).sum()) > 0
  assert isinstance(sampling.draw_as_scored(model, config, state, 5), np.ndarray)


def test_import_deligan_jax_is_cheap_and_its_dotted_paths_work():
  code = ("import sys, deligan_jax\n"
          "assert 'jax' not in sys.modules and 'tensorflow' not in sys.modules\n"
          "assert callable(deligan_jax.runs.checkpoints.load_run)\n"
          "assert callable(deligan_jax.sampling.draw_as_scored)\n"
          "assert callable(deligan_jax.mixture.log_prob)\n"
          "assert 'tensorflow' not in sys.modules\n"
          "try:\n  deligan_jax.no_such_module\nexcept AttributeError as e:\n  print(e)\n")
  done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
  assert done.returncode == 0, done.stderr[-2000:]
  assert "has no attribute 'no_such_module'" in done.stdout

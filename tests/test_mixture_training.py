"""The mixture options in a run: learned weights and a positive sigma, set by config."""

import jax.numpy as jnp
import numpy as np
import pytest

from deligan_jax import config as config_lib
from deligan_jax import mixture
from deligan_jax import training
from deligan_jax.errors import ConfigError
from tests.conftest import small_config


@pytest.mark.parametrize("overrides, message", [
    ({"latent.learn_weights": True}, "latent.learn_weights: learned weights need "
                                     "latent.assignment='random'"),
    ({"latent.sigma_parameterisation": "exp"}, "latent.sigma_parameterisation: must be one of"),
    ({"latent.sigma_parameterisation": "log", "latent.sigma_init_range": (0.0, 0.2)},
     "latent.sigma_init_range: must be positive for sigma_parameterisation='log'"),
])
def test_mixture_options_that_cannot_work_are_refused(overrides, message):
  config = small_config("toy", "bimodal,deligan")
  config.update_from_flattened_dict(overrides)
  with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
    config_lib.validate(config)


def test_a_run_learns_weights_with_a_softplus_sigma(tmp_path):
  config = small_config("toy", "bimodal,deligan")
  config.update_from_flattened_dict({"latent.learn_weights": True, "latent.assignment": "random",
                                     "latent.sigma_parameterisation": "softplus",
                                     # G updates from the first batch on (the toy's own rule
                                     # starts with D's).
                                     "balance.kind": "fixed", "balance.fixed_d_updates": 1})
  assert not config_lib.base_config().latent.learn_weights   # off by default
  state = training.train_and_evaluate(config, str(tmp_path))
  m = state.params["mixture"]
  assert set(m) == {"mu", "inv_softplus_sigma", "logits"}
  assert float(jnp.abs(m["logits"]).max()) > 0         # G's loss reached the weights
  np.testing.assert_allclose(jnp.exp(mixture.log_weights(m)).sum(), 1.0, rtol=1e-6)
  assert float(mixture.scale(m).min()) > 0

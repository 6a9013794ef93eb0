"""The config contract: defaults validate, bad values are refused with the field named."""

import json

import pytest

from deligan_jax import config as config_lib
from deligan_jax.models import MODELS
from tests.conftest import load_config


@pytest.mark.parametrize("name, arg", [(n, m) for n in ("mnist", "cifar10", "sketches")
                                       for m in MODELS] +
                         [("toy", f"{d},{m}") for d in ("bimodal", "unimodal") for m in MODELS])
def test_shipped_configs_validate(name, arg):
  config = load_config(name, arg)
  config_lib.validate(config)
  assert config.model == arg.split(",")[-1]


def test_paper_settings():
  mnist = load_config("mnist")
  assert (mnist.batch_size, mnist.latent.num_components, mnist.latent.dim) == (50, 50, 30)
  assert mnist.latent.sigma_init_range == (0.2, 0.2) and mnist.latent.sigma_reg == 1 / 3
  assert mnist.optim.lr == 5e-4 and mnist.num_steps == 4000 * 10
  toy = load_config("toy", "unimodal,gan")
  assert toy.data.name == "toy_unimodal" and toy.model == "gan"
  assert (toy.latent.num_components, toy.latent.dim, toy.optim.lr) == (50, 2, 1e-4)
  assert toy.balance.kind == "count" and toy.num_steps == 8000 * 8
  cifar = load_config("cifar10")
  assert (cifar.batch_size, cifar.latent.num_components, cifar.latent.dim) == (100, 100, 100)
  assert cifar.objective == "semi_supervised" and cifar.latent.sigma_init_range == (-0.2, 0.2)
  assert (cifar.balance.kind, cifar.balance.inner_updates, cifar.balance.fixed_d_updates) == (
      "fixed", 4, 1)
  assert (cifar.optim.lr, cifar.optim.decay_start_epoch, cifar.optim.decay_end_epoch) == (
      3e-4, 800, 1200)
  sketches = load_config("sketches")
  assert (sketches.latent.sigma_reg, sketches.optim.lr, sketches.balance.g_streak) == (
      0.05, 1e-4, 5)
  assert sketches.balance.forced_d_lr_factor == 0.5 and sketches.objective == "bce"


def test_default_argument_and_unknown_words():
  assert load_config("toy").model == "deligan"
  assert load_config("toy").data.name == "toy_bimodal"
  with pytest.raises(config_lib.ConfigError, match="unknown config argument 'gann'"):
    load_config("mnist", "gann")


BAD = [
    ("model", "vae", "model"),
    ("num_steps", -1, "num_steps"),
    ("batch_size", 0, "batch_size"),
    ("log_every", 7, "log_every"),               # not a multiple of steps_per_dispatch
    ("optim.lr", -0.1, "optim.lr"),
    ("optim.mixture_lr", 0.0, "optim.mixture_lr"),
    ("optim.b1", 1.0, "optim.b1"),
    ("latent.num_components", 10, "latent.num_components"),  # batch assignment, N != B
    ("latent.assignment", "cyclic", "latent.assignment"),
    ("latent.noise", "cauchy", "latent.noise"),
    ("latent.sigma_init_range", (0.3, 0.1), "latent.sigma_init_range"),
    ("latent.sigma_reg", -1.0, "latent.sigma_reg"),
    ("data.name", "cifar", "data.name"),
    ("data.source", "web", "data.source"),
    ("data.path", "x.npy", "data.path"),         # only for data.name='points'
    ("data.num_train", -1, "data.num_train"),
    ("data.subset_seed", -2, "data.subset_seed"),
    ("data.categories", ("ant", 3), "data.categories"),
    ("network.name", "toy", "network.name"),     # MNIST data needs the MNIST networks
    ("network.conv_impl", "fft", "network.conv_impl"),
    ("network.dtype", "float16", "network.dtype"),
    ("network.matmul_precision", "tf32", "network.matmul_precision"),
    ("balance.kind", "magic", "balance.kind"),
    ("balance.inner_updates", 0, "balance.inner_updates"),
    ("balance.fixed_d_updates", 9, "balance.fixed_d_updates"),
    ("balance.forced_d_lr_factor", -0.5, "balance.forced_d_lr_factor"),
    ("objective", "wgan", "objective"),
    ("objective", "semi_supervised", "objective"),  # needs the CIFAR-10 discriminator
    ("augment", "color,rotate", "augment"),
    ("network.init_examples", 0, "network.init_examples"),
    ("network.linear_init", "he_normal", "network.linear_init"),
    ("latent.eps_draw", "per_epoch", "latent.eps_draw"),
    ("latent.sample_noise", "uniform", "latent.sample_noise"),
]


@pytest.mark.parametrize("field, value, named", BAD)
def test_bad_values_are_refused_naming_the_field(field, value, named):
  config = load_config("mnist")
  with config.unlocked():
    section, _, key = field.rpartition(".")
    (config[section] if section else config)[key] = value
  with pytest.raises(config_lib.ConfigError, match=f"config.{named}"):
    config_lib.validate(config)


def test_augmentation_is_for_images():
  config = load_config("toy")
  config.augment = "translation"
  with pytest.raises(config_lib.ConfigError, match="config.augment"):
    config_lib.validate(config)


def test_ensemble_needs_batch_assignment():
  config = load_config("toy", "ensemble")
  config.latent.assignment = "random"
  with pytest.raises(config_lib.ConfigError, match="latent.assignment"):
    config_lib.validate(config)


def test_json_round_trip():
  config = load_config("toy", "bimodal,moe")
  config.optim.mixture_lr = 3e-4
  back = config_lib.from_json(config_lib.to_json(config))
  assert back.to_dict() == config.to_dict()


def test_config_json_of_earlier_versions_loads_with_the_behaviour_it_was_trained_with():
  """A config.json written before linear_init, eps_draw and sample_noise existed."""
  for name in ("mnist", "toy"):
    saved = json.loads(config_lib.to_json(load_config(name)))
    del saved["network"]["linear_init"], saved["latent"]["eps_draw"]
    del saved["latent"]["sample_noise"]
    loaded = config_lib.from_json(json.dumps(saved))
    # Earlier versions trained every config with Glorot-uniform and one eps per update;
    # sampling for scores and pictures takes the official eps.
    assert loaded.network.linear_init == "glorot_uniform", name
    assert loaded.latent.eps_draw == "per_update", name
    assert loaded.latent.sample_noise == "official", name
  assert config_lib.from_json(json.dumps(saved)).to_dict() != load_config("toy").to_dict()

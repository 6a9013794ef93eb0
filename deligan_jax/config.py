"""The configuration contract: every field a run reads, its defaults, and its checks.

Experiment files in ``configs/`` start from :func:`base_config` and change what
their experiment needs; :func:`validate` runs before any work and names the
offending field in its error.
"""

from __future__ import annotations

import json
import re

import ml_collections
from ml_collections import config_dict

from deligan_jax.step import augment
from deligan_jax.step import balancing
from deligan_jax.models import conv
from deligan_jax.data import dataset as dataset_lib
from deligan_jax.data import datasets
from deligan_jax.step import losses
from deligan_jax import mixture
from deligan_jax.models import networks
from deligan_jax.step import optim
from deligan_jax.step import stall
from deligan_jax.models import MODELS
from deligan_jax.errors import ConfigError

DATASETS = datasets.DATASET_NAMES
NETWORKS = tuple(networks.SAMPLE_SHAPES)
# The networks each dataset's samples fit.
NETWORK_OF_DATA = {"toy_unimodal": "toy", "toy_bimodal": "toy", "points": "toy",
                   "mnist": "mnist", "cifar10": "cifar10", "sketches": "sketches"}
DATA_SOURCES = dataset_lib.SOURCES


ON_NON_FINITE = ("stop", "reseed")
# D's batch norm over real and generated samples: 'separate' D calls (the official code)
# or one 'joint' batch (docs/fidelity.md).
D_BATCH_NORM = ("separate", "joint")
EPS_DRAWS = ("per_update", "per_batch")
SAMPLE_NOISES = ("official", "training")
# The order of batches: a new permutation every epoch (official toy and MNIST code), or
# one permutation drawn before training and kept (official CIFAR-10 and sketch code).
BATCH_ORDERS = ("reshuffle", "fixed")
# Batch norm when samples are drawn for scoring: running averages, or the statistics of
# each batch of batch_size samples (the official CIFAR-10 and sketch code's samplefun).
SAMPLE_BATCH_NORMS = ("running", "batch")
# jax.default_matmul_precision of the training step (docs/devices.md).
MATMUL_PRECISIONS = ("default", "high", "highest")
# Fields that may be None besides the placeholders (whose default is None).
_NULLABLE = ("optim.decay_start_epoch", "optim.decay_end_epoch")


# A name that becomes one folder of a path: a recipe's default workdir, a study's arm.
FOLDER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")


def base_config() -> ml_collections.ConfigDict:
  """Every field with its type; values are the MNIST DeLiGAN settings of docs/paper.md §3."""
  c = ml_collections.ConfigDict()
  c.model = "deligan"
  # A named recipe of the config file when it is more than its model (mnist.py's
  # deligan_diverse); it names the default workdir and changes no setting.
  c.recipe = ""
  c.seed = 0
  c.num_steps = 40_000              # batches: 4000 epochs x 10 batches
  c.batch_size = 50
  c.steps_per_dispatch = 50         # batches fused into one device call
  c.log_every = 50                  # batches; multiples of steps_per_dispatch
  c.sample_every = 2_000
  c.checkpoint_every = 2_000
  c.keep_checkpoints = 3            # the last scheduled ones, besides the newest
  c.num_plot_samples = 49
  # One run over several processes (hosts); deligan_jax/distributed.py, docs/anywhere.md.
  c.distributed = ml_collections.ConfigDict()
  c.distributed.enabled = False
  # Left unset: detected by jax.distributed.initialize() (Cloud TPU, SLURM, Open MPI).
  c.distributed.coordinator_address = config_dict.placeholder(str)  # 'host:port' of process 0
  c.distributed.num_processes = config_dict.placeholder(int)
  c.distributed.process_id = config_dict.placeholder(int)
  c.distributed.initialization_timeout = 300  # seconds for all processes to meet
  # Seconds without a heartbeat after which a process counts as dead and the run ends.
  c.distributed.heartbeat_timeout = 100
  c.num_seeds = 1                   # S > 1: S runs (seeds seed..seed+S-1) in one program
  c.objective = "bce"               # or 'semi_supervised' (CIFAR-10's D with class logits)
  c.augment = ""                    # DiffAugment policy, e.g. 'color,translation,cutout'
  c.on_non_finite = "stop"          # or 'reseed': back to the last checkpoint, new randomness
  c.max_reseeds = 3                 # then stop after all
  c.batch_order = "reshuffle"       # see BATCH_ORDERS
  c.sample_batch_norm = "running"   # see SAMPLE_BATCH_NORMS

  # A balance where one network gets no update while the probe is flat (stall.py).
  c.stall = ml_collections.ConfigDict()
  c.stall.windows = 20              # log windows in a row; 0: never check
  c.stall.probe_tolerance = 1e-3    # largest spread of the windows' mean probe g
  c.stall.action = "warn"           # or 'stop': checkpoint and end the run

  c.data = ml_collections.ConfigDict()
  c.data.name = "mnist"
  c.data.dir = config_dict.placeholder(str)   # else $DELIGAN_DATA_DIR, else tfds
  c.data.path = config_dict.placeholder(str)  # an (N, 2) .npy for name='points'
  c.data.source = "auto"
  c.data.per_class = 50                       # MNIST: the paper's subset; 0 = all
  c.data.num_train = 2000                     # CIFAR-10: the paper's random subset; 0 = all
  c.data.subset_seed = 1                      # ... drawn by this seed's permutation
  c.data.categories = ()                      # sketches: category folders; () = all
  c.data.num_points = 400
  c.data.seed = 0
  c.data.tfds_data_dir = config_dict.placeholder(str)

  c.network = ml_collections.ConfigDict()
  c.network.name = "mnist"
  c.network.generator_width = 16
  c.network.discriminator_width = 16
  c.network.mbd_kernels = 64
  c.network.mbd_dims = 5
  c.network.expand_activation = "relu"        # GAN++'s extra layer
  c.network.toy_hidden_layers = 1             # toy MLPs: hidden layers of *_width units ...
  c.network.toy_activation = "tanh"           # ... with this activation (the paper: 1, tanh)
  # Toy MLPs' and the MNIST generator's first layer's kernels: 'uniform_unit_scaling' is the
  # official code's (TensorFlow 0.10's default); MNIST keeps Glorot (docs/fidelity.md).
  c.network.linear_init = "glorot_uniform"
  c.network.conv_impl = "auto"                # im2col on CPU, XLA's conv elsewhere
  c.network.dtype = "float32"                 # compute dtype: float32 or bfloat16 (mixed)
  # Matmuls and convolutions: 'highest' is float32 everywhere, as the official code ran;
  # 'default' lets recent NVIDIA GPUs use TF32 (faster, about 10 mantissa bits); CPUs: the same.
  c.network.matmul_precision = "highest"
  c.network.init_examples = 500               # real examples for data-dependent init
  c.network.d_batch_norm = "separate"         # see D_BATCH_NORM

  c.latent = ml_collections.ConfigDict()
  c.latent.dim = 30
  c.latent.num_components = 50
  c.latent.assignment = "batch"
  c.latent.noise = "normal"
  # 'per_update': a new eps for each of a batch's updates (official MNIST); 'per_batch': one
  # eps per batch, reused by its probes and updates (official toy).
  c.latent.eps_draw = "per_update"
  # eps of evaluation samples and training pictures: 'official' (MNIST U(-1, 1), toy N(0, 1),
  # otherwise latent.noise; models.SAMPLING_NOISE) or 'training' (latent.noise).
  c.latent.sample_noise = "official"
  c.latent.mu_init_range = (-1.0, 1.0)        # U(low, high); constant when equal
  c.latent.sigma_init_range = (0.2, 0.2)
  c.latent.sigma_reg = 1 / 3
  c.latent.train_sigma = True                 # False: sigma fixed at its initial value
  c.latent.mode_seeking_weight = 0.0          # MSGAN's term in G's loss; 0: off
  # How sigma is stored: 'free' (the official sign-free sigma), 'log' or 'softplus' (positive).
  c.latent.sigma_parameterisation = "free"
  # Learned component weights (needs 'random' assignment); the paper's are uniform and fixed.
  c.latent.learn_weights = False

  c.optim = ml_collections.ConfigDict()
  c.optim.lr = 5e-4
  c.optim.mixture_lr = config_dict.placeholder(float)  # None: the generator's
  c.optim.b1 = 0.5
  c.optim.b2 = 0.999
  c.optim.adam_epsilon = "sqrt_v"             # TensorFlow's (official toy/MNIST); optim.py
  # Linear decay to 0 between these epochs; None (both) = constant.
  c.optim.decay_start_epoch = config_dict.FieldReference(1000.0, field_type=float)
  c.optim.decay_end_epoch = config_dict.FieldReference(4000.0, field_type=float)

  c.balance = ml_collections.ConfigDict(
      {f: getattr(balancing.BalanceRule(), f) for f in balancing.BalanceRule.__dataclass_fields__})
  return c


def improved_gan_config(model: str) -> ml_collections.ConfigDict:
  """What the official CIFAR-10 and sketch scripts share (both built on Improved-GAN's code).

  Weight-normalised networks with minibatch discrimination and no batch norm in D, batch
  100, N = d = 100, the official ``adam_updates``, one permutation of the data before
  training, samples scored with batch statistics. The two configs add their data, widths,
  schedule and balancing rule.
  """
  c = base_config()
  c.model = model
  c.batch_size = 100
  c.num_plot_samples = 100
  c.batch_order = "fixed"          # one permutation before training, as the official loops
  c.sample_batch_norm = "batch"    # the official samplefun: G with batch statistics
  c.network.mbd_dims = 5
  c.network.expand_activation = "relu"
  # D has no batch norm: one call on all sets gives the same logits in fewer dispatches.
  c.network.d_batch_norm = "joint"
  c.latent.dim = 100
  c.latent.num_components = 100
  c.optim.adam_epsilon = "inside_sqrt_v_hat"  # the official nn.py's adam_updates
  return c


def parse_arg(arg: str | None, choices: dict[str, tuple[str, ...]],
              defaults: dict[str, str]) -> dict[str, str]:
  """Parses a config argument like ``'bimodal,gan'`` into named parts.

  Each comma-separated word must belong to exactly one of ``choices``' groups, and
  each group gets at most one word; groups not mentioned take their default.
  """
  parsed, given = dict(defaults), {}
  for word in filter(None, (arg or "").split(",")):
    groups = [group for group, values in choices.items() if word in values]
    if not groups:
      valid = "; ".join(f"{g}: {', '.join(v)}" for g, v in choices.items())
      raise ConfigError(f"unknown config argument {word!r}; valid ({valid})")
    if groups[0] in given:
      raise ConfigError(f"config argument {arg!r} names two {groups[0]}s, "
                        f"{given[groups[0]]!r} and {word!r}; give one")
    parsed[groups[0]] = given[groups[0]] = word
  return parsed


def _one_of(value, choices, field: str) -> None:
  _require(value in choices, field, f"must be one of {choices}, got {value!r}")


def _require(condition: bool, field: str, message: str) -> None:
  if not condition:
    raise ConfigError(f"config.{field}: {message}")


def _field_types(c: ml_collections.ConfigDict, prefix: str = "") -> dict[str, type]:
  types = {}
  for key, value in c.items():
    if isinstance(value, ml_collections.ConfigDict):
      types.update(_field_types(value, f"{prefix}{key}."))
    else:
      types[f"{prefix}{key}"] = c.get_type(key)
  return types


def _check_fields(flat: dict) -> None:
  """Refuses a flattened config holding a field :func:`base_config` lacks or a value of another type.

  ConfigDict alone lets None into any field and turns an int field into a float one.
  """
  base = base_config()
  types, defaults = _field_types(base), flatten(base.to_dict())
  for field, value in flat.items():
    _require(field in types, field, "unknown field (base_config in deligan_jax/config.py "
             "lists every field)")
    want = types[field]
    if value is None:
      _require(defaults[field] is None or field in _NULLABLE, field,
               f"must be of type {want.__name__}, got None")
    else:
      _require((isinstance(value, want) or (want is float and isinstance(value, int)))
               and (want is bool or not isinstance(value, bool)), field,
               f"must be of type {want.__name__}, got {value!r} ({type(value).__name__})")


def validate(c: ml_collections.ConfigDict) -> None:
  """Raises :class:`ConfigError` naming the first field whose value cannot work."""
  _check_fields(flatten(c.to_dict()))
  for section in (_validate_run, _validate_distributed, _validate_data, _validate_network,
                  _validate_objective, _validate_latent, _validate_optim, _validate_balance):
    section(c)


def _validate_run(c: ml_collections.ConfigDict) -> None:
  _one_of(c.model, MODELS, "model")
  _require(not c.recipe or FOLDER_NAME.fullmatch(c.recipe), "recipe",
           f"names a folder: letters, digits and _.+-, got {c.recipe!r}")
  _require(c.num_steps >= 0, "num_steps", f"must be >= 0, got {c.num_steps}")
  for field in ("batch_size", "num_seeds", "steps_per_dispatch", "log_every", "sample_every",
                "checkpoint_every", "keep_checkpoints", "num_plot_samples"):
    _require(c[field] > 0, field, f"must be positive, got {c[field]}")
  for field in ("log_every", "sample_every", "checkpoint_every"):
    _require(c[field] % c.steps_per_dispatch == 0, field,
             f"must be a multiple of steps_per_dispatch={c.steps_per_dispatch}, got {c[field]}")
  _one_of(c.on_non_finite, ON_NON_FINITE, "on_non_finite")
  _require(c.max_reseeds >= 0, "max_reseeds", f"must be >= 0, got {c.max_reseeds}")
  _require(c.stall.windows >= 0, "stall.windows", f"must be >= 0, got {c.stall.windows}")
  _require(c.stall.probe_tolerance >= 0, "stall.probe_tolerance",
           f"must be >= 0, got {c.stall.probe_tolerance}")
  _one_of(c.stall.action, stall.ACTIONS, "stall.action")
  _one_of(c.batch_order, BATCH_ORDERS, "batch_order")
  _one_of(c.sample_batch_norm, SAMPLE_BATCH_NORMS, "sample_batch_norm")


def _validate_distributed(c: ml_collections.ConfigDict) -> None:
  dist = c.distributed
  _require(dist.initialization_timeout > 0, "distributed.initialization_timeout",
           f"must be positive, got {dist.initialization_timeout}")
  _require(dist.heartbeat_timeout > 0, "distributed.heartbeat_timeout",
           f"must be positive, got {dist.heartbeat_timeout}")
  _require(dist.num_processes is None or dist.num_processes > 0, "distributed.num_processes",
           f"must be positive, got {dist.num_processes}")
  _require(dist.process_id is None or 0 <= dist.process_id < (dist.num_processes or 2**31),
           "distributed.process_id",
           f"must be in [0, num_processes={dist.num_processes}), got {dist.process_id}")
  address = dist.coordinator_address
  _require(address is None or (address.rpartition(":")[0] != ""
                               and address.rpartition(":")[2].isdigit()),
           "distributed.coordinator_address", f"must be 'host:port', got {address!r}")


def _validate_data(c: ml_collections.ConfigDict) -> None:
  d = c.data
  _one_of(d.name, DATASETS, "data.name")
  _one_of(d.source, DATA_SOURCES, "data.source")
  _require(d.name != "points" or bool(d.path), "data.path",
           "data.name='points' needs --config.data.path=FILE.npy holding an (N, 2) array")
  _require(d.name == "points" or not d.path, "data.path",
           f"is read only for data.name='points' (configs/toy.py:points), not {d.name!r}")
  for field in ("per_class", "num_train", "subset_seed"):  # integers: _check_fields
    _require(d[field] >= 0, f"data.{field}", f"must be >= 0, got {d[field]}")
  _require(all(isinstance(name, str) and name for name in d.categories), "data.categories",
           f"must be a tuple of category folder names, got {d.categories!r}")
  _require(d.num_points > 0, "data.num_points", f"must be positive, got {d.num_points}")


def _validate_network(c: ml_collections.ConfigDict) -> None:
  d = c.data
  n = c.network
  _one_of(n.name, NETWORKS, "network.name")
  wants = NETWORK_OF_DATA.get(d.name)
  _require(n.name == wants, "network.name",
           f"data.name={d.name!r} needs the {wants!r} networks, got {n.name!r}")
  for field in ("generator_width", "discriminator_width", "mbd_kernels", "mbd_dims",
                "init_examples"):
    _require(n[field] > 0, f"network.{field}", f"must be positive, got {n[field]}")
  _require(n.expand_activation in ("tanh", "relu"), "network.expand_activation",
           f"must be 'tanh' or 'relu', got {n.expand_activation!r}")
  _require(n.toy_hidden_layers > 0, "network.toy_hidden_layers",
           f"must be positive, got {n.toy_hidden_layers}")
  _require(n.toy_activation in networks.TOY_ACTIVATIONS, "network.toy_activation",
           f"must be one of {sorted(networks.TOY_ACTIVATIONS)}, got {n.toy_activation!r}")
  _require(n.conv_impl in ("auto", *conv.IMPLEMENTATIONS), "network.conv_impl",
           f"must be 'auto' or one of {conv.IMPLEMENTATIONS}, got {n.conv_impl!r}")
  _one_of(n.matmul_precision, MATMUL_PRECISIONS, "network.matmul_precision")
  _require(n.dtype in ("float32", "bfloat16"), "network.dtype",
           f"must be 'float32' or 'bfloat16', got {n.dtype!r}")
  _require(n.linear_init in networks.LINEAR_INITS, "network.linear_init",
           f"must be one of {sorted(networks.LINEAR_INITS)}, got {n.linear_init!r}")
  _one_of(n.d_batch_norm, D_BATCH_NORM, "network.d_batch_norm")


def _validate_objective(c: ml_collections.ConfigDict) -> None:
  n = c.network
  _one_of(c.objective, losses.OBJECTIVES, "objective")
  _require(c.objective == "bce" or n.name == "cifar10", "objective",
           f"'semi_supervised' needs the CIFAR-10 discriminator (class logits), not {n.name!r}")
  try:
    augmentations = augment.parse_policy(c.augment)
  except ValueError as error:
    raise ConfigError(f"config.augment: {error}") from None
  _require(not augmentations or n.name != "toy", "augment",
           "augmentations apply to images; the toy data are 2-D points")


def _validate_latent(c: ml_collections.ConfigDict) -> None:
  z = c.latent
  _require(z.dim > 0, "latent.dim", f"must be positive, got {z.dim}")
  _require(z.num_components > 0, "latent.num_components",
           f"must be positive, got {z.num_components}")
  _one_of(z.assignment, mixture.ASSIGNMENTS, "latent.assignment")
  _one_of(z.noise, mixture.NOISES, "latent.noise")
  _one_of(z.eps_draw, EPS_DRAWS, "latent.eps_draw")
  _one_of(z.sample_noise, SAMPLE_NOISES, "latent.sample_noise")
  uses_components = c.model in ("deligan", "moe", "ensemble")
  _require(not (uses_components and z.assignment == "batch")
           or z.num_components == c.batch_size, "latent.num_components",
           f"'batch' assignment uses one component per batch row, so it must equal "
           f"batch_size={c.batch_size}, got {z.num_components}")
  _require(c.model != "ensemble" or z.assignment == "batch", "latent.assignment",
           "Ensemble-GAN's generator i makes batch row i: use 'batch'")
  for field in ("mu_init_range", "sigma_init_range"):
    low_high = tuple(z[field])
    _require(len(low_high) == 2 and low_high[0] <= low_high[1], f"latent.{field}",
             f"must be (low, high) with low <= high, got {low_high}")
  _require(z.sigma_reg >= 0, "latent.sigma_reg", f"must be >= 0, got {z.sigma_reg}")
  _require(z.train_sigma or c.model == "deligan", "latent.train_sigma",
           f"only DeLiGAN has a mixture whose sigma could be fixed, not {c.model!r}")
  _require(z.mode_seeking_weight >= 0, "latent.mode_seeking_weight",
           f"must be >= 0, got {z.mode_seeking_weight}")
  _one_of(z.sigma_parameterisation, mixture.SIGMA_PARAMETERISATIONS,
          "latent.sigma_parameterisation")
  _require(z.sigma_parameterisation == "free" or z.sigma_init_range[0] > 0,
           "latent.sigma_init_range", f"must be positive for sigma_parameterisation="
           f"{z.sigma_parameterisation!r}, got {tuple(z.sigma_init_range)}")
  _require(not z.learn_weights or z.assignment == "random", "latent.learn_weights",
           "learned weights need latent.assignment='random' ('batch' gives every component "
           "the same number of rows)")


def _validate_optim(c: ml_collections.ConfigDict) -> None:
  o = c.optim
  _require(o.lr > 0, "optim.lr", f"must be positive, got {o.lr}")
  _require(o.mixture_lr is None or o.mixture_lr > 0, "optim.mixture_lr",
           f"must be positive (or None for the generator's), got {o.mixture_lr}")
  for field in ("b1", "b2"):
    _require(0 <= o[field] < 1, f"optim.{field}", f"must be in [0, 1), got {o[field]}")
  _one_of(o.adam_epsilon, optim.ADAM_EPSILONS, "optim.adam_epsilon")
  _require((o.decay_start_epoch is None) == (o.decay_end_epoch is None), "optim.decay_end_epoch",
           "set both decay_start_epoch and decay_end_epoch, or neither")
  _require(o.decay_start_epoch is None or o.decay_start_epoch < o.decay_end_epoch,
           "optim.decay_start_epoch", "must be smaller than decay_end_epoch")


def _validate_balance(c: ml_collections.ConfigDict) -> None:
  b = c.balance
  _one_of(b.kind, balancing.RULES, "balance.kind")
  _require(b.inner_updates > 0, "balance.inner_updates",
           f"must be positive, got {b.inner_updates}")
  _require(0 <= b.fixed_d_updates <= b.inner_updates, "balance.fixed_d_updates",
           f"must be in [0, inner_updates={b.inner_updates}], got {b.fixed_d_updates}")
  _require(b.forced_d_lr_factor >= 0, "balance.forced_d_lr_factor",
           f"must be >= 0, got {b.forced_d_lr_factor}")


def to_json(c: ml_collections.ConfigDict) -> str:
  return c.to_json(indent=2, sort_keys=True)


def from_json(text: str) -> ml_collections.ConfigDict:
  """The inverse of :func:`to_json`, typed like :func:`base_config`.

  Reads the configs of earlier versions too, whose ``distributed`` was a bool.
  """
  try:
    flat = flatten(json.loads(text))
  except json.JSONDecodeError as e:
    raise ConfigError(f"not a config in JSON: {e}") from e
  if isinstance(flat.get("distributed"), bool):
    flat["distributed.enabled"] = flat.pop("distributed")
  _check_fields(flat)
  c = base_config()
  c.update_from_flattened_dict(flat)
  return c


def flatten(tree: dict, prefix: str = "") -> dict:
  """``{'a': {'b': 1}}`` -> ``{'a.b': 1}``, lists as tuples (as ConfigDict holds them)."""
  flat = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      flat.update(flatten(value, f"{prefix}{key}."))
    else:
      flat[f"{prefix}{key}"] = tuple(value) if isinstance(value, list) else value
  return flat

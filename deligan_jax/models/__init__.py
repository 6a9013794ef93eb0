"""The networks: a generator fed by a latent prior, and a discriminator.

:mod:`~deligan_jax.models.gan` assembles the six models from the config;
:mod:`~deligan_jax.models.networks` holds the experiments' architectures, built from
:mod:`~deligan_jax.models.layers` and :mod:`~deligan_jax.models.conv`.
"""

from deligan_jax.models.gan import MODELS, GanModel, build, for_sampling

__all__ = ["MODELS", "GanModel", "build", "for_sampling"]

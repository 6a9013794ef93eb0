"""The mode-seeking term of MSGAN (Mao et al., CVPR 2019), for pairs of draws of one component.

MSGAN rewards G for mapping distant latent codes to distant images: with two codes
z1, z2 of the same condition, ``ratio = mean|G(z1) - G(z2)| / mean|z1 - z2|`` and G's
loss gains ``weight / (ratio + 1e-5)`` (``DCGAN-Mode-Seeking/model.py`` of the authors'
code, where the weight is 1). Here the condition is the mixture component: z2 is a second
draw of the same components, so the term pushes against a component that draws one
image whatever its eps, the collapse this remedy is tested against (docs/results.md).

G's loss keeps its adversarial part on G(z1) alone, as the official DeLiGAN step has it
(MSGAN also puts G(z2) through D); G(z2) runs in training mode with its own batch
statistics, which are then dropped, so the running averages move as without the term.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from deligan_jax.models import GanModel

EPSILON = 1e-5
# Folded into an update's latent key for the second draw of each row's component.
PAIR_TAG = 6


def ratio(model: GanModel, params, batch_stats, latent_key: jax.Array,
          fake: jax.Array) -> jax.Array:
  """MSGAN's ratio for ``fake = G(z1)``, z1 drawn from ``latent_key``, and a second draw.

  z1 and its components are drawn again from ``latent_key`` (the same key gives the
  same codes), z2 from the same components with new eps.
  """
  n = fake.shape[0]
  z1, ids = model.latent(params["mixture"], latent_key, n)
  z2, _ = model.latent(params["mixture"], jax.random.fold_in(latent_key, PAIR_TAG), n,
                       component=ids)
  fake2, _ = model.decode(params, batch_stats, z2, ids, train=True)
  return jnp.mean(jnp.abs(fake2 - fake)) / jnp.mean(jnp.abs(z2 - z1))


def term(ratio_value: jax.Array) -> jax.Array:
  """MSGAN's loss on the ratio, ``1 / (ratio + 1e-5)``: smallest for distant images."""
  return 1.0 / (ratio_value + EPSILON)

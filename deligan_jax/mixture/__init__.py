"""The DeLiGAN latent prior: a learned mixture of Gaussians (the paper's contribution).

A latent code is drawn by reparameterisation,

    z = mu[i] + sigma[i] * eps,    eps ~ N(0, I)  or  U(-1, 1),

where ``i`` is the mixture component of the sample. The N x d tables ``mu`` and
``sigma`` are ordinary trainable parameters: the generator's loss is
differentiated through ``z`` into them (dz/dmu = 1, dz/dsigma = eps). Component
weights are uniform and fixed, as in the paper, unless ``init(learn_weights=True)``.

Two ways of choosing components are supported:

* ``'batch'`` (the official code): row r of a batch uses component ``r mod N``,
  so a batch of N rows holds exactly one sample of every component;
* ``'random'`` (the paper's text): each row draws its component from the weights.

Without a penalty, sigma shrinks towards 0 and the mixture collapses onto its
means; :func:`sigma_regularizer` is the paper's ``mean((1 - sigma)^2)`` term.

Everything here is a pure function of an explicit parameter pytree and an
explicit PRNG key, so it composes with ``jax.grad``, ``jax.jit`` and ``jax.vmap``::

    params = mixture.init(jax.random.key(0), num_components=50, dim=30)
    z, ids = mixture.sample(params, jax.random.key(1), 50)
    log_p = mixture.log_prob(params, z)             # (50,)

:mod:`~deligan_jax.mixture.prior`: parameters (sigma's parameterisation, learned
weights, dtype) and the sampler; :mod:`~deligan_jax.mixture.density`: log-density,
entropy and KL. Worked examples: docs/mixture.md.
"""

from deligan_jax.mixture.density import component_log_prob
from deligan_jax.mixture.density import entropy
from deligan_jax.mixture.density import kl_divergence
from deligan_jax.mixture.density import log_prob
from deligan_jax.mixture.prior import ASSIGNMENTS
from deligan_jax.mixture.prior import NOISES
from deligan_jax.mixture.prior import SIGMA_KEYS
from deligan_jax.mixture.prior import SIGMA_PARAMETERISATIONS
from deligan_jax.mixture.prior import Assignment
from deligan_jax.mixture.prior import Initializer
from deligan_jax.mixture.prior import Noise
from deligan_jax.mixture.prior import SigmaParameterisation
from deligan_jax.mixture.prior import component_ids
from deligan_jax.mixture.prior import constant
from deligan_jax.mixture.prior import init
from deligan_jax.mixture.prior import log_weights
from deligan_jax.mixture.prior import noise
from deligan_jax.mixture.prior import sample
from deligan_jax.mixture.prior import scale
from deligan_jax.mixture.prior import sigma_regularizer
from deligan_jax.mixture.prior import uniform

__all__ = ["ASSIGNMENTS", "NOISES", "SIGMA_KEYS", "SIGMA_PARAMETERISATIONS", "Assignment",
           "Initializer", "Noise", "SigmaParameterisation", "component_ids",
           "component_log_prob", "constant", "entropy", "init", "kl_divergence", "log_prob",
           "log_weights", "noise", "sample", "scale", "sigma_regularizer", "uniform"]

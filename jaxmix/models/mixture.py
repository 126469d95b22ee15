"""Densities of the spherical Gaussian mixture over a partially observed matrix.

Row ``u`` is drawn from ``sum_k w_k N(mu_k, var_k I)``; only its observed coordinates ``C_u``
enter the likelihood, the missing ones being integrated out exactly:

.. math::

    \\log p(x_{u,C_u}) = \\operatorname{logsumexp}_k \\Big[\\log(w_k + 10^{-16})
        - \\tfrac{|C_u|}{2}\\log(2\\pi\\,\\mathrm{var}_k)
        - \\tfrac{\\lVert x_{u,C_u} - \\mu_{k,C_u}\\rVert^2}{2\\,\\mathrm{var}_k}\\Big]

The ``1e-16`` keeps the logarithm of an emptied component finite (the reference convention).
"""

from __future__ import annotations

import math

import jax.numpy as jnp
from jax import Array, lax
from jax.scipy.special import logsumexp

from jaxmix._data import MaskedData
from jaxmix.types import MixtureParams

__all__ = ["WEIGHT_EPS", "component_log_joint", "row_log_likelihood", "masked_sq_dist"]

WEIGHT_EPS = 1e-16
_HI = lax.Precision.HIGHEST


def masked_sq_dist(mu: Array, data: MaskedData) -> Array:
    """Squared distance of each row to each mean over the row's observed coordinates.

    Computed as ``|x_C|^2 - 2 x . mu + M . mu^2`` with two matrix products (clamped at zero
    against rounding).

    Args:
        mu: Means, shape ``(K, d)``.
        data: The masked matrix (``n`` rows).

    Returns:
        Array of shape ``(n, K)``.
    """
    cross = jnp.matmul(data.x, mu.T, precision=_HI)
    mu_sq = jnp.matmul(data.mask, (mu * mu).T, precision=_HI)
    return jnp.maximum(data.sq_norm[:, None] - 2.0 * cross + mu_sq, 0.0)


def component_log_joint(params: MixtureParams, data: MaskedData) -> Array:
    """``log w_k + log N(x_{u,C_u}; mu_{k,C_u}, var_k I)`` for every row and component.

    Args:
        params: Mixture parameters (``mu`` ``(K, d)``, ``var`` ``(K,)``, ``weights`` ``(K,)``).
        data: The masked matrix (``n`` rows).

    Returns:
        Array of shape ``(n, K)``; the row-wise ``logsumexp`` is the row's log-likelihood.
    """
    sq = masked_sq_dist(params.mu, data)
    log_norm = 0.5 * data.n_obs[:, None] * jnp.log(2.0 * math.pi * params.var)[None, :]
    return jnp.log(params.weights + WEIGHT_EPS)[None, :] - log_norm - sq / (2.0 * params.var)[None, :]


def row_log_likelihood(params: MixtureParams, data: MaskedData) -> Array:
    """Marginal log-likelihood of each row's observed entries, shape ``(n,)``."""
    return logsumexp(component_log_joint(params, data), axis=1)

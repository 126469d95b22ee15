"""Densities of the Gaussian mixture over a partially observed matrix.

Row ``u`` is drawn from ``sum_k w_k N(mu_k, Sigma_k)`` with ``Sigma_k = var_k I`` (``"spherical"``,
``var`` of shape ``(K,)``) or ``Sigma_k = diag(var_k1, ..., var_kd)`` (``"diag"``, ``var`` of shape
``(K, d)``); the family is read off ``var``'s shape. Only the observed coordinates ``C_u`` enter
the likelihood, the missing ones being integrated out exactly; for the spherical family:

.. math::

    \\log p(x_{u,C_u}) = \\operatorname{logsumexp}_k \\Big[\\log(w_k + 10^{-16})
        - \\tfrac{|C_u|}{2}\\log(2\\pi\\,\\mathrm{var}_k)
        - \\tfrac{\\lVert x_{u,C_u} - \\mu_{k,C_u}\\rVert^2}{2\\,\\mathrm{var}_k}\\Big]

and for the diagonal family ``|C_u| log var_k`` becomes ``sum_{l in C_u} log var_kl`` and the
squared distance is weighted by ``1 / var_kl``. The ``1e-16`` keeps the logarithm of an emptied
component finite (the reference convention).

:func:`log_prior` is the log density of the parameters under a resolved :class:`~jaxmix.Prior`
(zero without one: flat improper priors), and :func:`objective` = log-likelihood + log-prior is the
quantity EM maximises and the log density of :func:`jaxmix.models.mixture_model` with its discrete
site summed out.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
from jax import Array, lax
from jax.scipy.special import gammaln, logsumexp, xlogy

from jaxmix._data import MaskedData
from jaxmix.priors import Prior
from jaxmix.types import MixtureParams

__all__ = [
    "COVARIANCES",
    "WEIGHT_EPS",
    "component_log_joint",
    "covariance_of",
    "log_prior",
    "masked_sq_dist",
    "objective",
    "row_log_likelihood",
]

COVARIANCES = ("spherical", "diag")

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


def covariance_of(var: Array) -> str:
    """The covariance family of an unbatched ``var``: ``"spherical"`` for ``(K,)``, ``"diag"`` for
    ``(K, d)`` (a static property of the shape, usable under ``jit``)."""
    if var.ndim == 1:
        return "spherical"
    if var.ndim == 2:
        return "diag"
    raise ValueError(f"var must have shape (K,) or (K, d); got {var.shape}")


def component_log_joint(params: MixtureParams, data: MaskedData) -> Array:
    """``log w_k + log N(x_{u,C_u}; mu_{k,C_u}, Sigma_{k,C_u})`` for every row and component.

    For ``"diag"`` the quadratic form and the log normaliser are three and one matrix
    products: ``(M x^2) (1/var)^T - 2 x (mu/var)^T + M (mu^2/var)^T`` and
    ``M log(2 pi var)^T / 2``, with ``M`` the mask.

    Args:
        params: Mixture parameters: ``mu`` ``(K, d)``, ``var`` ``(K,)`` (spherical) or ``(K, d)``
            (diag), ``weights`` ``(K,)``.
        data: The masked matrix (``n`` rows).

    Returns:
        Array of shape ``(n, K)``; the row-wise ``logsumexp`` is the row's log-likelihood.
    """
    log_w = jnp.log(params.weights + WEIGHT_EPS)[None, :]
    if covariance_of(params.var) == "spherical":
        sq = masked_sq_dist(params.mu, data)
        log_norm = 0.5 * data.n_obs[:, None] * jnp.log(2.0 * math.pi * params.var)[None, :]
        return log_w - log_norm - sq / (2.0 * params.var)[None, :]
    prec = 1.0 / params.var  # (K, d)
    x, m = data.x, data.mask
    quad = (
        jnp.matmul(x * x, prec.T, precision=_HI)  # x is zero where missing, so x^2 = M x^2
        - 2.0 * jnp.matmul(x, (params.mu * prec).T, precision=_HI)
        + jnp.matmul(m, (params.mu * params.mu * prec).T, precision=_HI)
    )
    log_norm = 0.5 * jnp.matmul(m, jnp.log(2.0 * math.pi * params.var).T, precision=_HI)
    return log_w - log_norm - 0.5 * jnp.maximum(quad, 0.0)


def row_log_likelihood(params: MixtureParams, data: MaskedData) -> Array:
    """Marginal log-likelihood of each row's observed entries, shape ``(n,)``."""
    return logsumexp(component_log_joint(params, data), axis=1)


def log_prior(params: MixtureParams, prior: Prior | None) -> Array:
    """Log density of the parameters under a resolved prior (0 for ``None``: flat priors).

    .. math::

        \\log \\mathrm{Dir}(w; \\alpha)
        + \\sum_{k,l} \\log \\mathcal N(\\mu_{kl}; m_{0,l}, s_{0,l}^2)
        + \\sum \\log \\mathrm{InvGamma}(\\mathrm{var}; a, b)

    with every normalising constant included (it is NumPyro's log density of the same sites). The
    Dirichlet term uses ``xlogy``, so ``alpha = 1`` with an emptied component stays finite.

    Args:
        params: ``mu`` ``(K, d)``, ``var`` ``(K,)`` or ``(K, d)``, ``weights`` ``(K,)``.
        prior: A resolved :class:`~jaxmix.Prior` (``mean`` and ``mean_sd`` of shape ``(d,)``) in the
            parameters' units, or ``None``.

    Returns:
        A scalar.
    """
    dtype = params.mu.dtype
    if prior is None:
        return jnp.zeros((), dtype)
    alpha, m0, s0, a, b = (jnp.asarray(p, dtype) for p in prior)
    K = params.weights.shape[-1]
    log_dir = gammaln(K * alpha) - K * gammaln(alpha) + jnp.sum(xlogy(alpha - 1.0, params.weights))
    z = (params.mu - m0) / s0
    log_normal = jnp.sum(-0.5 * z * z - jnp.log(s0) - 0.5 * math.log(2.0 * math.pi))
    var = params.var
    log_ig = jnp.sum(a * jnp.log(b) - gammaln(a) - (a + 1.0) * jnp.log(var) - b / var)
    return log_dir + log_normal + log_ig


def objective(params: MixtureParams, data: MaskedData, prior: Prior | None = None) -> Array:
    """Log-likelihood plus log-prior: the objective of (MAP-)EM, a scalar.

    Args:
        params: Mixture parameters (spherical or diag).
        data: The masked matrix.
        prior: A resolved :class:`~jaxmix.Prior` in the data's units, or ``None``.

    Returns:
        ``sum_u log p(x_{u,C_u} | params) + log p(params)``.
    """
    return jnp.sum(row_log_likelihood(params, data)) + log_prior(params, prior)

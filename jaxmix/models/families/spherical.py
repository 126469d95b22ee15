"""The spherical family: ``Sigma_k = var_k I``, one variance per component.

Row ``u``'s log density under component ``k`` (observed columns ``C_u``):

.. math::

    \\log w_k - \\tfrac{|C_u|}{2}\\log(2\\pi\\,\\mathrm{var}_k)
        - \\frac{\\lVert x_{u,C_u} - \\mu_{k,C_u}\\rVert^2}{2\\,\\mathrm{var}_k}

(the squared distance is the row sum of ``(x_ul - mu_kl)^2``: the tables' centre ``mu`` with a
unit quadratic coefficient). The M-step (with ``p(k|u)`` the
responsibilities):

.. math::

    \\mu_{kl} = \\frac{\\sum_u p(k|u) [l \\in C_u] x_{ul}}{\\sum_u p(k|u) [l \\in C_u]},\\qquad
    \\mathrm{var}_k = \\frac{\\sum_u p(k|u) \\lVert x_{u,C_u}-\\mu_{k,C_u}\\rVert^2}
        {\\sum_u |C_u|\\, p(k|u)}

(the mean only where its denominator is at least 1, the reference's rule), or with a prior the
conditional MAP updates (:mod:`jaxmix.inference.em`). This is the course's model.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax.numpy as jnp
import numpy as np
from jax import Array, lax

from jaxmix.data.base import ColWeights, RowTables
from jaxmix.models.families.base import (
    WEIGHT_EPS,
    Family,
    update_means,
    update_variance,
    update_weights,
)

__all__ = ["SPHERICAL", "SphericalCov", "SphericalFamily", "SphericalStats"]

_HI = lax.Precision.HIGHEST


class SphericalCov(NamedTuple):
    """Parameters of the spherical family: ``var`` ``(K,)``, component ``k``'s covariance being
    ``var_k I``."""

    var: Any

    family = "spherical"


class SphericalStats(NamedTuple):
    """Expected sufficient statistics of the spherical (and shared) family.

    Attributes:
        n_k: ``sum_u p(k|u)``, ``(K,)``.
        obs_k: ``sum_u p(k|u) [l in C_u]``, ``(K, d)``.
        sum_k: ``sum_u p(k|u) [l in C_u] x_ul``, ``(K, d)``.
        sq_k: ``sum_u p(k|u) |x_{u,C_u}|^2``, ``(K,)``.
        n_obs_k: ``sum_u p(k|u) |C_u|``, ``(K,)``.
        n_rows: Number of rows ``n``.
    """

    n_k: Array
    obs_k: Array
    sum_k: Array
    sq_k: Array
    n_obs_k: Array
    n_rows: Array


def component_sq_dist(params: Any, sums: Array, rows: Any) -> Array:
    """``|x_{u,C_u} - mu_{k,C_u}|^2`` from the row sums of :func:`sq_tables`, ``(r, K)``
    (clamped at 0 against the rounding of the dense layout's expanded form)."""
    return jnp.maximum(sums[..., 0], 0.0)


def sq_tables(mu: Array) -> RowTables:
    """The tables whose row sums are ``sum_{l in C_u} (x_ul - mu_kl)^2``."""
    return RowTables(centre=mu.T, unit=True)


def spherical_stats(cols: tuple, totals: tuple, n_rows: Array) -> SphericalStats:
    """:class:`SphericalStats` from the column sums ``(obs, sum)`` and row totals."""
    n_k, sq_k, n_obs_k = totals
    return SphericalStats(n_k, cols[0].T, cols[1].T, sq_k, n_obs_k, n_rows)


def expected_residual(stats: SphericalStats, mu: Array) -> Array:
    """``sum_u p(k|u) |x_{u,C_u} - mu_{k,C_u}|^2`` per component, expanded, ``(K,)``."""
    return (
        stats.sq_k
        - 2.0 * jnp.sum(mu * stats.sum_k, axis=1)
        + jnp.sum(mu * mu * stats.obs_k, axis=1)
    )


def resp_totals(resp: Array, rows: Any) -> tuple[Array, Array, Array]:
    """``(sum_u p(k|u), sum_u p(k|u) |x_u|^2, sum_u p(k|u) |C_u|)``."""
    return (
        jnp.sum(resp, axis=0),
        jnp.matmul(resp.T, rows.sq_norm, precision=_HI),
        jnp.matmul(resp.T, rows.n_obs, precision=_HI),
    )


class SphericalFamily(Family):
    """``Sigma_k = var_k I`` (module :mod:`jaxmix.models.families.spherical`)."""

    name = "spherical"
    cov_type = SphericalCov
    summary = "one variance per component: Sigma_k = var_k I (the course's model)"
    conjugate = True
    one_column_variance = True

    def var_shape(self, K: int, d: int) -> tuple[int, ...]:
        return (K,)

    def from_component_variances(
        self, var: np.ndarray, weights: np.ndarray, d: int, seed: int = 0
    ) -> Any:
        return SphericalCov(np.asarray(var, np.float64))

    def noise_count(self, stats: Any, K: int, d: int) -> tuple[Any, int]:
        """One variance per component, from all its entries after its ``d`` means."""
        return np.asarray(stats.n_obs_k, np.float64)[:, None], d

    def var_kd(self, cov: Any, K: int, d: int) -> Any:
        var = np.asarray(cov.var)
        return np.broadcast_to(var[..., None], (*var.shape, d))

    def row_tables(self, params: Any) -> RowTables:
        return sq_tables(params.mu)

    def log_joint(self, params: Any, sums: Array, rows: Any) -> tuple[Array, None]:
        var = params.cov.var
        log_w = jnp.log(params.weights + WEIGHT_EPS)[None, :]
        log_norm = 0.5 * rows.n_obs[:, None] * jnp.log(2.0 * math.pi * var)[None, :]
        sq = component_sq_dist(params, sums, rows)
        return log_w - log_norm - sq / (2.0 * var)[None, :], None

    def weight_sizes(self, params: Any) -> tuple[int, int, int]:
        K = params.weights.shape[-1]
        return (K, K, 0)

    def stat_weights(self, resp: Array, aux: Any) -> ColWeights:
        K = resp.shape[1]
        return ColWeights(resp, (K, K, 0))

    def row_totals(self, resp: Array, rows: Any) -> tuple[Array, Array, Array]:
        return resp_totals(resp, rows)

    def suff_stats(
        self, cols: tuple, totals: Any, n_rows: Array, aux_totals: Any = None
    ) -> SphericalStats:
        return spherical_stats(cols, totals, n_rows)

    def m_step(self, stats: Any, params: Any, min_var: Any, prior: Any = None) -> Any:
        var_old = params.cov.var
        mu = update_means(stats.obs_k, stats.sum_k, params.mu, var_old[:, None], prior)
        var = update_variance(expected_residual(stats, mu), stats.n_obs_k, var_old, min_var, prior)
        weights = update_weights(stats.n_k, stats.n_rows, prior)
        return params._replace(mu=mu, cov=SphericalCov(var), weights=weights)

    def conditional_var(self, cov: Any) -> Array:
        return cov.var[..., :, None]

    def variance_stats(self, stats: Any, mu: Array) -> tuple[Array, Array]:
        """One variance per component: its observed entries ``N_k`` and their squared
        residuals ``R_k``."""
        return stats.n_obs_k, expected_residual(stats, mu)

    def component_sd(self, cov: Any, z: Array) -> Array:
        return jnp.sqrt(cov.var[z])[..., None]


SPHERICAL = SphericalFamily()

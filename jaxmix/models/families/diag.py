"""The diagonal family: ``Sigma_k = diag(var_k1, ..., var_kd)``, one variance per component and
column.

Row ``u``'s log density under component ``k`` is one row sum over its observed columns:

.. math::

    \\log w_k - \\tfrac12 \\sum_{l \\in C_u} \\Big[
        \\frac{(x_{ul} - \\mu_{kl})^2}{\\mathrm{var}_{kl}} + \\log(2\\pi\\,\\mathrm{var}_{kl})
    \\Big]

(the row sum of ``log(2 pi var_kl) + (x_ul - mu_kl)^2 / var_kl``: the tables' centre ``mu``,
constant ``log(2 pi var)`` and quadratic coefficient ``1 / var``). The M-step's variance is the
spherical one restricted to column ``l``: ``var_kl`` = expected squared residual / expected
count of column ``l`` in component ``k`` (or the InverseGamma's conditional mode with a prior).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax.numpy as jnp
import numpy as np
from jax import Array

from jaxmix.data.base import ColWeights, RowTables
from jaxmix.models.families.base import (
    WEIGHT_EPS,
    Family,
    update_means,
    update_variance,
    update_weights,
)

__all__ = ["DIAG", "DiagCov", "DiagFamily", "DiagStats"]


class DiagCov(NamedTuple):
    """Parameters of the diagonal family: ``var`` ``(K, d)``, component ``k``'s covariance being
    ``diag(var_k)``."""

    var: Any

    family = "diag"


class DiagStats(NamedTuple):
    """Expected sufficient statistics of the diagonal family.

    Attributes:
        n_k: ``sum_u p(k|u)``, ``(K,)``.
        obs_k: ``sum_u p(k|u) [l in C_u]``, ``(K, d)``.
        sum_k: ``sum_u p(k|u) [l in C_u] x_ul``, ``(K, d)``.
        sq_kl: ``sum_u p(k|u) [l in C_u] x_ul^2``, ``(K, d)``.
        n_rows: Number of rows ``n``.
    """

    n_k: Array
    obs_k: Array
    sum_k: Array
    sq_kl: Array
    n_rows: Array


def _expected_residual(stats: DiagStats, mu: Array) -> Array:
    """``sum_u p(k|u) [l in C_u] (x_ul - mu_kl)^2`` per component and column, expanded,
    ``(K, d)``."""
    return stats.sq_kl - 2.0 * mu * stats.sum_k + mu * mu * stats.obs_k


class DiagFamily(Family):
    """``Sigma_k = diag(var_k)`` (module :mod:`jaxmix.models.families.diag`)."""

    name = "diag"
    cov_type = DiagCov
    summary = "one variance per component and column: Sigma_k = diag(var_k1, ..., var_kd)"
    conjugate = True

    def var_shape(self, K: int, d: int) -> tuple[int, ...]:
        return (K, d)

    def cov_from_var(self, var: Any, K: int, d: int, *, batch: int = 0) -> Any:
        """As the base class; a spherical ``var`` (``(K,)`` per restart) is repeated over the
        columns."""
        var = np.asarray(var, np.float64)
        if var.shape[batch:] == (K,):
            var = np.repeat(var[..., None], d, axis=-1)
        return super().cov_from_var(var, K, d, batch=batch)

    def from_component_variances(
        self, var: np.ndarray, weights: np.ndarray, d: int, seed: int = 0
    ) -> Any:
        var = np.asarray(var, np.float64)
        return DiagCov(np.repeat(var[..., None], d, axis=-1))

    def var_kd(self, cov: Any, K: int, d: int) -> Any:
        return np.asarray(cov.var)

    def row_tables(self, params: Any) -> RowTables:
        var = params.cov.var
        return RowTables(
            centre=params.mu.T,
            a0=jnp.log(2.0 * math.pi * var).T[:, :, None],
            a2=(1.0 / var).T[:, :, None],
        )

    def log_joint(self, params: Any, sums: Array, rows: Any) -> tuple[Array, None]:
        log_w = jnp.log(params.weights + WEIGHT_EPS)[None, :]
        return log_w - 0.5 * sums[..., 0], None

    def weight_sizes(self, params: Any) -> tuple[int, int, int]:
        K = params.weights.shape[-1]
        return (K, K, K)

    def stat_weights(self, resp: Array, aux: Any) -> ColWeights:
        K = resp.shape[1]
        return ColWeights(resp, (K, K, K))

    def row_totals(self, resp: Array, rows: Any) -> Array:
        return jnp.sum(resp, axis=0)

    def suff_stats(
        self, cols: tuple, totals: Any, n_rows: Array, aux_totals: Any = None
    ) -> DiagStats:
        return DiagStats(totals, cols[0].T, cols[1].T, cols[2].T, n_rows)

    def m_step(self, stats: Any, params: Any, min_var: Any, prior: Any = None) -> Any:
        var_old = params.cov.var
        mu = update_means(stats.obs_k, stats.sum_k, params.mu, var_old, prior)
        var = update_variance(_expected_residual(stats, mu), stats.obs_k, var_old, min_var, prior)
        weights = update_weights(stats.n_k, stats.n_rows, prior)
        return params._replace(mu=mu, cov=DiagCov(var), weights=weights)

    def conditional_var(self, cov: Any) -> Array:
        return cov.var

    def variance_stats(self, stats: Any, mu: Array) -> tuple[Array, Array]:
        """One variance per component and column: ``N_kl`` and their squared residuals."""
        return stats.obs_k, _expected_residual(stats, mu)

    def component_sd(self, cov: Any, z: Array) -> Array:
        return jnp.sqrt(cov.var[z])


DIAG = DiagFamily()

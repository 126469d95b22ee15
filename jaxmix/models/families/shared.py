"""The shared family: ``Sigma_k = var I`` with one variance for every component.

It is the spherical family with the variances tied: the log density and the statistics are the
spherical ones (:mod:`jaxmix.models.families.spherical`), and the M-step pools the expected
squared residuals of all components,

.. math::

    \\mathrm{var} = \\frac{\\sum_k \\sum_u p(k|u) \\lVert x_{u,C_u}-\\mu_{k,C_u}\\rVert^2}
        {\\sum_u |C_u|} ,

(or the InverseGamma's conditional mode ``(S + 2b) / (N + 2a + 2)`` with a prior). As ``var``
shrinks to 0 the responsibilities become hard assignments to the nearest mean (with equal
weights): EM on this family tends to K-means.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax.numpy as jnp
import numpy as np
from jax import Array

from jaxmix.models.families.base import (
    update_means,
    update_variance,
    update_weights,
)
from jaxmix.models.families.spherical import (
    SPHERICAL,
    SphericalCov,
    SphericalFamily,
    expected_residual,
)

__all__ = ["SHARED", "SharedCov", "SharedFamily"]


class SharedCov(NamedTuple):
    """Parameters of the shared family: ``var`` ``()``, every component's covariance being
    ``var I``."""

    var: Any

    family = "shared"


class SharedFamily(SphericalFamily):
    """``Sigma_k = var I`` for every ``k`` (module :mod:`jaxmix.models.families.shared`): the
    spherical family with its variances tied, so its log density and statistics are the
    spherical ones and only the parameters and the M-step's variance differ."""

    name = "shared"
    cov_type = SharedCov
    summary = "one variance shared by every component: Sigma_k = var I (K-means as var -> 0)"

    def var_shape(self, K: int, d: int) -> tuple[int, ...]:
        return ()

    def cov_from_var(self, var: Any, K: int, d: int, *, batch: int = 0) -> Any:
        """As the base class; one variance per component (``(K,)`` per restart) is pooled into
        their mean."""
        var = np.asarray(var, np.float64)
        if var.shape[batch:] == (K,):
            var = var.mean(axis=-1)
        return super().cov_from_var(var, K, d, batch=batch)

    def from_component_variances(
        self, var: np.ndarray, weights: np.ndarray, d: int, seed: int = 0
    ) -> Any:
        var = np.asarray(var, np.float64)
        return SharedCov(np.sum(var * np.asarray(weights, np.float64), axis=-1))

    def noise_count(self, stats: Any, K: int, d: int) -> tuple[Any, int]:
        """One variance for all, from every entry after the ``K d`` means."""
        return np.sum(np.asarray(stats.n_obs_k, np.float64)), K * d

    def var_kd(self, cov: Any, K: int, d: int) -> Any:
        var = np.asarray(cov.var)
        return np.broadcast_to(var[..., None, None], (*var.shape, K, d))

    def permute(self, cov: Any, perm: Any) -> Any:
        return cov

    def log_joint(self, params: Any, sums: Array, rows: Any) -> tuple[Array, None]:
        K = params.weights.shape[-1]
        tied = SphericalCov(jnp.broadcast_to(params.cov.var, (K,)))
        return SPHERICAL.log_joint(params._replace(cov=tied), sums, rows)

    def m_step(self, stats: Any, params: Any, min_var: Any, prior: Any = None) -> Any:
        var_old = params.cov.var
        mu = update_means(stats.obs_k, stats.sum_k, params.mu, var_old, prior)
        resid = jnp.sum(jnp.maximum(expected_residual(stats, mu), 0.0))
        var = update_variance(resid, jnp.sum(stats.n_obs_k), var_old, min_var, prior)
        weights = update_weights(stats.n_k, stats.n_rows, prior)
        return params._replace(mu=mu, cov=SharedCov(var), weights=weights)

    def conditional_var(self, cov: Any) -> Array:
        return cov.var[..., None, None]

    def variance_stats(self, stats: Any, mu: Array) -> tuple[Array, Array]:
        """One variance: every observed entry and the residuals of all components."""
        return jnp.sum(stats.n_obs_k), jnp.sum(jnp.maximum(expected_residual(stats, mu), 0.0))

    def component_sd(self, cov: Any, z: Array) -> Array:
        return jnp.sqrt(cov.var)


SHARED = SharedFamily()

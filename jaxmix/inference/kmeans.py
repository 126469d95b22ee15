"""K-means on a partially observed matrix, the baseline the mixture is compared with.

Lloyd's algorithm with distances over each row's observed coordinates, batched over restarts
(``vmap``) inside one compiled ``lax.while_loop``. The loop order is the reference's: assign every
row to its nearest mean (ties go to the lowest index), recompute the means, and stop when the cost
decrease is at most ``tol``. The clustering is retrofitted as a mixture: ``var_k = sse_k / (d n_k)``
(with missing entries, ``d n_k`` becomes the number of observed entries in the cluster) and
``w_k = n_k / n``.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array, lax

from jaxmix import _tracing
from jaxmix._precision import highest
from jaxmix._validate import (
    check_n_components,
    check_nonneg_float,
    check_positive_int,
    check_seed,
)
from jaxmix.data import DenseArrays, Standardizer, as_data
from jaxmix.data.dense import row_sums
from jaxmix.inference.init import init_params
from jaxmix.models.families import SphericalCov
from jaxmix.models.families.spherical import component_sq_dist, sq_tables
from jaxmix.models.mixture import as_device, to_data, to_internal
from jaxmix.params import MixtureParams
from jaxmix.results import KMeansResult

__all__ = ["KMeansState", "kmeans", "kmeans_step"]

_HI = lax.Precision.HIGHEST


class KMeansState(NamedTuple):
    """State of one K-means run.

    Attributes:
        params: Retrofitted mixture of the current clustering.
        labels: Current assignment, shape ``(n,)``.
        cost: Total squared distance to the current means (``inf`` before the first step).
        n_iter: Iterations done.
        converged: Whether the stopping rule has fired.
    """

    params: MixtureParams
    labels: Array
    cost: Array
    n_iter: Array
    converged: Array


def masked_sq_dist(mu: Array, data: DenseArrays) -> Array:
    """Squared distance of each row to each mean over the row's observed coordinates,
    ``(n, K)``."""
    sums = row_sums(sq_tables(mu), data.x, data.mask, data.rows)
    return component_sq_dist(None, sums, data.rows)


def kmeans_step(state: KMeansState, data: DenseArrays, tol: Array | float) -> KMeansState:
    """Assign rows to the nearest mean, recompute the means and the retrofitted mixture."""
    mu_old = state.params.mu
    K = mu_old.shape[0]
    labels = jnp.argmin(masked_sq_dist(mu_old, data), axis=1).astype(jnp.int32)
    onehot = jax.nn.one_hot(labels, K, dtype=data.x.dtype)
    obs_k = jnp.matmul(onehot.T, data.mask, precision=_HI)
    sum_k = jnp.matmul(onehot.T, data.x, precision=_HI)
    has = obs_k > 0
    mu = jnp.where(has, sum_k / jnp.where(has, obs_k, 1.0), mu_old)
    sq = masked_sq_dist(mu, data)
    sse_k = jnp.sum(onehot * sq, axis=0)
    cost = jnp.sum(sse_k)
    n_obs_k = jnp.matmul(onehot.T, data.n_obs, precision=_HI)
    pooled = cost / jnp.maximum(jnp.sum(data.n_obs), 1.0)
    var = jnp.where(n_obs_k > 0, sse_k / jnp.where(n_obs_k > 0, n_obs_k, 1.0), pooled)
    var = jnp.maximum(var, jnp.finfo(var.dtype).eps)
    n_k = jnp.sum(onehot, axis=0)
    params = MixtureParams(mu=mu, cov=SphericalCov(var), weights=n_k / data.x.shape[0])
    converged = (state.n_iter > 0) & (state.cost - cost <= tol)
    return KMeansState(params, labels, cost, state.n_iter + 1, converged)


def _run(params: MixtureParams, data: DenseArrays, tol, max_iter: int) -> KMeansState:
    dtype = data.x.dtype
    state = KMeansState(
        params=as_device(params, dtype),
        labels=jnp.zeros(data.x.shape[0], jnp.int32),
        cost=jnp.asarray(jnp.inf, dtype),
        n_iter=jnp.asarray(0, jnp.int32),
        converged=jnp.asarray(False),
    )

    def cond(s):
        return ~s.converged & (s.n_iter < max_iter)

    return lax.while_loop(cond, lambda s: kmeans_step(s, data, tol), state)


@functools.partial(jax.jit, static_argnames=("max_iter",))
@highest
def _kmeans_batched(params, data, tol, *, max_iter):
    _tracing.note("kmeans")
    run = functools.partial(_run, max_iter=max_iter)
    return jax.vmap(run, in_axes=(0, None, None))(params, data, tol)


def kmeans(
    X: Any,
    K: int,
    *,
    mask: Any = None,
    n_init: int = 1,
    seed: int = 0,
    init: Any = "random_rows",
    tol: float = 1e-4,
    max_iter: int = 1000,
) -> KMeansResult:
    """K-means clustering of the rows of a partially observed matrix.

    Distances use each row's observed coordinates only. With ``init="random_rows"`` (the default)
    the initial means are those of :func:`jaxmix.fit_em`'s reference initialisation, so the two
    can be compared start for start; restart ``r`` uses seed ``seed + r`` and the lowest cost wins.

    Args:
        X: Array-like ``(n, d)``; ``NaN`` marks a missing entry (a small
            :class:`~jaxmix.SparseRatings` is made dense, up to
            :data:`jaxmix.data.MAX_DENSE_ENTRIES` entries).
        K: Number of clusters, ``1 <= K <= n``.
        mask: Optional boolean ``(n, d)``, ``True`` = observed.
        n_init: Number of restarts.
        seed: Base seed.
        init: ``"random_rows"``, ``"kmeans++"`` or explicit means (a ``MixtureParams`` or result).
        tol: Stop when the cost decreases by at most ``tol`` (data units squared).
        max_iter: Iteration cap per restart.

    Returns:
        A :class:`~jaxmix.KMeansResult` with the retrofitted mixture, ``cost`` and ``labels``.

    Example:
        >>> import numpy as np, jaxmix
        >>> X = np.array([[0.0, 0.0], [0.1, 0.0], [5.0, 5.0], [5.1, 5.0]])
        >>> res = jaxmix.kmeans(X, 2, n_init=3)
        >>> sorted(np.bincount(res.labels).tolist())
        [2, 2]
    """
    layout = as_data(X, mask, method="dense", what="kmeans")
    K = check_n_components(K, layout.shape[0])
    n_init = check_positive_int(n_init, "n_init")
    max_iter = check_positive_int(max_iter, "max_iter")
    seed = check_seed(seed)
    tol = check_nonneg_float(tol, "tol")

    start = init_params(init, layout, K, n_init=n_init, seed=seed)
    std = Standardizer.fit(layout.summary())
    data = layout.device(std)
    dtype = data.dtype
    final = _kmeans_batched(
        as_device(to_internal(start, std), dtype),
        data,
        jnp.asarray(tol / std.scale**2, dtype),
        max_iter=max_iter,
    )
    final = jax.device_get(final)
    costs = np.asarray(final.cost, np.float64) * std.scale**2
    best = int(np.argmin(costs))
    return KMeansResult(
        params=to_data(jax.tree.map(lambda a: np.asarray(a)[best], final.params), std),
        cost=float(costs[best]),
        labels=np.asarray(final.labels[best]),
        restart_costs=costs,
        best_restart=best,
        n_iter=int(final.n_iter[best]),
        converged=bool(final.converged[best]),
    )

"""Starting parameters for EM and K-means (host-side NumPy, one set per restart).

Both named methods read the data through its layout (:mod:`jaxmix.data`), so they give the same
start for a dense matrix and for its triples. Restart ``r`` of a call with ``seed=s`` uses seed
``s + r``, so a batched call with ``n_init=R`` starts restart ``r`` exactly where a single call
with ``seed=s + r`` starts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import numpy as np

from jaxmix.models.families import as_params, get_family
from jaxmix.params import MixtureParams

__all__ = [
    "INIT_METHODS",
    "check_params",
    "init_params",
    "kmeans_plus_plus",
    "random_rows",
    "random_rows_variance",
]

INIT_METHODS = ("kmeans++", "random_rows")


def random_rows_variance(
    mu: np.ndarray, total_sq: float, col_sums: np.ndarray, n: int
) -> np.ndarray:
    """``var_k = mean over all n d entries of (X0 - mu_k)^2``, in closed form.

    With ``X0`` the matrix with missing entries as 0:
    ``(sum X0^2 - 2 sum_l colsum_l mu_kl + n |mu_k|^2) / (n d)``.

    Args:
        mu: ``(K, d)`` means.
        total_sq: ``sum X0^2``.
        col_sums: ``(d,)`` column sums of ``X0``.
        n: Number of rows.

    Returns:
        ``(K,)`` variances.
    """
    d = mu.shape[1]
    return (total_sq - 2.0 * mu @ col_sums + n * np.sum(mu * mu, axis=1)) / (float(n) * d)


def random_rows(data: Any, K: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The reference initialisation.

    ``numpy.random.RandomState(seed).choice(n, K, replace=False)`` picks K rows as the means
    (their missing entries taken as 0); ``var_k`` is the mean over all ``n * d`` entries of
    ``(X0 - mu_k)^2`` with ``X0`` the matrix with missing entries as 0 (see
    :func:`random_rows_variance`); the weights are uniform.

    Args:
        data: A layout (:func:`jaxmix.data.as_data`).
        K: Number of components.
        seed: Seed of the legacy NumPy generator.

    Returns:
        ``(mu (K, d), var (K,), weights (K,))``, float64.
    """
    n, d = data.shape
    idx = np.random.RandomState(seed).choice(n, K, replace=False)
    mu = np.zeros((K, d))
    for k, i in enumerate(idx):
        cols, vals = data.row(int(i))
        mu[k, cols] = vals
    summary = data.summary()
    var = random_rows_variance(mu, summary.sq_total, summary.total, n)
    return mu, var, np.full(K, 1.0 / K)


def kmeans_plus_plus(
    data: Any, K: int, seed: int, min_var: float = 0.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """k-means++ seeding adapted to missing entries (the default for :func:`jaxmix.fit_em`).

    Means are rows chosen by D^2 sampling (the first uniformly), with their missing entries
    filled by the column means; distances use each row's observed coordinates only (mean squared
    difference per observed entry, so rows with many entries are not favoured). Each row is then
    assigned to its nearest chosen mean: ``var_k`` is the mean squared residual per observed entry
    of the rows assigned to ``k`` (the pooled value when fewer than two rows are), floored at
    ``min_var``; the weights are the shares of rows (at least one row each).

    Args:
        data: A layout (:func:`jaxmix.data.as_data`).
        K: Number of components.
        seed: Seed of ``numpy.random.default_rng``.
        min_var: Variance floor.

    Returns:
        ``(mu (K, d), var (K,), weights (K,))``, float64.
    """
    n, d = data.shape
    col_mean = data.summary().column_means()
    n_obs = data.row_counts()

    def centre_of(i: int) -> np.ndarray:
        c = col_mean.copy()
        cols, vals = data.row(i)
        c[cols] = vals
        return c

    rng = np.random.default_rng(seed)
    chosen = [int(rng.integers(n))]
    centres = [centre_of(chosen[0])]
    best = data.mean_sq_dist(centres[0])
    dists = [best]
    for _ in range(1, K):
        probs = best.copy()
        probs[chosen] = 0.0
        total = probs.sum()
        if total > 0 and np.isfinite(total):
            nxt = int(rng.choice(n, p=probs / total))
        else:  # every remaining row sits on a chosen centre: pick uniformly among the rest
            nxt = int(rng.choice(np.setdiff1d(np.arange(n), chosen)))
        chosen.append(nxt)
        centres.append(centre_of(nxt))
        dists.append(data.mean_sq_dist(centres[-1]))
        best = np.minimum(best, dists[-1])
    dist = np.stack(dists, axis=1)  # (n, K) mean squared residual per observed entry
    labels = np.argmin(dist, axis=1)
    sse = dist * n_obs[:, None]
    pooled = sse[np.arange(n), labels].sum() / max(n_obs.sum(), 1)
    var = np.empty(K)
    share = np.empty(K)
    for k in range(K):
        members = labels == k
        m_obs = n_obs[members].sum()
        var[k] = sse[members, k].sum() / m_obs if members.sum() >= 2 and m_obs > 0 else pooled
        share[k] = max(members.sum(), 1)
    var = np.maximum(var, min_var)
    var = np.where(var > 0, var, 1.0)
    return np.stack(centres), var, share / share.sum()


def check_params(init: Any, K: int, d: int, covariance: Any = "spherical") -> MixtureParams:
    """Validate explicit starting parameters; returns a batched float64 copy ``(R, K, ...)``.

    ``init`` is anything :func:`~jaxmix.models.families.as_params` reads. Its variances are read
    for the family of ``covariance`` (:meth:`~jaxmix.models.families.base.Family.cov_from_var`:
    a spherical ``(K,)`` is repeated over the columns for ``"diag"`` and pooled for
    ``"shared"``; any other shape than the family's is refused).
    """
    family = get_family(covariance)
    raw = init if isinstance(init, MixtureParams) else as_params(init, what="init", forms=True)
    mu = np.array(raw.mu, dtype=np.float64)
    var = np.array(raw.var, dtype=np.float64)
    weights = np.array(raw.weights, dtype=np.float64)
    if mu.ndim == 2:
        mu, var, weights = mu[None], var[None], weights[None]
    if mu.ndim != 3 or mu.shape[1:] != (K, d):
        raise ValueError(f"init mu must have shape ({K}, {d}) (or (R, {K}, {d})); got {mu.shape}")
    R = mu.shape[0]
    if var.shape[:1] != (R,):
        raise ValueError(
            f"init var must have shape {family.var_shape(K, d)} per restart for "
            f"covariance={family.name!r}; got {var.shape}"
        )
    if type(raw.cov) is family.cov_type and family.cov_type is not tuple:
        # typed parameters of this family: keep every field (a factor start keeps its loadings)
        typed = (
            raw.cov
            if np.ndim(raw.mu) == 3
            else jax.tree.map(lambda a: np.asarray(a)[None], raw.cov)
        )
    else:
        typed = None
    cov = family.cov_from_var(var, K, d, batch=1)
    if weights.shape != (R, K):
        raise ValueError(f"init weights must have shape ({K},) per restart; got {weights.shape}")
    if not (np.isfinite(mu).all() and np.isfinite(cov.var).all() and np.isfinite(weights).all()):
        raise ValueError("init parameters must be finite")
    if not (cov.var > 0).all():
        raise ValueError("init var must be strictly positive")
    if typed is not None:  # the variances checked above; the family checks its other fields
        cov = family.check_cov(typed, K, d, batch=1, label="init")
    if (weights < 0).any() or not np.allclose(weights.sum(axis=1), 1.0, atol=1e-6):
        raise ValueError("init weights must be non-negative and sum to 1")
    return MixtureParams(mu, cov, weights)


def init_params(
    init: Any,
    data: Any,
    K: int,
    *,
    n_init: int,
    seed: int,
    min_var: float = 0.0,
    covariance: Any = "spherical",
) -> MixtureParams:
    """Starting parameters for every restart, batched along a leading axis of size ``R``.

    Args:
        init: ``"kmeans++"``, ``"random_rows"``, explicit parameters (``MixtureParams``, a
            mapping, a ``(mu, var, weights)`` tuple, optionally with a leading restart axis) or a
            previous result.
        data: A layout (:func:`jaxmix.data.as_data`).
        K: Number of components.
        n_init: Number of restarts for a named method; explicit parameters bring their own
            (``n_init`` must then be 1 or match).
        seed: Restart ``r`` uses ``seed + r``.
        min_var: Variance floor (used by k-means++).
        covariance: The covariance family; the named methods' one variance per component is
            made the family's (:meth:`~jaxmix.models.families.base.Family.from_component_variances`:
            repeated over the columns for ``"diag"``, the weighted mean for ``"shared"``).

    Returns:
        :class:`~jaxmix.MixtureParams` of float64 arrays with a leading restart axis ``R``.
    """
    family = get_family(covariance)
    d = data.shape[1]
    if isinstance(init, str):
        if init == "random_rows":
            sets = [random_rows(data, K, seed + r) for r in range(n_init)]
        elif init == "kmeans++":
            sets = [kmeans_plus_plus(data, K, seed + r, min_var) for r in range(n_init)]
        else:
            raise ValueError(
                f"init must be one of {INIT_METHODS} or explicit parameters; got {init!r}"
            )
        covs = [
            family.from_component_variances(var, w, d, seed + r)
            for r, (_, var, w) in enumerate(sets)
        ]
        mu, _, weights = (np.stack(p) for p in zip(*sets, strict=True))
        cov = jax.tree.map(lambda *parts: np.stack(parts), *covs)
        return MixtureParams(mu, cov, weights)
    explicit = (
        isinstance(init, (MixtureParams, Mapping))
        or (isinstance(init, tuple) and len(init) == 3)
        or isinstance(getattr(init, "params", None), MixtureParams)
    )
    if not explicit:
        raise TypeError(
            f"init must be one of {INIT_METHODS}, a MixtureParams (or a mapping with mu, var "
            f"and weights), or a previous result; got {type(init).__name__}"
        )
    params = check_params(init, K, d, family)
    R = params.mu.shape[0]
    if n_init not in (1, R):
        raise ValueError(f"n_init={n_init} does not match the {R} explicit starting point(s) given")
    return params

"""Starting parameters for EM and K-means (host-side NumPy, one set per restart).

Restart ``r`` of a call with ``seed=s`` uses seed ``s + r``, so a batched call with ``n_init=R``
starts restart ``r`` exactly where a single call with ``seed=s + r`` starts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from jaxmix.types import MixtureParams

__all__ = ["INIT_METHODS", "init_params", "kmeans_plus_plus", "random_rows"]

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


def random_rows(values: np.ndarray, observed: np.ndarray, K: int, seed: int) -> MixtureParams:
    """The reference initialisation.

    ``numpy.random.RandomState(seed).choice(n, K, replace=False)`` picks K rows as the means
    (their missing entries taken as 0); ``var_k`` is the mean over all ``n * d`` entries of
    ``(X0 - mu_k)^2`` with ``X0`` the matrix with missing entries as 0 (see
    :func:`random_rows_variance`); the weights are uniform.

    Args:
        values: ``(n, d)`` float64 matrix, ``NaN`` where missing.
        observed: ``(n, d)`` boolean mask.
        K: Number of components.
        seed: Seed of the legacy NumPy generator.

    Returns:
        :class:`MixtureParams` of float64 NumPy arrays.
    """
    n, _ = values.shape
    x0 = np.where(observed, values, 0.0)
    idx = np.random.RandomState(seed).choice(n, K, replace=False)
    mu = x0[idx].copy()
    var = random_rows_variance(mu, float(np.sum(x0 * x0)), x0.sum(axis=0), n)
    return MixtureParams(mu, var, np.full(K, 1.0 / K))


def seed_kmeans_plus_plus(
    n: int,
    K: int,
    seed: int,
    centre_of: Callable[[int], np.ndarray],
    mean_sq_dist: Callable[[np.ndarray], np.ndarray],
    n_obs: np.ndarray,
    min_var: float = 0.0,
) -> MixtureParams:
    """k-means++ seeding over any storage of the matrix (dense or triples).

    Args:
        n: Number of rows.
        K: Number of components.
        seed: Seed of ``numpy.random.default_rng``.
        centre_of: Row index -> that row as a ``(d,)`` centre, missing entries filled.
        mean_sq_dist: Centre ``(d,)`` -> ``(n,)`` mean squared difference of every row to it over
            the row's observed entries (0 for a row with none).
        n_obs: ``(n,)`` observed entries per row.
        min_var: Variance floor.

    Returns:
        :class:`MixtureParams` of float64 NumPy arrays (see :func:`kmeans_plus_plus`).
    """
    rng = np.random.default_rng(seed)
    chosen = [int(rng.integers(n))]
    centres = [centre_of(chosen[0])]
    best = mean_sq_dist(centres[0])
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
        dists.append(mean_sq_dist(centres[-1]))
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
    return MixtureParams(np.stack(centres), var, share / share.sum())


def kmeans_plus_plus(
    values: np.ndarray, observed: np.ndarray, K: int, seed: int, min_var: float = 0.0
) -> MixtureParams:
    """k-means++ seeding adapted to missing entries (the default for :func:`jaxmix.fit_em`).

    Means are rows chosen by D^2 sampling (the first uniformly), with their missing entries
    filled by the column means; distances use each row's observed coordinates only (mean squared
    difference per observed entry, so rows with many entries are not favoured). Each row is then
    assigned to its nearest chosen mean: ``var_k`` is the mean squared residual per observed entry
    of the rows assigned to ``k`` (the pooled value when fewer than two rows are), floored at
    ``min_var``; the weights are the shares of rows (at least one row each).

    Args:
        values: ``(n, d)`` float64 matrix, ``NaN`` where missing.
        observed: ``(n, d)`` boolean mask.
        K: Number of components.
        seed: Seed of ``numpy.random.default_rng``.
        min_var: Variance floor.

    Returns:
        :class:`MixtureParams` of float64 NumPy arrays.
    """
    n, d = values.shape
    counts = observed.sum(axis=0)
    x0 = np.where(observed, values, 0.0)
    col_mean = np.divide(x0.sum(axis=0), counts, out=np.zeros(d), where=counts > 0)
    filled = np.where(observed, values, col_mean)
    m = observed.astype(np.float64)
    sq_norm = np.sum(x0 * x0, axis=1)
    n_obs = observed.sum(axis=1)

    def mean_sq_dist(centre: np.ndarray) -> np.ndarray:
        # sum_l M (x - c)^2 = |x_C|^2 - 2 x0 . c + M . c^2 (two matrix-vector products)
        sq = np.maximum(sq_norm - 2.0 * (x0 @ centre) + m @ (centre * centre), 0.0)
        return np.divide(sq, n_obs, out=np.zeros(n), where=n_obs > 0)

    return seed_kmeans_plus_plus(
        n, K, seed, lambda i: filled[i].copy(), mean_sq_dist, n_obs, min_var
    )


def _explicit(init: Any) -> MixtureParams:
    if isinstance(init, MixtureParams):
        return init
    params = getattr(init, "params", None)
    if isinstance(params, MixtureParams):  # a previous EMResult / KMeansResult
        return params
    if isinstance(init, Mapping):
        try:
            return MixtureParams(init["mu"], init["var"], init["weights"])
        except KeyError as err:
            raise ValueError(f"init mapping lacks the key {err.args[0]!r}") from None
    if isinstance(init, tuple) and len(init) == 3:
        return MixtureParams(*init)
    raise TypeError(
        f"init must be one of {INIT_METHODS}, a MixtureParams (or a mapping with mu, var and "
        f"weights), or a previous result; got {type(init).__name__}"
    )


def check_params(
    params: MixtureParams, K: int, d: int, covariance: str = "spherical"
) -> MixtureParams:
    """Validate explicit starting parameters; returns a batched float64 copy ``(R, K, ...)``.

    For ``covariance="diag"`` a spherical ``var`` (``(K,)`` per restart) is repeated over the
    columns; a diagonal ``var`` is rejected for ``"spherical"``.
    """
    mu = np.array(params.mu, dtype=np.float64)
    var = np.array(params.var, dtype=np.float64)
    weights = np.array(params.weights, dtype=np.float64)
    if mu.ndim == 2:
        mu, var, weights = mu[None], var[None], weights[None]
    if mu.ndim != 3 or mu.shape[1:] != (K, d):
        raise ValueError(f"init mu must have shape ({K}, {d}) (or (R, {K}, {d})); got {mu.shape}")
    R = mu.shape[0]
    if covariance == "diag" and var.shape == (R, K):
        var = np.repeat(var[:, :, None], d, axis=2)
    want = (R, K) if covariance == "spherical" else (R, K, d)
    if var.shape != want:
        per = f"({K},)" if covariance == "spherical" else f"({K},) or ({K}, {d})"
        raise ValueError(
            f"init var must have shape {per} per restart for covariance={covariance!r}; got "
            f"{var.shape}"
        )
    if weights.shape != (R, K):
        raise ValueError(f"init weights must have shape ({K},) per restart; got {weights.shape}")
    if not (np.isfinite(mu).all() and np.isfinite(var).all() and np.isfinite(weights).all()):
        raise ValueError("init parameters must be finite")
    if not (var > 0).all():
        raise ValueError("init var must be strictly positive")
    if (weights < 0).any() or not np.allclose(weights.sum(axis=1), 1.0, atol=1e-6):
        raise ValueError("init weights must be non-negative and sum to 1")
    return MixtureParams(mu, var, weights)


def init_params(
    init: Any,
    values: np.ndarray,
    observed: np.ndarray,
    K: int,
    *,
    n_init: int,
    seed: int,
    min_var: float = 0.0,
    covariance: str = "spherical",
) -> MixtureParams:
    """Starting parameters for every restart, batched along a leading axis of size ``R``.

    Args:
        init: ``"kmeans++"``, ``"random_rows"``, explicit parameters (``MixtureParams``, a
            mapping, a ``(mu, var, weights)`` tuple, optionally with a leading restart axis) or a
            previous result.
        values: ``(n, d)`` float64 matrix with ``NaN`` where missing.
        observed: ``(n, d)`` boolean mask.
        K: Number of components.
        n_init: Number of restarts for a named method; explicit parameters bring their own
            (``n_init`` must then be 1 or match).
        seed: Restart ``r`` uses ``seed + r``.
        min_var: Variance floor (used by k-means++).
        covariance: ``"spherical"`` or ``"diag"``; for ``"diag"`` the named methods' variance
            ``var_k`` is repeated over the columns (``var_kl = var_k``).

    Returns:
        :class:`MixtureParams` of float64 arrays with shapes ``(R, K, d)``, ``(R, K)`` (or
        ``(R, K, d)`` for diag), ``(R, K)``.
    """
    d = values.shape[1]
    if isinstance(init, str):
        if init == "random_rows":
            sets = [random_rows(values, observed, K, seed + r) for r in range(n_init)]
        elif init == "kmeans++":
            sets = [kmeans_plus_plus(values, observed, K, seed + r, min_var) for r in range(n_init)]
        else:
            raise ValueError(
                f"init must be one of {INIT_METHODS} or explicit parameters; got {init!r}"
            )
        params = MixtureParams(*(np.stack(p) for p in zip(*sets, strict=True)))
        if covariance == "diag":
            params = params._replace(var=np.repeat(params.var[:, :, None], d, axis=2))
        return params
    params = check_params(_explicit(init), K, d, covariance)
    R = params.mu.shape[0]
    if n_init not in (1, R):
        raise ValueError(f"n_init={n_init} does not match the {R} explicit starting point(s) given")
    return params

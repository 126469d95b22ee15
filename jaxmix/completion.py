"""Filling the missing entries of a matrix from a fitted mixture.

Dense matrices are completed whole; for a :class:`~jaxmix.SparseRatings` (or a dense matrix too)
ask for chosen entries with ``rows=`` and ``cols=``: the responsibilities come from a sparse
E-step and only the asked-for predictions are formed, so nothing ``n x d`` is allocated.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np

from jaxmix._data import Standardizer, validate_matrix
from jaxmix.inference.em import e_step
from jaxmix.sparse import SparseRatings, check_entries
from jaxmix.types import MixtureParams

#: Asked-for entries predicted at once (bounds the ``(m, K)`` temporaries).
_ENTRY_CHUNK = 1 << 20

__all__ = ["complete", "responsibilities"]


def _params_of(result: Any) -> MixtureParams:
    params = result if isinstance(result, MixtureParams) else getattr(result, "params", None)
    if not isinstance(params, MixtureParams):
        raise TypeError(
            f"result must be a fitted result (e.g. from fit_em) or MixtureParams; got "
            f"{type(result).__name__}"
        )
    return MixtureParams(*(np.asarray(p, np.float64) for p in params))


def _check_fit(params: MixtureParams, d: int, *, batch: int = 0, label: str = "fitted") -> None:
    """Refuse parameters no fit can produce (wrong shapes, NaN, non-positive variances...).

    ``batch`` leading axes (e.g. ``(chain, draw)`` of posterior draws) are allowed on every field.
    """
    mu, var, weights = (np.asarray(p) for p in params)
    noun = "draws'" if label == "draws" else label
    if mu.ndim != batch + 2 or mu.shape[-1] != d:
        raise ValueError(f"the {noun} means have shape {mu.shape} but X has {d} columns")
    lead, K = mu.shape[:batch], mu.shape[-2]
    if weights.shape != (*lead, K):
        raise ValueError(
            f"{label} weights have shape {weights.shape}; expected {(*lead, K)} (one per "
            f"component of mu, shape {mu.shape})"
        )
    if var.shape not in ((*lead, K), (*lead, K, d)):
        raise ValueError(
            f"the {noun} variances have shape {var.shape}; expected {(*lead, K)} (spherical) or "
            f"{(*lead, K, d)} (diag)"
        )
    if not np.all(np.isfinite(mu)):
        raise ValueError(f"{label} mu must be finite")
    if not np.all(np.isfinite(var) & (var > 0)):
        raise ValueError(f"{label} var must be finite and positive")
    if not (np.all(np.isfinite(weights) & (weights >= 0)) and np.all(weights.sum(axis=-1) > 0)):
        raise ValueError(f"{label} weights must be finite and non-negative (not all zero)")


def _sparse_posterior(S: SparseRatings, params: MixtureParams) -> np.ndarray:
    from jaxmix.inference.sparse_em import sparse_responsibilities

    _check_fit(params, S.shape[1])
    return _renormalise(sparse_responsibilities(S, params)[0])


def _renormalise(resp: Any) -> np.ndarray:
    """Responsibilities as float64 rows summing to one (float32 ones sum to 1 +- 1e-7)."""
    resp = np.asarray(resp, np.float64)
    return resp / resp.sum(axis=1, keepdims=True)


def _posterior(values: np.ndarray, observed: np.ndarray, params: MixtureParams):
    d = values.shape[1]
    _check_fit(params, d)
    std = Standardizer.fit(values, observed) if observed.any() else Standardizer(np.zeros(d), 1.0)
    internal = std.to_internal(params)
    data = std.data(values, observed)
    dtype = data.x.dtype
    resp, _ = e_step(MixtureParams(*(jnp.asarray(p, dtype) for p in internal)), data)
    return _renormalise(resp)


def responsibilities(X: Any, result: Any, *, mask: Any = None) -> np.ndarray:
    """Posterior component probabilities ``p(k | row)`` of the rows of ``X``.

    Args:
        X: Array-like ``(n, d)`` with ``NaN`` at missing entries (need not be the fit data), or a
            :class:`~jaxmix.SparseRatings` (sparse E-step; rows without entries get the weights).
        result: A fitted result or :class:`~jaxmix.MixtureParams`.
        mask: Optional boolean ``(n, d)``, ``True`` = observed.

    Returns:
        Array of shape ``(n, K)`` whose rows sum to one.
    """
    if isinstance(X, SparseRatings):
        if mask is not None:
            raise TypeError("mask does not apply to a SparseRatings")
        return _sparse_posterior(X, _params_of(result))
    values, observed = validate_matrix(X, mask, allow_all_missing=True)
    return _posterior(values, observed, _params_of(result))


def complete(
    X: Any,
    result: Any,
    *,
    mask: Any = None,
    return_std: bool = False,
    rows: Any = None,
    cols: Any = None,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Fill the missing entries of ``X`` with their conditional mean under a fitted mixture.

    .. math::

        \\hat x_{ul} = \\sum_k p(k \\mid x_{u,C_u})\\, \\mu_{kl}, \\qquad
        \\mathrm{sd}_{ul}^2 = \\sum_k p(k \\mid x_{u,C_u}) (\\mathrm{var}_{kl} + \\mu_{kl}^2)
            - \\hat x_{ul}^2

    with ``var_kl = var_k`` for a spherical mixture.

    Observed entries are copied through unchanged (their standard deviation is 0). The
    responsibilities come from an E-step of the given parameters on ``X``.

    Two forms: without ``rows`` / ``cols`` the whole completed ``(n, d)`` matrix (for a
    :class:`~jaxmix.SparseRatings` this materialises it: small matrices only); with them, the
    predictions at those entries only, in ``O((n + m) K)`` memory for ``m`` entries (the way to
    score held-out ratings of a large sparse matrix).

    Args:
        X: Array-like ``(n, d)``; ``NaN`` marks the entries to fill. It is not modified. Or a
            :class:`~jaxmix.SparseRatings` (its triples are the observed entries).
        result: A fitted result (from :func:`jaxmix.fit_em`, :func:`jaxmix.kmeans`, ...) or
            :class:`~jaxmix.MixtureParams`.
        mask: Optional boolean ``(n, d)``, ``True`` = observed (unobserved entries are filled);
            dense ``X`` only.
        return_std: Also return the predictive standard deviation.
        rows, cols: Optional integer arrays of equal length ``m``: the entries to predict
            (observed ones are returned as observed, with standard deviation 0).

    Returns:
        The completed ``(n, d)`` float64 array, or with ``rows`` / ``cols`` the ``(m,)``
        predictions; with ``return_std`` a second array of the same shape of predictive standard
        deviations (0 at observed entries).

    Example:
        >>> import numpy as np, jaxmix
        >>> X = np.array([[1.0, 2.0], [1.0, np.nan], [5.0, 6.0], [np.nan, 6.0]])
        >>> filled = jaxmix.complete(X, jaxmix.fit_em(X, 2, min_var=0.01))
        >>> bool(np.isnan(filled).any())
        False
        >>> S = jaxmix.sparse_ratings(X)
        >>> jaxmix.complete(S, jaxmix.fit_em(S, 2, min_var=0.01), rows=[1, 3], cols=[1, 0]).shape
        (2,)
    """
    if (rows is None) != (cols is None):
        raise TypeError("give both rows and cols (the entries to predict), or neither")
    params = _params_of(result)
    if isinstance(X, SparseRatings):
        if mask is not None:
            raise TypeError("mask does not apply to a SparseRatings")
        if rows is None:
            return complete(X.to_dense(), params, return_std=return_std)
        r, c = check_entries(rows, cols, X.shape)
        resp = _sparse_posterior(X, params)
        found, pos = X.positions(r, c)
        observed_values = (
            np.where(found, X.values[pos], np.nan) if X.nnz else np.full(r.shape, np.nan)
        )
        return _predict_entries(resp, params, r, c, found, observed_values, return_std)
    values, observed = validate_matrix(X, mask, allow_all_missing=True)
    resp = _posterior(values, observed, params)
    if rows is not None:
        r, c = check_entries(rows, cols, values.shape)
        found = observed[r, c]
        return _predict_entries(resp, params, r, c, found, values[r, c], return_std)
    # Work with the means centred per column: the mixture mean does not pick up the column
    # offset times the rounding of sum_k resp, and the variance avoids cancellation.
    centre = params.mu.mean(axis=0)
    dev = params.mu - centre
    shift = resp @ dev
    mean = centre + shift
    filled = np.where(observed, values, mean)
    if not return_std:
        return filled
    second = resp @ (dev * dev) - shift**2
    mix_var = resp @ params.var  # (n,) spherical, (n, d) diag
    var = np.maximum(second, 0.0) + (mix_var if mix_var.ndim == 2 else mix_var[:, None])
    return filled, np.where(observed, 0.0, np.sqrt(var))


def _predict_entries(resp, params, r, c, found, observed_values, return_std):
    """Conditional mean (and sd) at entries ``(r, c)`` from responsibilities ``(n, K)``."""
    mean = np.empty(r.shape)
    sd = np.empty(r.shape) if return_std else None
    centre = params.mu.mean(axis=0)
    dev = params.mu - centre
    diag = params.var.ndim == 2
    for start in range(0, r.size, _ENTRY_CHUNK):
        s = slice(start, start + _ENTRY_CHUNK)
        w = resp[r[s]]  # (m, K)
        shift = np.einsum("mk,km->m", w, dev[:, c[s]])
        mean[s] = centre[c[s]] + shift
        if return_std:
            second = np.einsum("mk,km->m", w, dev[:, c[s]] ** 2) - shift**2
            mix_var = np.einsum("mk,km->m", w, params.var[:, c[s]]) if diag else w @ params.var
            sd[s] = np.sqrt(np.maximum(second, 0.0) + mix_var)
    filled = np.where(found, observed_values, mean)
    if not return_std:
        return filled
    return filled, np.where(found, 0.0, sd)

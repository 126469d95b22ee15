"""Filling the missing entries of a matrix from a fitted mixture.

Dense matrices are completed whole; for a :class:`~jaxmix.SparseRatings` (or a dense matrix too)
ask for chosen entries with ``rows=`` and ``cols=``: the responsibilities come from the layout's
E-step and only the asked-for predictions are formed, so nothing ``n x d`` is allocated. The
predictive moments of an entry are the covariance family's (:meth:`Family.predict
<jaxmix.models.families.base.Family.predict>`).
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from jaxmix.data import Standardizer, as_data, float_dtype
from jaxmix.data.ratings import check_entries
from jaxmix.models.families import as_params, family_of
from jaxmix.models.mixture import as_device, to_internal
from jaxmix.params import MixtureParams

__all__ = ["check_fit", "complete", "fitted_params", "posterior_of_rows", "responsibilities"]

#: Asked-for entries predicted at once (bounds the ``(m, K)`` temporaries).
_ENTRY_CHUNK = 1 << 20


def fitted_params(result: Any, what: str = "result") -> MixtureParams:
    """The float64 parameters of a result (or of :class:`~jaxmix.MixtureParams`)."""
    params = as_params(result, what=what)
    return jax.tree.map(lambda a: np.asarray(a, np.float64), params)


def check_fit(params: MixtureParams, d: int, *, batch: int = 0, label: str = "fitted") -> None:
    """Refuse parameters no fit can produce (wrong shapes, NaN, non-positive variances...).

    ``batch`` leading axes (e.g. ``(chain, draw)`` of posterior draws) are allowed on every field.
    """
    mu, weights = np.asarray(params.mu), np.asarray(params.weights)
    noun = "draws'" if label == "draws" else label
    if mu.ndim != batch + 2 or mu.shape[-1] != d:
        raise ValueError(f"the {noun} means have shape {mu.shape} but X has {d} columns")
    lead, K = mu.shape[:batch], mu.shape[-2]
    if weights.shape != (*lead, K):
        raise ValueError(
            f"{label} weights have shape {weights.shape}; expected {(*lead, K)} (one per "
            f"component of mu, shape {mu.shape})"
        )
    family_of(params).check_cov(params.cov, K, d, batch=batch, label=label)
    if not np.all(np.isfinite(mu)):
        raise ValueError(f"{label} mu must be finite")
    if not (np.all(np.isfinite(weights) & (weights >= 0)) and np.all(weights.sum(axis=-1) > 0)):
        raise ValueError(f"{label} weights must be finite and non-negative (not all zero)")


def posterior_of_rows(layout: Any, params: MixtureParams) -> np.ndarray:
    """``p(k | row)`` of every row of a layout, float64 ``(n, K)`` (rows sum to one).

    The E-step runs in standardised units (as the fits do); a matrix with no observed entry is
    left in data units.
    """
    n, d = layout.shape
    check_fit(params, d)
    std = Standardizer.fit(layout.summary()) if layout.nnz else Standardizer.identity(d)
    dtype = float_dtype()
    data = layout.device(std, dtype)
    out = _e_step(as_device(to_internal(params, std), dtype), data.local())
    resp = np.asarray(layout.rows_from_slots(out), np.float64)
    return resp / resp.sum(axis=1, keepdims=True)  # float32 rows sum to 1 +- 1e-7


@jax.jit
def _e_step(params: MixtureParams, data: Any) -> Any:
    return data.e_step_stats(params, family_of(params), with_stats=False).resp


def responsibilities(X: Any, result: Any, *, mask: Any = None) -> np.ndarray:
    """Posterior component probabilities ``p(k | row)`` of the rows of ``X``.

    Args:
        X: Array-like ``(n, d)`` with ``NaN`` at missing entries (need not be the fit data), or a
            :class:`~jaxmix.SparseRatings` (rows without entries get the weights).
        result: A fitted result or :class:`~jaxmix.MixtureParams`.
        mask: Optional boolean ``(n, d)``, ``True`` = observed.

    Returns:
        Array of shape ``(n, K)`` whose rows sum to one.
    """
    layout = as_data(X, mask, allow_all_missing=True)
    return posterior_of_rows(layout, fitted_params(result))


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
        \\mathrm{sd}_{ul}^2 = \\sum_k p(k \\mid x_{u,C_u}) (\\Sigma_{k,ll} + \\mu_{kl}^2)
            - \\hat x_{ul}^2

    (the covariance family's predictive moments). Observed entries are copied through unchanged
    (their standard deviation is 0). The responsibilities come from an E-step of the given
    parameters on ``X``.

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
    params = fitted_params(result)
    layout = as_data(X, mask, allow_all_missing=True)
    resp = posterior_of_rows(layout, params)
    family = family_of(params)
    if rows is not None:
        r, c = check_entries(rows, cols, layout.shape)
        found, observed_values = layout.lookup(r, c)
        mean = np.empty(r.shape)
        var = np.empty(r.shape)
        for start in range(0, r.size, _ENTRY_CHUNK):
            s = slice(start, start + _ENTRY_CHUNK)
            mean[s], var[s] = family.predict(params, resp[r[s]], c[s])
        filled = np.where(found, observed_values, mean)
        if not return_std:
            return filled
        return filled, np.where(found, 0.0, np.sqrt(var))
    values = layout.to_dense()
    observed = ~np.isnan(values)
    mean, var = family.predict(params, resp)
    filled = np.where(observed, values, mean)
    if not return_std:
        return filled
    return filled, np.where(observed, 0.0, np.sqrt(var))

"""Model selection scores, error metrics, hold-out splits and simple baselines.

Every function here also accepts a :class:`~jaxmix.SparseRatings`: :func:`rmse` then scores its
triples, :func:`holdout_split` returns a train and a test :class:`~jaxmix.SparseRatings`, and
:func:`mean_baseline` predicts asked-for entries (``rows=``, ``cols=``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from jaxmix._data import check_nonneg_float, validate_matrix
from jaxmix.inference.em import _check_seed
from jaxmix.sparse import SparseRatings, check_entries

__all__ = ["aic", "bic", "holdout_split", "mean_baseline", "n_parameters", "rmse"]


def _fit_stats(result: Any) -> tuple[float, int, int]:
    ll = getattr(result, "log_likelihood", None)
    params = getattr(result, "params", None)
    if ll is None or params is None:
        raise TypeError(
            f"expected a fitted mixture result (from fit_em); got {type(result).__name__}"
        )
    K, d = np.shape(params.mu)
    return float(ll), int(K), int(d)


def n_parameters(K: int, d: int, covariance: str = "spherical") -> int:
    """Free parameters of a ``K``-component mixture on ``d`` columns.

    ``K d`` means, ``K`` variances (``K d`` for ``"diag"``) and ``K - 1`` free weights.
    """
    if covariance == "spherical":
        return K * d + K + (K - 1)
    if covariance == "diag":
        return K * d + K * d + (K - 1)
    raise ValueError(f"covariance must be 'spherical' or 'diag'; got {covariance!r}")


def bic(X: Any, result: Any) -> float:
    """Bayesian information criterion on the log-likelihood scale (**higher is better**).

    .. math::  \\mathrm{BIC} = \\log L - \\frac{p}{2} \\log n

    with ``log L`` the fitted log-likelihood, ``p`` the number of free parameters
    (:func:`n_parameters`) and ``n`` the number of **rows** of ``X``. This is the course's sign
    convention; the textbook ``-2 log L + p log n`` is ``-2`` times this value.

    Args:
        X: The ``(n, d)`` matrix the result was fit on (only its shape is used).
        result: A result of :func:`jaxmix.fit_em`.

    Returns:
        The score as a float.
    """
    n, d = _shape(X)
    ll, K, d_fit = _fit_stats(result)
    _check_cols(d, d_fit)
    p = n_parameters(K, d, getattr(result, "covariance", "spherical"))
    return ll - 0.5 * p * np.log(n)


def aic(X: Any, result: Any) -> float:
    """Akaike information criterion on the log-likelihood scale (**higher is better**).

    .. math::  \\mathrm{AIC} = \\log L - p

    (the textbook ``2p - 2 log L`` is ``-2`` times this value), with ``p`` as in :func:`bic`.
    """
    _, d = _shape(X)
    ll, K, d_fit = _fit_stats(result)
    _check_cols(d, d_fit)
    return ll - n_parameters(K, d, getattr(result, "covariance", "spherical"))


def _shape(X: Any) -> tuple[int, int]:
    shape = X.shape if isinstance(X, SparseRatings) else np.shape(X)
    if len(shape) != 2:
        raise ValueError(f"X must be 2-D (n_rows, n_cols); got shape {shape}")
    return int(shape[0]), int(shape[1])


def _check_cols(d: int, d_fit: int) -> None:
    if d != d_fit:
        raise ValueError(f"X has {d} columns but the result was fit on {d_fit}")


def _real_array(X: Any, name: str) -> np.ndarray:
    arr = np.asarray(X)
    if arr.dtype.kind not in "iuf":
        raise TypeError(f"{name} must be an array of real numbers; got dtype {arr.dtype}")
    return arr.astype(np.float64)


def rmse(X_true: Any, X_pred: Any, *, mask: Any = None) -> float:
    """Root-mean-square error over chosen entries.

    Args:
        X_true: ``(n, d)`` reference values, or a :class:`~jaxmix.SparseRatings` whose triples
            are the reference (e.g. the test part of :func:`holdout_split`).
        X_pred: ``(n, d)`` predictions; with a sparse ``X_true`` also the ``(nnz,)`` predictions
            of its entries in order (what ``complete(..., rows=S.rows, cols=S.cols)`` returns)
            or a :class:`~jaxmix.SparseRatings` with the same entries.
        mask: Boolean ``(n, d)`` selecting the entries to score (e.g. the held-out ones from
            :func:`holdout_split`); default every entry where both are not ``NaN``. With a sparse
            ``X_true``: boolean ``(nnz,)`` over its triples.

    Returns:
        The RMSE over the selected entries.

    Raises:
        ValueError: Shapes differ, no entry is selected, or a selected entry is ``NaN`` or
            infinite in either array.
    """
    if isinstance(X_true, SparseRatings):
        X_true, X_pred = _sparse_pair(X_true, X_pred)
    t = _real_array(X_true, "X_true")
    p = _real_array(X_pred, "X_pred")
    if t.shape != p.shape:
        raise ValueError(f"X_true has shape {t.shape} but X_pred has shape {p.shape}")
    if mask is None:
        sel = ~np.isnan(t) & ~np.isnan(p)
    else:
        sel = np.asarray(mask)
        if sel.dtype != np.bool_:
            raise TypeError(f"mask must be boolean; got dtype {sel.dtype}")
        if sel.shape != t.shape:
            raise ValueError(f"mask has shape {sel.shape} but X_true has shape {t.shape}")
    if not sel.any():
        raise ValueError("no entry is selected for the RMSE")
    diff = t[sel] - p[sel]
    if not np.isfinite(diff).all():
        raise ValueError("X_true or X_pred is NaN or infinite at a selected entry")
    return float(np.sqrt(np.mean(diff * diff)))


def _sparse_pair(S: SparseRatings, pred: Any) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(pred, SparseRatings):
        if pred.shape != S.shape or not (
            np.array_equal(pred.rows, S.rows) and np.array_equal(pred.cols, S.cols)
        ):
            raise ValueError("X_pred must hold the same entries as X_true")
        return S.values, pred.values
    p = np.asarray(pred)
    if p.ndim == 2:
        if p.shape != S.shape:
            raise ValueError(f"X_pred has shape {p.shape} but X_true has shape {S.shape}")
        return S.values, p[S.rows, S.cols]
    if p.shape != (S.nnz,):
        raise ValueError(
            f"X_pred must be ({S.nnz},) predictions of X_true's entries, an {S.shape} matrix or a "
            f"SparseRatings; got shape {p.shape}"
        )
    return S.values, p


def holdout_split(
    X: Any, fraction: float = 0.1, *, seed: int = 0, mask: Any = None
) -> tuple[Any, Any]:
    """Hide a random share of the observed entries for testing.

    Args:
        X: Array-like ``(n, d)`` with ``NaN`` at missing entries. It is not modified.
        fraction: Share of the observed entries to hold out, in ``(0, 1)``.
        seed: Seed of ``numpy.random.default_rng``.
        mask: Optional boolean ``(n, d)``, ``True`` = observed.

    Returns:
        ``(X_train, test_mask)``: a copy of ``X`` with the held-out entries set to ``NaN`` and the
        boolean mask of the held-out entries (score with ``rmse(X, X_hat, mask=test_mask)``).
        For a :class:`~jaxmix.SparseRatings`: ``(S_train, S_test)``, two ``SparseRatings`` of the
        same shape splitting its triples (the same entries the dense form holds out for the
        same matrix and seed); score with
        ``rmse(S_test, complete(S_train, fit, rows=S_test.rows, cols=S_test.cols))``.
    """
    fraction = check_nonneg_float(fraction, "fraction")
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must lie strictly between 0 and 1; got {fraction}")
    rng = np.random.default_rng(_check_seed(seed))
    if isinstance(X, SparseRatings):
        if mask is not None:
            raise TypeError("mask does not apply to a SparseRatings")
        n_test = max(1, int(round(fraction * X.nnz)))
        if n_test >= X.nnz:
            raise ValueError(f"holding out {n_test} of {X.nnz} observed entries leaves none to fit")
        test = np.zeros(X.nnz, dtype=bool)
        test[rng.choice(X.nnz, size=n_test, replace=False)] = True
        return X.select(~test), X.select(test)
    values, observed = validate_matrix(X, mask)
    idx = np.flatnonzero(observed)
    n_test = max(1, int(round(fraction * idx.size)))
    if n_test >= idx.size:
        raise ValueError(f"holding out {n_test} of {idx.size} observed entries leaves none to fit")
    test = np.zeros(values.size, dtype=bool)
    test[rng.choice(idx, size=n_test, replace=False)] = True
    test = test.reshape(values.shape)
    train = values.copy()
    train[test] = np.nan
    return train, test


def mean_baseline(
    X: Any, by: str = "user", *, mask: Any = None, rows: Any = None, cols: Any = None
) -> np.ndarray:
    """Fill the missing entries with a mean: the simple baselines a mixture must beat.

    Args:
        X: Array-like ``(n, d)`` with ``NaN`` at missing entries.
        by: ``"global"`` (mean of all observed entries), ``"user"`` (row mean) or ``"item"``
            (column mean). A row or column with no observed entry falls back to the global mean.
        mask: Optional boolean ``(n, d)``, ``True`` = observed.
        rows, cols: Optional integer arrays of equal length ``m``: return the baseline at those
            entries only (observed entries as observed); the way to use it on a
            :class:`~jaxmix.SparseRatings` (``X`` may be one).

    Returns:
        The completed ``(n, d)`` array (observed entries unchanged), or with ``rows`` / ``cols``
        the ``(m,)`` predictions.
    """
    if by not in ("global", "user", "item"):
        raise ValueError(f"by must be 'global', 'user' or 'item'; got {by!r}")
    if (rows is None) != (cols is None):
        raise TypeError("give both rows and cols (the entries to predict), or neither")
    if isinstance(X, SparseRatings):
        if mask is not None:
            raise TypeError("mask does not apply to a SparseRatings")
        if rows is None:
            return mean_baseline(X.to_dense(), by)
        if X.nnz == 0:
            raise ValueError("every entry of X is missing; there is no mean")
        r, c = check_entries(rows, cols, X.shape)
        col_n, col_s = X.column_sums()
        glob = col_s.sum() / X.nnz
        if by == "global":
            fill = np.full(r.shape, glob)
        elif by == "item":
            fill = np.divide(col_s, col_n, out=np.full(col_n.shape, glob), where=col_n > 0)[c]
        else:
            row_n, row_s = X.row_sums()
            fill = np.divide(row_s, row_n, out=np.full(row_n.shape, glob), where=row_n > 0)[r]
        found, pos = X.positions(r, c)
        return np.where(found, X.values[pos].astype(np.float64), fill)
    values, observed = validate_matrix(X, mask)
    if rows is not None:
        r, c = check_entries(rows, cols, values.shape)
        return mean_baseline(values, by, mask=observed)[r, c]
    x0 = np.where(observed, values, 0.0)
    glob = x0.sum() / observed.sum()
    if by == "global":
        fill = np.full(values.shape, glob)
    elif by in ("user", "item"):
        axis = 1 if by == "user" else 0
        cnt = observed.sum(axis=axis)
        means = np.divide(x0.sum(axis=axis), cnt, out=np.full(cnt.shape, glob), where=cnt > 0)
        fill = np.broadcast_to(means[:, None] if axis == 1 else means[None, :], values.shape)
    else:
        raise ValueError(f"by must be 'global', 'user' or 'item'; got {by!r}")
    return np.where(observed, values, fill)

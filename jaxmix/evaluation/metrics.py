"""Model selection scores and error metrics.

:func:`rmse` also accepts a :class:`~jaxmix.SparseRatings` as the truth (it then scores its
triples); :func:`bic` and :func:`aic` accept any point-estimate result and refuse a posterior with
a message that says what to use instead.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from jaxmix.data import SparseRatings
from jaxmix.inference.em import log_objective
from jaxmix.models.families import as_params, family_of, get_family
from jaxmix.params import MixtureParams
from jaxmix.results import MCMCResult

__all__ = ["aic", "bic", "n_parameters", "rmse"]


def n_parameters(
    K: int, d: int, covariance: Any = "spherical", *, rank: Any = None, row_offset: Any = None
) -> int:
    """Free parameters of a ``K``-component mixture on ``d`` columns.

    ``K d`` means, the covariance family's parameters (``K`` variances for ``"spherical"``,
    ``K d`` for ``"diag"``, one for ``"shared"``; for ``"factor"`` ``K d`` noise variances, the
    loadings less their rotations and the offset variances) and ``K - 1`` free weights.
    """
    return get_family(covariance, rank=rank, row_offset=row_offset).n_parameters(K, d)


def _fit_stats(X: Any, result: Any) -> tuple[float, int, int, int, Any]:
    """``(log-likelihood, n, K, d, covariance)`` of a point-estimate result on ``X``."""
    if isinstance(result, MCMCResult):
        raise TypeError(
            "bic and aic score a point estimate; an MCMCResult is a posterior: compare posteriors "
            "by PSIS-LOO instead (jaxmix.select_k, or arviz.loo(jaxmix.to_inference_data(result, "
            "X)))"
        )
    if isinstance(result, MixtureParams) or not hasattr(result, "params"):
        raise TypeError(
            "expected a fitted mixture result (from fit_em, kmeans or fit_svi); got "
            f"{type(result).__name__}"
        )
    params = as_params(result, what="result")
    shape = X.shape if isinstance(X, SparseRatings) else np.shape(X)
    if len(shape) != 2:
        raise ValueError(f"X must be 2-D (n_rows, n_cols); got shape {shape}")
    n, d = int(shape[0]), int(shape[1])
    K, d_fit = np.shape(params.mu)[-2:]
    if d != d_fit:
        raise ValueError(f"X has {d} columns but the result was fit on {d_fit}")
    ll = getattr(result, "log_likelihood", None)
    if ll is None:  # K-means: the log-likelihood of X at its retrofitted mixture
        ll = log_objective(X, params)
    return float(ll), n, int(K), d, family_of(params)


def bic(X: Any, result: Any) -> float:
    """Bayesian information criterion on the log-likelihood scale (**higher is better**).

    .. math::  \\mathrm{BIC} = \\log L - \\frac{p}{2} \\log n

    with ``log L`` the fitted log-likelihood, ``p`` the number of free parameters
    (:func:`n_parameters`) and ``n`` the number of **rows** of ``X``. This is the course's sign
    convention; the textbook ``-2 log L + p log n`` is ``-2`` times this value.

    Args:
        X: The ``(n, d)`` matrix the result was fit on (only its shape is used, except for a
            result without a log-likelihood, such as K-means's, whose log-likelihood on ``X`` is
            computed).
        result: A point estimate: a result of :func:`jaxmix.fit_em`, :func:`jaxmix.kmeans`
            (its retrofitted mixture, scored on ``X``) or :func:`jaxmix.fit_svi`. An
            :class:`~jaxmix.MCMCResult` is refused (use PSIS-LOO).

    Returns:
        The score as a float.
    """
    ll, n, K, d, covariance = _fit_stats(X, result)
    return ll - 0.5 * n_parameters(K, d, covariance) * np.log(n)


def aic(X: Any, result: Any) -> float:
    """Akaike information criterion on the log-likelihood scale (**higher is better**).

    .. math::  \\mathrm{AIC} = \\log L - p

    (the textbook ``2p - 2 log L`` is ``-2`` times this value), with ``p`` as in :func:`bic`.
    """
    ll, _, K, d, covariance = _fit_stats(X, result)
    return ll - n_parameters(K, d, covariance)


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

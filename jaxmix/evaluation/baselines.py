"""Hold-out splits and the simple baselines a mixture must beat.

Both work on any data layout (:func:`jaxmix.data.as_data`) and answer in the input's form: a
dense matrix gets a dense matrix back, a :class:`~jaxmix.SparseRatings` triples (or predictions at
asked-for entries).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from jaxmix._validate import check_choice, check_nonneg_float, check_seed
from jaxmix.data import as_data
from jaxmix.data.ratings import check_entries

__all__ = ["BASELINES", "holdout_split", "mean_baseline"]

#: What :func:`mean_baseline` can fill with.
BASELINES = ("global", "user", "item")


def holdout_split(
    X: Any, fraction: float = 0.1, *, seed: int = 0, mask: Any = None
) -> tuple[Any, Any]:
    """Hide a random share of the observed entries for testing.

    The held-out entries are ``numpy.random.default_rng(seed).choice(nnz, n_test,
    replace=False)`` among the observed entries in row-major order, ``n_test = round(fraction *
    nnz)`` (at least one), so a dense matrix and its triples hold out the same entries.

    Args:
        X: Array-like ``(n, d)`` with ``NaN`` at missing entries (it is not modified), or a
            :class:`~jaxmix.SparseRatings`.
        fraction: Share of the observed entries to hold out, in ``(0, 1)``.
        seed: Seed of ``numpy.random.default_rng``.
        mask: Optional boolean ``(n, d)``, ``True`` = observed.

    Returns:
        ``(X_train, test_mask)``: a copy of ``X`` with the held-out entries set to ``NaN`` and the
        boolean mask of the held-out entries (score with ``rmse(X, X_hat, mask=test_mask)``).
        For a :class:`~jaxmix.SparseRatings`: ``(S_train, S_test)``, two ``SparseRatings`` of the
        same shape splitting its triples; score with
        ``rmse(S_test, complete(S_train, fit, rows=S_test.rows, cols=S_test.cols))``.
    """
    fraction = check_nonneg_float(fraction, "fraction")
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must lie strictly between 0 and 1; got {fraction}")
    rng = np.random.default_rng(check_seed(seed))
    layout = as_data(X, mask, method=None)
    nnz = layout.nnz
    n_test = max(1, int(round(fraction * nnz)))
    if n_test >= nnz:
        raise ValueError(f"holding out {n_test} of {nnz} observed entries leaves none to fit")
    return layout.split(rng.choice(nnz, size=n_test, replace=False))


def mean_baseline(
    X: Any, by: str = "user", *, mask: Any = None, rows: Any = None, cols: Any = None
) -> np.ndarray:
    """Fill the missing entries with a mean: the simple baselines a mixture must beat.

    Args:
        X: Array-like ``(n, d)`` with ``NaN`` at missing entries, or a
            :class:`~jaxmix.SparseRatings`.
        by: ``"global"`` (mean of all observed entries), ``"user"`` (row mean) or ``"item"``
            (column mean). A row or column with no observed entry falls back to the global mean.
        mask: Optional boolean ``(n, d)``, ``True`` = observed.
        rows, cols: Optional integer arrays of equal length ``m``: return the baseline at those
            entries only (observed entries as observed); the way to use it on a large
            :class:`~jaxmix.SparseRatings`.

    Returns:
        The completed ``(n, d)`` array (observed entries unchanged), or with ``rows`` / ``cols``
        the ``(m,)`` predictions.
    """
    check_choice(by, "by", BASELINES)
    if (rows is None) != (cols is None):
        raise TypeError("give both rows and cols (the entries to predict), or neither")
    layout = as_data(X, mask, method=None)
    n, d = layout.shape
    summary = layout.summary()
    glob = summary.global_mean
    if by == "global":
        row_fill, col_fill = np.full(n, glob), np.zeros(d)
    elif by == "item":
        row_fill, col_fill = np.zeros(n), summary.column_means(fill=glob)
    else:
        count, total = layout.row_sums()
        row_fill = np.divide(total, count, out=np.full(n, glob), where=count > 0)
        col_fill = np.zeros(d)
    if rows is not None:
        r, c = check_entries(rows, cols, layout.shape)
        found, value = layout.lookup(r, c)
        return np.where(found, value, row_fill[r] + col_fill[c])
    values = layout.to_dense()
    return np.where(np.isnan(values), row_fill[:, None] + col_fill[None, :], values)

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

__all__ = ["BASELINES", "bias_model", "holdout_split", "mean_baseline"]

#: What :func:`mean_baseline` can fill with.
BASELINES = ("global", "user", "item", "bias")

#: Shrinkage of the bias baseline's offsets: pseudo-counts of entries at offset 0 (the values
#: Surprise documents for its ALS baseline, ``reg_i = 10``, ``reg_u = 15``).
BIAS_REG_ITEM = 10.0
BIAS_REG_USER = 15.0


def bias_model(
    layout: Any,
    reg_user: float = BIAS_REG_USER,
    reg_item: float = BIAS_REG_ITEM,
    max_sweeps: int = 50,
    tol: float = 1e-6,
) -> tuple[float, np.ndarray, np.ndarray]:
    """Global mean plus shrunk row and column offsets, ``x_ul ~ m + b_u + c_l``.

    The offsets minimise ``sum (x - m - b_u - c_l)^2 + reg_user sum b_u^2 + reg_item sum c_l^2``
    by alternating exact updates (each offset is a shrunk mean of its residuals: a row rated a
    handful of times keeps most of the way to 0); a row or column with no entry gets 0.

    Args:
        layout: A data layout (:func:`jaxmix.data.as_data`).
        reg_user, reg_item: Pseudo-counts of the row and column offsets, ``>= 0``.
        max_sweeps: Alternating sweeps at most.
        tol: Stop when no offset moves by more than ``tol`` times the data's spread.

    Returns:
        ``(m, b (n,), c (d,))``.
    """
    n, d = layout.shape
    rows, cols, values = layout.entries()
    m = float(values.mean()) if values.size else 0.0
    resid = values - m
    n_row = np.bincount(rows, minlength=n).astype(np.float64)
    n_col = np.bincount(cols, minlength=d).astype(np.float64)
    b, c = np.zeros(n), np.zeros(d)
    spread = float(np.sqrt(np.mean(resid * resid))) if values.size else 1.0
    for _ in range(max_sweeps):
        c_new = np.bincount(cols, resid - b[rows], minlength=d) / (n_col + reg_item)
        b_new = np.bincount(rows, resid - c_new[cols], minlength=n) / (n_row + reg_user)
        moved = max(np.max(np.abs(c_new - c), initial=0.0), np.max(np.abs(b_new - b), initial=0.0))
        b, c = b_new, c_new
        if moved <= tol * max(spread, 1e-300):
            break
    return m, b, c


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
        by: ``"global"`` (mean of all observed entries), ``"user"`` (row mean), ``"item"``
            (column mean) or ``"bias"`` (global mean plus shrunk row and column offsets,
            :func:`bias_model`: the strongest of these on ratings). A row or column with no
            observed entry falls back to the global mean (no offset).
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
    elif by == "bias":
        m, b, c = bias_model(layout)
        row_fill, col_fill = m + b, c
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

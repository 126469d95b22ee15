"""Reading and writing ratings matrices in the course's text format."""

from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np

from jaxmix._validate import ZeroAsMissingWarning, is_number

__all__ = ["ZERO_SHARE", "load_ratings", "save_ratings"]

#: ``load_ratings(missing=0)`` warns about a column when at least this share of its values are
#: zeros and some other value of it lies below 1.
ZERO_SHARE = 0.1


def load_ratings(path: str | os.PathLike, missing: float | str | None = 0) -> np.ndarray:
    """Read a whitespace-separated ratings matrix; entries equal to ``missing`` become ``NaN``.

    Args:
        path: Text file, one row per line, values separated by white space (the course format,
            where ``0`` means "not rated").
        missing: The value that marks a missing entry, a word that does (``"NA"``: every field
            spelt exactly so), or ``None`` if there is none (``nan`` in the file is read as
            missing either way).

    Returns:
        A float64 array of shape ``(n, d)`` with ``NaN`` at the missing entries.

    Raises:
        FileNotFoundError: No such file.
        ValueError: The file is empty, has rows of different lengths, or holds text that is not a
            number (the message names the file and line).

    Warns:
        ZeroAsMissingWarning: With ``missing=0``, a column has many zeros (at least
            :data:`ZERO_SHARE` of its values) and also values below 1: the zeros are probably
            data, not "not rated".
    """
    path = os.fspath(path)
    token = missing if isinstance(missing, str) else None
    if token is not None:
        if not token or token.split() != [token]:
            raise ValueError(f"missing must be a number or one word; got {missing!r}")
        missing = None
    with open(path, "rb") as fh:
        head = fh.read(4096)
    if b"\0" in head or head.startswith(b"PK\x03\x04"):
        raise ValueError(
            f"{path} is not a text ratings file (binary content; a saved fit is completed with "
            "`jaxmix complete PATH --fit FIT`, loaded with jaxmix.load)"
        )
    rows: list[list[float]] = []
    with open(path, encoding="utf-8-sig", errors="replace") as fh:
        for lineno, line in enumerate(fh, start=1):
            fields = line.split()
            if not fields:
                continue
            if token is not None:
                fields = ["nan" if f == token else f for f in fields]
            try:
                row = [float(f) for f in fields]
            except ValueError:
                bad = next(f for f in fields if not is_number(f))
                if len(bad) > 40:
                    bad = bad[:37] + "..."
                also = "" if token is None else f", nor the missing-value word {token!r}"
                raise ValueError(
                    f"{path}, line {lineno}: {bad!r} is not a number{also} (expected whitespace-"
                    "separated numbers; is the delimiter a comma or a tab-separated header?)"
                ) from None
            if rows and len(row) != len(rows[0]):
                raise ValueError(
                    f"{path}, line {lineno}: {len(row)} values where earlier lines have "
                    f"{len(rows[0])} (ragged rows)"
                )
            rows.append(row)
    if not rows:
        raise ValueError(f"{path} holds no data")
    X = np.array(rows, dtype=np.float64)
    if not np.isfinite(X[~np.isnan(X)]).all():
        raise ValueError(f"{path} holds infinite values")
    if missing is not None:
        if missing == 0:
            _warn_real_zeros(X, path)
        X[X == missing] = np.nan
    return X


def _warn_real_zeros(X: np.ndarray, path: str) -> None:
    """Warn when zeros, about to be read as missing, look like real values: a column with many
    zeros (:data:`ZERO_SHARE`) whose other values go below 1 (ratings start at 1)."""
    count = np.sum(~np.isnan(X), axis=0)
    zeros = np.sum(X == 0, axis=0)
    below = np.sum((X != 0) & (X < 1), axis=0)
    suspect = np.flatnonzero((zeros > 0) & (zeros >= ZERO_SHARE * count) & (below > 0))
    if suspect.size:
        shown = ", ".join(str(int(c)) for c in suspect[:5]) + (", ..." if suspect.size > 5 else "")
        warnings.warn(
            f"{path}: {suspect.size} columns (column {shown}) have many zeros and also values "
            "below 1, yet zeros are read as missing (missing=0, the course's ratings format); if "
            "the zeros are real values, load with missing=None (NaN in the file marks missing)",
            ZeroAsMissingWarning,
            stacklevel=3,
        )


def save_ratings(path: str | os.PathLike, X: Any, missing: float = 0, fmt: str = "%.6g") -> None:
    """Write a matrix in the course format, ``NaN`` written as ``missing``.

    Args:
        path: Output file.
        X: Array-like ``(n, d)``.
        missing: Value written for ``NaN`` entries.
        fmt: ``printf``-style format of each value.
    """
    arr = np.asarray(X, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"X must be 2-D (n_rows, n_cols); got shape {arr.shape}")
    np.savetxt(os.fspath(path), np.where(np.isnan(arr), missing, arr), fmt=fmt)

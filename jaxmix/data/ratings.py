"""Sparse ratings: a partially observed matrix stored as its observed (row, column, value) triples.

A users x items ratings matrix such as Netflix's (480,189 x 17,770 with 100 million ratings, 1.2 %
observed) does not fit in memory as a dense array, and a dense EM would spend almost all of its
time on entries nobody rated. :class:`SparseRatings` keeps only the observed entries:

* ``rows``, ``cols``: ``int32`` indices, sorted by row and then by column, no pair repeated;
* ``values``: the ratings, ``float32`` or ``float64`` (float32 is exact for star ratings and halves
  the memory: 100 million triples take 1.2 GB);
* ``shape``: ``(n_rows, n_cols)``; rows or columns without any entry are allowed;
* ``row_ids``, ``col_ids``: the original identifiers (a MovieLens ``userId`` or ``movieId``),
  sorted, so that row ``i`` of the matrix is user ``row_ids[i]``; ``None`` when the triples were
  given by position (``shape=``).

Ids, not positions: :func:`sparse_ratings` and :func:`load_sparse_ratings` both map the ids to
positions by default and keep them; :meth:`SparseRatings.index` turns ids into positions (an
unknown id raises :class:`UnknownIdError`, naming it), and :func:`jaxmix.complete` takes
``user_ids=`` / ``item_ids=`` (positional ``rows=`` / ``cols=`` on integer ids that are not
``0 .. n - 1`` need ``positions=True``). :class:`IdMaps` holds the two id arrays, the form in which
:func:`jaxmix.save` keeps them with a fit.

Build one with :func:`sparse_ratings` (from arrays of triples, or from a dense array with ``NaN``
at the missing entries) or read a file of triples with :func:`load_sparse_ratings` (MovieLens
``ratings.csv``, ``u.data``, ``ratings.dat``). :func:`jaxmix.fit_em`, :func:`jaxmix.complete`,
:func:`jaxmix.responsibilities`, :func:`jaxmix.rmse`, :func:`jaxmix.holdout_split`,
:func:`jaxmix.mean_baseline`, :func:`jaxmix.bic` and :func:`jaxmix.aic` accept it.

Nothing here ever allocates an ``n x d`` array (except :meth:`SparseRatings.to_dense`, on request),
and the statistics over all the triples are computed in chunks so that no float64 copy of all the
values exists at once.
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from jaxmix._validate import is_number
from jaxmix.data.dense import validate_matrix

__all__ = [
    "IdMaps",
    "SparseRatings",
    "UnknownIdError",
    "check_entries",
    "id_lookup",
    "id_positions",
    "load_id_pairs",
    "load_sparse_ratings",
    "spans",
    "sparse_ratings",
    "triples_of",
]

#: Entries processed at once by the host-side (NumPy) passes over the triples.
HOST_CHUNK = 1 << 22
_INT32_MAX = np.iinfo(np.int32).max
DUPLICATE_POLICIES = ("error", "last", "mean")


def spans(total: int, size: int = HOST_CHUNK) -> Iterator[slice]:
    for start in range(0, total, size):
        yield slice(start, min(start + size, total))


@dataclass(frozen=True, eq=False)
class SparseRatings:
    """A partially observed ``(n_rows, n_cols)`` matrix stored as sorted, unique triples.

    Build it with :func:`sparse_ratings` or :func:`load_sparse_ratings`, which validate and sort
    the triples; the constructor itself only checks types and lengths.

    It is immutable: ``rows``, ``cols`` and ``values`` are read-only arrays that nothing else can
    write to (the constructor copies an array that is writeable, or a view of one, and keeps one
    that is read-only all the way down), so what the layouts derive from it (the column summary,
    the chunked layout on the device: :data:`jaxmix.data.layout_cache`) is built once and reused
    by every later :func:`~jaxmix.fit_em`, :func:`~jaxmix.complete`,
    :func:`~jaxmix.responsibilities` and :func:`~jaxmix.predictive_summary` call. A changed
    matrix is a new object (:meth:`select`, :func:`sparse_ratings`, ``dataclasses.replace``).

    Attributes:
        rows: Row index of every observed entry, ``int32`` ``(nnz,)``, non-decreasing.
        cols: Column index of every observed entry, ``int32`` ``(nnz,)``, increasing within a row.
        values: The observed values, ``float32`` or ``float64`` ``(nnz,)``, all finite.
        shape: ``(n_rows, n_cols)``.
        row_ids: Original identifier of every row, ``(n_rows,)``, or ``None`` (row ``i`` is ``i``).
        col_ids: Original identifier of every column, ``(n_cols,)``, or ``None``.

    Example:
        >>> import numpy as np, jaxmix
        >>> S = jaxmix.sparse_ratings([0, 0, 2], [1, 0, 1], [4.0, 5.0, 3.0], shape=(3, 2))
        >>> S.nnz, S.shape, S.cols.tolist()
        (3, (3, 2), [0, 1, 1])
        >>> S.to_dense()[0].tolist()
        [5.0, 4.0]
    """

    rows: np.ndarray
    cols: np.ndarray
    values: np.ndarray
    shape: tuple[int, int]
    row_ids: np.ndarray | None = None
    col_ids: np.ndarray | None = None

    def __post_init__(self) -> None:
        if not (isinstance(self.rows, np.ndarray) and self.rows.dtype == np.int32):
            raise TypeError("SparseRatings.rows must be an int32 array; use jaxmix.sparse_ratings")
        if not (isinstance(self.cols, np.ndarray) and self.cols.dtype == np.int32):
            raise TypeError("SparseRatings.cols must be an int32 array; use jaxmix.sparse_ratings")
        if not (
            isinstance(self.values, np.ndarray) and self.values.dtype in (np.float32, np.float64)
        ):
            raise TypeError(
                "SparseRatings.values must be a float32 or float64 array; use jaxmix.sparse_ratings"
            )
        if not (self.rows.ndim == self.cols.ndim == self.values.ndim == 1) or not (
            self.rows.shape == self.cols.shape == self.values.shape
        ):
            raise ValueError("SparseRatings.rows, cols and values must be 1-D of equal length")
        n, d = self.shape
        for ids, size, name in ((self.row_ids, n, "row_ids"), (self.col_ids, d, "col_ids")):
            if ids is not None and np.shape(ids) != (size,):
                raise ValueError(f"SparseRatings.{name} must have shape ({size},)")
        for name in ("rows", "cols", "values"):  # immutable: the layouts' caches rely on it
            object.__setattr__(self, name, _read_only(getattr(self, name)))

    def __reduce__(self) -> Any:
        # unpickled and deep-copied arrays are new: made read-only in place, not copied again
        return (
            _rebuild,
            (self.rows, self.cols, self.values, self.shape, self.row_ids, self.col_ids),
        )

    # ------------------------------------------------------------------ sizes

    @property
    def nnz(self) -> int:
        """Number of observed entries."""
        return int(self.values.shape[0])

    @property
    def n_rows(self) -> int:
        """Number of rows ``n`` (users)."""
        return int(self.shape[0])

    @property
    def n_cols(self) -> int:
        """Number of columns ``d`` (items)."""
        return int(self.shape[1])

    @property
    def density(self) -> float:
        """Share of observed entries, ``nnz / (n d)``."""
        return self.nnz / (float(self.shape[0]) * float(self.shape[1]))

    @property
    def dtype(self) -> np.dtype:
        """Dtype of the values."""
        return self.values.dtype

    def __repr__(self) -> str:
        n, d = self.shape
        return (
            f"SparseRatings(shape=({n}, {d}), nnz={self.nnz}, density={self.density:.3g}, "
            f"dtype={self.dtype.name}{', with ids' if self.row_ids is not None else ''})"
        )

    def row_counts(self) -> np.ndarray:
        """Observed entries of every row, ``|C_u|``, ``int64`` ``(n_rows,)``."""
        return np.bincount(self.rows, minlength=self.shape[0])

    def col_counts(self) -> np.ndarray:
        """Observed entries of every column, ``int64`` ``(n_cols,)``."""
        return np.bincount(self.cols, minlength=self.shape[1])

    # ------------------------------------------------------------------ conversions

    @classmethod
    def from_dense(cls, X: Any, mask: Any = None, *, dtype: Any = None) -> SparseRatings:
        """The observed entries of a dense matrix (``NaN`` = missing, or ``mask`` True = observed).

        Args:
            X: Array-like ``(n, d)``; validated like :func:`jaxmix.validate_matrix`.
            mask: Optional boolean ``(n, d)``, ``True`` = observed.
            dtype: Dtype of the values (default float64).

        Returns:
            A :class:`SparseRatings` of the same shape.
        """
        values, observed = validate_matrix(X, mask, allow_all_missing=True)
        return triples_of(values, observed, dtype)

    def to_dense(self, *, max_entries: int = 1 << 30) -> np.ndarray:
        """The ``(n, d)`` float64 matrix with ``NaN`` at the missing entries.

        Args:
            max_entries: Refuse (``ValueError``) when ``n * d`` exceeds this.
        """
        n, d = self.shape
        if n * d > max_entries:
            raise ValueError(
                f"to_dense would allocate {n} x {d} = {n * d} entries (max_entries="
                f"{max_entries}); work with the triples instead (complete(..., rows=, cols=) "
                "predicts chosen entries)"
            )
        X = np.full((n, d), np.nan)
        X[self.rows, self.cols] = self.values
        return X

    def select(self, index: Any) -> SparseRatings:
        """A matrix of the same shape (and ids) holding only some of the entries.

        Args:
            index: Boolean mask of length ``nnz`` or integer positions (kept in sorted order).
        """
        index = np.asarray(index)
        if index.dtype == np.bool_:
            if index.shape != (self.nnz,):
                raise ValueError(f"a boolean selection must have shape ({self.nnz},)")
        else:
            index = np.unique(index)
        return SparseRatings(
            _lock(self.rows[index]),
            _lock(self.cols[index]),
            _lock(self.values[index]),
            self.shape,
            self.row_ids,
            self.col_ids,
        )

    def positions(self, rows: Any, cols: Any) -> tuple[np.ndarray, np.ndarray]:
        """Where given entries sit among the triples.

        A binary search within each queried row's (sorted) columns: ``O(m log nnz)`` time and
        ``O(m)`` memory for ``m`` queries.

        Args:
            rows, cols: Integer arrays of equal shape, the entries to look up.

        Returns:
            ``(found, pos)``: boolean array, True where ``(rows, cols)`` is observed, and the
            position of that entry in ``values`` (meaningless where not found).
        """
        r, c = check_entries(rows, cols, self.shape)
        lo = np.searchsorted(self.rows, r, side="left")
        hi = np.searchsorted(self.rows, r, side="right")
        end = hi.copy()
        while True:  # first position in [lo, hi) whose column is >= c
            active = lo < hi
            if not active.any():
                break
            mid = (lo + hi) // 2
            go_right = active & (self.cols[np.minimum(mid, self.nnz - 1)] < c)
            lo = np.where(go_right, mid + 1, lo)
            hi = np.where(active & ~go_right, mid, hi)
        pos = np.minimum(lo, max(self.nnz - 1, 0))
        found = (lo < end) & (self.cols[pos] == c) if self.nnz else np.zeros(r.shape, bool)
        return found, pos

    @property
    def ids(self) -> IdMaps:
        """The identifiers of the rows and columns, an :class:`IdMaps` (fields ``None`` where the
        positions are the identifiers)."""
        return IdMaps(self.row_ids, self.col_ids)

    def index(self, user_ids: Any = None, item_ids: Any = None) -> Any:
        """The positions of given user (row) and item (column) identifiers.

        The inverse of ``row_ids`` / ``col_ids``: ``S.row_ids[S.index(user_ids=u)] == u``. Without
        ids (``row_ids is None``) the identifiers are the positions themselves, checked to be in
        range.

        Args:
            user_ids: Identifiers of rows, 1-D (as in the file or the frame: ``userId``), or
                ``None``.
            item_ids: Identifiers of columns, or ``None``.

        Returns:
            ``int64`` positions: one array when one of the two is given, the pair
            ``(rows, cols)`` when both are (ready for ``complete(S, fit, rows=, cols=)``).

        Raises:
            UnknownIdError: An identifier is not in the matrix (a ``KeyError`` and a
                ``ValueError``; the message names the unknown ids).

        Example:
            >>> import jaxmix
            >>> S = jaxmix.sparse_ratings([10, 10, 42], [7, 3, 7], [4.0, 5.0, 3.0])
            >>> rows, cols = S.index([42, 10], [3, 3])
            >>> rows.tolist(), cols.tolist()
            ([1, 0], [0, 0])
        """
        return self.ids.index(user_ids, item_ids, self.shape)

    def with_items(self, item_ids: Any, *, unknown: str = "error") -> SparseRatings:
        """The same ratings on other columns: column ``l`` becomes item ``item_ids[l]``.

        The way to complete new users with a saved fit: ``S.with_items(load_ids(path).col_ids)``
        puts every rating in the column the fit gave its item (a file read on its own numbers
        its items by the ids it happens to hold).

        Args:
            item_ids: The items of the new columns, sorted and unique ``(d,)`` (a fit's
                ``col_ids``).
            unknown: What to do with ratings of items not in ``item_ids``: ``"error"`` (an
                :class:`UnknownIdError` naming them) or ``"drop"`` (leave them out).

        Returns:
            A :class:`SparseRatings` of shape ``(n_rows, d)``, with the same ``row_ids`` and
            ``col_ids = item_ids``.
        """
        if unknown not in ("error", "drop"):
            raise ValueError(f"unknown must be 'error' or 'drop'; got {unknown!r}")
        target = _normalized_ids(np.asarray(item_ids).reshape(-1), "item_ids")
        if target.size == 0 or np.any(target[1:] <= target[:-1]):
            raise ValueError("item_ids must be non-empty, sorted and unique")
        mine = self.col_ids if self.col_ids is not None else np.arange(self.n_cols)
        known, pos = id_lookup(target, mine, "item")
        if unknown == "error" and not known.all():
            id_positions(target, mine[~known], "item")  # raises, naming them
        keep = known[self.cols]
        out = sparse_ratings(
            self.rows[keep],
            pos[self.cols[keep]],
            self.values[keep],
            shape=(self.n_rows, target.size),
            dtype=self.dtype,
        )
        return SparseRatings(out.rows, out.cols, out.values, out.shape, self.row_ids, target)

    # ------------------------------------------------------------------ statistics

    def column_sums(self) -> tuple[np.ndarray, np.ndarray]:
        """``(count, sum)`` of the observed values of every column (float64, chunked)."""
        d = self.shape[1]
        total = np.zeros(d)
        for s in spans(self.nnz):
            total += np.bincount(self.cols[s], weights=self.values[s], minlength=d)
        return self.col_counts().astype(np.float64), total

    def row_sums(self) -> tuple[np.ndarray, np.ndarray]:
        """``(count, sum)`` of the observed values of every row (float64, chunked)."""
        n = self.shape[0]
        total = np.zeros(n)
        for s in spans(self.nnz):
            total += np.bincount(self.rows[s], weights=self.values[s], minlength=n)
        return self.row_counts().astype(np.float64), total


def _lock(a: np.ndarray) -> np.ndarray:
    """Make a new array, owned by the caller alone, read-only in place (no copy)."""
    a.flags.writeable = False
    return a


def _read_only(a: np.ndarray) -> np.ndarray:
    """``a`` if it and every array it is a view of are read-only, else a read-only copy."""
    x: Any = a
    while isinstance(x, np.ndarray):
        if x.flags.writeable:
            return _lock(np.array(a, copy=True))
        x = x.base
    return a


def _rebuild(rows, cols, values, shape, row_ids, col_ids) -> SparseRatings:
    """Unpickling and deep copies: the arrays are new, so they are locked rather than copied."""
    fresh = [_lock(a) if a.base is None else a for a in (rows, cols, values)]
    return SparseRatings(*fresh, shape, row_ids, col_ids)


def _lock_new(a: np.ndarray, *given: Any) -> np.ndarray:
    """Lock ``a`` in place when it is an array of its own, sharing no memory with the arrays the
    caller gave (``given``); otherwise leave it to the constructor, which copies it."""
    if a.base is None and not any(
        isinstance(g, np.ndarray) and np.may_share_memory(a, g) for g in given
    ):
        return _lock(a)
    return a


# ---------------------------------------------------------------------------- identifiers


class UnknownIdError(KeyError, ValueError):
    """An identifier that is not among a matrix's (or a fit's) users or items.

    Both a :class:`KeyError` (a failed look-up) and a :class:`ValueError` (a bad argument), so
    either ``except`` catches it; its message is plain text (no ``KeyError`` quoting).
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class IdMaps(NamedTuple):
    """The original identifiers of a matrix's rows and columns.

    Row ``i`` is user ``row_ids[i]`` and column ``l`` item ``col_ids[l]``; both arrays are sorted
    and unique (as :func:`sparse_ratings` builds them). A field is ``None`` where the positions
    are the identifiers (``0 .. n - 1``).

    Attributes:
        row_ids: ``(n_rows,)`` integers or strings, or ``None``.
        col_ids: ``(n_cols,)`` integers or strings, or ``None``.
    """

    row_ids: np.ndarray | None = None
    col_ids: np.ndarray | None = None

    def index(self, user_ids: Any = None, item_ids: Any = None, shape: Any = None) -> Any:
        """Positions of identifiers (see :meth:`SparseRatings.index`); ``shape`` bounds the
        positions of an axis without ids (``None``: any non-negative integer)."""
        if user_ids is None and item_ids is None:
            raise TypeError("give user_ids and/or item_ids, the identifiers to look up")
        sizes = (None, None) if shape is None else shape
        out = [
            id_positions(ids, wanted, name, size)
            for ids, wanted, name, size in (
                (self.row_ids, user_ids, "user", sizes[0]),
                (self.col_ids, item_ids, "item", sizes[1]),
            )
            if wanted is not None
        ]
        return out[0] if len(out) == 1 else tuple(out)

    def ambiguous(self) -> list[str]:
        """The axes (``"rows"``, ``"cols"``) whose ids are integers other than ``0 .. n - 1``:
        there a position and an identifier can be mistaken for each other."""
        out = []
        for ids, name in ((self.row_ids, "rows"), (self.col_ids, "cols")):
            if ids is not None and ids.dtype.kind in "iu":
                if not np.array_equal(ids, np.arange(ids.size)):
                    out.append(name)
        return out


def id_positions(ids: np.ndarray | None, wanted: Any, what: str, size: int | None = None) -> Any:
    """The positions of identifiers ``wanted`` among sorted, unique ``ids``.

    Args:
        ids: The identifiers of an axis (sorted, unique), or ``None`` (positions are the ids).
        wanted: The identifiers to look up, 1-D array-like.
        what: ``"user"`` or ``"item"``, for the messages.
        size: Length of the axis, to check positions when ``ids`` is ``None``.

    Returns:
        ``int64`` positions, the shape of ``wanted``.

    Raises:
        UnknownIdError: Some identifiers are not in ``ids`` (the message names up to five).
    """
    if hasattr(wanted, "to_numpy") and not isinstance(wanted, np.ndarray):
        wanted = wanted.to_numpy()
    query = np.asarray(wanted)
    if query.ndim == 0:
        query = query.reshape(-1)
    if query.ndim != 1:
        raise ValueError(f"{what}_ids must be 1-D; got shape {query.shape}")
    if ids is None:
        query = _as_kind(query, np.arange(0), what)
        bad = query < 0 if size is None else (query < 0) | (query >= size)
        pos = np.where(bad, 0, query).astype(np.int64)
    else:
        query = _as_kind(query, ids, what)
        found, pos = _search(ids, query)
        bad = ~found
    if bad.any():
        unknown = np.unique(query[bad])
        shown = ", ".join(str(u) for u in unknown[:5]) + (", ..." if unknown.size > 5 else "")
        raise UnknownIdError(
            f"{unknown.size} unknown {what} id{'s' if unknown.size > 1 else ''}: {shown} (not "
            f"among the {what}s of the data{'' if ids is None else f', ids {_span(ids)}'})"
        )
    return pos


def id_lookup(ids: np.ndarray, wanted: Any, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Like :func:`id_positions` without refusing unknown ids: ``(found, pos)``, boolean and
    ``int64`` arrays the shape of ``wanted`` (``pos`` is 0 where not found)."""
    query = np.asarray(wanted.to_numpy() if hasattr(wanted, "to_numpy") else wanted).reshape(-1)
    try:
        query = _as_kind(query, ids, what)
    except UnknownIdError:  # ids of another kind (text against numbers): none is known
        return np.zeros(query.shape, bool), np.zeros(query.shape, np.int64)
    return _search(ids, query)


def _search(ids: np.ndarray, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pos = np.searchsorted(ids, query).astype(np.int64)
    inside = pos < ids.size
    found = inside.copy()
    found[inside] = ids[pos[inside]] == query[inside]
    pos[~found] = 0
    return found, pos


def _span(ids: np.ndarray) -> str:
    return f"{ids[0]} .. {ids[-1]}" if ids.size else "none"


def _as_kind(query: np.ndarray, ids: np.ndarray, what: str) -> np.ndarray:
    """``query`` converted to the kind of ``ids`` (numbers or text), where it can be."""
    if query.size == 0:
        return query.astype(ids.dtype)
    if ids.dtype.kind in "iu":
        if query.dtype.kind in "iu":
            return query.astype(np.int64)
        if query.dtype.kind == "f" and np.all(np.isfinite(query) & (query == np.round(query))):
            return query.astype(np.int64)
        if query.dtype.kind in "UO":
            try:
                return query.astype(np.int64)
            except (TypeError, ValueError):
                pass
        raise UnknownIdError(
            f"{what} ids of the data are integers; got {query.dtype} values such as {query[0]!r}"
        )
    return _normalized_ids(query, what).astype(str) if ids.dtype.kind == "U" else query


def _normalized_ids(arr: np.ndarray, name: str) -> np.ndarray:
    """Identifiers as int64 (integral numbers) or text: pandas' object columns of strings become
    a NumPy string array (savable without pickle)."""
    if arr.dtype.kind == "O":
        if all(isinstance(v, str) for v in arr.flat):
            return arr.astype(str)
        try:
            as_float = arr.astype(np.float64)
        except (TypeError, ValueError):
            raise TypeError(
                f"{name} identifiers must be all numbers or all strings; got a mix"
            ) from None
        arr = as_float
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} holds NaN or infinite identifiers")
        if not np.all(arr == np.round(arr)):
            raise TypeError(
                f"{name} identifiers must be integers or strings; got non-integral floats"
            )
        return arr.astype(np.int64)
    if arr.dtype.kind == "b":
        raise TypeError(f"{name} identifiers must be numbers or strings; got booleans")
    return arr


# ---------------------------------------------------------------------------- construction


def check_entries(rows: Any, cols: Any, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Validate query entries ``(rows, cols)`` against a shape; returns int64 1-D copies."""
    r = _index_array(rows, "rows")
    c = _index_array(cols, "cols")
    if r.shape != c.shape:
        raise ValueError(f"rows and cols must have the same length; got {r.size} and {c.size}")
    for idx, size, name in ((r, shape[0], "rows"), (c, shape[1], "cols")):
        if idx.size and (idx.min() < 0 or idx.max() >= size):
            bad = int(np.flatnonzero((idx < 0) | (idx >= size))[0])
            raise ValueError(
                f"{name}[{bad}] = {int(idx[bad])} is out of range for a matrix of shape {shape}"
            )
    return r.astype(np.int64), c.astype(np.int64)


def _index_array(x: Any, name: str) -> np.ndarray:
    if hasattr(x, "to_numpy") and not isinstance(x, np.ndarray):  # pandas
        x = x.to_numpy()
    arr = np.asarray(x)
    if arr.ndim != 1:
        arr = arr.reshape(-1) if arr.ndim == 0 else arr
        if arr.ndim != 1:
            raise ValueError(f"{name} must be 1-D; got shape {arr.shape}")
    if arr.dtype.kind in "iu":
        return arr
    if arr.dtype.kind == "f":
        if arr.size and not (np.all(np.isfinite(arr)) and np.all(arr == np.round(arr))):
            raise TypeError(f"{name} must hold integers; got non-integral floats")
        return arr.astype(np.int64)
    if arr.size == 0:
        return arr.astype(np.int64)
    raise TypeError(f"{name} must be an array of integers; got dtype {arr.dtype}")


def _value_array(x: Any, dtype: Any) -> np.ndarray:
    if hasattr(x, "to_numpy") and not isinstance(x, np.ndarray):
        x = x.to_numpy()
    arr = np.asarray(x)
    if arr.dtype.kind == "b" or (arr.dtype.kind not in "iuf" and arr.size):
        raise TypeError(f"values must be real numbers; got dtype {arr.dtype}")
    if arr.ndim != 1:
        raise ValueError(f"values must be 1-D; got shape {arr.shape}")
    if dtype is None:
        dtype = arr.dtype if arr.dtype in (np.float32, np.float64) else np.float64
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"dtype must be float32 or float64; got {dtype}")
    return arr.astype(dtype, copy=False)


def _check_shape(shape: Any) -> tuple[int, int]:
    if not isinstance(shape, (tuple, list)) or len(shape) != 2:
        raise ValueError(f"shape must be a pair (n_rows, n_cols); got {shape!r}")
    out = []
    for s in shape:
        if isinstance(s, bool) or not isinstance(s, numbers.Integral):
            raise TypeError(f"shape must hold integers; got {shape!r}")
        if not 1 <= int(s) <= _INT32_MAX:
            raise ValueError(f"shape entries must lie in [1, 2**31 - 1]; got {shape!r}")
        out.append(int(s))
    return out[0], out[1]


def sparse_ratings(
    rows: Any,
    cols: Any = None,
    values: Any = None,
    *,
    shape: tuple[int, int] | None = None,
    reindex: bool | None = None,
    duplicates: str = "error",
    dtype: Any = None,
    mask: Any = None,
) -> SparseRatings:
    """Build a :class:`SparseRatings` from (row, column, value) triples or from a dense matrix.

    Two forms:

    * ``sparse_ratings(user_ids, item_ids, values)``: the triples (array-likes, pandas Series
      included), by identifier (the default, as :func:`load_sparse_ratings`): the identifiers
      are integers or strings (MovieLens ``userId`` and ``movieId``, names); they are mapped
      to ``0 .. n - 1`` in sorted order and kept as ``row_ids`` / ``col_ids``, and the shape is
      the number of distinct identifiers (``sparse_ratings(df.userId, df.movieId, df.rating)``
      has one column per rated movie, not one per ``movieId`` up to the largest).
    * ``sparse_ratings(rows, cols, values, shape=(n, d))``: by position (``reindex=False``,
      the default when ``shape`` is given): the indices are the rows and columns themselves;
      without ``shape`` it is ``(max(rows) + 1, max(cols) + 1)``.
    * ``sparse_ratings(X)``: the observed entries of a dense ``(n, d)`` array with ``NaN`` at the
      missing entries (or ``mask`` True = observed).

    The triples are sorted by row, then column. The result owns its arrays (read-only: a
    :class:`SparseRatings` is immutable): input already sorted and of the right dtypes is copied
    once, so changing the caller's arrays later never changes the matrix.

    Args:
        rows: Row indices (or identifiers with ``reindex``), or the dense matrix.
        cols: Column indices (or identifiers).
        values: The observed values; real numbers, all finite.
        shape: ``(n_rows, n_cols)``; rows and columns without entries are allowed.
        reindex: Map arbitrary identifiers to ``0 .. n - 1`` and keep them (cannot be combined
            with ``shape``); default ``True`` without ``shape``, ``False`` with it.
        duplicates: What to do with a repeated ``(row, col)`` pair: ``"error"`` (default),
            ``"last"`` (keep the value that comes last in the input) or ``"mean"`` (average them).
        dtype: Dtype of the values: ``float32`` or ``float64``; default the input's if it is one
            of those, else float64.
        mask: Dense form only: boolean ``(n, d)``, ``True`` = observed.

    Returns:
        A :class:`SparseRatings`.

    Raises:
        TypeError: Non-integer indices, non-real values.
        ValueError: Lengths differ, an index is negative or outside ``shape``, a value is ``NaN``
            or infinite, a pair is repeated (with ``duplicates="error"``), or a dimension exceeds
            ``2**31 - 1``.

    Example:
        >>> import numpy as np, jaxmix
        >>> S = jaxmix.sparse_ratings([10, 10, 42], [7, 3, 7], [4, 5, 3])
        >>> S.shape, S.row_ids.tolist(), S.col_ids.tolist()
        ((2, 2), [10, 42], [3, 7])
        >>> jaxmix.sparse_ratings([0, 2], [1, 0], [4, 5], shape=(3, 2)).row_ids is None
        True
        >>> jaxmix.sparse_ratings(np.array([[1.0, np.nan], [np.nan, 2.0]])).nnz
        2
    """
    if cols is None and values is None:
        return SparseRatings.from_dense(rows, mask, dtype=dtype)
    if cols is None or values is None:
        raise TypeError("sparse_ratings needs rows, cols and values (or a single dense matrix)")
    if mask is not None:
        raise TypeError("mask applies only to the dense form sparse_ratings(X, mask=...)")
    if duplicates not in DUPLICATE_POLICIES:
        raise ValueError(f"duplicates must be one of {DUPLICATE_POLICIES}; got {duplicates!r}")
    vals = _value_array(values, dtype)
    row_ids = col_ids = None
    if reindex is None:
        reindex = shape is None
    if reindex:
        if shape is not None:
            raise ValueError("shape cannot be given with reindex=True (it is the number of ids)")
        row_ids, r = _reindex(rows, "rows")
        col_ids, c = _reindex(cols, "cols")
        shape = (len(row_ids), len(col_ids))
    else:
        r = _index_array(rows, "rows")
        c = _index_array(cols, "cols")
    if not (r.shape == c.shape == vals.shape):
        raise ValueError(
            f"rows, cols and values must have the same length; got {r.size}, {c.size} and "
            f"{vals.size}"
        )
    if shape is None:
        if r.size == 0:
            raise ValueError("shape is needed when there are no triples")
        shape = (int(r.max()) + 1, int(c.max()) + 1)
    n, d = _check_shape(shape)
    for idx, size, name in ((r, n, "rows"), (c, d, "cols")):
        if idx.size and (idx.min() < 0 or idx.max() >= size):
            bad = int(np.flatnonzero((idx < 0) | (idx >= size))[0])
            raise ValueError(
                f"{name}[{bad}] = {int(idx[bad])} is out of range for shape ({n}, {d})"
            )
    for s in spans(vals.size):
        finite = np.isfinite(vals[s])
        if not finite.all():
            bad = s.start + int(np.flatnonzero(~finite)[0])
            raise ValueError(
                f"values[{bad}] = {vals[bad]} is not finite (row {int(r[bad])}, column "
                f"{int(c[bad])}); leave missing entries out instead of storing NaN"
            )
    given = (vals,) if reindex else (r, c, vals)  # possibly the caller's own arrays
    r = r.astype(np.int32, copy=False)
    c = c.astype(np.int32, copy=False)
    r, c, vals = _canonical(r, c, vals, d, duplicates)
    r, c, vals = (_lock_new(a, *given) for a in (r, c, vals))
    return SparseRatings(r, c, vals, (n, d), row_ids, col_ids)


def _reindex(ids: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    if hasattr(ids, "to_numpy") and not isinstance(ids, np.ndarray):
        ids = ids.to_numpy()
    arr = np.asarray(ids)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D; got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError("shape is needed when there are no triples (nothing to reindex)")
    arr = _normalized_ids(arr, name)
    unique, inverse = np.unique(arr, return_inverse=True)
    if unique.size > _INT32_MAX:
        raise ValueError(f"more than 2**31 - 1 distinct {name}")
    return unique, inverse.astype(np.int32).reshape(-1)


def _sorted_keys(r: np.ndarray, c: np.ndarray, d: int) -> bool:
    """Whether ``(r, c)`` are strictly increasing in row-major order (checked in chunks)."""
    last = -1
    for s in spans(r.size):
        key = r[s].astype(np.int64) * d + c[s]
        if key.size and (key[0] <= last or np.any(key[1:] <= key[:-1])):
            return False
        if key.size:
            last = int(key[-1])
    return True


def _canonical(r, c, vals, d, duplicates):
    if _sorted_keys(r, c, d):
        return r, c, vals
    key = r.astype(np.int64) * d + c
    order = np.argsort(key, kind="stable")
    key = key[order]
    r, c, vals = r[order], c[order], vals[order]
    del order
    dup = key[1:] == key[:-1]
    if dup.any():
        if duplicates == "error":
            i = int(np.flatnonzero(dup)[0])
            raise ValueError(
                f"the entry (row {int(r[i])}, column {int(c[i])}) appears more than once "
                f"({int(dup.sum())} repeated pairs in all); pass duplicates='last' or 'mean' to "
                "merge them"
            )
        first = np.concatenate([[True], ~dup])
        starts = np.flatnonzero(first)
        if duplicates == "mean":
            sums = np.add.reduceat(vals.astype(np.float64), starts)
            counts = np.diff(np.append(starts, vals.size))
            merged = (sums / counts).astype(vals.dtype)
        else:  # "last": the stable sort keeps input order within a pair
            ends = np.append(starts[1:], vals.size) - 1
            merged = vals[ends]
        r, c, vals = r[starts], c[starts], merged
    return r, c, vals


def triples_of(values: np.ndarray, observed: np.ndarray, dtype: Any = None) -> SparseRatings:
    """Triples of a validated dense ``(values, observed)`` pair (row-major order)."""
    n, d = values.shape
    _check_shape((n, d))
    r, c = np.nonzero(observed)
    vals = values[r, c].astype(np.float64 if dtype is None else np.dtype(dtype))
    return SparseRatings(_lock(r.astype(np.int32)), _lock(c.astype(np.int32)), _lock(vals), (n, d))


# ---------------------------------------------------------------------------- files


def _detect(first: str) -> str | None:
    if "::" in first:
        return "::"
    for sep in ("\t", ",", ";"):
        if sep in first:
            return sep
    return None  # white space


def _sniff(
    path: str, sep: str | None, header: bool | None, columns: tuple[int, ...], what: str, needs: str
) -> tuple[str | None, int]:
    """The separator and the number of header lines (0 or 1) of a file of records, from its first
    non-empty line: ``sep`` / ``header`` where given, else detected (:func:`_detect`; a header
    when the first field of ``columns`` is not a number). ``what`` names the records and
    ``needs`` words the field-count message."""
    with open(path, encoding="utf-8", errors="replace") as fh:
        first = next((line for line in fh if line.strip()), None)
    if first is None:
        raise ValueError(f"{path} holds no {what}")
    if sep is None:
        sep = _detect(first)
    fields = first.strip().split(sep) if sep else first.split()
    if len(fields) <= max(columns):
        raise ValueError(
            f"{path}: the first line has {len(fields)} {needs} {max(columns) + 1} "
            f"(separator {sep!r})"
        )
    if header is None:
        header = not is_number(fields[columns[0]].strip().strip('"'))
    return sep, int(header)


def load_sparse_ratings(
    path: str | os.PathLike,
    *,
    sep: str | None = None,
    header: bool | None = None,
    columns: tuple[int, int, int] = (0, 1, 2),
    reindex: bool = True,
    shape: tuple[int, int] | None = None,
    dtype: Any = np.float32,
    duplicates: str = "error",
) -> SparseRatings:
    """Read a file of (user, item, rating) triples, one per line.

    Reads the usual layouts: MovieLens ``ratings.csv`` (``userId,movieId,rating,timestamp`` with a
    header), MovieLens-100K ``u.data`` (``user item rating timestamp``, tab-separated, no header),
    MovieLens-10M ``ratings.dat`` (``::``-separated), and white-space-separated text. Extra columns
    (the timestamp) are ignored. pandas is used when it is installed (faster), NumPy otherwise.

    Args:
        path: The file.
        sep: Field separator; default detected from the first line (``"::"``, tab, comma,
            semicolon, else white space).
        header: Whether the first line is a header; default: it is when its first field is not a
            number.
        columns: Positions of the user, item and rating fields.
        reindex: Map the user and item identifiers to ``0 .. n - 1`` (in sorted order) and keep
            them as ``row_ids`` / ``col_ids`` (default). With ``False`` the identifiers must be
            integers ``0 .. n - 1`` already (``shape`` then fixes the size).
        shape: With ``reindex=False``, the matrix shape (default from the largest indices).
        dtype: Dtype of the ratings (float32 by default: exact for stars, half the memory).
        duplicates: Policy for a repeated (user, item) pair, see :func:`sparse_ratings`.

    Returns:
        A :class:`SparseRatings`.

    Raises:
        FileNotFoundError: No such file.
        ValueError: The file is empty, a line has too few fields, a field is not a number, a
            rating is not finite, or a pair repeats (message names the file).

    Example:
        >>> import pathlib, tempfile, jaxmix
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "ratings.csv"
        >>> text = "userId,movieId,rating,timestamp\\n7,31,2.5,0\\n7,1029,3.0,0\\n9,31,4,0\\n"
        >>> _ = p.write_text(text)
        >>> S = jaxmix.load_sparse_ratings(p)
        >>> S.shape, S.row_ids.tolist(), S.col_ids.tolist()
        ((2, 2), [7, 9], [31, 1029])
    """
    path = os.fspath(path)
    if len(columns) != 3 or len(set(columns)) != 3:
        raise ValueError(f"columns must name three distinct fields; got {columns!r}")
    sep, skip = _sniff(path, sep, header, columns, "data", f"fields but columns={columns} needs")
    users, items, ratings = _read_triples(path, sep, skip, columns, dtype)
    try:
        return sparse_ratings(
            users,
            items,
            ratings,
            reindex=reindex,
            shape=None if reindex else shape,
            duplicates=duplicates,
            dtype=dtype,
        )
    except (ValueError, TypeError) as err:
        raise type(err)(f"{path}: {err}") from None


def load_id_pairs(
    path: str | os.PathLike,
    *,
    sep: str | None = None,
    header: bool | None = None,
    columns: tuple[int, int] = (0, 1),
) -> tuple[np.ndarray, np.ndarray]:
    """Read a file of (user id, item id) pairs, one per line: the entries to predict.

    The layouts of :func:`load_sparse_ratings` (separator detected, a header skipped when its
    first field is not a number, extra columns ignored): a ``ratings.csv`` of held-out ratings
    works as it is.

    Args:
        path: The file.
        sep: Field separator; default detected from the first line.
        header: Whether the first line is a header; default: when its first field is not a
            number.
        columns: Positions of the user and item fields.

    Returns:
        ``(user_ids, item_ids)``, 1-D arrays (int64 where every id is an integer, else text).

    Raises:
        FileNotFoundError: No such file.
        ValueError: The file is empty or a line has too few fields (message names the file).
    """
    path = os.fspath(path)
    if len(columns) != 2 or len(set(columns)) != 2:
        raise ValueError(f"columns must name two distinct fields; got {columns!r}")
    sep, skip = _sniff(
        path, sep, header, columns, "pairs", "field(s) but a (user, item) pair needs"
    )
    usecols = tuple(sorted(columns))
    try:
        table = _loadtxt(path, sep, skip, usecols, str)
    except (ValueError, IndexError) as err:
        raise ValueError(f"{path}: could not read (user, item) pairs: {err}") from None
    users, items = (
        _normalized_ids(_numeric(np.char.strip(table[usecols.index(c)], '"')), "ids")
        for c in columns
    )
    return users, items


def _read_triples(path, sep, skip, columns, dtype):
    usecols = tuple(sorted(columns))
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - exercised where pandas is absent
        pd = None
    try:
        if pd is not None:
            frame = pd.read_csv(
                path,
                sep=r"\s+" if sep is None else sep,
                engine="python" if sep is not None and len(sep) > 1 else "c",
                header=None,
                skiprows=skip,
                usecols=usecols,
                skip_blank_lines=True,
            )
            table = [frame[c].to_numpy() for c in usecols]
        else:
            table = _loadtxt(path, sep, skip, usecols, np.float64)
            if table is None:  # identifiers that are not numbers
                table = [_numeric(t) for t in _loadtxt(path, sep, skip, usecols, str)]
            else:
                table = [_numeric(t) for t in table]
    except (ValueError, IndexError) as err:
        raise ValueError(f"{path}: could not read (user, item, rating) triples: {err}") from None
    users, items, ratings = (table[usecols.index(c)] for c in columns)
    if np.asarray(ratings).dtype.kind not in "iuf":
        raise ValueError(f"{path}: the rating column holds text that is not a number")
    return users, items, np.asarray(ratings, dtype=dtype)


def _loadtxt(path, sep, skip, usecols, dtype):
    with open(path, encoding="utf-8", errors="replace") as fh:
        lines = (line.replace("::", "\t") for line in fh) if sep == "::" else fh
        try:
            table = np.loadtxt(
                lines,
                delimiter="\t" if sep == "::" else sep,
                skiprows=skip,
                usecols=usecols,
                dtype=dtype,
                ndmin=2,
            )
        except ValueError:
            if dtype is str:
                raise
            return None
    return [table[:, i] for i in range(len(usecols))]


def _numeric(column: np.ndarray) -> np.ndarray:
    """Integral float columns (identifiers) as int64; other columns unchanged or as floats."""
    try:
        as_float = column.astype(np.float64)
    except ValueError:
        return column
    if np.all(np.isfinite(as_float)) and np.all(as_float == np.round(as_float)):
        return as_float.astype(np.int64)
    return as_float

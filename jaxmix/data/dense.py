"""The dense layout: the ``(n, d)`` matrix and its mask, and the E-step by matrix products.

:func:`validate_matrix` is the one check every dense input goes through: it copies the input (the
caller's array is never modified), checks it and returns a float64 array with ``NaN`` at the
missing entries together with a boolean mask (``True`` = observed).

On the device the matrix is a :class:`DenseArrays` (standardised values with zeros at the missing
entries, the mask as 0/1, and the per-row ``|C_u|`` and ``|x_{u,C_u}|^2``). Its
:meth:`~DenseArrays.e_step_stats` evaluates a family's row sums and column sums
(:mod:`jaxmix.data.base`) as matrix products: the centred tables expanded in ``x``,
``M t0 + X t1 + X^2 t2``, and ``M^T w``, ``X^T w``, ``(X^2)^T w`` with ``M`` the mask and ``X``
zero where missing, each at ``Precision.HIGHEST``.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array, lax
from jax.scipy.special import logsumexp

from jaxmix.data.base import (
    ColumnSummary,
    EStep,
    RowInfo,
    Standardizer,
    expand,
    prefix_add,
    size_class,
)

__all__ = [
    "LOOP_TRANSPOSE_MAX_ENTRIES",
    "PAD_MIN_ENTRIES",
    "DenseArrays",
    "DenseLayout",
    "as_array",
    "dense_pass",
    "float_dtype",
    "padded_rows",
    "validate_matrix",
]

_HI = lax.Precision.HIGHEST

#: Dense blocks of at most this many entries get transposed copies for an iterative loop on the
#: CPU (:func:`loop_transposes`): 2^26 entries, 512 MiB per float64 copy.
LOOP_TRANSPOSE_MAX_ENTRIES = 1 << 26

#: A padded dense matrix has at least this many entries (rows x columns): below it a fit costs
#: next to nothing, so the small matrices of a cross-validation or bootstrap loop share one size
#: class (up to 1024 rows of 10 columns all become 1024 rows).
PAD_MIN_ENTRIES = 1 << 13


def padded_rows(n: int, d: int) -> int:
    """The rows a dense ``(n, d)`` matrix is padded to: the :func:`~jaxmix.data.base.size_class`
    of ``n`` (columns as its unit), at least :data:`PAD_MIN_ENTRIES` entries."""
    return size_class(max(n, -(-PAD_MIN_ENTRIES // max(d, 1))), unit=d)


def float_dtype() -> np.dtype:
    """The floating dtype JAX computes in now: float64 with ``jax_enable_x64``, else float32."""
    return np.dtype(jax.dtypes.canonicalize_dtype(jnp.float64))


def as_array(X: Any, name: str) -> np.ndarray:
    """``X`` as a NumPy array (pandas objects through ``to_numpy``); a ragged input is a
    ``ValueError`` naming ``name``."""
    if hasattr(X, "to_numpy") and not isinstance(X, np.ndarray):  # pandas objects
        X = X.to_numpy()
    try:
        arr = np.asarray(X)
    except (ValueError, TypeError) as err:  # ragged nested lists and the like
        raise ValueError(f"{name} could not be read as a rectangular array: {err}") from None
    return arr


def _is_missing(value: Any) -> bool:
    """``None``, pandas' ``NA`` (nullable dtypes) or a float ``NaN``."""
    if value is None or type(value).__name__ == "NAType":
        return True
    return isinstance(value, float) and math.isnan(value)


def _objects_as_float(arr: np.ndarray, name: str) -> np.ndarray:
    """An object array (lists holding ``None``, pandas nullable ``Float64``/``Int64`` frames) as
    float64 with ``NaN`` at the missing values; anything but a real number or a missing value
    is a ``TypeError`` naming its position."""
    out = np.empty(arr.shape, np.float64)
    for index, value in np.ndenumerate(arr):
        if _is_missing(value):
            out[index] = np.nan
        elif isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)):
            out[index] = float(value)
        else:
            where = ", ".join(str(i) for i in index)
            shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
            raise TypeError(
                f"{name} must be an array of real numbers (None or pandas NA for a missing "
                f"value); got {shown} of type {type(value).__name__} at [{where}] (convert "
                "strings or objects to floats first)"
            )
    return out


def validate_matrix(
    X: Any, mask: Any = None, *, name: str = "X", allow_all_missing: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Check a partially observed matrix and return a float64 copy with its mask.

    Args:
        X: Array-like of shape ``(n, d)``; ``NaN`` marks a missing entry, and so do ``None``
            (nested lists) and pandas' ``NA`` (nullable ``Float64``/``Int64`` frames). Integer,
            float16 and other real dtypes are accepted, as are pandas DataFrames.
        mask: Optional boolean array of shape ``(n, d)``; ``True`` marks an observed entry and
            overrides the ``NaN`` convention (values at unobserved entries are ignored).
        name: Name of the argument, used in error messages.
        allow_all_missing: Accept a matrix with no observed entry (for completion only).

    Returns:
        ``(values, observed)``: a new float64 array with ``NaN`` at every unobserved entry and a new
        boolean mask.

    Raises:
        TypeError: ``X`` is not numeric, or ``mask`` is not boolean.
        ValueError: ``X`` is not 2-D or is empty; ``mask`` has the wrong shape; an observed entry
            is infinite or ``NaN``; every entry is missing.
    """
    arr = as_array(X, name)
    if arr.dtype == object:
        arr = _objects_as_float(arr, name)
    if arr.dtype.kind == "b" or arr.dtype.kind not in "iuf":
        raise TypeError(
            f"{name} must be an array of real numbers; got dtype {arr.dtype}"
            + (" (convert strings or objects to floats first)" if arr.dtype.kind in "OUS" else "")
        )
    if arr.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D array of shape (n_rows, n_cols); got {arr.ndim}-D with shape "
            f"{arr.shape}"
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(
            f"{name} is empty (shape {arr.shape}); it needs at least one row and column"
        )
    values = np.array(arr, dtype=np.float64, order="C", copy=True)  # C order: same sums always
    if mask is None:
        observed = ~np.isnan(values)
    else:
        m = as_array(mask, "mask")
        if m.dtype != np.bool_:
            raise TypeError(f"mask must be a boolean array (True = observed); got dtype {m.dtype}")
        if m.shape != values.shape:
            raise ValueError(f"mask has shape {m.shape} but {name} has shape {values.shape}")
        observed = np.array(m, order="C", copy=True)
        bad = observed & np.isnan(values)
        if bad.any():
            i, j = np.argwhere(bad)[0]
            raise ValueError(
                f"{name} is NaN at {int(bad.sum())} entries that mask marks observed "
                f"(first at row {i}, column {j})"
            )
    bad = observed & ~np.isfinite(values)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise ValueError(
            f"{name} has {int(bad.sum())} infinite values (first at row {i}, column {j}); "
            "mark unknown entries as NaN (or False in mask) instead"
        )
    if not allow_all_missing and not observed.any():
        raise ValueError(f"every entry of {name} is missing; there is nothing to fit")
    values[~observed] = np.nan
    return values, observed


# ---------------------------------------------------------------------------- kernels


def row_sums(tables: Any, x: Array, mask: Array, rows: RowInfo) -> Array:
    """The row sums of a family's tables as matrix products, ``(n, K, F)``.

    The centred polynomial is expanded in ``x`` (:func:`~jaxmix.data.base.expand`):
    ``M t0 + X t1 + X^2 t2``, the last two on each component's leading features; with
    ``unit`` the rows' ``|x_{u,C_u}|^2`` (``rows.sq_norm``) is added to the first feature.
    """
    t0, t1, t2 = expand(tables)
    d, K, F = t0.shape
    s = jnp.matmul(mask, t0.reshape(d, K * F), precision=_HI).reshape(-1, K, F)
    if t1 is not None:
        s = prefix_add(
            s, jnp.matmul(x, t1.reshape(d, -1), precision=_HI).reshape(-1, K, t1.shape[2])
        )
    if t2 is not None:
        s = prefix_add(
            s, jnp.matmul(x * x, t2.reshape(d, -1), precision=_HI).reshape(-1, K, t2.shape[2])
        )
    if tables.unit:
        s = s.at[:, :, 0].add(rows.sq_norm[:, None])
    return s


def col_sums(
    weights: Any, x: Array, mask: Array, transposed: tuple[Array, Array] | None = None
) -> tuple[Array | None, ...]:
    """``(M^T w, X^T w, (X^2)^T w)`` on the leading weights of each power (``None`` if none).

    ``transposed``: ``(X^T, M^T)`` stored as ``(d, r)`` arrays (:func:`loop_transposes`), which
    makes each sum a plain matrix product (on the CPU, XLA's fast kernels take only those).
    """
    w = weights.w
    G0, G1, G2 = weights.sizes
    x_t, mask_t = (x.T, mask.T) if transposed is None else transposed
    c0 = jnp.matmul(mask_t, w[:, :G0], precision=_HI) if G0 else None
    c1 = jnp.matmul(x_t, w[:, :G1], precision=_HI) if G1 else None
    c2 = jnp.matmul(x_t * x_t, w[:, :G2], precision=_HI) if G2 else None
    return c0, c1, c2


def loop_transposes(x: Array, mask: Array) -> tuple[Array, Array] | None:
    """``(X^T, M^T)`` materialised, for a loop that takes many column sums of the same rows; or
    ``None`` (use the matrices as they are).

    On the CPU a product contracting the rows of a row-major ``(r, d)`` matrix runs 1.6 to 2.5
    times slower than one contracting its columns (XLA's CPU dots on the course's 1200 x 1200
    matrix, 12 to 60 columns of weights), so copies made once per compiled call pay back within
    a few iterations.
    The copies live as long as the loop: only blocks of at most
    :data:`LOOP_TRANSPOSE_MAX_ENTRIES` entries get them, and only on the CPU (elsewhere the
    matrix libraries read transposed operands at full speed).
    """
    if jax.default_backend() != "cpu" or x.size > LOOP_TRANSPOSE_MAX_ENTRIES:
        return None
    # the barrier keeps XLA from folding the transposes back into the products
    return lax.optimization_barrier((x.T, mask.T))


def dense_pass(
    params: Any,
    family: Any,
    x: Array,
    mask: Array,
    rows: RowInfo,
    valid: Array | None = None,
    with_stats: bool = True,
    transposed: tuple[Array, Array] | None = None,
) -> tuple[Array, Array, Any, Any, Any, Any]:
    """E-step and raw statistics of densely stored rows.

    Args:
        params: Mixture parameters (standardised units).
        family: The covariance family.
        x, mask: ``(r, d)`` values (0 where missing) and 0/1 mask.
        rows: The rows' :class:`RowInfo`.
        valid: ``(r,)`` 1 for a real row, 0 for padding (``None``: all real).
        with_stats: Also compute the column sums and row totals.
        transposed: ``(X^T, M^T)`` from :func:`loop_transposes`, or ``None``.

    Returns:
        ``(resp (r, K), row_ll (r,), col_sums, totals, aux_totals, aux)``; the column sums and
        the totals are ``None`` without stats.
    """
    log_joint, aux = family.log_joint(
        params, row_sums(family.row_tables(params), x, mask, rows), rows
    )
    row_ll = logsumexp(log_joint, axis=1, keepdims=True)
    resp = jnp.exp(log_joint - row_ll)
    row_ll = row_ll[:, 0]
    if valid is not None:
        resp = resp * valid[:, None]
        row_ll = row_ll * valid
    if not with_stats:
        return resp, row_ll, None, None, None, aux
    cols = col_sums(family.stat_weights(resp, aux), x, mask, transposed)
    totals = family.row_totals(resp, rows)
    return resp, row_ll, cols, totals, family.aux_totals(resp, aux), aux


@dataclasses.dataclass(frozen=True)
class DenseArrays:
    """A standardised dense matrix on the device (a JAX pytree).

    Built with ``pad=True`` (:meth:`DenseLayout.device`) the rows are padded to a size class
    (:func:`padded_rows`) with rows that carry no weight: nothing observed, responsibilities and
    log-likelihood zero (``valid``), and ``n_rows`` counts only the real rows, so they change no
    statistic and no objective, and fits of matrices of nearby sizes share their compiled programs.

    Attributes:
        x: Values, zero where missing, ``(n, d)`` (``n`` padded or not).
        mask: 1.0 where observed, 0.0 where missing, ``(n, d)``.
        n_obs: ``|C_u|``, ``(n,)``.
        sq_norm: ``|x_{u,C_u}|^2``, ``(n,)``.
        transposed: ``(x^T, mask^T)`` for a loop (:meth:`for_loop`), or ``None``.
        valid: 1.0 for a real row, 0.0 for padding, ``(n,)``; ``None``: no padding.
        n_rows: The number of real rows (a scalar array); ``None``: no padding.
    """

    x: Array
    mask: Array
    n_obs: Array
    sq_norm: Array
    transposed: tuple[Array, Array] | None = None
    valid: Array | None = None
    n_rows: Array | None = None

    @property
    def n_slots(self) -> int:
        """Rows of the responsibilities the E-step returns (the matrix's rows, padding
        included)."""
        return self.x.shape[0]

    @property
    def n_entries(self) -> int:
        """Entry slots of the block (static): rows times columns, padding included."""
        return int(self.x.size)

    def _n_rows(self) -> Array:
        if self.n_rows is not None:
            return self.n_rows
        return jnp.asarray(self.x.shape[0], self.x.dtype)

    @property
    def dtype(self) -> Any:
        """The float dtype of the arrays."""
        return self.x.dtype

    @property
    def rows(self) -> RowInfo:
        """Every row's :class:`RowInfo`."""
        return RowInfo(self.n_obs, self.sq_norm)

    def local(self) -> DenseArrays:
        """The block a device works on: the whole matrix."""
        return self

    def for_loop(self) -> DenseArrays:
        """These arrays for a compiled loop of many E-steps (call on a block, inside the
        compiled function): with the transposed copies of :func:`loop_transposes`, made once."""
        return dataclasses.replace(self, transposed=loop_transposes(self.x, self.mask))

    def e_step_stats(
        self,
        params: Any,
        family: Any,
        *,
        with_stats: bool = True,
        with_aux: bool = False,
        axis_name: str | None = None,
    ) -> EStep:
        """Responsibilities, log-likelihood and (optionally) the family's statistics and the
        rows' ``aux``.

        Pure and traceable; ``axis_name`` is accepted for the common protocol (a dense matrix is
        not split over devices).
        """
        resp, row_ll, cols, totals, aux_totals, aux = dense_pass(
            params, family, self.x, self.mask, self.rows, self.valid, with_stats, self.transposed
        )
        stats = None
        if with_stats:
            stats = family.suff_stats(cols, totals, self._n_rows(), aux_totals)
        return EStep(resp, row_ll, jnp.sum(row_ll), stats, aux if with_aux else None)

    def log_joint(self, params: Any, family: Any) -> tuple[Array, Any]:
        """``log w_k + log N(x_{u,C_u}; component k)`` of every row and component, ``(n, K)``,
        and the family's per-row ``aux``."""
        return family.log_joint(
            params, row_sums(family.row_tables(params), self.x, self.mask, self.rows), self.rows
        )

    def suff_stats(self, resp: Array, family: Any, aux: Any = None) -> Any:
        """The family's statistics of given responsibilities ``(n, K)`` (and the family's
        per-row ``aux`` from its ``log_joint``, where it needs one): the M-step's input for any
        ``resp``, not only an E-step's."""
        if self.valid is not None:
            resp = resp * self.valid[:, None]
        cols = col_sums(family.stat_weights(resp, aux), self.x, self.mask, self.transposed)
        totals = family.row_totals(resp, self.rows)
        return family.suff_stats(cols, totals, self._n_rows(), family.aux_totals(resp, aux))

    def distribute(self, fn: Any, args: tuple, out_specs: Any = None) -> Any:
        """Run ``fn(self, *args, axis_name=None)`` (a dense matrix stays on one device)."""
        return fn(self, *args, axis_name=None)

    def row_spec(self, batch_dims: int = 0) -> Any:
        """Partition spec of a per-row output (``None``: not sharded)."""
        return None


jax.tree_util.register_dataclass(
    DenseArrays,
    data_fields=["x", "mask", "n_obs", "sq_norm", "transposed", "valid", "n_rows"],
    meta_fields=[],
)


class DenseLayout:
    """A validated dense matrix on the host (see :func:`jaxmix.data.as_data`).

    Attributes:
        values: ``(n, d)`` float64, ``NaN`` at missing entries.
        observed: ``(n, d)`` boolean mask.
    """

    kind = "dense"

    def __init__(self, values: np.ndarray, observed: np.ndarray) -> None:
        self.values = values
        self.observed = observed
        self._summary: ColumnSummary | None = None

    def __repr__(self) -> str:
        n, d = self.shape
        return f"DenseLayout(shape=({n}, {d}), nnz={self.nnz})"

    @property
    def shape(self) -> tuple[int, int]:
        """``(n, d)``."""
        return self.values.shape

    @property
    def nnz(self) -> int:
        """Number of observed entries."""
        return int(self.observed.sum())

    def zero_filled(self) -> np.ndarray:
        """The values with zeros at the missing entries."""
        return np.where(self.observed, self.values, 0.0)

    def summary(self) -> ColumnSummary:
        """Column counts, sums and spread of the observed entries (computed once)."""
        if self._summary is None:
            x0 = self.zero_filled()
            count = self.observed.sum(axis=0).astype(np.float64)
            total = x0.sum(axis=0)
            mean = np.divide(total, count, out=np.zeros_like(total), where=count > 0)
            resid = np.where(self.observed, self.values - mean, 0.0)
            sq = resid * resid
            self._summary = ColumnSummary(
                count=count,
                total=total,
                sq_resid=float(sq.sum()),
                col_sq_resid=sq.sum(axis=0),
                sq_total=float(np.sum(x0 * x0)),
                nnz=self.nnz,
                n_rows=self.shape[0],
            )
        return self._summary

    def row_counts(self) -> np.ndarray:
        """``|C_u|`` of every row, ``(n,)``."""
        return self.observed.sum(axis=1)

    def entries(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The observed entries in row-major order: ``(rows, cols, values)`` (float64)."""
        rows, cols = np.nonzero(self.observed)
        return rows, cols, self.values[rows, cols].astype(np.float64)

    def row_sums(self) -> tuple[np.ndarray, np.ndarray]:
        """``(count, total)`` of every row's observed entries, float64 ``(n,)`` each."""
        return self.row_counts().astype(np.float64), self.zero_filled().sum(axis=1)

    def split(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Hide the observed entries at ``positions`` (indices into the observed entries in
        row-major order): ``(X_train, test_mask)``, a copy with ``NaN`` there and their mask."""
        flat = np.flatnonzero(self.observed)[positions]
        test = np.zeros(self.values.size, dtype=bool)
        test[flat] = True
        test = test.reshape(self.values.shape)
        train = self.values.copy()
        train[test] = np.nan
        return train, test

    def row(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Row ``i``'s observed columns and values."""
        cols = np.flatnonzero(self.observed[i])
        return cols, self.values[i, cols]

    def device(
        self, std: Standardizer, dtype: Any = None, *, pad: bool = False, **_: Any
    ) -> DenseArrays:
        """The standardised matrix as :class:`DenseArrays` in ``dtype`` (JAX's default).

        With ``pad``, the rows are padded to :func:`padded_rows` with rows that carry no weight
        (see :class:`DenseArrays`); :meth:`rows_from_slots` drops them from per-row results.
        """
        dtype = float_dtype() if dtype is None else dtype
        n, d = self.shape
        rows = padded_rows(n, d) if pad else n
        x = np.zeros((rows, d))
        x[:n] = np.where(self.observed, (self.values - std.offset) / std.scale, 0.0)
        mask = np.zeros((rows, d), bool)
        mask[:n] = self.observed
        valid = n_rows = None
        if pad:
            valid = jnp.asarray(np.arange(rows) < n, dtype=dtype)
            n_rows = jnp.asarray(n, dtype=dtype)
        return DenseArrays(
            x=jnp.asarray(x, dtype=dtype),
            mask=jnp.asarray(mask, dtype=dtype),
            n_obs=jnp.asarray(mask.sum(axis=1), dtype=dtype),
            sq_norm=jnp.asarray((x * x).sum(axis=1), dtype=dtype),
            valid=valid,
            n_rows=n_rows,
        )

    def rows_from_slots(self, values: Any, axis: int = -2) -> np.ndarray:
        """Per-slot results (slot axis ``axis``) as per-row results: the rows of the matrix,
        without the padding of a ``pad=True`` build."""
        values = np.asarray(values)
        n = self.shape[0]
        return values if values.shape[axis] == n else np.take(values, np.arange(n), axis=axis)

    def memo(self, kind: str, key: Any, build: Any) -> Any:
        """``build()``: a dense matrix is the caller's array, which may change between calls,
        so nothing derived from it is kept (see :meth:`TriplesLayout.memo
        <jaxmix.data.triples.TriplesLayout.memo>`)."""
        return build()

    def to_dense(self) -> np.ndarray:
        """The ``(n, d)`` float64 matrix, ``NaN`` where missing (a copy)."""
        return self.values.copy()

    def lookup(self, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(found, value)`` at entries ``(rows, cols)`` (value ``NaN`` where not observed)."""
        found = self.observed[rows, cols]
        return found, np.where(found, self.values[rows, cols], np.nan)

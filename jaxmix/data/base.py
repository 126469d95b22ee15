"""What every data layout provides, and the small types that pass between a layout and a family.

A *layout* stores a partially observed ``(n, d)`` matrix (the dense one, :mod:`.dense`; its
observed triples, :mod:`.triples`). The inference code asks it for:

* **column summaries** (:class:`ColumnSummary`): counts, sums and the spread of the observed
  entries, for standardisation and for resolving a prior;
* **row access** for the initialisations (a row's observed entries, the mean squared distance of
  every row to a centre);
* **device arrays** (:meth:`device`): a JAX pytree whose ``e_step_stats`` is the E-step and the
  M-step's sufficient statistics in one pure, traced pass, and whose ``for_loop`` prepares a block
  once for a compiled loop of many such passes (the dense rows' transposes on the CPU).

The pass knows no covariance family. It needs two kinds of sums over the observed entries, which
a family (:mod:`jaxmix.models.families`) describes and the layout evaluates in its own way
(matrix products on dense input, gathers and segment sums on triples):

* **row sums** of per-column coefficients (:class:`RowTables`): for every row ``u``, component
  ``k`` and feature ``f``, ``sum_{l in C_u} a0[l,k,f] + u a1[l,k,f] + u^2 a2[l,k,f]`` with
  ``u = x_ul - m[l,k]`` the entry's difference to a per-column, per-component centre (the
  component's mean), from which the family forms every component's log density of the row;
* **column sums** of per-row weights (:class:`ColWeights`): for every column ``l``,
  ``sum_{u: l in C_u} x_ul^p w[u, g]`` for ``p = 0, 1, 2``, the statistics of the M-step.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Any, NamedTuple

import jax.numpy as jnp
import numpy as np
from jax import Array

__all__ = [
    "ColWeights",
    "ColumnSummary",
    "EStep",
    "GramTables",
    "RowInfo",
    "RowTables",
    "REFERENCE_MIN_VAR",
    "Standardizer",
    "chunk_loop",
    "default_min_var",
    "expand",
    "gram_entry_terms",
    "gram_features",
    "in_chunk_loop",
    "prefix_add",
    "size_class",
]

#: Below this many entries (an axis' length times ``unit`` in :func:`size_class`) the classes are
#: powers of two: a fit of that size costs far less than compiling its programs anew.
SMALL_ENTRIES = 1 << 20


def size_class(n: int, unit: int = 1) -> int:
    """The length an axis of length ``n`` is padded to, so that fits of nearby sizes share their
    compiled programs (a compiled XLA program is specific to its array shapes).

    The classes are the powers of two while ``size_class(n) * unit`` stays within
    :data:`SMALL_ENTRIES` (``unit``: the entries per element of the axis, e.g. a dense matrix's
    columns), then sixteen per octave (``2^k (1 + j / 16)``: less than 6.25 % padding, so a
    large fit pays little for it); up to 15 every length is its own class.

    Args:
        n: The length (at least 0).
        unit: Entries per element of the axis (at least 1).

    Returns:
        The padded length, ``>= n``.

    Example:
        >>> [size_class(n) for n in (5, 200, 613, 3000)]
        [5, 256, 1024, 4096]
        >>> [size_class(n, unit=1024) for n in (1100, 1200, 3000)]
        [1152, 1216, 3072]
    """
    n, unit = max(int(n), 0), max(int(unit), 1)
    if n < 16:
        return n
    pow2 = 1 << (n - 1).bit_length()
    if pow2 * unit <= SMALL_ENTRIES:
        return pow2
    granule = 1 << max(n.bit_length() - 5, 0)
    return -(-n // granule) * granule


class RowTables(NamedTuple):
    """Per-column coefficients whose sums over each row's observed entries a family needs.

    Row ``u``'s feature ``f`` of component ``k`` is

    .. math::

        s_{ukf} = \\sum_{l \\in C_u} a0_{lkf} + (x_{ul} - m_{lk})\\, a1_{lkf}
            + (x_{ul} - m_{lk})^2\\, a2_{lkf},

    a polynomial in the entry's difference to the centre ``m`` (the component's mean), where
    ``a1`` and ``a2`` cover only the first ``F1`` and ``F2`` features of each component
    (``F2 <= F1 <= F``), a missing table is zero and ``unit`` means ``a2 = 1`` on the first
    feature. The triples layout evaluates it as written (one gather of the centre and of each
    table per entry, no cancellation); the dense layout expands it into matrix products with
    ``X`` and ``X^2`` (:func:`expand`).

    Attributes:
        centre: ``(d, K)``.
        a0: ``(d, K, F)`` or ``None``.
        a1: ``(d, K, F1)`` or ``None``.
        a2: ``(d, K, F2)`` or ``None``.
        unit: ``a2`` is 1 on each component's first feature (``a2`` must then be ``None``).
    """

    centre: Array
    a0: Array | None = None
    a1: Array | None = None
    a2: Array | None = None
    unit: bool = False

    @property
    def n_features(self) -> int:
        """``F``, the features of every component."""
        widths = [t.shape[-1] for t in (self.a0, self.a1, self.a2) if t is not None]
        return max([*widths, 1 if self.unit else 0])


class GramTables(NamedTuple):
    """The same row sums as a family's :class:`RowTables` when they are a Gram matrix: a compact
    description for a layout that gathers per-column values per entry.

    Every observed entry ``(u, l)`` gives, per component ``k``, the vector
    ``a = [v_lk, (x_ul - m_lk) s_lk]`` of length ``p + 1``, and row ``u``'s features are

    .. math::

        s_{uk} = \\Big[\\sum_l (c_{lk} + a_{p}^2),\\ \\sum_l a_{p} a_{:p},\\
            \\mathrm{triu}\\big(\\sum_l a_{:p} a_{:p}'\\big)\\Big],

    ``F = 1 + p + p (p + 1) / 2`` features in that order (the upper triangle row by row, as
    ``numpy.triu_indices``), exactly what the family's :meth:`row_tables` give (the factor
    family: ``v = Lambda / sqrt(psi)``, ``s = 1 / sqrt(psi)``, ``c = log 2 pi psi``).

    The triples layout splits the features by whether they depend on the entry's value. Those
    that do not, ``c`` and ``triu(v v')``, are a per-column table (:meth:`fixed`, formed once per
    pass) gathered per entry; those that do, ``a_p^2`` and ``a_p v``, are formed per entry
    (:func:`gram_entry_terms`) from ``p + 2`` gathered values (:meth:`entry_tables`). Each part
    is summed into its rows on its own and the two are put together by :func:`gram_features`:
    no per-entry product of the triangle, and no ``F``-wide per-entry array assembled from
    pieces (which cost more than the sums themselves).

    Attributes:
        centre: ``m``, ``(d, K)``.
        scale: ``s``, ``(d, K)``.
        vectors: ``v``, ``(d, K, p)``.
        const: ``c``, ``(d, K)``.
    """

    centre: Array
    scale: Array
    vectors: Array
    const: Array

    @property
    def n_features(self) -> int:
        """``F = 1 + p + p (p + 1) / 2``."""
        p = self.vectors.shape[-1]
        return 1 + p + p * (p + 1) // 2

    def fixed(self) -> Array:
        """The features that do not depend on the entry's value, ``(d, K, 1 + p (p + 1) / 2)``:
        ``[c, triu(v v')]``."""
        iu0, iu1 = np.triu_indices(self.vectors.shape[-1])
        v = self.vectors
        return jnp.concatenate([self.const[..., None], v[..., iu0] * v[..., iu1]], axis=-1)

    def entry_tables(self) -> Array:
        """What :func:`gram_entry_terms` needs of every entry's column, ``(d, K, p + 2)``:
        ``[v, s, m]`` (one gather per entry)."""
        return jnp.concatenate(
            [self.vectors, self.scale[..., None], self.centre[..., None]], axis=-1
        )


def gram_entry_terms(tables: Array, x: Array) -> Array:
    """Every entry's value-dependent terms of the :class:`GramTables` row sums,
    ``(C, K, 1 + p)``: ``[a_p^2, a_p v]``, from the entries' gathered
    :meth:`~GramTables.entry_tables` ``(C, K, p + 2)`` and values ``x`` ``(C,)``."""
    p = tables.shape[-1] - 2
    ax = (x[:, None] - tables[..., p + 1]) * tables[..., p]  # (C, K)
    return jnp.concatenate([(ax * ax)[..., None], tables[..., :p] * ax[..., None]], axis=-1)


def gram_features(fixed: Array, moving: Array) -> Array:
    """Row sums of :meth:`GramTables.fixed` ``(..., 1 + P)`` and of :func:`gram_entry_terms`
    ``(..., 1 + p)`` as the ``F`` features of the :class:`GramTables` order."""
    return jnp.concatenate(
        [fixed[..., :1] + moving[..., :1], moving[..., 1:], fixed[..., 1:]], axis=-1
    )


def expand(tables: RowTables) -> tuple[Array | None, Array | None, Array | None]:
    """The tables as a polynomial in ``x``: ``(t0, t1, t2)``, each ``(d, K, F_p)`` or ``None``.

    ``a0 + a1 (x - m) + a2 (x - m)^2 = (a0 - a1 m + a2 m^2) + x (a1 - 2 a2 m) + x^2 a2``; with
    ``unit``, ``t2`` is ``None`` and the caller adds ``sum x^2`` to the first feature.
    """
    m = tables.centre[:, :, None]
    F = tables.n_features
    d, K = tables.centre.shape
    t0 = jnp.zeros((d, K, F), tables.centre.dtype) if tables.a0 is None else tables.a0
    t1 = None if tables.a1 is None else tables.a1
    a2 = tables.a2
    if tables.unit:
        a2 = jnp.ones((d, K, 1), tables.centre.dtype)
    if t1 is not None:
        t0 = prefix_add(t0, -t1 * m)
    if a2 is not None:
        t0 = prefix_add(t0, a2 * m * m)
        lin = -2.0 * a2 * m
        t1 = lin if t1 is None else prefix_add(t1, lin)
    t2 = None if tables.unit else a2
    return t0, t1, t2


class ColWeights(NamedTuple):
    """Per-row weights whose sums over each column's observed entries form the statistics.

    The layout returns ``c_p[l, g] = sum_{u: l in C_u} x_ul^p w[u, g]`` for ``g < sizes[p]``
    (``sizes`` non-increasing; ``c_p`` is ``None`` where ``sizes[p] == 0``).

    Attributes:
        w: ``(rows, G)`` weights.
        sizes: ``(G0, G1, G2)``, Python ints (static): how many leading weights each power uses.
    """

    w: Array
    sizes: tuple[int, int, int]


_CHUNK_LOOP: contextvars.ContextVar[bool] = contextvars.ContextVar("chunk_loop", default=False)


@contextlib.contextmanager
def chunk_loop() -> Iterator[None]:
    """Trace-time hint from a layout: what is traced inside runs once per chunk of a long loop
    (the triples layout's scan, thousands of chunks per pass), on a small batch each time.

    A family may then trace a variant that is slower to compile but has no per-call library
    kernel (:func:`in_chunk_loop`; the factor family's ``p x p`` solves, whose batched LAPACK
    calls cost most of a pass when made once per chunk). Results agree up to rounding.
    """
    token = _CHUNK_LOOP.set(True)
    try:
        yield
    finally:
        _CHUNK_LOOP.reset(token)


def in_chunk_loop() -> bool:
    """Whether the code being traced runs inside a layout's :func:`chunk_loop`."""
    return _CHUNK_LOOP.get()


class RowInfo(NamedTuple):
    """Per-row quantities every layout keeps: ``|C_u|`` and ``sum_{l in C_u} x_ul^2``."""

    n_obs: Array
    sq_norm: Array


class EStep(NamedTuple):
    """What a layout's ``e_step_stats`` returns.

    Attributes:
        resp: Responsibilities of the layout's row slots, ``(slots, K)`` (the layout maps slots to
            rows with ``rows_from_slots``; for the dense layout the slots are the rows).
        row_ll: Log-likelihood of every slot, ``(slots,)`` (0 for padding).
        log_likelihood: Sum over all rows, a scalar (summed over devices when sharded).
        stats: The family's sufficient statistics (summed over devices), or ``None`` when not
            asked for.
    """

    resp: Array
    row_ll: Array
    log_likelihood: Array
    stats: Any
    aux: Any = None


def prefix_add(s: Array, extra: Array) -> Array:
    """``s`` with ``extra`` added to its leading columns (``extra`` has at most as many)."""
    if extra.shape[-1] == s.shape[-1]:
        return s + extra
    return s.at[..., : extra.shape[-1]].add(extra)


class ColumnSummary(NamedTuple):
    """Column statistics of the observed entries (float64 host values).

    Attributes:
        count: Observed entries of every column, ``(d,)``.
        total: Sum of every column's observed entries, ``(d,)``.
        sq_resid: Sum of squared differences of the observed entries to their column's mean.
        sq_total: Sum of the squared observed entries.
        nnz: Number of observed entries.
        n_rows: Number of rows.
        col_sq_resid: ``sq_resid`` of every column, ``(d,)`` (``None`` where not computed).
    """

    count: np.ndarray
    total: np.ndarray
    sq_resid: float
    sq_total: float
    nnz: int
    n_rows: int
    col_sq_resid: np.ndarray | None = None

    def column_means(self, fill: float | None = None) -> np.ndarray:
        """Mean of every column's observed entries; a column with none gets ``fill`` (by
        default the mean of all observed entries: the best guess for a never-seen column)."""
        fill = self.global_mean if fill is None else fill
        return np.divide(
            self.total, self.count, out=np.full(self.count.shape, fill), where=self.count > 0
        )

    @property
    def global_mean(self) -> float:
        """Mean of all observed entries."""
        return float(self.total.sum() / max(self.nnz, 1))

    @property
    def pooled_variance(self) -> float:
        """Mean squared difference of the observed entries to their column's mean."""
        return float(self.sq_resid / max(self.nnz, 1))

    def column_sd(self) -> np.ndarray:
        """Standard deviation of every column's observed entries, ``(d,)``; ``NaN`` for a column
        with fewer than two entries (or when the per-column sums were not computed)."""
        d = self.count.shape[0]
        if self.col_sq_resid is None:
            return np.full(d, np.nan)
        ok = self.count >= 2
        var = np.divide(self.col_sq_resid, self.count, out=np.full(d, np.nan), where=ok)
        return np.sqrt(var)


#: The course's variance floor, in data units: half a rating step, squared.
REFERENCE_MIN_VAR = 0.25


def default_min_var(summary: ColumnSummary) -> float:
    """The variance floor used when ``min_var=None``: 0.25 in the units EM computes in, at most
    the course's 0.25 in data units.

    .. math::

        \\mathrm{min\\_var} = 0.25 \\cdot \\min(1, c^2)

    with ``c`` the scale of :meth:`Standardizer.fit` (the power of two nearest the pooled
    standard deviation of the observed entries about their column means). Ratings (pooled
    standard deviation above ``0.71``, e.g. the course's data) keep the course's ``0.25``; data
    of smaller spread (values in ``[0, 1]``, measurements in metres) get a floor that shrinks
    with it (``X * 2^-j`` gets ``4^-j`` times the floor of ``X``), so it never sits far above the
    data's own spread. On data of larger spread 0.25 is kept: it is small there, and a floor
    set by the widest columns would swamp the narrow ones of a per-column family.

    Args:
        summary: The data's :class:`ColumnSummary`.

    Returns:
        The floor in data units (a positive float).

    Example:
        >>> import numpy as np
        >>> from jaxmix.data import as_data
        >>> X = np.array([[0.1, 0.2], [0.3, np.nan], [0.2, 0.4]])
        >>> default_min_var(as_data(X).summary()), default_min_var(as_data(X * 100).summary())
        (0.00390625, 0.25)
    """
    scale = Standardizer.fit(summary).scale
    return REFERENCE_MIN_VAR * min(1.0, scale * scale)


class Standardizer(NamedTuple):
    """The affine map ``z = (x - offset) / scale`` under which the kernels compute.

    ``offset`` centres every column on its observed mean; ``scale`` is one power of two near the
    pooled spread, so scaling is exact in floating point. The mixture likelihood is equivariant
    under the map (:func:`jaxmix.models.mixture.to_internal` maps the parameters), which keeps
    float32 accurate and lets values near ``1e150`` or ``1e-150`` through.

    Attributes:
        offset: Column centres, ``(d,)``.
        scale: One positive scale for the whole matrix.
    """

    offset: np.ndarray
    scale: float

    @classmethod
    def fit(cls, summary: ColumnSummary) -> Standardizer:
        """Centre on the column means (the global mean for an empty column), scale near the
        pooled spread."""
        offset = summary.column_means()
        spread = np.sqrt(summary.sq_resid / max(summary.nnz, 1))
        if not np.isfinite(spread) or spread == 0.0:
            spread = float(np.max(np.abs(offset))) or 1.0
        return cls(offset=offset, scale=float(2.0 ** np.round(np.log2(spread))))

    @classmethod
    def identity(cls, d: int) -> Standardizer:
        """The map that changes nothing (evaluation in data units)."""
        return cls(offset=np.zeros(d), scale=1.0)

    def internal_min_var(self, min_var: float, dtype: Any) -> float:
        """The floor ``min_var`` (data units) in standardised units, ``min_var / scale^2``.

        Raises:
            ValueError: It is not representable in ``dtype`` (overflows to infinity: a floor far
                above the data's spread, e.g. ``min_var=0.25`` on data of order ``1e-150``).
        """
        value = float(min_var) / self.scale**2
        big = float(np.finfo(dtype).max) / 16.0
        if not value < big:
            raise ValueError(
                f"min_var={min_var:g} is {value:.3g} times the data's spread squared "
                f"(scale {self.scale:.3g}); in {np.dtype(dtype).name} a floor at most "
                f"{big:.3g} times it is representable (at most {big * self.scale**2:.3g} in the "
                "data's units): pass a min_var on the data's scale, or min_var=None for the "
                "scale-aware default"
            )
        return value

    def log_likelihood_shift(self, nnz: int) -> float:
        """Add this to a standardised log-likelihood of ``nnz`` entries to get it in data units."""
        return -float(nnz) * float(np.log(self.scale))

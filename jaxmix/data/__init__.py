"""Data layouts: a partially observed matrix as the inference code sees it.

:func:`as_data` turns what a user passes (an array with ``NaN`` at the missing entries, with an
optional mask, or a :class:`~jaxmix.SparseRatings` of observed triples) into one of two layouts
with the same protocol (:mod:`jaxmix.data.base`):

* :class:`~jaxmix.data.dense.DenseLayout`: the ``(n, d)`` matrix; its pass is matrix products.
* :class:`~jaxmix.data.triples.TriplesLayout`: the observed entries only, chunked; its pass is
  ``O(nnz)`` and can be split over several devices.

A new layout is one module here implementing the same protocol.

A :class:`~jaxmix.SparseRatings` is immutable, so what its layout derives from it (the column
summary, the chunked triples on the device, the seeding's copy) is built once and reused by every
later fit, completion and summary of the same matrix (:data:`layout_cache`, :mod:`.cache`).
Device arrays are padded to size classes (:func:`size_class`) with entries that carry no weight,
so fits of matrices of nearby sizes share their compiled programs.
"""

from __future__ import annotations

from typing import Any

from jaxmix._validate import check_choice
from jaxmix.data.base import (
    REFERENCE_MIN_VAR,
    ColumnSummary,
    EStep,
    RowInfo,
    Standardizer,
    default_min_var,
    size_class,
)
from jaxmix.data.cache import LayoutCache, layout_cache
from jaxmix.data.dense import DenseArrays, DenseLayout, float_dtype, validate_matrix
from jaxmix.data.io import load_ratings, save_ratings
from jaxmix.data.ratings import (
    IdMaps,
    SparseRatings,
    UnknownIdError,
    load_sparse_ratings,
    sparse_ratings,
    triples_of,
)
from jaxmix.data.samples import sample_path
from jaxmix.data.triples import ChunkedTriples, TriplesLayout

__all__ = [
    "AUTO_MIN_ENTRIES",
    "ChunkedTriples",
    "ColumnSummary",
    "DenseArrays",
    "DenseLayout",
    "EStep",
    "IdMaps",
    "LayoutCache",
    "MAX_DENSE_ENTRIES",
    "METHODS",
    "REFERENCE_MIN_VAR",
    "RowInfo",
    "SPARSE_CROSSOVER_DENSITY",
    "SparseRatings",
    "Standardizer",
    "TriplesLayout",
    "UnknownIdError",
    "as_data",
    "default_min_var",
    "float_dtype",
    "layout_cache",
    "load_ratings",
    "load_sparse_ratings",
    "sample_path",
    "save_ratings",
    "size_class",
    "sparse_ratings",
    "validate_matrix",
]

METHODS = ("auto", "dense", "sparse")
#: ``method="auto"`` takes the triples layout for a dense array whose share of observed entries
#: is below this: the crossover measured by ``benchmarks/dense_vs_sparse.py`` at the course size
#: (1200 x 1200, K = 12, float32, 2-core CPU: 0.027; the triples cost about 20 times more per
#: entry than the dense matrix products) ...
SPARSE_CROSSOVER_DENSITY = 0.03
#: ... and that has at least this many entries (below it the dense layout is fast anyway).
AUTO_MIN_ENTRIES = 1 << 20
#: A :class:`~jaxmix.SparseRatings` given to a function that needs the dense matrix (``fit_svi``,
#: ``fit_mcmc``, ``kmeans``, ``compare_em_svi``, ``select_k(criterion="loo")``, or
#: ``method="dense"``) is materialised when it has at most this many ``n x d`` entries (about
#: 2 GB of host and device copies at 2**26); above it the call is refused with a message naming
#: the functions that run on the triples.
MAX_DENSE_ENTRIES = 1 << 26


def as_data(
    X: Any,
    mask: Any = None,
    method: str | None = "auto",
    *,
    allow_all_missing: bool = False,
    what: str = "this function",
) -> DenseLayout | TriplesLayout:
    """The layout of a partially observed matrix.

    Args:
        X: Array-like ``(n, d)`` with ``NaN`` at the missing entries, a
            :class:`~jaxmix.SparseRatings`, or a layout (returned as it is).
        mask: Optional boolean ``(n, d)``, ``True`` = observed (dense input only).
        method: ``"dense"``, ``"sparse"`` (the triples layout) or ``"auto"``: triples for a
            :class:`~jaxmix.SparseRatings`, and for a dense array with at least
            :data:`AUTO_MIN_ENTRIES` entries of which fewer than :data:`SPARSE_CROSSOVER_DENSITY`
            are observed; dense otherwise. ``"dense"`` with a ``SparseRatings`` materialises the
            ``n x d`` matrix (refused above :data:`MAX_DENSE_ENTRIES` entries). ``None``: the
            input's own form (dense for an array, triples for a ``SparseRatings``), for
            functions whose output has the input's form.
        allow_all_missing: Accept a matrix without any observed entry (for prediction).
        what: The caller's name, for the message refusing to materialise a large
            ``SparseRatings`` (:data:`MAX_DENSE_ENTRIES`).

    Returns:
        A :class:`~jaxmix.data.dense.DenseLayout` or :class:`~jaxmix.data.triples.TriplesLayout`.

    Raises:
        TypeError, ValueError: Malformed input (see :func:`validate_matrix`), an unknown
            ``method``, a ``mask`` with a ``SparseRatings``.

    Example:
        >>> import numpy as np, jaxmix
        >>> from jaxmix.data import as_data
        >>> X = np.array([[1.0, np.nan], [2.0, 3.0]])
        >>> as_data(X), as_data(jaxmix.sparse_ratings(X))
        (DenseLayout(shape=(2, 2), nnz=3), TriplesLayout(shape=(2, 2), nnz=3))
    """
    if method is not None:
        check_choice(method, "method", METHODS)
    if isinstance(X, (DenseLayout, TriplesLayout)):
        return X
    if isinstance(X, SparseRatings):
        if mask is not None:
            raise TypeError(
                "mask does not apply to a SparseRatings (its triples are the observed set)"
            )
        if X.nnz == 0 and not allow_all_missing:
            raise ValueError("every entry of X is missing; there is nothing to fit")
        if method == "dense":
            n, d = X.shape
            if n * d > MAX_DENSE_ENTRIES:
                raise ValueError(
                    f"X is a SparseRatings of shape {n} x {d}; {what} works on a dense matrix, "
                    f"and materialising it needs {n * d:,} entries (more than "
                    f"jaxmix.data.MAX_DENSE_ENTRIES = {MAX_DENSE_ENTRIES:,}). fit_em, "
                    "select_k(criterion='heldout'), complete and the metrics run on the triples; "
                    "if the ids are sparse (MovieLens movieIds), build it with "
                    "sparse_ratings(..., reindex=True)"
                )
            values, observed = validate_matrix(X.to_dense(), allow_all_missing=allow_all_missing)
            return DenseLayout(values, observed)
        return TriplesLayout(X)
    values, observed = validate_matrix(X, mask, allow_all_missing=allow_all_missing)
    if method == "sparse" or (
        method == "auto"
        and values.size >= AUTO_MIN_ENTRIES
        and observed.mean() < SPARSE_CROSSOVER_DENSITY
    ):
        return TriplesLayout(triples_of(values, observed))
    return DenseLayout(values, observed)

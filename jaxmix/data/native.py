"""Compiled CPU kernels of the triples layout's two sums, for large matrices (optional: numba).

On the CPU, XLA runs the triples layout's per-entry gathers and scatter-adds at about 200 ns per
observed entry for the factor family at rank 8 (K = 4): each entry's terms are written to memory
as a ``(chunk, K, F)`` array and read back by the next operation. These kernels make the same
two sums of :mod:`jaxmix.data.base` in one loop over the entries each, the terms kept in
registers, both CPU cores busy:

* :meth:`NativeTriples.row_gram`: every row's Gram features of a
  :class:`~jaxmix.data.base.GramTables` (``F = 1 + p + p (p + 1) / 2`` per component), the chunks
  split over the threads (a chunk's rows belong to it alone, so no two threads write one row);
* :meth:`NativeTriples.col_sums`: the column sums of per-row weights
  (:class:`~jaxmix.data.base.ColWeights`), the chunks split into one contiguous range per thread,
  each thread adding into its own ``(d, G)`` accumulator, the accumulators summed at the end
  (a fixed order for a given number of threads).

The triples layout calls them through :func:`jax.pure_callback` from inside its compiled E-step
(:meth:`~jaxmix.data.triples.ChunkedTriples.e_step_stats`) when a block was built with them
(:meth:`~jaxmix.data.triples.TriplesLayout.device`, ``native``; by default on the CPU for blocks
of at least :data:`NATIVE_MIN_ENTRIES` entry slots when numba is installed, ``pip install
"jaxmix[native]"``). The kernels read the device arrays of the block in place (a NumPy view of a
CPU buffer, no copy); the family's log density, responsibilities and weights stay in JAX, between
the two calls. Sums are accumulated in the data's float dtype in a different order than the
scan's, so results agree up to rounding. Each kernel is compiled on its first call for a given
``K`` and ``p`` (or weight sizes) and dtype, a few seconds, then kept for the process.

Measured at MovieLens-10M size (10 M ratings, K = 4, rank 8, float32, 2 cores): the row sums
about 29 ns and the column sums about 15 ns per entry; an EM iteration 0.91 s against the
scan's 2.06 s (``benchmarks/sparse_scale.py --native on off``).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

__all__ = ["NATIVE_MIN_ENTRIES", "NativeTriples", "available"]

#: Entry slots of a block from which the triples layout uses the compiled kernels by default:
#: below it the scan is fast enough, and a block with kernels compiles its own programs (the
#: kernels are bound to its arrays), not one per size class.
NATIVE_MIN_ENTRIES = 1 << 22


@functools.cache
def available() -> bool:
    """Whether numba can be imported (the kernels' only requirement)."""
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


@functools.cache
def _slot_of() -> Any:
    """The row slot of entry ``e`` of chunk ``i`` (``-1`` for a padding entry), compiled inline
    into both kernels."""
    import numba

    @numba.njit(inline="always")
    def slot_of(local_row, row_start, n_rows, i, e):
        r = local_row[i, e]
        return row_start[i] + r if r < n_rows[i] else -1

    return slot_of


@functools.cache
def _row_gram(K: int, p: int) -> Any:
    """The row-sum kernel for ``K`` components and ``p``-vectors, compiled on first use: the
    sizes are constants of the compiled loop (unrolled and vectorised by LLVM, about 3 times
    faster than with sizes read at run time)."""
    import numba

    slot_of = _slot_of()

    @numba.njit(parallel=True, nogil=True)
    def row_gram(local_row, col, val, row_start, n_rows, centre, scale, vectors, const, out):
        n_chunks, C = col.shape
        for i in numba.prange(n_chunks):
            for e in range(C):
                u = slot_of(local_row, row_start, n_rows, i, e)
                if u < 0:
                    continue
                l = col[i, e]
                x = val[i, e]
                for k in range(K):
                    acc = out[u, k]
                    a = (x - centre[l, k]) * scale[l, k]
                    acc[0] += const[l, k] + a * a
                    t = 1 + p
                    for j in range(p):
                        vj = vectors[l, k, j]
                        acc[1 + j] += a * vj
                        for m in range(j, p):
                            acc[t] += vj * vectors[l, k, m]
                            t += 1

    return row_gram


@functools.cache
def _col_sums(G0: int, G1: int, G2: int) -> Any:
    """The column-sum kernel for weights of sizes ``(G0, G1, G2)``, compiled on first use (the
    sizes constants of the loop, as in :func:`_row_gram`)."""
    import numba

    slot_of = _slot_of()

    @numba.njit(parallel=True, nogil=True)
    def col_sums(local_row, col, val, row_start, n_rows, w, acc):
        n_chunks, C = col.shape
        T = acc.shape[0]
        step = (n_chunks + T - 1) // T
        for t in numba.prange(T):
            a = acc[t]
            for i in range(t * step, min(n_chunks, (t + 1) * step)):
                for e in range(C):
                    u = slot_of(local_row, row_start, n_rows, i, e)
                    if u < 0:
                        continue
                    x = val[i, e]
                    wu = w[u]
                    al = a[col[i, e]]
                    for g in range(G0):
                        al[g] += wu[g]
                    for g in range(G1):
                        al[G0 + g] += wu[g] * x
                    x2 = x * x
                    for g in range(G2):
                        al[G0 + G1 + g] += wu[g] * x2

    return col_sums


class NativeTriples:
    """NumPy views of one block's chunked triples, and the two sums over them.

    Compared by identity (it is static data of the compiled programs that call it: a block
    with kernels compiles its own).

    Args:
        local_row, col, val, row_start, n_rows: The block's arrays, as in
            :class:`~jaxmix.data.triples.ChunkedTriples` without the device axis (NumPy views of
            the device buffers; they must stay alive as long as this object).
        n_slots: Row slots of the block's chunked rows (``A + R + 1``).
        d: Columns of the matrix.
    """

    def __init__(self, local_row, col, val, row_start, n_rows, n_slots: int, d: int) -> None:
        self.local_row = local_row
        self.col = col
        self.val = val
        self.row_start = row_start
        self.n_rows = n_rows
        self.n_slots = int(n_slots)
        self.d = int(d)

    def __repr__(self) -> str:
        return f"<NativeTriples {self.col.shape[0]} chunks x {self.col.shape[1]} entries>"

    def row_gram(self, centre, scale, vectors, const) -> np.ndarray:
        """Row sums of the Gram features, ``(n_slots, K, 1 + p + p (p + 1) / 2)``, in the order of
        :class:`~jaxmix.data.base.GramTables` (zero for slots without entries)."""
        dtype = self.val.dtype
        centre, scale, const = (np.ascontiguousarray(a, dtype) for a in (centre, scale, const))
        vectors = np.ascontiguousarray(vectors, dtype)
        K, p = vectors.shape[1], vectors.shape[2]
        out = np.zeros((self.n_slots, K, 1 + p + p * (p + 1) // 2), dtype)
        _row_gram(K, p)(
            self.local_row, self.col, self.val, self.row_start, self.n_rows,
            centre, scale, vectors, const, out,
        )  # fmt: skip
        return out

    def col_sums(self, w, sizes: tuple[int, int, int]) -> tuple[np.ndarray, ...]:
        """``c_p[l, g] = sum_{u: l in C_u} x_ul^p w[u, g]`` for ``g < sizes[p]``: one ``(d,
        sizes[p])`` array per non-zero size (the :class:`~jaxmix.data.base.ColWeights` rule)."""
        import numba

        dtype = self.val.dtype
        w = np.ascontiguousarray(w, dtype)
        G0, G1, G2 = (int(g) for g in sizes)
        threads = max(1, min(numba.get_num_threads(), self.col.shape[0]))
        acc = np.zeros((threads, self.d, G0 + G1 + G2), dtype)
        _col_sums(G0, G1, G2)(
            self.local_row, self.col, self.val, self.row_start, self.n_rows, w, acc
        )
        total = acc[0] if threads == 1 else acc.sum(axis=0)
        bounds = np.cumsum([0, G0, G1, G2])
        return tuple(
            np.ascontiguousarray(total[:, bounds[i] : bounds[i + 1]])
            for i, g in enumerate((G0, G1, G2))
            if g
        )

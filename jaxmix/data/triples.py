"""The triples layout: a matrix as its observed entries, cut into chunks; O(nnz) per pass.

The dense layout spends work on every one of the ``n d`` entries whatever the share observed.
Here a pass touches the observed entries only. A family's row sums (:class:`RowTables`) become,
per entry, a gather of the entry's column from the ``(d, F)`` tables and a segment sum into its
row; its column sums (:class:`ColWeights`) a gather of the entry's row weights and a scatter-add
into ``(d, G)`` accumulators. The family is called in between, chunk by chunk, so that one pass
over the data gives the E-step and the M-step's statistics. A family that describes its row sums
as a Gram matrix (:meth:`~jaxmix.models.families.base.Family.row_gram`, the factor family) has
its value-free features (the triangle) gathered per entry from a per-column table and only the
``1 + p`` value-dependent ones formed per entry (:func:`~jaxmix.data.base.gram_entry_terms`), each
part summed into the rows on its own (the rows' sums of a MovieLens-10M-size pass at rank 8:
0.71 s, against 1.67 s when all ``F`` terms were formed per entry).

Layout (built once on the host, :func:`build_layout`): the rows with at least one entry ("active"
rows) are cut into *chunks* of consecutive rows holding at most ``chunk_size`` entries and at
most ``rows_per_chunk`` rows; each chunk's triples are padded to ``chunk_size`` and sorted by
column (the gathers from the tables and the scatter-adds into the statistics then walk memory
forwards, which halves the time once ``d K`` floats exceed the cache). A ``lax.scan`` over the
chunks does, per chunk, the row sums of its rows (a segment sum into a ``(rows_per_chunk, F)``
block), their responsibilities, and their contribution to the statistics: the largest
intermediate is ``chunk_size x max(F, G)``, whatever ``nnz``. Rows without entries are handled
in closed form (the family's log density of a row with nothing observed: their responsibilities
are the weights). Rows with at least :data:`DENSE_ROW_DENSITY` of their entries observed are
stored densely instead and go through the dense layout's matrix products (about 20 times
cheaper per entry than a gather and a scatter, so on a matrix as dense as the course's this
layout runs at the dense one's speed); their storage is at most ``8 / DENSE_ROW_DENSITY`` bytes
per observed entry. No ``n x d`` array exists anywhere.

Compiled kernels (optional): on a block of at least
:data:`~jaxmix.data.native.NATIVE_MIN_ENTRIES` entry slots on the CPU, without a mesh and with
numba installed (``jaxmix[native]``), :meth:`TriplesLayout.device` binds the two sums of
:mod:`jaxmix.data.native` to the block's arrays, and a family with a Gram form takes
:func:`_native_pass` instead of the scan: the rows' Gram features in one kernel call, the
family's log density, responsibilities and weights in JAX over blocks of rows, the column sums in
a second call. The factor family at Netflix-Prize size (K = 4, rank 8) then takes a quarter of the
scan's time per iteration (``benchmarks/sparse_scale.py --native on off``).

Several devices (a ``mesh``): the rows are split into one block per device (the chunked rows
balanced by entries, the dense rows by count), the whole fit runs under ``jax.shard_map``
(:meth:`ChunkedTriples.distribute`), and the statistics are summed over the devices with
``lax.psum`` inside the pass, so every device takes the same M-step and the same stopping
decision; only ``(d, G)``-sized statistics cross devices. The result equals the single-device fit
up to the order of floating-point sums. Across hosts: call ``jax.distributed.initialize()`` in
every process, load the same matrix in each, and pass a mesh over ``jax.devices()``; each process
builds the layout and copies only its own devices' blocks, and every process gets the whole
result.

Precision: the per-column statistics are scatter-added chunk after chunk in JAX's float dtype (in
float32 about ``1e-5`` relative on a column with 10^5 ratings; the dense layout's blocked matrix
products are slightly more accurate); the per-row results (log-likelihood, responsibilities) are
kept per row and summed pairwise after the scan, as on the dense layout.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array, lax
from jax.scipy.special import logsumexp

from jaxmix.data import native as _native
from jaxmix.data.base import (
    SMALL_ENTRIES,
    ColumnSummary,
    EStep,
    RowInfo,
    Standardizer,
    chunk_loop,
    gram_entry_terms,
    gram_features,
    prefix_add,
    size_class,
)
from jaxmix.data.cache import layout_cache
from jaxmix.data.dense import (
    PAD_MIN_ENTRIES,
    dense_pass,
    float_dtype,
    loop_transposes,
    padded_rows,
)
from jaxmix.data.ratings import SparseRatings, spans

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "DENSE_ROW_DENSITY",
    "ChunkedTriples",
    "DenseRows",
    "HostLayout",
    "TriplesLayout",
    "build_layout",
    "check_mesh",
]

#: Entries per chunk of the scan (the bound on the ``chunk x F`` intermediates).
DEFAULT_CHUNK_SIZE = 1 << 15
#: Rows with at least this share of observed entries are stored densely and processed by matrix
#: products (memory at most ``8 / 0.25 = 32`` bytes per entry of those rows; see
#: ``benchmarks/dense_vs_sparse.py`` for the speed).
DENSE_ROW_DENSITY = 0.25


@dataclasses.dataclass(frozen=True)
class DenseRows:
    """The rows dense enough to be processed by matrix products, as in the dense layout.

    Attributes:
        x: Standardised values, 0 where missing, ``(P, A_dense, d)``.
        mask: 1.0 where observed, ``(P, A_dense, d)``.
        n_obs: ``|C_u|``, ``(P, A_dense)``.
        sq_norm: ``|x_{u,C_u}|^2``, ``(P, A_dense)``.
        valid: 1.0 for a real row, 0.0 for padding, ``(P, A_dense)``.
        transposed: ``(x^T, mask^T)`` of one block for a loop
            (:meth:`ChunkedTriples.for_loop`), or ``None``.
    """

    x: Array
    mask: Array
    n_obs: Array
    sq_norm: Array
    valid: Array
    transposed: tuple[Array, Array] | None = None


jax.tree_util.register_dataclass(
    DenseRows,
    data_fields=["x", "mask", "n_obs", "sq_norm", "valid", "transposed"],
    meta_fields=[],
)


@dataclasses.dataclass(frozen=True)
class ChunkedTriples:
    """The triples of every device's rows, cut into chunks (device arrays; a JAX pytree).

    Every array but ``counts`` has a leading device axis ``P`` (one block of rows per device).
    ``A`` is the number of active rows per block (padded), ``R = rows_per_chunk``.

    Attributes:
        local_row: Row of every entry within its chunk, ``int32`` ``(P, n_chunks, chunk_size)``;
            padding entries point at the spare row ``R``.
        col: Column of every entry, ``int32`` ``(P, n_chunks, chunk_size)``; 0 for padding.
        val: Standardised value of every entry, ``(P, n_chunks, chunk_size)``; 0 for padding.
        row_start: First active row of every chunk, ``int32`` ``(P, n_chunks)`` (``A`` for a
            padding chunk).
        n_rows: Rows in every chunk, ``int32`` ``(P, n_chunks)``.
        n_obs: ``|C_u|`` of every active row, ``(P, A + R + 1)`` (zero past ``A``).
        sq_norm: ``|x_{u,C_u}|^2`` (standardised) of every active row, ``(P, A + R + 1)``.
        counts: ``(n_rows, n_empty)``: the rows of the matrix and those without entries.
        dense: The rows processed densely (:class:`DenseRows`), or ``None``.
        rows_per_chunk: ``R`` (static).
        mesh: The one-axis mesh the row blocks are spread over, or ``None`` (static).
        native: The compiled CPU kernels bound to this block's arrays
            (:class:`~jaxmix.data.native.NativeTriples`), or ``None`` (static): with them, a
            family with a Gram form (:meth:`~jaxmix.models.families.base.Family.row_gram`)
            takes :func:`_native_pass` instead of the scan.
    """

    local_row: Array
    col: Array
    val: Array
    row_start: Array
    n_rows: Array
    n_obs: Array
    sq_norm: Array
    counts: Array
    dense: DenseRows | None = None
    rows_per_chunk: int = 1
    mesh: Any = None
    native: Any = None

    @property
    def n_slots(self) -> int:
        """Row slots of a block's responsibilities: dense rows, then chunked rows, then one for
        the rows without entries (call on a block, :meth:`local`)."""
        dense = 0 if self.dense is None else self.dense.x.shape[-2]
        return dense + self.n_obs.shape[-1]

    @property
    def n_entries(self) -> int:
        """Entry slots of the block (static): the chunks' entries (padding included) and the
        dense rows' ``rows x columns``."""
        dense = 0 if self.dense is None else int(self.dense.x.size)
        return int(self.val.size) + dense

    def local(self) -> ChunkedTriples:
        """This device's block: every array without its leading device axis (of size 1 here, or
        under ``shard_map``)."""
        return dataclasses.replace(
            jax.tree.map(lambda a: a[0], dataclasses.replace(self, counts=None)),
            counts=self.counts,
        )

    @property
    def dtype(self) -> Any:
        """The float dtype of the values."""
        return self.val.dtype

    def for_loop(self) -> ChunkedTriples:
        """This block for a compiled loop of many E-steps (call on a block from :meth:`local`,
        inside the compiled function): its dense rows with the transposed copies of
        :func:`jaxmix.data.dense.loop_transposes`, made once."""
        if self.dense is None:
            return self
        d = self.dense
        return dataclasses.replace(
            self, dense=dataclasses.replace(d, transposed=loop_transposes(d.x, d.mask))
        )

    def e_step_stats(
        self,
        params: Any,
        family: Any,
        *,
        with_stats: bool = True,
        with_aux: bool = False,
        axis_name: str | None = None,
    ) -> EStep:
        """One pass over one block's chunks (a block from :meth:`local`, inside :meth:`distribute`).

        Returns responsibilities ``(A_dense + A + R + 1, K)`` (the dense rows, then the chunked
        rows; the last slot holds those of the rows without entries), the per-slot
        log-likelihood, the total log-likelihood (over every device and the empty rows), the
        family's statistics (idem) and, with ``with_aux``, the family's per-slot ``aux``.
        """
        data = self
        gram = None if data.native is None else family.row_gram(params)
        if gram is not None:
            out = _native_pass(params, family, data, gram, with_stats, with_aux)
        else:
            out = _scan_chunks(params, family, data, with_stats, with_aux, axis_name)
        resp, row_ll, cols, totals, aux_totals, aux = out
        ll = jnp.sum(row_ll)
        if data.dense is not None:
            d = data.dense
            dense = dense_pass(
                params,
                family,
                d.x,
                d.mask,
                RowInfo(d.n_obs, d.sq_norm),
                d.valid,
                with_stats,
                d.transposed,
            )
            resp = jnp.concatenate([dense[0], resp])
            row_ll = jnp.concatenate([dense[1], row_ll])
            ll = ll + jnp.sum(dense[1])
            if with_stats:
                cols = tuple(
                    None if a is None else a + b for a, b in zip(cols, dense[2], strict=True)
                )
                totals = jax.tree.map(jnp.add, totals, dense[3])
                aux_totals = jax.tree.map(jnp.add, aux_totals, dense[4])
            if with_aux:
                aux = jax.tree.map(lambda a, b: jnp.concatenate([a, b]), dense[5], aux)
        if axis_name is not None:
            ll, cols, totals, aux_totals = lax.psum((ll, cols, totals, aux_totals), axis_name)
        # Rows without any entry: the family's log density of an empty row, in closed form.
        n_total, n_empty = data.counts[0], data.counts[1]
        F = family.row_tables(params).n_features
        K = params.weights.shape[-1]
        dtype = data.val.dtype
        empty = RowInfo(jnp.zeros((1,), dtype), jnp.zeros((1,), dtype))
        log_joint, aux_empty = family.log_joint(params, jnp.zeros((1, K, F), dtype), empty)
        ll_empty = logsumexp(log_joint, axis=1)
        r_empty = jnp.exp(log_joint - ll_empty[:, None])
        resp = resp.at[-1].set(r_empty[0])
        ll = ll + n_empty * ll_empty[0]
        if with_aux:
            aux = jax.tree.map(lambda a, e: a.at[-1].set(e[0]), aux, aux_empty)
        stats = None
        if with_stats:
            weighted = n_empty * r_empty
            totals = jax.tree.map(jnp.add, totals, family.row_totals(weighted, empty))
            aux_totals = jax.tree.map(jnp.add, aux_totals, family.aux_totals(weighted, aux_empty))
            stats = family.suff_stats(cols, totals, n_total, aux_totals)
        return EStep(resp, row_ll, ll, stats, aux)

    def partition_specs(self) -> Any:
        """Per-leaf partition specs: the row blocks split over the mesh, ``counts`` replicated."""
        axis = jax.sharding.PartitionSpec(self.mesh.axis_names[0])
        specs = jax.tree.map(lambda _: axis, self)
        return dataclasses.replace(specs, counts=jax.sharding.PartitionSpec())

    def row_spec(self, batch_dims: int = 0) -> Any:
        """Partition spec of a per-row-slot output with ``batch_dims`` leading axes."""
        if self.mesh is None:
            return None
        return jax.sharding.PartitionSpec(*([None] * batch_dims), self.mesh.axis_names[0])

    def distribute(self, fn: Any, args: tuple, out_specs: Any = None) -> Any:
        """Run ``fn(block, *args, axis_name=...)`` on every device's block of rows (:meth:`local`).

        Without a mesh: ``fn(self.local(), *args, axis_name=None)``. With one: under
        ``jax.shard_map``, ``args`` replicated, the outputs as ``out_specs`` (a prefix tree of
        partition specs; per-row outputs from :meth:`row_spec`).
        """
        if self.mesh is None:
            return fn(self.local(), *args, axis_name=None)
        axis = self.mesh.axis_names[0]
        rep = jax.sharding.PartitionSpec()

        def run(data, *rest):
            return fn(data.local(), *rest, axis_name=axis)

        sharded = jax.shard_map(
            run,
            mesh=self.mesh,
            in_specs=(self.partition_specs(), *(rep for _ in args)),
            out_specs=out_specs,
        )
        return sharded(self, *args)


jax.tree_util.register_dataclass(
    ChunkedTriples,
    data_fields=[
        "local_row",
        "col",
        "val",
        "row_start",
        "n_rows",
        "n_obs",
        "sq_norm",
        "counts",
        "dense",
    ],
    meta_fields=["rows_per_chunk", "mesh", "native"],
)


def _varying(x: Array, axis_name: str | None) -> Array:
    return x if axis_name is None else lax.pcast(x, axis_name, to="varying")


def _entry_terms(tables: Any, c: Array, v: Array, F: int) -> Array:
    """Every entry's terms of the row sums, ``(C, K, F)``: the centred polynomial evaluated as
    written, one gather per table (``u = v - centre[c]``: no cancellation)."""

    def take(t):
        return t.at[c].get(mode="promise_in_bounds")

    u = v[:, None] - take(tables.centre)  # (C, K)
    terms = None
    if tables.unit:
        terms = (u * u)[..., None]
    if tables.a2 is not None:
        terms = (u * u)[..., None] * take(tables.a2)
    if tables.a1 is not None:
        lin = u[..., None] * take(tables.a1)
        terms = lin if terms is None else prefix_add(lin, terms)
    if tables.a0 is not None:
        const = take(tables.a0)
        terms = const if terms is None else prefix_add(const, terms)
    if terms.shape[-1] < F:  # only possible without a0: pad to every feature
        terms = jnp.pad(terms, ((0, 0), (0, 0), (0, F - terms.shape[-1])))
    return terms


def _row_sums(e: Array, local_row: Array, R: int) -> Array:
    """Sums of the entries' ``e`` ``(C, ...)`` into the chunk's ``R`` rows (padding entries go to
    a spare row ``R``, dropped)."""
    acc = jnp.zeros((R + 1, *e.shape[1:]), e.dtype)
    return acc.at[local_row].add(e, mode="promise_in_bounds")[:R]


def _scan_chunks(params, family, data, with_stats, with_aux, axis_name):
    """The scan over one device's chunks: per-slot responsibilities and log-likelihoods, the raw
    column sums, row totals and aux totals of the family's statistics, and the per-slot aux."""
    R = data.rows_per_chunk
    K = params.weights.shape[-1]
    dtype = data.val.dtype
    d = params.mu.shape[-1]
    # A family whose row sums are a Gram matrix: the value-free features (the triangle) are one
    # (d, K (1 + P)) table gathered per entry, the value-dependent ones formed per entry from
    # p + 2 gathered values; its F-feature tables are then not built.
    gram = family.row_gram(params)
    tables = family.row_tables(params) if gram is None else None
    if gram is not None:
        fixed = gram.fixed().reshape(d, -1)
        moving = gram.entry_tables().reshape(d, -1)
    F = (tables if gram is None else gram).n_features
    n_slots = data.n_obs.shape[0]
    slots = jnp.arange(R)
    chunk_rows = RowInfo(jnp.zeros((R,), dtype), jnp.zeros((R,), dtype))
    _, aux_shape = jax.eval_shape(family.log_joint, params, jnp.zeros((R, K, F), dtype), chunk_rows)
    # Per-row results go to (n_slots, ...) buffers and are summed after the scan (pairwise, as
    # on the dense layout) rather than accumulated chunk by chunk.
    carry = {"resp": jnp.zeros((n_slots, K), dtype), "ll": jnp.zeros((n_slots,), dtype)}
    sizes = (0, 0, 0)
    if with_stats:
        sizes = family.weight_sizes(params)
        carry["cols"] = [jnp.zeros((d, g), dtype) for g in sizes if g]
        aux_totals = jax.eval_shape(
            family.aux_totals,
            jax.ShapeDtypeStruct((R, K), dtype),
            aux_shape,
        )
        carry["aux_totals"] = jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype), aux_totals)
    if with_aux:
        carry["aux"] = jax.tree.map(
            lambda a: jnp.zeros((n_slots, *a.shape[1:]), a.dtype), aux_shape
        )
    carry = jax.tree.map(lambda c: _varying(c, axis_name), carry)

    def body(carry, chunk):
        carry = dict(carry)
        lr, c, v, rs, nr = chunk
        if gram is not None:
            # Two sums into the rows, one per part, each of an array as gathered or formed.
            e_fixed = fixed.at[c].get(mode="promise_in_bounds")
            e_moving = gram_entry_terms(
                moving.at[c].get(mode="promise_in_bounds").reshape(c.shape[0], K, -1), v
            )
            s = gram_features(
                _row_sums(e_fixed, lr, R).reshape(R, K, -1),
                _row_sums(e_moving, lr, R),
            )
        elif F == 1:  # one feature per component: scatter (C, K), not (C, K, 1)
            s = _row_sums(_entry_terms(tables, c, v, F)[..., 0], lr, R)[..., None]
        else:
            s = _row_sums(_entry_terms(tables, c, v, F), lr, R)
        rows = RowInfo(
            lax.dynamic_slice_in_dim(data.n_obs, rs, R),
            lax.dynamic_slice_in_dim(data.sq_norm, rs, R),
        )
        with chunk_loop():
            log_joint, aux = family.log_joint(params, s, rows)
        row_ll = logsumexp(log_joint, axis=1)
        valid = slots < nr
        resp = jnp.where(valid[:, None], jnp.exp(log_joint - row_ll[:, None]), 0.0)
        # Rows past the chunk get zeros here; the next chunk overwrites them with its own.
        carry["resp"] = lax.dynamic_update_slice_in_dim(carry["resp"], resp, rs, axis=0)
        carry["ll"] = lax.dynamic_update_slice_in_dim(
            carry["ll"], jnp.where(valid, row_ll, 0.0), rs, 0
        )
        if with_aux:
            carry["aux"] = jax.tree.map(
                lambda buf, a: lax.dynamic_update_slice_in_dim(buf, a, rs, axis=0),
                carry["aux"],
                aux,
            )
        if not with_stats:
            return carry, None
        weights = family.stat_weights(resp, aux)
        w = weights.w
        wg = jnp.concatenate([w, jnp.zeros((1, w.shape[1]), dtype)])
        wg = wg.at[lr].get(mode="promise_in_bounds")
        acc = list(carry["cols"])
        G0, G1, G2 = sizes
        acc[0] = acc[0].at[c].add(wg[:, :G0], mode="promise_in_bounds")
        if G1:
            acc[1] = acc[1].at[c].add(wg[:, :G1] * v[:, None], mode="promise_in_bounds")
        if G2:
            acc[2] = acc[2].at[c].add(wg[:, :G2] * (v * v)[:, None], mode="promise_in_bounds")
        carry["cols"] = acc
        carry["aux_totals"] = jax.tree.map(
            jnp.add, carry["aux_totals"], family.aux_totals(resp, aux)
        )
        return carry, None

    chunks = (data.local_row, data.col, data.val, data.row_start, data.n_rows)
    out, _ = lax.scan(body, carry, chunks)
    aux_buf = out.get("aux")
    if not with_stats:
        return out["resp"], out["ll"], None, None, None, aux_buf
    acc = out["cols"]
    cols = tuple(acc[i] if g else None for i, g in enumerate(sizes))
    totals = family.row_totals(out["resp"], RowInfo(data.n_obs, data.sq_norm))
    return out["resp"], out["ll"], cols, totals, out["aux_totals"], aux_buf


#: Rows per block of the family's work in :func:`_native_pass` (its intermediates then stay in
#: the cache: over all rows at once the same operations took twice the time).
NATIVE_ROW_BLOCK = 512


def _native_pass(params, family, data, gram, with_stats, with_aux):
    """What :func:`_scan_chunks` returns, by the compiled kernels of ``data.native`` (one block,
    no mesh): every row's Gram features in one call, the family's log density, responsibilities
    and weights in JAX, block of rows after block, then the column sums in a second call."""
    native = data.native
    K = params.weights.shape[-1]
    dtype = data.val.dtype
    n_slots = data.n_obs.shape[0]
    s = jax.pure_callback(
        native.row_gram,
        jax.ShapeDtypeStruct((n_slots, K, gram.n_features), dtype),
        gram.centre,
        gram.scale,
        gram.vectors,
        gram.const,
        vmap_method="sequential",
    )
    B = NATIVE_ROW_BLOCK
    n_blocks = -(-n_slots // B)

    def blocks(a):  # (n_slots, ...) -> (n_blocks, B, ...), padded with rows without entries
        a = jnp.pad(a, [(0, n_blocks * B - n_slots)] + [(0, 0)] * (a.ndim - 1))
        return a.reshape(n_blocks, B, *a.shape[1:])

    def block(totals, x):
        s_b, n_obs, sq_norm = x
        rows = RowInfo(n_obs, sq_norm)
        # Written-out solves, as in the scan (two batched LAPACK kernels side by side on a
        # 2-thread pool each wait for the other's thread).
        with chunk_loop():
            log_joint, aux = family.log_joint(params, s_b, rows)
        row_ll = logsumexp(log_joint, axis=1)
        valid = n_obs > 0  # slots past the active rows, and the spare ones, are padding
        resp = jnp.where(valid[:, None], jnp.exp(log_joint - row_ll[:, None]), 0.0)
        out = {"resp": resp, "ll": jnp.where(valid, row_ll, 0.0)}
        if with_aux:
            out["aux"] = aux
        if with_stats:
            out["w"] = family.stat_weights(resp, aux).w
            totals = jax.tree.map(jnp.add, totals, family.aux_totals(resp, aux))
        return totals, out

    totals0 = None
    if with_stats:
        row = jax.ShapeDtypeStruct((B,), dtype)
        aux_shape = jax.eval_shape(
            lambda s_b, n, q: family.log_joint(params, s_b, RowInfo(n, q)),
            jax.ShapeDtypeStruct((B, K, gram.n_features), dtype),
            row,
            row,
        )[1]
        totals0 = jax.tree.map(
            lambda a: jnp.zeros(a.shape, a.dtype),
            jax.eval_shape(family.aux_totals, jax.ShapeDtypeStruct((B, K), dtype), aux_shape),
        )
    aux_totals, out = lax.scan(
        block, totals0, (blocks(s), blocks(data.n_obs), blocks(data.sq_norm))
    )
    out = jax.tree.map(lambda a: a.reshape(n_blocks * B, *a.shape[2:])[:n_slots], out)
    resp, row_ll = out["resp"], out["ll"]
    aux_buf = out.get("aux")
    if not with_stats:
        return resp, row_ll, None, None, None, aux_buf
    sizes = tuple(int(g) for g in family.weight_sizes(params))
    d = params.mu.shape[-1]
    parts = jax.pure_callback(
        functools.partial(native.col_sums, sizes=sizes),
        tuple(jax.ShapeDtypeStruct((d, g), dtype) for g in sizes if g),
        out["w"],
        vmap_method="sequential",
    )
    parts = iter(parts)
    cols = tuple(next(parts) if g else None for g in sizes)
    totals = family.row_totals(resp, RowInfo(data.n_obs, data.sq_norm))
    return resp, row_ll, cols, totals, aux_totals, aux_buf


# ---------------------------------------------------------------------------- layout (host)


class HostLayout(NamedTuple):
    """Host-side result of :func:`build_layout`.

    Attributes:
        data: :class:`ChunkedTriples` of NumPy arrays with a leading device axis ``P``.
        chunk_size: Entries per chunk.
        active_rows: Global row of every device's chunked rows, ``(P, A)``, ``-1`` for padding.
        dense_rows: Global row of every device's dense rows, ``(P, A_dense)``, ``-1`` for
            padding.
        shape: ``(n, d)`` of the matrix.
        n_empty: Rows without any entry.
    """

    data: Any
    chunk_size: int
    active_rows: np.ndarray
    dense_rows: np.ndarray
    shape: tuple[int, int]
    n_empty: int


def _next_pow2(x: float) -> int:
    return 1 << max(0, math.ceil(math.log2(max(x, 1.0))))


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(s, s + l)`` for every ``(s, l)``, as int64."""
    keep = lengths > 0
    starts, lengths = starts[keep].astype(np.int64), lengths[keep].astype(np.int64)
    if starts.size == 0:
        return np.zeros(0, np.int64)
    step = np.ones(int(lengths.sum()), np.int64)
    step[0] = starts[0]
    step[np.cumsum(lengths)[:-1]] = starts[1:] - (starts[:-1] + lengths[:-1] - 1)
    return np.cumsum(step)


def _split(weights: np.ndarray, parts: int) -> np.ndarray:
    """Bounds of ``parts`` consecutive blocks of items with about equal total weight."""
    cum = np.concatenate([[0], np.cumsum(weights)])
    targets = cum[-1] * np.arange(1, parts) / parts
    bounds = np.concatenate([[0], np.searchsorted(cum, targets), [weights.size]])
    return np.maximum.accumulate(np.minimum(bounds, weights.size)).astype(np.int64)


def build_layout(
    S: SparseRatings,
    std: Standardizer,
    dtype: Any,
    chunk_size: int | None = None,
    n_devices: int = 1,
    dense_row_density: float | None = None,
    pad: bool = False,
) -> HostLayout:
    """Cut the standardised triples of ``S`` into padded chunks, one block of rows per device.

    Args:
        S: The matrix (at least one entry).
        std: Standardisation applied to the values, ``(x - offset[col]) / scale``.
        dtype: Float dtype of the values on the device.
        chunk_size: Entries per chunk (default :data:`DEFAULT_CHUNK_SIZE`); raised to the
            longest row when a row has more entries (a row is never split).
        n_devices: Number of row blocks ``P``.
        dense_row_density: Rows with at least this share of observed entries are stored densely
            (``d`` values and a mask each) and processed by matrix products; ``None``: none.
        pad: Round the array sizes up to size classes (:func:`~jaxmix.data.base.size_class`), so
            that matrices of nearby sizes share their compiled programs: the rows of a block
            (chunked: at least ``PAD_MIN_ENTRIES / 16``; dense: as a dense matrix's,
            :func:`~jaxmix.data.dense.padded_rows`), the entries of a chunk when
            one chunk holds a block (at least :data:`~jaxmix.data.dense.PAD_MIN_ENTRIES`, or
            ``chunk_size`` if smaller), and the number of chunks while a block holds at most
            :data:`~jaxmix.data.base.SMALL_ENTRIES` padded entries (above it a padding chunk
            would cost as much as a real one in every iteration). Padding carries no weight.

    Returns:
        A :class:`HostLayout`.
    """
    n, d = S.shape
    P = n_devices
    chunk_size = DEFAULT_CHUNK_SIZE if chunk_size is None else chunk_size
    counts = S.row_counts()
    offsets = np.concatenate([[0], np.cumsum(counts)])
    is_dense = np.zeros(n, bool)
    if dense_row_density is not None:
        is_dense = counts >= max(dense_row_density * d, 1)
    active = np.flatnonzero((counts > 0) & ~is_dense)
    nnz_act = counts[active]
    n_act = active.size
    offset, scale = np.asarray(std.offset, np.float64), float(std.scale)

    def standardised(idx):
        cols = S.cols[idx]
        return cols, (S.values[idx].astype(np.float64) - offset[cols]) / scale

    # Rows stored densely: consecutive blocks of equal size.
    dense_all = np.flatnonzero(is_dense)
    dense = None
    dense_bounds = _split(np.ones(dense_all.size), P)
    A_dense = int(np.diff(dense_bounds).max()) if dense_all.size else 0
    if pad and A_dense:
        A_dense = padded_rows(A_dense, d)
    dense_rows = np.full((P, A_dense), -1, np.int64)
    if dense_all.size:
        x = np.zeros((P, A_dense, d), dtype)
        mask = np.zeros((P, A_dense, d), dtype)
        d_obs = np.zeros((P, A_dense), dtype)
        d_sq = np.zeros((P, A_dense), dtype)
        valid = np.zeros((P, A_dense), dtype)
        for p in range(P):
            rows = dense_all[dense_bounds[p] : dense_bounds[p + 1]]
            m = rows.size
            idx = _ranges(offsets[rows], counts[rows])
            local = np.repeat(np.arange(m), counts[rows])
            cols, z = standardised(idx)
            x[p, local, cols] = z
            mask[p, local, cols] = 1.0
            d_obs[p, :m] = counts[rows]
            d_sq[p, :m] = np.bincount(local, weights=z * z, minlength=m)
            valid[p, :m] = 1.0
            dense_rows[p, :m] = rows
        dense = DenseRows(x, mask, d_obs, d_sq, valid)

    # Chunked rows: device blocks of consecutive rows, balanced by entries.
    bounds = _split(nnz_act, P)
    cum = np.concatenate([[0], np.cumsum(nnz_act)])
    per_dev_nnz = cum[bounds[1:]] - cum[bounds[:-1]]
    longest = int(nnz_act.max()) if n_act else 1
    C = max(min(int(chunk_size), int(per_dev_nnz.max())), longest, 1)
    C = -(-C // 8) * 8
    if pad:  # small matrices share one class: at least PAD_MIN_ENTRIES (or chunk_size) entries
        padded = size_class(max(C, min(PAD_MIN_ENTRIES, int(chunk_size))))
        if padded <= max(int(chunk_size), longest):
            C = padded
    mean_len = max(int(nnz_act.sum()) / max(n_act, 1), 1.0)
    per_dev_rows = np.diff(bounds)
    A = max(1, int(per_dev_rows.max()))
    if pad:  # the rows' slots (K floats each in EM's state): at least PAD_MIN_ENTRIES / 16
        A = size_class(max(A, PAD_MIN_ENTRIES // 16), unit=16)
    R = min(C, _next_pow2(2.0 * C / mean_len), _next_pow2(A))
    plans = []
    for p in range(P):
        a, b = int(bounds[p]), int(bounds[p + 1])
        local = cum[a : b + 1] - cum[a]
        chunks, s = [], 0
        while s < b - a:
            e = int(np.searchsorted(local, local[s] + C, side="right")) - 1
            e = max(min(e, s + R, b - a), s + 1)
            chunks.append((s, e))
            s = e
        plans.append(chunks)
    n_chunks = max(1, max(len(c) for c in plans))
    if pad and size_class(n_chunks, unit=C) * C <= SMALL_ENTRIES:
        n_chunks = size_class(n_chunks, unit=C)
    local_row = np.full((P, n_chunks, C), R, np.int32)
    col = np.zeros((P, n_chunks, C), np.int32)
    val = np.zeros((P, n_chunks, C), dtype)
    row_start = np.full((P, n_chunks), A, np.int32)
    n_rows = np.zeros((P, n_chunks), np.int32)
    n_obs = np.zeros((P, A + R + 1), dtype)
    sq_norm = np.zeros((P, A + R + 1), dtype)
    active_rows = np.full((P, A), -1, np.int64)
    for p, chunks in enumerate(plans):
        a = int(bounds[p])
        for i, (s, e) in enumerate(chunks):
            rows = active[a + s : a + e]
            idx = _ranges(offsets[rows], counts[rows])
            lr = np.repeat(np.arange(e - s, dtype=np.int32), counts[rows])
            cols, z = standardised(idx)
            # Column order within the chunk: the gathers from the tables and the scatter-adds
            # into the (d, G) statistics then walk memory forwards (2x faster when d K floats
            # exceed the cache); the row sums go to a small (R, F) block, cache-resident either
            # way.
            order = np.argsort(cols, kind="stable")
            lr, cols, z = lr[order], cols[order], z[order]
            m = idx.size
            local_row[p, i, :m] = lr
            col[p, i, :m] = cols
            val[p, i, :m] = z
            row_start[p, i] = s
            n_rows[p, i] = e - s
            sq_norm[p, s:e] = np.bincount(lr, weights=z * z, minlength=e - s)
        b = int(bounds[p + 1])
        n_obs[p, : b - a] = nnz_act[a:b]
        active_rows[p, : b - a] = active[a:b]
    n_empty = int(n - n_act - dense_all.size)
    data = ChunkedTriples(
        local_row,
        col,
        val,
        row_start,
        n_rows,
        n_obs,
        sq_norm,
        np.asarray([n, n_empty], dtype),
        dense,
        rows_per_chunk=R,
    )
    return HostLayout(data, C, active_rows, dense_rows, (n, d), n_empty)


def check_mesh(mesh: Any, family: Any = None) -> Any:
    """``None``, a one-axis :class:`jax.sharding.Mesh`, or a list of devices made into one.

    With ``family``, also refuse a mesh on which its EM would hang. A family with
    :attr:`~jaxmix.models.families.base.Family.batched_solves` calls jaxlib's batched LAPACK
    kernels (Cholesky, triangular solves) inside EM's steps. Each such kernel splits its batch
    over XLA's CPU thread pool and waits for the pieces; when the mesh holds as many of this
    process's CPU devices as the pool has threads, every thread runs one device's program and
    waits inside such a kernel for pieces no thread is free to run, and the fit never returns
    (seen with the factor family on 2 CPU devices of a 2-core machine: both pool threads blocked
    in ``lapack_strsm_ffi``'s batch map). Fewer devices than threads, or one device per process
    (``jax.distributed``), leave threads free.

    Raises:
        ValueError: An empty list, a mesh of several axes, or a mesh holding two or more of this
            process's CPU devices, at least as many as the pool's threads, for a family with
            batched solves.
    """
    if mesh is None:
        return None
    if not isinstance(mesh, jax.sharding.Mesh):
        devices = list(mesh)
        if not devices:
            raise ValueError("mesh: an empty list of devices")
        mesh = jax.sharding.Mesh(np.array(devices), ("rows",))
    if len(mesh.axis_names) != 1:
        raise ValueError(
            f"mesh must have one axis (the rows are split over it); got axes {mesh.axis_names}"
        )
    if family is not None and family.batched_solves:
        local = [
            dev
            for dev in np.ravel(mesh.devices)
            if dev.platform == "cpu" and dev.process_index == jax.process_index()
        ]
        threads = _cpu_threads()
        if len(local) > 1 and len(local) >= threads:
            raise ValueError(
                f"covariance={family.name!r} cannot be split over {len(local)} CPU devices of "
                f"one process with {threads} CPU threads: its batched LAPACK solves wait for "
                "threads that every device's program holds, and the fit would hang. Use fewer "
                "CPU devices than threads in the mesh (or mesh=None), or one device per process "
                "with jax.distributed"
            )
    return mesh


def _cpu_threads() -> int:
    """The threads of XLA's CPU pool: the CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _gather(x: Any) -> np.ndarray:
    """A device array as NumPy; across processes (``jax.distributed``) the pieces are gathered."""
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        from jax.experimental import multihost_utils

        return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(x)


class TriplesLayout:
    """A :class:`~jaxmix.SparseRatings` on the host (see :func:`jaxmix.data.as_data`).

    Attributes:
        S: The triples.
    """

    kind = "triples"

    def __init__(self, S: SparseRatings) -> None:
        self.S = S
        self._host: HostLayout | None = None

    def __repr__(self) -> str:
        n, d = self.shape
        return f"TriplesLayout(shape=({n}, {d}), nnz={self.nnz})"

    @property
    def shape(self) -> tuple[int, int]:
        """``(n, d)``."""
        return self.S.shape

    @property
    def nnz(self) -> int:
        """Number of observed entries."""
        return self.S.nnz

    def memo(self, kind: str, key: Any, build: Any) -> Any:
        """What ``build()`` derives from the matrix, built once per ``(kind, key)`` and kept
        with the (immutable) :class:`~jaxmix.SparseRatings` for later calls
        (:data:`jaxmix.data.layout_cache`); ``key`` holds everything else it depends on."""
        return layout_cache.get(self.S, kind, key, build)

    def summary(self) -> ColumnSummary:
        """Column counts, sums and spread of the observed entries (chunked; computed once per
        matrix)."""
        return self.memo("summary", None, lambda: _column_summary(self.S))

    def row_counts(self) -> np.ndarray:
        """``|C_u|`` of every row, ``(n,)`` (computed once per matrix; read-only)."""
        return self.memo("row_counts", None, lambda: _lock(self.S.row_counts()))

    def entries(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The observed entries in row-major order: ``(rows, cols, values)`` (float64)."""
        return self.S.rows, self.S.cols, self.S.values.astype(np.float64)

    def row_sums(self) -> tuple[np.ndarray, np.ndarray]:
        """``(count, total)`` of every row's observed entries, float64 ``(n,)`` each."""
        return self.S.row_sums()

    def split(self, positions: np.ndarray) -> tuple[SparseRatings, SparseRatings]:
        """Split the observed entries: ``(S_train, S_test)`` with the entries at ``positions``
        (indices into the triples, which are in row-major order) in ``S_test``."""
        test = np.zeros(self.S.nnz, dtype=bool)
        test[positions] = True
        return self.S.select(~test), self.S.select(test)

    def row(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Row ``i``'s observed columns and values."""
        offsets = self.memo(
            "row_offsets", None, lambda: _lock(np.concatenate([[0], np.cumsum(self.row_counts())]))
        )
        a, b = int(offsets[i]), int(offsets[i + 1])
        return self.S.cols[a:b], self.S.values[a:b].astype(np.float64)

    def device(
        self,
        std: Standardizer,
        dtype: Any = None,
        *,
        chunk_size: int | None = None,
        mesh: Any = None,
        dense_row_density: float | None = DENSE_ROW_DENSITY,
        pad: bool = False,
        native: bool | None = None,
    ) -> ChunkedTriples:
        """:func:`build_layout`, then its arrays moved to the device(s); built once per matrix
        and options, and reused.

        The arrays are copied one at a time and each host copy is released as soon as its
        device copy exists, so the peak memory is the layout plus one of its arrays (not twice
        the layout). The host-side row maps are kept for :meth:`rows_from_slots`.

        The result is kept with the :class:`~jaxmix.SparseRatings` (which is immutable) for
        later calls (:data:`jaxmix.data.layout_cache`), keyed by ``std``, ``dtype``,
        ``chunk_size``, ``dense_row_density``, ``mesh``, ``pad`` and JAX's default device: a
        second call with the same matrix and options skips the host work and the transfer
        (2-2.5 s at 10 million ratings on a 2-core machine), a call with another option builds
        anew.

        Args:
            std, chunk_size, dense_row_density, pad: As in :func:`build_layout`.
            dtype: Float dtype on the device (JAX's default).
            mesh: ``None`` (the default device) or a one-axis mesh: device ``p`` of the mesh gets
                block ``p`` of the rows (each process supplies only its own devices' blocks).
            native: Bind the compiled CPU kernels of :mod:`jaxmix.data.native` to the block
                (``True``), or not (``False``); ``None`` (the default): when numba is installed,
                the block is on a CPU device without a mesh and its chunks hold at least
                :data:`~jaxmix.data.native.NATIVE_MIN_ENTRIES` entry slots.

        Raises:
            ValueError: ``native=True`` with a mesh or on a device other than a CPU.
            ImportError: ``native=True`` without numba.
        """
        dtype = np.dtype(float_dtype() if dtype is None else dtype)
        chunk_size = DEFAULT_CHUNK_SIZE if chunk_size is None else int(chunk_size)
        native = _want_native(native, mesh)
        key = (
            float(std.scale),
            np.asarray(std.offset, np.float64).tobytes(),
            dtype.name,
            chunk_size,
            None if dense_row_density is None else float(dense_row_density),
            mesh,
            bool(pad),
            jax.config.jax_default_device,
            native,
        )
        data, self._host = self.memo(
            "layout",
            key,
            lambda: _device_layout(
                self.S, std, dtype, chunk_size, mesh, dense_row_density, pad, native
            ),
        )
        return data

    @property
    def chunking(self) -> HostLayout | None:
        """How the last :meth:`device` build cut the rows (:class:`HostLayout` without its
        arrays: the rows of every device's blocks), or ``None`` before any build."""
        return self._host

    def rows_from_slots(self, values: Any, axis: int = -2) -> np.ndarray:
        """Per-slot results of the last :meth:`device` build (slot axis ``axis``, of length
        ``P * (A_dense + A + R + 1)``) in row order (that axis of length ``n``): responsibilities
        ``(..., slots, K)`` by default, or a family's ``aux`` with ``axis=0``."""
        layout = self._host
        values = np.moveaxis(_gather(values), axis, 0)
        P, A = layout.active_rows.shape
        A_dense = layout.dense_rows.shape[1]
        blocks = values.reshape(P, -1, *values.shape[1:])
        out = np.empty((layout.shape[0], *values.shape[1:]), values.dtype)
        out[...] = blocks[0, -1:]  # rows without entries (same on every device)
        for p in range(P):
            for rows, first in ((layout.dense_rows[p], 0), (layout.active_rows[p], A_dense)):
                keep = rows >= 0
                out[rows[keep]] = blocks[p, first : first + rows.size][keep]
        return np.moveaxis(out, 0, axis)

    def to_dense(self) -> np.ndarray:
        """The ``(n, d)`` float64 matrix, ``NaN`` where missing."""
        return self.S.to_dense()

    def lookup(self, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(found, value)`` at entries ``(rows, cols)`` (value ``NaN`` where not observed)."""
        if self.S.nnz == 0:
            return np.zeros(rows.shape, bool), np.full(rows.shape, np.nan)
        found, pos = self.S.positions(rows, cols)
        return found, np.where(found, self.S.values[pos].astype(np.float64), np.nan)


def _lock(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


def _column_summary(S: SparseRatings) -> ColumnSummary:
    """Column counts, sums and spread of the observed entries of ``S`` (chunked)."""
    count, total = S.column_sums()
    mean = np.divide(total, count, out=np.zeros_like(total), where=count > 0)
    sq_resid = sq_total = 0.0
    col_sq = np.zeros(S.shape[1])
    for s in spans(S.nnz):
        v = S.values[s].astype(np.float64)
        r = v - mean[S.cols[s]]
        sq_resid += float(r @ r)
        sq_total += float(v @ v)
        col_sq += np.bincount(S.cols[s], weights=r * r, minlength=S.shape[1])
    for a in (count, total, col_sq):
        _lock(a)
    return ColumnSummary(count, total, sq_resid, sq_total, S.nnz, S.shape[0], col_sq)


def _device_layout(
    S: SparseRatings,
    std: Standardizer,
    dtype: Any,
    chunk_size: int,
    mesh: Any,
    dense_row_density: float | None,
    pad: bool,
    native: bool | None = False,
) -> tuple[ChunkedTriples, HostLayout]:
    """:func:`build_layout` moved to the device(s): the arrays and the host-side row maps, and
    with ``native`` (``None``: by the block's size) the compiled kernels bound to the block."""
    n_devices = 1 if mesh is None else mesh.devices.size
    host = build_layout(S, std, dtype, chunk_size, n_devices, dense_row_density, pad)
    row_maps = host._replace(data=None)
    for a in (row_maps.active_rows, row_maps.dense_rows):
        _lock(a)
    sharding = None
    if mesh is not None:
        axis = jax.sharding.PartitionSpec(mesh.axis_names[0])
        sharding = jax.sharding.NamedSharding(mesh, axis)

    def put(arr: np.ndarray, shard: bool) -> Array:
        if sharding is None or not shard:
            out = jax.device_put(arr)
        else:
            out = jax.make_array_from_callback(arr.shape, sharding, lambda idx: arr[idx])
        return jax.block_until_ready(out)

    fields = {}
    for name in ("local_row", "col", "val", "row_start", "n_rows", "n_obs", "sq_norm"):
        fields[name] = put(getattr(host.data, name), True)
        host = host._replace(data=dataclasses.replace(host.data, **{name: None}))
    dense = host.data.dense
    if dense is not None:
        dense = jax.tree.map(lambda a: put(a, True), dense)
    data = ChunkedTriples(
        **fields,
        counts=put(host.data.counts, False),
        dense=dense,
        rows_per_chunk=host.data.rows_per_chunk,
        mesh=mesh,
    )
    if native is None:
        native = int(data.val.size) >= _native.NATIVE_MIN_ENTRIES and _native.available()
    if native:
        views = [
            np.asarray(getattr(data, name))[0]
            for name in ("local_row", "col", "val", "row_start", "n_rows")
        ]
        kernels = _native.NativeTriples(*views, n_slots=data.n_obs.shape[-1], d=S.shape[1])
        data = dataclasses.replace(data, native=kernels)
    return data, row_maps


def _want_native(native: bool | None, mesh: Any) -> bool | None:
    """``native`` of :meth:`TriplesLayout.device` checked: ``False`` where the kernels cannot
    run, ``None`` (decided by the block's size, and numba, once the block exists) where they
    can, ``True`` if asked (numba is imported only then, or for a block large enough)."""
    dev = jax.config.jax_default_device
    cpu = (jax.default_backend() if dev is None else getattr(dev, "platform", str(dev))) == "cpu"
    if native is None:
        return None if (mesh is None and cpu) else False
    if not native:
        return False
    if mesh is not None:
        raise ValueError("native=True: the compiled kernels run on one CPU device, not a mesh")
    if not cpu:
        raise ValueError(
            f"native=True: the compiled kernels run on the CPU; JAX's device is {jax.devices()[0]}"
        )
    if not _native.available():
        raise ImportError('native=True needs numba: pip install "jaxmix[native]"')
    return True

"""EM on sparse ratings: O(nnz K) work per iteration, O(nnz + (n + d) K) memory.

The dense path (:mod:`jaxmix.inference.em`) spends ``8 n d K`` flops per iteration whatever the
share of observed entries. Here the E-step and the statistics of the M-step are sums over the
observed entries only. For row ``u`` (observed columns ``C_u``) and component ``k``:

.. math::

    \\sum_{l \\in C_u} (x_{ul} - \\mu_{kl})^2 \\;\\; \\text{(spherical)}, \\qquad
    \\sum_{l \\in C_u} \\Big[\\frac{(x_{ul} - \\mu_{kl})^2}{\\mathrm{var}_{kl}}
        + \\log(2\\pi\\,\\mathrm{var}_{kl})\\Big] \\;\\; \\text{(diag)}

(a gather of ``mu[:, col]`` per entry and a sum over the entries of each row), and the M-step
needs, per column ``l``, ``sum_u p(k|u)``, ``sum_u p(k|u) x_ul`` (and ``sum_u p(k|u) x_ul^2`` for
diag) over the rows that rated ``l`` (a gather of ``resp[row]`` per entry and a scatter-add into
``(d, K)`` tables). The rest of the :class:`~jaxmix.inference.em.SuffStats` (``n_k``,
``sum_u p(k|u) |x_u|^2``, ``sum_u p(k|u) |C_u|``) are ``(n, K)``-sized. From there the M-step,
the prior, the stopping rule and the ``while_loop`` are those of the dense path
(:func:`~jaxmix.inference.em.m_step`, :func:`~jaxmix.inference.em.advance`,
:func:`~jaxmix.inference.em.loop`), so spherical and diag, ML and MAP and the batched restarts
behave exactly as there (same numbers up to rounding).

Layout (built once on the host, :func:`build_layout`): the rows with at least one entry ("active"
rows) are cut into *chunks* of consecutive rows holding at most ``chunk_size`` entries and at
most ``rows_per_chunk`` rows; each chunk's triples are padded to ``chunk_size`` and sorted by
column (the gathers from ``mu`` and the scatter-adds into the ``(d, K)`` statistics then walk
memory forwards, which halves the time once ``d K`` floats exceed the cache). A ``lax.scan``
over the chunks does, per chunk, the E-step of its rows (a segment sum into a
``(rows_per_chunk, K)`` block), their responsibilities, and their contribution to the M-step
statistics: one pass over the data per iteration, and the largest intermediate is
``chunk_size x K`` (1.5 MB for the defaults in float32), whatever ``nnz``. Rows without entries
are handled in closed form (their responsibilities are the weights). Rows with at least
:data:`DENSE_ROW_DENSITY` of their entries observed are stored densely instead and go through
the dense path's matrix products (which are about 20 times cheaper per entry than a gather and a
scatter, so on a matrix as dense as the course's the sparse path runs at the dense path's speed);
their storage is at most ``8 / DENSE_ROW_DENSITY`` bytes per observed entry. No ``n x d`` array
exists anywhere.

Several devices (:func:`fit_sparse_em` with a ``mesh``): the rows are split into one block per
device (the chunked rows balanced by entries, the dense rows by count), the whole fit runs under
``jax.shard_map``, and the statistics are summed over the devices with ``lax.psum`` inside the
loop, so every device takes the same M-step and the same stopping decision; only ``(d, K)``-sized
statistics cross devices. The result equals the single-device fit up to the order of
floating-point sums. Across hosts: call ``jax.distributed.initialize()`` in every process, load
the same matrix in each, and pass a mesh over ``jax.devices()`` (all processes' devices); each
process builds the layout and copies only its own devices' blocks, and every process gets the
whole result.

Precision: the per-column statistics are scatter-added chunk after chunk in JAX's float dtype
(in float32 about ``1e-5`` relative on a column with 10^5 ratings; the dense path's blocked matrix
products are slightly more accurate); the per-row results (log-likelihood, responsibilities) are
kept per row and summed pairwise after the scan, as on the dense path. The matrix products use
``Precision.HIGHEST``, as on the dense path, so the objective never decreases beyond rounding.
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array, lax
from jax.scipy.special import logsumexp

from jaxmix._data import (
    MaskedData,
    Standardizer,
    check_n_components,
    check_nonneg_float,
    check_positive_int,
    float_dtype,
)
from jaxmix.inference import em
from jaxmix.inference.init import (
    INIT_METHODS,
    _explicit,
    check_params,
    random_rows_variance,
    seed_kmeans_plus_plus,
)
from jaxmix.models.mixture import WEIGHT_EPS, component_log_joint, covariance_of
from jaxmix.priors import Prior, _per_column, _scalar, log_prior_shift, standardize_prior
from jaxmix.sparse import SparseRatings, _spans
from jaxmix.types import EMResult, MixtureParams

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "DENSE_ROW_DENSITY",
    "DenseRows",
    "SparseData",
    "SparseLayout",
    "build_layout",
    "device_layout",
    "fit_sparse_em",
    "init_params_sparse",
    "kmeans_plus_plus_sparse",
    "random_rows_sparse",
    "resolve_prior_sparse",
    "sparse_e_step",
    "sparse_responsibilities",
    "sparse_step",
]

#: Entries per chunk of the scan (the bound on the ``chunk x K`` intermediates).
DEFAULT_CHUNK_SIZE = 1 << 15
#: Rows with at least this share of observed entries are stored densely and processed by matrix
#: products (memory at most ``8 / 0.25 = 32`` bytes per entry of those rows; see
#: ``benchmarks/dense_vs_sparse.py`` for the speed).
DENSE_ROW_DENSITY = 0.25
_HI = lax.Precision.HIGHEST
_LOG_2PI = math.log(2.0 * math.pi)


class DenseRows(NamedTuple):
    """The rows dense enough to be processed by matrix products, as in the dense path.

    Attributes:
        x: Standardised values, 0 where missing, ``(A_dense, d)``.
        mask: 1.0 where observed, ``(A_dense, d)``.
        n_obs: ``|C_u|``, ``(A_dense,)``.
        sq_norm: ``|x_{u,C_u}|^2``, ``(A_dense,)``.
        valid: 1.0 for a real row, 0.0 for padding, ``(A_dense,)``.
    """

    x: Array
    mask: Array
    n_obs: Array
    sq_norm: Array
    valid: Array


class SparseData(NamedTuple):
    """The triples of one device's rows, cut into chunks (device arrays).

    ``A`` is the number of active rows (padded), ``R = rows_per_chunk``.

    Attributes:
        local_row: Row of every entry within its chunk, ``int32`` ``(n_chunks, chunk_size)``;
            padding entries point at the spare row ``R``.
        col: Column of every entry, ``int32`` ``(n_chunks, chunk_size)``; 0 for padding.
        val: Standardised value of every entry, ``(n_chunks, chunk_size)``; 0 for padding.
        row_start: First active row of every chunk, ``int32`` ``(n_chunks,)`` (``A`` for a
            padding chunk).
        n_rows: Rows in every chunk, ``int32`` ``(n_chunks,)``.
        n_obs: ``|C_u|`` of every active row, ``(A + R + 1,)`` (zero past ``A``).
        sq_norm: ``|x_{u,C_u}|^2`` (standardised) of every active row, ``(A + R + 1,)``.
        dense: The rows processed densely (:class:`DenseRows`), or ``None``.
    """

    local_row: Array
    col: Array
    val: Array
    row_start: Array
    n_rows: Array
    n_obs: Array
    sq_norm: Array
    dense: DenseRows | None = None


class SparseLayout(NamedTuple):
    """Host-side result of :func:`build_layout`.

    Attributes:
        data: :class:`SparseData` of NumPy arrays with a leading device axis ``P``.
        rows_per_chunk: ``R``, the static row capacity of a chunk.
        chunk_size: Entries per chunk.
        active_rows: Global row of every device's chunked rows, ``(P, A)``, ``-1`` for padding.
        dense_rows: Global row of every device's dense rows, ``(P, A_dense)``, ``-1`` for
            padding.
        shape: ``(n, d)`` of the matrix.
        n_empty: Rows without any entry.
    """

    data: SparseData
    rows_per_chunk: int
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
) -> SparseLayout:
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

    Returns:
        A :class:`SparseLayout`.
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
    mean_len = max(int(nnz_act.sum()) / max(n_act, 1), 1.0)
    per_dev_rows = np.diff(bounds)
    R = min(C, _next_pow2(2.0 * C / mean_len), _next_pow2(max(int(per_dev_rows.max()), 1)))
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
    A = max(1, int(per_dev_rows.max()))
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
            # Column order within the chunk: the gathers from mu and the scatter-adds into the
            # (d, K) statistics then walk memory forwards (2x faster when d K floats exceed
            # the cache); the row sums go to a small (R, K) block, cache-resident either way.
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
    data = SparseData(local_row, col, val, row_start, n_rows, n_obs, sq_norm, dense)
    n_empty = int(n - n_act - dense_all.size)
    return SparseLayout(data, R, C, active_rows, dense_rows, (n, d), n_empty)


# ---------------------------------------------------------------------------- kernels


def _varying(x: Array, axis_name: str | None) -> Array:
    return x if axis_name is None else lax.pcast(x, axis_name, to="varying")


def sparse_e_step(
    params: MixtureParams,
    data: SparseData,
    rows_per_chunk: int,
    with_stats: bool = True,
    axis_name: str | None = None,
) -> tuple[Array, Array, tuple[Array, ...]]:
    """One pass over the chunks: responsibilities, log-likelihood and the M-step statistics.

    Args:
        params: ``mu`` ``(K, d)``, ``var`` ``(K,)`` or ``(K, d)``, ``weights`` ``(K,)``.
        data: One device's :class:`SparseData` (no leading device axis).
        rows_per_chunk: ``R`` (static).
        with_stats: Also accumulate the M-step statistics (static).
        axis_name: Mesh axis when running under ``shard_map`` (marks the scan carry as
            device-varying); the caller sums the outputs over it.

    Returns:
        ``(resp, ll, stats)``: responsibilities ``(A_dense + A + R + 1, K)``, of the dense rows
        then of the chunked rows (rows past the last chunk are zero), the log-likelihood of the
        rows with entries, and the tuple
        ``(n_k (K,), sq_k (K,), n_obs_k (K,), obs (d, K), sum (d, K), sq_kl (d, K) or None)``
        (empty when ``with_stats`` is False).
    """
    R = rows_per_chunk
    K, d = params.mu.shape
    dtype = params.mu.dtype
    diag = params.var.ndim == 2
    log_w = jnp.log(params.weights + WEIGHT_EPS)
    if diag:
        table = jnp.stack(
            [params.mu.T, (1.0 / params.var).T, jnp.log(2.0 * math.pi * params.var).T], 1
        )
    else:
        table = params.mu.T
        log_2pi_var = jnp.log(2.0 * math.pi * params.var)
        two_var = 2.0 * params.var
    n_slots = data.n_obs.shape[0]
    slots = jnp.arange(R)
    zdk = jnp.zeros((d, K), dtype)
    # Per-row results go to (n_slots, ...) buffers and are summed after the scan (pairwise, as
    # on the dense path) rather than accumulated chunk by chunk in float32.
    carry = [jnp.zeros((n_slots, K), dtype), jnp.zeros((n_slots,), dtype)]
    if with_stats:
        carry += [zdk, zdk] + ([zdk] if diag else [])
    carry = [_varying(c, axis_name) for c in carry]

    def body(carry, chunk):
        resp_buf, ll_buf, *acc = carry
        lr, c, v, rs, nr = chunk
        g = table.at[c].get(mode="promise_in_bounds")
        if diag:
            diff = v[:, None] - g[:, 0]
            e = diff * diff * g[:, 1] + g[:, 2]
        else:
            diff = v[:, None] - g
            e = diff * diff
        s = jnp.zeros((R + 1, K), dtype).at[lr].add(e, mode="promise_in_bounds")[:R]
        n_obs = lax.dynamic_slice_in_dim(data.n_obs, rs, R)
        if diag:
            log_joint = log_w - 0.5 * s
        else:
            log_joint = log_w - 0.5 * n_obs[:, None] * log_2pi_var - s / two_var
        row_ll = logsumexp(log_joint, axis=1)
        valid = slots < nr
        resp = jnp.where(valid[:, None], jnp.exp(log_joint - row_ll[:, None]), 0.0)
        # Rows past the chunk get zeros here; the next chunk overwrites them with its own.
        resp_buf = lax.dynamic_update_slice_in_dim(resp_buf, resp, rs, axis=0)
        ll_buf = lax.dynamic_update_slice_in_dim(ll_buf, jnp.where(valid, row_ll, 0.0), rs, 0)
        if not with_stats:
            return [resp_buf, ll_buf], None
        obs, sm, *sq_kl = acc
        rg = jnp.concatenate([resp, jnp.zeros((1, K), dtype)]).at[lr].get(mode="promise_in_bounds")
        obs = obs.at[c].add(rg, mode="promise_in_bounds")
        sm = sm.at[c].add(rg * v[:, None], mode="promise_in_bounds")
        if diag:
            sq_kl = [sq_kl[0].at[c].add(rg * (v * v)[:, None], mode="promise_in_bounds")]
        return [resp_buf, ll_buf, obs, sm, *sq_kl], None

    chunks = (data.local_row, data.col, data.val, data.row_start, data.n_rows)
    out, _ = lax.scan(body, carry, chunks)
    resp_buf, ll_buf, *stats = out
    ll = jnp.sum(ll_buf)
    if with_stats:
        n_k = jnp.sum(resp_buf, axis=0)
        sq_k = jnp.matmul(data.sq_norm, resp_buf, precision=_HI)
        n_obs_k = jnp.matmul(data.n_obs, resp_buf, precision=_HI)
        stats = [n_k, sq_k, n_obs_k, *stats]
    if data.dense is not None:
        resp_dense, ll_dense, stats = _dense_rows(params, data.dense, stats, with_stats)
        resp_buf = jnp.concatenate([resp_dense, resp_buf])
        ll = ll + ll_dense
    if with_stats and not diag:
        stats.append(None)
    return resp_buf, ll, tuple(stats)


def _dense_rows(params: MixtureParams, dense: DenseRows, stats: list, with_stats: bool):
    """E-step and statistics of the densely stored rows: the dense path's matrix products."""
    md = MaskedData(dense.x, dense.mask, dense.n_obs, dense.sq_norm)
    log_joint = component_log_joint(params, md)
    row_ll = logsumexp(log_joint, axis=1)
    resp = jnp.exp(log_joint - row_ll[:, None]) * dense.valid[:, None]
    ll = jnp.sum(row_ll * dense.valid)
    if not with_stats:
        return resp, ll, stats
    n_k, sq_k, n_obs_k, obs, sm, *sq_kl = stats
    st = em.suff_stats(resp, md, covariance_of(params.var))
    if sq_kl:
        sq_kl = [sq_kl[0] + st.sq_kl.T]
    return (
        resp,
        ll,
        [
            n_k + st.n_k,
            sq_k + st.sq_k,
            n_obs_k + st.n_obs_k,
            obs + st.obs_k.T,
            sm + st.sum_k.T,
            *sq_kl,
        ],
    )


def _empty_rows(params: MixtureParams) -> tuple[Array, Array]:
    """Responsibilities and log-likelihood of a row with no observed entry."""
    log_w = jnp.log(params.weights + WEIGHT_EPS)
    lse = logsumexp(log_w)
    return jnp.exp(log_w - lse), lse


def sparse_step(
    state: em.EMState,
    data: SparseData,
    counts: Array,
    tol: Array | float,
    min_var: Array | float,
    ll_shift: Array | float = 0.0,
    prior: Prior | None = None,
    prior_shift: Array | float = 0.0,
    *,
    rows_per_chunk: int,
    axis_name: str | None = None,
) -> em.EMState:
    """One EM iteration on the triples; the update after the E-step is the dense path's
    :func:`~jaxmix.inference.em.advance`.

    Args:
        state: Current state (``resp`` of shape ``(A_dense + A + R + 1, K)``; its last row holds
            the responsibilities of the rows without entries).
        data: One device's :class:`SparseData`.
        counts: ``(n_rows, n_empty)``: all rows of the matrix and those without entries.
        tol, min_var, ll_shift, prior, prior_shift: As in :func:`~jaxmix.inference.em.step`.
        rows_per_chunk: ``R`` (static).
        axis_name: Mesh axis to sum the statistics over (under ``shard_map``), or ``None``.

    Returns:
        The next state.
    """
    resp, ll, stats = sparse_e_step(state.params, data, rows_per_chunk, True, axis_name)
    if axis_name is not None:
        ll, stats = lax.psum((ll, stats), axis_name)
    n_k, sq_k, n_obs_k, obs, sm, sq_kl = stats
    n_total, n_empty = counts[0], counts[1]
    r_empty, ll_empty = _empty_rows(state.params)
    resp = resp.at[-1].set(r_empty)
    suff = em.SuffStats(
        n_k=n_k + n_empty * r_empty,
        obs_k=obs.T,
        sum_k=sm.T,
        sq_k=sq_k,
        n_obs_k=n_obs_k,
        n_rows=n_total,
        sq_kl=None if sq_kl is None else sq_kl.T,
    )
    ll = ll + n_empty * ll_empty
    return em.advance(state, resp, ll, suff, tol, min_var, ll_shift, prior, prior_shift)


_trace_count = 0  # incremented each time the batched sparse fit is traced (tests check recompiles)


@functools.partial(jax.jit, static_argnames=("max_iter", "progress", "rows_per_chunk", "mesh"))
def _fit_batched_sparse(
    params,
    data,
    counts,
    tol,
    min_var,
    ll_shift,
    prior=None,
    prior_shift=0.0,
    *,
    max_iter,
    rows_per_chunk,
    progress=False,
    mesh=None,
):
    global _trace_count
    _trace_count += 1

    def run_all(params, data, counts, tol, min_var, ll_shift, prior, prior_shift, axis_name):
        data = jax.tree.map(lambda a: a[0], data)  # drop the device axis (one block here)
        n_slots = data.n_obs.shape[0] + (0 if data.dense is None else data.dense.x.shape[0])

        def run(p):
            def one(state):
                return sparse_step(
                    state,
                    data,
                    counts,
                    tol,
                    min_var,
                    ll_shift,
                    prior,
                    prior_shift,
                    rows_per_chunk=rows_per_chunk,
                    axis_name=axis_name,
                )

            state = em.init_state(p, n_slots, data.val.dtype, max_iter)
            if axis_name is not None:
                state = state._replace(resp=_varying(state.resp, axis_name))
            return em.loop(one, state, max_iter, progress)

        return jax.vmap(run)(params)

    args = (params, data, counts, tol, min_var, ll_shift, prior, prior_shift)
    if mesh is None:
        return run_all(*args, None)
    axis = mesh.axis_names[0]
    rep = jax.sharding.PartitionSpec()
    row = jax.sharding.PartitionSpec(axis)
    out_specs = em.EMState(
        params=rep,
        resp=jax.sharding.PartitionSpec(None, axis),
        log_likelihood=rep,
        n_iter=rep,
        history=rep,
        converged=rep,
        objective=rep,
    )
    sharded = jax.shard_map(
        functools.partial(run_all, axis_name=axis),
        mesh=mesh,
        in_specs=(rep, jax.tree.map(lambda _: row, data), rep, rep, rep, rep, rep, rep),
        out_specs=out_specs,
    )
    return sharded(*args)


# ---------------------------------------------------------------------------- host side


def device_layout(
    S: SparseRatings,
    std: Standardizer,
    dtype: Any,
    chunk_size: int | None = None,
    mesh: Any = None,
    dense_row_density: float | None = DENSE_ROW_DENSITY,
) -> tuple[SparseData, SparseLayout]:
    """:func:`build_layout`, then its arrays moved to the device(s).

    The arrays are copied one at a time and each host copy is released as soon as its device
    copy exists, so the peak memory is the layout plus one of its arrays (not twice the layout).

    Args:
        S, std, dtype, chunk_size, dense_row_density: As in :func:`build_layout`.
        mesh: ``None`` (the default device) or a one-axis mesh: device ``p`` of the mesh gets
            block ``p`` of the rows (each process supplies only its own devices' blocks).

    Returns:
        ``(data, layout)``: the :class:`SparseData` of device arrays (leading device axis) and
        the layout without its host arrays.
    """
    n_devices = 1 if mesh is None else mesh.devices.size
    layout = build_layout(S, std, dtype, chunk_size, n_devices, dense_row_density)
    leaves, treedef = jax.tree.flatten(layout.data)
    layout = layout._replace(data=None)
    sharding = None
    if mesh is not None:
        axis = jax.sharding.PartitionSpec(mesh.axis_names[0])
        sharding = jax.sharding.NamedSharding(mesh, axis)
    for i in range(len(leaves)):
        host, leaves[i] = leaves[i], None
        if sharding is None:
            leaves[i] = jax.device_put(host)
        else:
            leaves[i] = jax.make_array_from_callback(
                host.shape, sharding, lambda idx, a=host: a[idx]
            )
        jax.block_until_ready(leaves[i])
        del host
    return jax.tree.unflatten(treedef, leaves), layout


def _gather(x: Any) -> np.ndarray:
    """A device array as NumPy; across processes (``jax.distributed``) the pieces are gathered."""
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        from jax.experimental import multihost_utils

        return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(x)


def _full_resp(resp: np.ndarray, layout: SparseLayout) -> np.ndarray:
    """``(..., P * (A + R + 1), K)`` device responsibilities to ``(..., n, K)`` in row order."""
    P, A = layout.active_rows.shape
    A_dense = layout.dense_rows.shape[1]
    lead, K = resp.shape[:-2], resp.shape[-1]
    blocks = resp.reshape(*lead, P, -1, K)
    out = np.empty((*lead, layout.shape[0], K), resp.dtype)
    out[...] = blocks[..., 0, -1:, :]  # rows without entries (same on every device)
    for p in range(P):
        for rows, first in ((layout.dense_rows[p], 0), (layout.active_rows[p], A_dense)):
            keep = rows >= 0
            out[..., rows[keep], :] = blocks[..., p, first : first + rows.size, :][..., keep, :]
    return out


def _check_mesh(mesh: Any) -> Any:
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
    return mesh


def fit_sparse_em(
    S: SparseRatings,
    K: int,
    *,
    n_init: int = 1,
    seed: int = 0,
    init: Any = "kmeans++",
    tol: float = 1e-6,
    max_iter: int = 1000,
    min_var: float = 0.25,
    progress: bool = False,
    prior: Prior | None = None,
    covariance: str = "spherical",
    chunk_size: int | None = None,
    mesh: Any = None,
    dense_row_density: float | None = DENSE_ROW_DENSITY,
) -> EMResult:
    """:func:`jaxmix.fit_em` on a :class:`~jaxmix.SparseRatings` (see there for the arguments).

    Args:
        S: The matrix.
        K, n_init, seed, init, tol, max_iter, min_var, progress, prior, covariance: As in
            :func:`jaxmix.fit_em`.
        chunk_size: Entries per chunk of the scan (default :data:`DEFAULT_CHUNK_SIZE`).
        mesh: ``None`` (one device), a one-axis ``jax.sharding.Mesh`` or a list of devices:
            the rows are split over its devices.
        dense_row_density: Rows with at least this share of observed entries are stored
            densely and processed by the dense path's matrix products, in ``[0, 1]`` (``0``:
            every row with an entry, ``n x d`` memory); ``None``: every row goes through the
            triples.

    Returns:
        An :class:`~jaxmix.EMResult` (``resp`` of shape ``(n, K)``).

    Example:
        >>> import jaxmix
        >>> from jaxmix.inference.sparse_em import fit_sparse_em
        >>> S = jaxmix.simulate_sparse_ratings(500, 50, 5_000, K=2, seed=0).S
        >>> res = fit_sparse_em(S, 2, n_init=2, chunk_size=1024, dense_row_density=None)
        >>> res.resp.shape, res.mu.shape
        ((500, 2), (2, 50))
    """
    if not isinstance(S, SparseRatings):
        raise TypeError(f"expected a SparseRatings; got {type(S).__name__}")
    if dense_row_density is not None:
        dense_row_density = check_nonneg_float(dense_row_density, "dense_row_density")
        if dense_row_density > 1.0:
            raise ValueError(f"dense_row_density must lie in [0, 1]; got {dense_row_density}")
    if S.nnz == 0:
        raise ValueError("every entry of X is missing; there is nothing to fit")
    n, d = S.shape
    K = check_n_components(K, n)
    n_init = check_positive_int(n_init, "n_init")
    max_iter = check_positive_int(max_iter, "max_iter")
    seed = em._check_seed(seed)
    tol = check_nonneg_float(tol, "tol")
    min_var = check_nonneg_float(min_var, "min_var")
    covariance = em._check_covariance(covariance)
    if chunk_size is not None:
        chunk_size = check_positive_int(chunk_size, "chunk_size")
    mesh = _check_mesh(mesh)
    if prior is not None:
        prior = resolve_prior_sparse(prior, S)
        if prior.alpha < 1.0:
            raise ValueError(
                f"MAP-EM needs Prior.alpha >= 1 (for alpha < 1 the posterior density is unbounded "
                f"at an emptied component); got alpha = {float(prior.alpha)}"
            )
    start = init_params_sparse(
        init, S, K, n_init=n_init, seed=seed, min_var=min_var, covariance=covariance
    )
    std = S.standardizer()
    dtype = float_dtype()
    data, layout = device_layout(S, std, dtype, chunk_size, mesh, dense_row_density)
    start_internal = std.to_internal(start)
    shift = -float(S.nnz) * float(np.log(std.scale))
    prior_internal, prior_shift = None, 0.0
    if prior is not None:
        internal = standardize_prior(prior, std.offset, std.scale)
        prior_internal = Prior(*(jnp.asarray(p, dtype) for p in internal))
        prior_shift = jnp.asarray(log_prior_shift(K, d, covariance, std.scale), dtype)

    with em.progress_bar(progress, f"EM K={K} x{start.mu.shape[0]}"):
        final = _fit_batched_sparse(
            MixtureParams(*(jnp.asarray(p, dtype) for p in start_internal)),
            data,
            jnp.asarray([n, layout.n_empty], dtype),
            jnp.asarray(tol, dtype),
            jnp.asarray(min_var / std.scale**2, dtype),
            jnp.asarray(shift, dtype),
            prior_internal,
            prior_shift,
            max_iter=max_iter,
            rows_per_chunk=layout.rows_per_chunk,
            progress=progress,
            mesh=mesh,
        )
        resp = _full_resp(_gather(final.resp), layout)
        final = jax.device_get(final._replace(resp=jnp.zeros(())))._replace(resp=resp)
    return em._to_result(final, std, min_var, covariance, prior)


@functools.partial(jax.jit, static_argnames=("rows_per_chunk",))
def _e_step_jit(params, data, rows_per_chunk):
    data = jax.tree.map(lambda a: a[0], data)
    resp, ll, _ = sparse_e_step(params, data, rows_per_chunk, with_stats=False)
    r_empty, ll_empty = _empty_rows(params)
    return resp.at[-1].set(r_empty), ll, ll_empty


def sparse_responsibilities(
    S: SparseRatings,
    params: MixtureParams,
    *,
    standardize: bool = True,
    chunk_size: int | None = None,
) -> tuple[np.ndarray, float]:
    """E-step of given parameters (data units) on a sparse matrix.

    Args:
        S: The matrix (rows without entries get the weights).
        params: Mixture parameters in data units (float64 NumPy).
        standardize: Run in standardised units (as the fit does); ``False`` evaluates in data
            units directly (what :func:`jaxmix.log_objective` does).
        chunk_size: Entries per chunk.

    Returns:
        ``(resp, log_likelihood)``: float64 ``(n, K)`` and the log-likelihood in data units.
    """
    n, d = S.shape
    if standardize and S.nnz:
        std = S.standardizer()
    else:
        std = Standardizer(np.zeros(d), 1.0)
    dtype = float_dtype()
    if S.nnz == 0:
        r, lse = (
            np.asarray(x, np.float64)
            for x in _empty_rows(MixtureParams(*(jnp.asarray(p, dtype) for p in params)))
        )
        return np.broadcast_to(r, (n, r.shape[0])).copy(), float(n * lse)
    data, layout = device_layout(S, std, dtype, chunk_size)
    internal = std.to_internal(params)
    resp, ll, ll_empty = _e_step_jit(
        MixtureParams(*(jnp.asarray(p, dtype) for p in internal)),
        data,
        rows_per_chunk=layout.rows_per_chunk,
    )
    ll = float(ll) + layout.n_empty * float(ll_empty) - S.nnz * float(np.log(std.scale))
    return _full_resp(np.asarray(resp, np.float64), layout), ll


# ---------------------------------------------------------------------------- initialisation


def _row_offsets(S: SparseRatings) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(S.row_counts())])


def _row_of(S: SparseRatings, offsets: np.ndarray, i: int) -> tuple[np.ndarray, np.ndarray]:
    a, b = int(offsets[i]), int(offsets[i + 1])
    return S.cols[a:b], S.values[a:b].astype(np.float64)


def random_rows_sparse(S: SparseRatings, K: int, seed: int) -> MixtureParams:
    """:func:`jaxmix.inference.init.random_rows` on the triples (the same rows drawn, the
    variance in closed form with :func:`~jaxmix.inference.init.random_rows_variance`)."""
    n, d = S.shape
    idx = np.random.RandomState(seed).choice(n, K, replace=False)
    offsets = _row_offsets(S)
    mu = np.zeros((K, d))
    for k, i in enumerate(idx):
        cols, vals = _row_of(S, offsets, int(i))
        mu[k, cols] = vals
    _, colsum = S.column_sums()
    total_sq = 0.0
    for s in _spans(S.nnz):
        v = S.values[s].astype(np.float64)
        total_sq += float(v @ v)
    return MixtureParams(mu, random_rows_variance(mu, total_sq, colsum, n), np.full(K, 1.0 / K))


def _row_mean_sq_dist(S: SparseRatings, centre: np.ndarray, counts: np.ndarray) -> np.ndarray:
    n = S.shape[0]
    total = np.zeros(n)
    for s in _spans(S.nnz):
        diff = S.values[s].astype(np.float64) - centre[S.cols[s]]
        total += np.bincount(S.rows[s], weights=diff * diff, minlength=n)
    return np.divide(total, counts, out=np.zeros(n), where=counts > 0)


def kmeans_plus_plus_sparse(
    S: SparseRatings, K: int, seed: int, min_var: float = 0.0
) -> MixtureParams:
    """:func:`jaxmix.inference.init.kmeans_plus_plus` on the triples (the same draws and the
    same numbers up to the order of sums)."""
    n, d = S.shape
    col_n, col_s = S.column_sums()
    col_mean = np.divide(col_s, col_n, out=np.zeros(d), where=col_n > 0)
    offsets = _row_offsets(S)
    counts = np.diff(offsets)

    def centre_of(i: int) -> np.ndarray:
        c = col_mean.copy()
        cols, vals = _row_of(S, offsets, i)
        c[cols] = vals
        return c

    return seed_kmeans_plus_plus(
        n, K, seed, centre_of, lambda c: _row_mean_sq_dist(S, c, counts), counts, min_var
    )


def init_params_sparse(
    init: Any,
    S: SparseRatings,
    K: int,
    *,
    n_init: int,
    seed: int,
    min_var: float = 0.0,
    covariance: str = "spherical",
) -> MixtureParams:
    """:func:`jaxmix.inference.init.init_params` for a sparse matrix (same starting points)."""
    d = S.shape[1]
    if isinstance(init, str):
        if init == "random_rows":
            sets = [random_rows_sparse(S, K, seed + r) for r in range(n_init)]
        elif init == "kmeans++":
            sets = [kmeans_plus_plus_sparse(S, K, seed + r, min_var) for r in range(n_init)]
        else:
            raise ValueError(
                f"init must be one of {INIT_METHODS} or explicit parameters; got {init!r}"
            )
        params = MixtureParams(*(np.stack(p) for p in zip(*sets, strict=True)))
        if covariance == "diag":
            params = params._replace(var=np.repeat(params.var[:, :, None], d, axis=2))
        return params
    params = check_params(_explicit(init), K, d, covariance)
    R = params.mu.shape[0]
    if n_init not in (1, R):
        raise ValueError(f"n_init={n_init} does not match the {R} explicit starting point(s) given")
    return params


def resolve_prior_sparse(prior: Prior, S: SparseRatings) -> Prior:
    """:func:`jaxmix.priors.resolve_prior` computed from the triples (same defaults)."""
    if not isinstance(prior, Prior):
        raise TypeError(f"prior must be a jaxmix.Prior or None; got {type(prior).__name__}")
    d = S.shape[1]
    counts, sums = S.column_sums()
    glob = sums.sum() / max(S.nnz, 1)
    col_mean = np.divide(sums, counts, out=np.full(d, glob), where=counts > 0)
    sq = 0.0
    for s in _spans(S.nnz):
        r = S.values[s].astype(np.float64) - col_mean[S.cols[s]]
        sq += float(r @ r)
    pooled = sq / max(S.nnz, 1)
    if not np.isfinite(pooled) or pooled <= 0.0:
        pooled = float(np.max(np.abs(col_mean))) ** 2 or 1.0
    var_shape = _scalar(prior.var_shape, "var_shape")
    mean = col_mean if prior.mean is None else prior.mean
    mean_sd = 2.0 * np.sqrt(pooled) if prior.mean_sd is None else prior.mean_sd
    var_scale = 0.5 * (var_shape + 1.0) * pooled if prior.var_scale is None else prior.var_scale
    return Prior(
        alpha=_scalar(prior.alpha, "alpha"),
        mean=_per_column(mean, "mean", d, positive=False),
        mean_sd=_per_column(mean_sd, "mean_sd", d, positive=True),
        var_shape=var_shape,
        var_scale=_scalar(var_scale, "var_scale"),
    )

"""Starting parameters for EM and K-means, one set per restart.

Both named methods read the data through its layout (:mod:`jaxmix.data`), so they give the same
start for a dense matrix and for its triples. Restart ``r`` of a call with ``seed=s`` uses seed
``s + r``, so a batched call with ``n_init=R`` starts restart ``r`` exactly where a single call
with ``seed=s + r`` starts.

``"kmeans++"`` (the default of :func:`jaxmix.fit_em`) runs on the device, every restart at once
(one compiled program, ``vmap`` over the restarts): greedy k-means++ seeding, a few Lloyd
(k-means) steps, then a few trial swaps of one centre for a D^2-sampled row, each followed by
Lloyd steps and kept when it lowers the k-means potential, with distances over each row's
observed entries (:func:`kmeans_plus_plus_batched`).
``"random_rows"`` is the reference initialisation (host-side NumPy, reproducing the course's
numbers).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array, lax

from jaxmix import _tracing
from jaxmix._precision import highest
from jaxmix.data import Standardizer
from jaxmix.data.base import SMALL_ENTRIES, size_class
from jaxmix.data.dense import PAD_MIN_ENTRIES, float_dtype, padded_rows
from jaxmix.models.families import as_params, get_family
from jaxmix.params import MixtureParams

__all__ = [
    "INIT_METHODS",
    "LLOYD_MOVED",
    "LLOYD_STEPS",
    "SEED_MAX_ENTRIES",
    "SWAP_GAIN",
    "SWAP_LLOYD_STEPS",
    "SeedArrays",
    "check_params",
    "greedy_trials",
    "init_params",
    "kmeans_plus_plus",
    "kmeans_plus_plus_batched",
    "random_rows",
    "random_rows_variance",
    "seed_arrays",
    "seed_rows",
    "swap_attempts",
]

INIT_METHODS = ("kmeans++", "random_rows")

#: Most Lloyd (k-means) steps after the greedy seeding; they stop earlier once at most a share
#: :data:`LLOYD_MOVED` of the rows changes its nearest centre. One step costs about what the
#: seeding of one centre with its candidates costs (on triples a gather and a scatter of ``K``
#: values per observed entry). More steps do not find better optima (measured: 0, 5 and 300
#: steps reach the same EM optima on the benchmark's mixtures); the swaps do.
LLOYD_STEPS = 5
#: Share of rows whose move still counts as progress of the Lloyd steps.
LLOYD_MOVED = 1e-3
#: Most Lloyd steps after each trial swap (same stopping rule as :data:`LLOYD_STEPS`).
SWAP_LLOYD_STEPS = 2
#: A trial swap is kept when it lowers the k-means potential by more than this share.
SWAP_GAIN = 1e-4

#: The seeding reads at most about this many entries (entry slots of a dense matrix, observed
#: entries of triples): a larger matrix is seeded on a fixed random subset of its rows
#: (:func:`seed_rows`). Every greedy step, Lloyd step and trial swap is a pass over what the
#: seeding reads, about ``6 K`` passes in all, and a start needs the clusters' locations, not
#: every row: at 10 M ratings and ``K = 12`` the whole matrix cost 4.9 s of seeding on 2 CPU
#: cores, the subset about 1 s. EM then runs on every entry.
SEED_MAX_ENTRIES = 1 << 21

#: Entries per chunk when the triples' distances are summed (bounds the ``chunk x m`` gathers).
_CHUNK = 1 << 15

_HI = lax.Precision.HIGHEST


def greedy_trials(K: int) -> int:
    """Candidates drawn per greedy k-means++ step: ``2 + floor(log K)`` (Arthur and
    Vassilvitskii's suggestion, also scikit-learn's)."""
    return 2 + int(math.log(K))


def swap_attempts(K: int) -> int:
    """Trial swaps after the Lloyd steps: ``K`` (none for ``K = 1``).

    Lloyd steps cannot move a centre from a cluster that holds two of them to two clusters
    that share one (a local minimum of the k-means potential); the seeding leaves such pairs
    more often as ``K`` grows, and each swap can mend one.
    """
    return int(K) if K > 1 else 0


def random_rows_variance(
    mu: np.ndarray, total_sq: float, col_sums: np.ndarray, n: int
) -> np.ndarray:
    """``var_k = mean over all n d entries of (X0 - mu_k)^2``, in closed form.

    With ``X0`` the matrix with missing entries as 0:
    ``(sum X0^2 - 2 sum_l colsum_l mu_kl + n |mu_k|^2) / (n d)``.

    Args:
        mu: ``(K, d)`` means.
        total_sq: ``sum X0^2``.
        col_sums: ``(d,)`` column sums of ``X0``.
        n: Number of rows.

    Returns:
        ``(K,)`` variances.
    """
    d = mu.shape[1]
    return (total_sq - 2.0 * mu @ col_sums + n * np.sum(mu * mu, axis=1)) / (float(n) * d)


def random_rows(data: Any, K: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The reference initialisation.

    ``numpy.random.RandomState(seed).choice(n, K, replace=False)`` picks K rows as the means
    (their missing entries taken as 0); ``var_k`` is the mean over all ``n * d`` entries of
    ``(X0 - mu_k)^2`` with ``X0`` the matrix with missing entries as 0 (see
    :func:`random_rows_variance`); the weights are uniform.

    Args:
        data: A layout (:func:`jaxmix.data.as_data`).
        K: Number of components.
        seed: Seed of the legacy NumPy generator.

    Returns:
        ``(mu (K, d), var (K,), weights (K,))``, float64.
    """
    n, d = data.shape
    idx = np.random.RandomState(seed).choice(n, K, replace=False)
    mu = np.zeros((K, d))
    for k, i in enumerate(idx):
        cols, vals = data.row(int(i))
        mu[k, cols] = vals
    summary = data.summary()
    var = random_rows_variance(mu, summary.sq_total, summary.total, n)
    return mu, var, np.full(K, 1.0 / K)


# ------------------------------------------------------------------ k-means++ on the device


class SeedArrays(NamedTuple):
    """The standardised matrix as the seeding reads it (a JAX pytree).

    Dense input keeps ``x`` and ``mask``; triples keep ``rows``, ``cols`` and ``vals`` (sorted
    by row, padded to whole chunks of ``(n_chunks, chunk)`` with entries of the spare row ``n``).
    The unused fields are ``None``. In standardised units a missing entry's column mean is 0.

    Attributes:
        n_obs: ``|C_u|`` of every row, ``(n,)``.
        sq_norm: ``|x_{u,C_u}|^2`` of every row, ``(n,)``.
        x: Values, 0 where missing, ``(n, d)`` (dense) or ``None``.
        mask: 1.0 where observed, ``(n, d)`` (dense) or ``None``.
        rows: Row of every entry, ``int32`` ``(n_chunks, chunk)`` (triples) or ``None``.
        cols: Column of every entry, ``int32`` ``(n_chunks, chunk)`` (triples) or ``None``.
        vals: Value of every entry, ``(n_chunks, chunk)`` (triples) or ``None``.
        start: Position of every row's first entry in the flattened triples, ``int32`` ``(n,)``.
        n_rows: The number of real rows (a scalar): the rows are padded to a size class
            (:func:`~jaxmix.data.base.size_class`) with rows without entries, never drawn, so
            matrices of nearby sizes share the compiled seeding; ``None``: no padding.
    """

    n_obs: Array
    sq_norm: Array
    x: Array | None = None
    mask: Array | None = None
    rows: Array | None = None
    cols: Array | None = None
    vals: Array | None = None
    start: Array | None = None
    n_rows: Array | None = None


def seed_rows(data: Any, max_entries: int | None = None) -> np.ndarray | None:
    """The rows the seeding reads: ``None`` (every row) when the matrix has at most
    ``max_entries`` entries (default :data:`SEED_MAX_ENTRIES`; entry slots of a dense matrix,
    observed entries of triples), else a random subset of rows (sorted, ``int64``) holding about
    that many, drawn by ``numpy.random.default_rng(0)`` whatever the call's seed, so that the
    subset and its device copy are built once per matrix and the restarts differ by their own
    draws within it.
    """
    limit = SEED_MAX_ENTRIES if max_entries is None else int(max_entries)
    n, d = data.shape
    counts = np.full(n, d, np.int64) if data.kind == "dense" else data.row_counts()
    counts = np.asarray(counts, np.int64)
    if int(counts.sum()) <= limit:
        return None
    order = np.random.default_rng(0).permutation(n)
    taken = int(np.searchsorted(np.cumsum(counts[order]), limit, side="right"))
    return np.sort(order[: max(taken, 1)])


def seed_arrays(data: Any, std: Standardizer, dtype: Any = None) -> tuple[SeedArrays, int]:
    """The layout ``data`` standardised by ``std`` as :class:`SeedArrays`, and the longest row's
    number of entries (static for the triples' row access; rounded up to a size class).

    Only the rows of :func:`seed_rows` are kept (renumbered in their order). The rows (and the
    triples' chunks) are padded to size classes; a matrix given as a
    :class:`~jaxmix.SparseRatings` keeps its arrays for later calls (the layout's ``memo``).
    """
    dtype = np.dtype(float_dtype() if dtype is None else dtype)
    key = (
        std.scale,
        std.offset.tobytes(),
        dtype.name,
        jax.config.jax_default_device,
        SEED_MAX_ENTRIES,
    )
    return data.memo("seed", key, lambda: _seed_arrays(data, std, dtype, seed_rows(data)))


def _seed_arrays(
    data: Any, std: Standardizer, dtype: Any, subset: np.ndarray | None
) -> tuple[SeedArrays, int]:
    n, d = data.shape
    counts = np.asarray(data.row_counts(), np.int64)
    if data.kind == "dense":
        values, observed = data.values, data.observed
        if subset is not None:
            values, observed, counts, n = (
                values[subset],
                observed[subset],
                counts[subset],
                subset.size,
            )
        rows = padded_rows(n, d)
        x = np.zeros((rows, d))
        x[:n] = np.where(observed, (values - std.offset) / std.scale, 0.0)
        mask = np.zeros((rows, d), bool)
        mask[:n] = observed
        arrays = SeedArrays(
            n_obs=jnp.asarray(mask.sum(axis=1), dtype),
            sq_norm=jnp.asarray((x * x).sum(axis=1), dtype),
            x=jnp.asarray(x, dtype),
            mask=jnp.asarray(mask, dtype),
            n_rows=jnp.asarray(n, jnp.int32),
        )
        return arrays, d
    rows, cols, values = data.entries()
    if subset is not None:
        new_row = np.full(n, -1, np.int64)
        new_row[subset] = np.arange(subset.size)
        keep = new_row[rows] >= 0
        rows, cols, values = new_row[rows[keep]], cols[keep], values[keep]
        counts, n = counts[subset], subset.size
    z = (np.asarray(values, np.float64) - std.offset[cols]) / std.scale
    nnz = z.size
    chunk = min(_CHUNK, size_class(max(PAD_MIN_ENTRIES, nnz)))
    n_chunks = -(-max(nnz, 1) // chunk)
    n_pad = n
    if size_class(n_chunks, unit=chunk) * chunk <= SMALL_ENTRIES:  # small: share one program
        n_chunks = size_class(n_chunks, unit=chunk)
        n_pad = size_class(max(n, PAD_MIN_ENTRIES // 16))
    size = n_chunks * chunk  # large: no padding chunk (each would cost a pass in every step)

    def padded(a: np.ndarray, fill: Any, kind: Any, length: int = size) -> Array:
        out = np.full(length, fill, kind)
        out[: a.size] = a
        return out

    start = np.concatenate([[0], np.cumsum(counts)[:-1]])
    arrays = SeedArrays(
        n_obs=jnp.asarray(padded(counts, 0, np.int64, n_pad), dtype),
        sq_norm=jnp.asarray(
            padded(np.bincount(rows, weights=z * z, minlength=n), 0.0, np.float64, n_pad), dtype
        ),
        rows=jnp.asarray(padded(rows, n_pad, np.int32).reshape(-1, chunk)),
        cols=jnp.asarray(padded(cols, 0, np.int32).reshape(-1, chunk)),
        vals=jnp.asarray(padded(z, 0.0, np.float64).reshape(-1, chunk), dtype),
        start=jnp.asarray(padded(start, nnz, np.int64, n_pad), jnp.int32),
        n_rows=jnp.asarray(n, jnp.int32),
    )
    return arrays, min(size_class(max(int(counts.max()), 64)), d)


def _sq_dist(data: SeedArrays, centres: Array) -> Array:
    """Squared distance of every row to every centre over the row's observed entries, ``(n, m)``
    for centres ``(m, d)``."""
    if data.x is not None:
        cross = jnp.matmul(data.x, centres.T, precision=_HI)
        sq = jnp.matmul(data.mask, (centres * centres).T, precision=_HI)
        return jnp.maximum(data.sq_norm[:, None] - 2.0 * cross + sq, 0.0)
    n = data.n_obs.shape[0]
    table = centres.T  # (d, m)

    def body(acc, chunk):
        r, c, v = chunk
        u = v[:, None] - table.at[c].get(mode="promise_in_bounds")
        return acc.at[r].add(u * u, mode="promise_in_bounds"), None

    acc = jnp.zeros((n + 1, centres.shape[0]), centres.dtype)
    acc, _ = lax.scan(body, acc, (data.rows, data.cols, data.vals))
    return acc[:n]


def _row_centre(data: SeedArrays, i: Array, max_row: int, d: int) -> Array:
    """Row ``i`` as a centre ``(d,)``: its observed values, the column means (0) elsewhere."""
    if data.x is not None:
        return data.x[i]
    cols = data.cols.reshape(-1)
    vals = data.vals.reshape(-1)
    offs = jnp.arange(max_row)
    valid = offs < data.n_obs[i]
    pos = jnp.where(valid, data.start[i] + offs, 0)
    return (
        jnp.zeros((d,), vals.dtype)
        .at[jnp.where(valid, cols[pos], d)]
        .add(jnp.where(valid, vals[pos], 0.0), mode="drop")
    )


def _cluster_means(data: SeedArrays, labels: Array, old: Array) -> Array:
    """Every cluster's mean of its rows' observed values, column by column, ``(K, d)``; a
    column without an observed value in the cluster keeps the ``old`` centre's value."""
    K, d = old.shape
    if data.x is not None:
        onehot = jax.nn.one_hot(labels, K, dtype=data.x.dtype)
        sums = jnp.matmul(onehot.T, data.x, precision=_HI)
        counts = jnp.matmul(onehot.T, data.mask, precision=_HI)
    else:
        rows, cols = data.rows.reshape(-1), data.cols.reshape(-1)
        lab = jnp.concatenate([labels, jnp.full((1,), K, labels.dtype)])[rows]
        both = jnp.stack([data.vals.reshape(-1), jnp.ones_like(data.vals.reshape(-1))], axis=1)
        acc = jnp.zeros(((K + 1) * d, 2), old.dtype)  # cluster K: the padding entries
        acc = acc.at[lab * d + cols].add(both, mode="promise_in_bounds")[: K * d]
        sums, counts = acc[:, 0].reshape(K, d), acc[:, 1].reshape(K, d)
    has = counts > 0
    return jnp.where(has, sums / jnp.where(has, counts, 1.0), old)


class _Seeding(NamedTuple):
    """The static options of one seeding program."""

    K: int
    trials: int
    lloyd_steps: int
    max_row: int
    d: int
    swaps: int


class _Sizes(NamedTuple):
    """The traced numbers of one seeding program (a new value does not recompile).

    Attributes:
        min_var: The variance floor (standardised units).
        moved_limit: The Lloyd steps stop once at most this many rows move
            (:data:`LLOYD_MOVED` of the real rows).
        n_centres: The components asked for, at most ``_Seeding.K``.
        n_trials: The candidates of a greedy step or a swap, at most ``_Seeding.trials``.
        n_swaps: The trial swaps asked for, at most ``_Seeding.swaps``.
    """

    min_var: Array
    moved_limit: Array
    n_centres: Array
    n_trials: Array
    n_swaps: Array


def _nearest(data: SeedArrays, centres: Array, in_use: Array) -> tuple[Array, Array]:
    """Every row's nearest centre among those ``in_use`` ``(n,)`` and the squared distances
    ``(n, K)`` (those of the unused centres as computed: callers mask them)."""
    sq = _sq_dist(data, centres)
    return jnp.argmin(jnp.where(in_use, sq, jnp.inf), axis=1).astype(jnp.int32), sq


def _lloyd(
    data: SeedArrays,
    centres: Array,
    steps: int,
    moved_limit: Array,
    in_use: Array,
    sq: Array | None = None,
) -> tuple[Array, Array]:
    """Up to ``steps`` Lloyd steps from ``centres`` ``(K, d)`` (whose squared distances ``sq``
    ``(n, K)`` may be given), stopping once at most ``moved_limit`` rows change their nearest
    centre; only the centres ``in_use`` take rows.

    Returns the centres and every row's squared distances to them, ``(n, K)``.
    """

    def cond(carry):
        *_, step, changed = carry
        return changed & (step < steps)

    def body(carry):
        centres, labels, _, step, _ = carry
        centres = _cluster_means(data, labels, centres)
        new, sq = _nearest(data, centres, in_use)
        moved = jnp.sum(new != labels)
        return centres, new, sq, step + 1, moved > moved_limit

    if sq is None:
        sq = _sq_dist(data, centres)
    labels = jnp.argmin(jnp.where(in_use, sq, jnp.inf), axis=1).astype(jnp.int32)
    carry = (centres, labels, sq, jnp.asarray(0), jnp.asarray(steps > 0))
    centres, _, sq, _, _ = lax.while_loop(cond, body, carry)
    return centres, sq


def _d2_sample(weights: Array, uniforms: Array) -> Array:
    """Rows drawn with probability proportional to ``weights`` ``(n,)``, one per uniform in
    ``[0, 1)``; when every weight is 0, uniformly among all rows."""
    n = weights.shape[0]
    w = jnp.where(jnp.sum(weights) > 0, weights, jnp.ones_like(weights))
    cum = jnp.cumsum(w)
    last = n - 1 - jnp.argmax(w[::-1] > 0)  # the last row that can be drawn
    cand = jnp.searchsorted(cum, uniforms * cum[-1], side="right")
    return jnp.minimum(cand, last).astype(jnp.int32)


def _seed_one(
    first: Array,
    draws: Array,
    swap_draws: Array,
    data: SeedArrays,
    sizes: _Sizes,
    opts: _Seeding,
) -> tuple:
    """Greedy k-means++, Lloyd steps and trial swaps for one restart (standardised units), from
    its first row ``first``, the uniforms of its greedy steps ``(K, trials)`` and of its swaps
    ``(swaps, trials)`` in ``[0, 1)``.

    ``opts.K``, ``opts.trials`` and ``opts.swaps`` may exceed the ``sizes.n_centres``
    components, ``sizes.n_trials`` candidates and ``sizes.n_swaps`` swaps asked for (padding, so
    that several K share one compiled program): the centres past ``n_centres`` are never chosen
    or swapped, no row is assigned to them and their weight is 0; the candidates past
    ``n_trials`` are never taken; the swaps past ``n_swaps`` do not run.

    Returns ``(centres (K, d), var (K,), weights (K,), chosen (K,))`` with ``chosen`` the rows
    the greedy seeding picked.
    """
    K = opts.K
    min_var, moved_limit, n_centres, n_trials, n_swaps = sizes
    in_use = jnp.arange(K) < n_centres
    candidate = jnp.arange(opts.trials) < n_trials
    n_obs = data.n_obs
    n = n_obs.shape[0]  # padded: the rows past n_rows have no entry and are never drawn
    n_real = n if data.n_rows is None else data.n_rows
    real = jnp.arange(n) < n_real
    dtype = data.sq_norm.dtype
    per_entry = jnp.where(n_obs > 0, 1.0 / jnp.where(n_obs > 0, n_obs, 1.0), 0.0)

    def centre(i):
        return _row_centre(data, i, opts.max_row, opts.d)

    def dist(centres):  # mean squared difference per observed entry (0 for an empty row)
        return _sq_dist(data, centres) * per_entry[:, None]

    c0 = centre(first)
    centres = jnp.zeros((K, opts.d), dtype).at[0].set(c0)
    chosen = jnp.zeros((K,), jnp.int32).at[0].set(first)
    taken = jnp.zeros((n,), bool).at[first].set(True)
    best = dist(c0[None])[:, 0]

    def greedy(k, carry):
        centres, chosen, taken, best = carry
        # D^2 sampling; when every row sits on a chosen centre, uniformly among the others
        w = jnp.where(jnp.sum(best) > 0, best, jnp.where(taken | ~real, 0.0, 1.0).astype(dtype))
        cand = _d2_sample(w, draws[k])
        cands = jax.vmap(centre)(cand)  # (trials, d)
        reduced = jnp.minimum(best[:, None], dist(cands))  # (n, trials)
        potential = jnp.where(candidate, jnp.sum(reduced, axis=0), jnp.inf)
        b = jnp.argmin(potential)  # the candidate that most lowers the potential
        return (
            centres.at[k].set(cands[b]),
            chosen.at[k].set(cand[b]),
            taken.at[cand[b]].set(True),
            reduced[:, b],
        )

    centres, chosen, taken, best = lax.fori_loop(
        1, n_centres, greedy, (centres, chosen, taken, best)
    )
    centres, sq = _lloyd(data, centres, opts.lloyd_steps, moved_limit, in_use)

    def swap(z, carry):
        # The potential is the Lloyd steps' objective: the sum over the observed entries of the
        # squared residuals to the nearest centre. Candidates are D^2-sampled rows; the pair
        # (centre out, candidate in) that most lowers the potential is tried with Lloyd steps
        # and kept if the potential drops. Unused centres count as infinitely far (finite
        # stand-in, so that a product with a zero one-hot stays 0).
        centres, sq = carry
        far = jnp.asarray(jnp.finfo(dtype).max / 8, dtype)
        used_sq = jnp.where(in_use, sq, far)
        labels = jnp.argmin(used_sq, axis=1)
        onehot = jax.nn.one_hot(labels, K, dtype=dtype)
        nearest = jnp.min(used_sq, axis=1)
        second = jnp.min(jnp.where(onehot > 0, far, used_sq), axis=1)
        cand = _d2_sample(nearest * per_entry, swap_draws[z])
        cands = jax.vmap(centre)(cand)  # (trials, d)
        to_cand = _sq_dist(data, cands)  # (n, trials)
        keep = jnp.minimum(to_cand, nearest[:, None])  # every centre stays, the candidate joins
        lose = jnp.minimum(to_cand, second[:, None]) - keep  # ... if the row's centre leaves
        after = jnp.sum(keep, axis=0)[None, :] + jnp.matmul(onehot.T, lose, precision=_HI)
        after = jnp.where(in_use[:, None] & candidate[None, :], after, jnp.inf)
        out, b = jnp.unravel_index(jnp.argmin(after), after.shape)  # (K, trials)
        trial, trial_sq = _lloyd(
            data,
            centres.at[out].set(cands[b]),
            SWAP_LLOYD_STEPS,
            moved_limit,
            in_use,
            sq.at[:, out].set(to_cand[:, b]),
        )
        before = jnp.sum(nearest)
        after_trial = jnp.sum(jnp.min(jnp.where(in_use, trial_sq, far), axis=1))
        better = after_trial < (1.0 - SWAP_GAIN) * before
        return jnp.where(better, trial, centres), jnp.where(better, trial_sq, sq)

    if K > 1 and opts.swaps > 0:
        centres, sq = lax.fori_loop(0, n_swaps, swap, (centres, sq))
    labels = jnp.argmin(jnp.where(in_use, sq, jnp.inf), axis=1)
    onehot = jax.nn.one_hot(labels, K, dtype=dtype) * (n_obs > 0)[:, None]
    sse = jnp.sum(onehot * sq, axis=0)
    members = jnp.sum(onehot, axis=0)
    m_obs = jnp.sum(onehot * n_obs[:, None], axis=0)
    pooled = jnp.sum(sse) / jnp.maximum(jnp.sum(n_obs), 1.0)
    ok = (members >= 2) & (m_obs > 0)
    var = jnp.where(ok, sse / jnp.where(ok, m_obs, 1.0), pooled)
    var = jnp.maximum(var, min_var)
    var = jnp.where(var > 0, var, 1.0)
    share = jnp.where(in_use, jnp.maximum(members, 1.0), 0.0)
    return centres, var, share / jnp.sum(share), chosen


@functools.partial(jax.jit, static_argnames=("opts",))
@highest
def _seed_batched(
    first: Array,
    draws: Array,
    swap_draws: Array,
    data: SeedArrays,
    sizes: _Sizes,
    opts: _Seeding,
) -> tuple:
    _tracing.note("seed")
    run = jax.vmap(_seed_one, in_axes=(0, 0, 0, None, None, None))
    return run(first, draws, swap_draws, data, sizes, opts)


def _seed_components(K: int, trials: int, swaps: int, data: SeedArrays) -> tuple[int, int, int]:
    """The components, candidates and swaps the compiled seeding is built for: on a small
    matrix (at most :data:`~jaxmix.data.base.SMALL_ENTRIES` padded entries) a power of two
    components, at least 8, at least its :func:`greedy_trials` candidates and at least its
    :func:`swap_attempts` swaps, so that a loop over ``K`` shares one program (the unused
    centres, candidates and swaps cost next to nothing there); on a larger one ``K``,
    ``trials`` and ``swaps`` themselves (there every centre costs a pass over the data)."""
    entries = data.x.size if data.x is not None else data.vals.size
    if entries > SMALL_ENTRIES:
        return K, trials, swaps
    K_pad = max(8, 1 << (K - 1).bit_length())
    return K_pad, max(trials, greedy_trials(K_pad)), max(swaps, swap_attempts(K_pad))


def _restart_draws(n: int, K: int, trials: int, swaps: int, seed: int, n_init: int) -> tuple:
    """Every restart's random numbers, from ``numpy.random.default_rng(seed + r)``: the first
    row ``(R,)``, the uniforms of the greedy steps ``(R, K, trials)`` and those of the swaps
    ``(R, swaps, trials)``, in this order (a few numbers per restart, drawn on the host: the
    same in float32 and float64, for any size of seed)."""
    first = np.empty(n_init, np.int32)
    draws = np.empty((n_init, K, trials))
    swap_draws = np.empty((n_init, swaps, trials))
    for r in range(n_init):
        rng = np.random.default_rng(seed + r)
        first[r] = rng.integers(n)
        draws[r] = rng.random((K, trials))
        swap_draws[r] = rng.random((swaps, trials))
    return first, draws, swap_draws


def kmeans_plus_plus_batched(
    data: Any,
    K: int,
    seed: int,
    n_init: int = 1,
    min_var: float = 0.0,
    *,
    trials: int | None = None,
    lloyd_steps: int | None = None,
    swaps: int | None = None,
    with_rows: bool = False,
) -> tuple[np.ndarray, ...]:
    """Greedy k-means++, Lloyd steps and swaps for ``n_init`` restarts at once, on the device.

    Distances use each row's observed entries only: the mean squared difference per observed
    entry between the row and a centre (so rows with many entries are not favoured). The first
    centre is a row drawn uniformly; every further one is the best of ``trials`` rows drawn with
    probability proportional to their distance to the nearest chosen centre (D^2 sampling): the
    one that most lowers the sum of those distances (greedy k-means++; when every row sits on a
    chosen centre, the candidates are drawn uniformly among the other rows). A centre is its row
    with the missing entries filled by the column means. Then up to ``lloyd_steps`` Lloyd steps
    (each cluster's mean of its rows' observed values, column by column; a column the cluster
    never observes keeps its value), stopping once at most a share :data:`LLOYD_MOVED` of the rows
    changes its nearest centre.

    Then ``swaps`` trial swaps, which mend what Lloyd steps cannot (two centres in one cluster
    while two other clusters share one). With the potential

    .. math::

        J(c) = \\sum_u \\min_k \\sum_{l \\in C_u} (x_{ul} - c_{kl})^2

    (the objective the Lloyd steps lower), each swap draws ``trials`` rows by D^2 sampling from
    the current centres, takes the pair (centre out, candidate row in) that gives the lowest
    :math:`J`, runs up to :data:`SWAP_LLOYD_STEPS` Lloyd steps from the swapped centres and
    keeps the result when it lowers :math:`J` by more than a share :data:`SWAP_GAIN` (a swap
    local search in the manner of Kanungo et al., 2004). Each row then goes to its nearest
    centre: ``var_k`` is the mean squared residual per observed entry of the rows of ``k`` (the
    pooled value when fewer than two rows are), floored at ``min_var``; the weights are the
    shares of rows with an entry (at least one row each).

    Restart ``r`` draws its first row and its candidates' uniforms from
    ``numpy.random.default_rng(seed + r)`` (on the host: a few numbers), so row ``r`` of the
    result equals a single call with ``seed + r``, and float32 and float64 draw alike. The work
    runs in JAX's float dtype on the standardised data, one compiled program ``vmap``-ped over
    the restarts: matrix products on a dense layout, a chunked pass over the observed entries
    on triples. A swap costs about two Lloyd steps, so the swaps cost about ``2 K`` Lloyd steps
    (``4 K`` passes over the data). The rows are padded to a size class, and on a small matrix
    the components to a power of two (at least 8), the candidates to that number's
    :func:`greedy_trials` and the swaps to its :func:`swap_attempts`, with rows, centres,
    candidates and swaps that are never used, so that matrices of nearby sizes and a
    loop over ``K`` share one compiled program. On a
    :class:`~jaxmix.SparseRatings` the standardised copy of the triples and the result are kept
    with the matrix (:data:`jaxmix.data.layout_cache`): a second call with the same arguments
    returns at once, one with another ``K`` or seed skips the copy.

    Args:
        data: A layout (:func:`jaxmix.data.as_data`).
        K: Number of components, ``1 <= K <= n``.
        seed: Base seed (restart ``r`` uses ``seed + r``).
        n_init: Number of restarts ``R``.
        min_var: Variance floor (data units).
        trials: Candidates per greedy step (default :func:`greedy_trials`); 1 is plain
            k-means++.
        lloyd_steps: Most Lloyd steps (0: the seeding alone; default :data:`LLOYD_STEPS`).
        swaps: Trial swaps after the Lloyd steps (0: none; default :func:`swap_attempts`).
        with_rows: Also return the rows the greedy seeding picked, ``(R, K)`` (before the
            Lloyd steps and swaps).

    Returns:
        ``(mu (R, K, d), var (R, K), weights (R, K))`` as float64 NumPy arrays in data units (and
        the chosen rows with ``with_rows``).

    Example:
        >>> import numpy as np, jaxmix
        >>> from jaxmix.inference.init import kmeans_plus_plus_batched
        >>> X = np.array([[0.0, 0.0], [0.1, np.nan], [5.0, 5.0], [5.1, 5.0]])
        >>> mu, var, w = kmeans_plus_plus_batched(jaxmix.as_data(X), 2, seed=0, n_init=3)
        >>> mu.shape, np.sort(w[0]).tolist()
        ((3, 2, 2), [0.5, 0.5])
    """
    std = Standardizer.fit(data.summary())
    K = int(K)
    trials = greedy_trials(K) if trials is None else int(trials)
    lloyd_steps = LLOYD_STEPS if lloyd_steps is None else int(lloyd_steps)
    swaps = swap_attempts(K) if swaps is None else int(swaps)
    # deterministic: a matrix given as a SparseRatings keeps the result for a call with the
    # same arguments (another family, prior or tolerance on the same K and seed)
    key = (
        K,
        int(seed),
        int(n_init),
        float(min_var),
        trials,
        lloyd_steps,
        swaps,
        LLOYD_MOVED,
        SWAP_LLOYD_STEPS,
        SWAP_GAIN,
        SEED_MAX_ENTRIES,
        std.scale,
        std.offset.tobytes(),
        np.dtype(float_dtype()).name,
        jax.config.jax_default_device,
    )
    out = data.memo(
        "start",
        key,
        lambda: _seeding(data, std, K, seed, n_init, min_var, trials, lloyd_steps, swaps),
    )
    mu, var, weights, chosen = (a.copy() for a in out)
    if with_rows:
        return mu, var, weights, chosen
    return mu, var, weights


def _seeding(
    data: Any,
    std: Standardizer,
    K: int,
    seed: int,
    n_init: int,
    min_var: float,
    trials: int,
    lloyd_steps: int,
    swaps: int,
) -> tuple[np.ndarray, ...]:
    """:func:`kmeans_plus_plus_batched` on the device: ``(mu, var, weights, chosen)``."""
    d = data.shape[1]
    arrays, max_row = seed_arrays(data, std)
    subset = seed_rows(data)
    n = data.shape[0] if subset is None else subset.size
    K_pad, trials_pad, swaps_pad = _seed_components(K, trials, swaps, arrays)
    opts = _Seeding(
        K=K_pad, trials=trials_pad, lloyd_steps=lloyd_steps, max_row=max_row, d=d, swaps=swaps_pad
    )
    dtype = arrays.sq_norm.dtype
    first, draws, swap_draws = _restart_draws(n, K, trials, swaps, seed, n_init)
    padded = np.zeros((n_init, K_pad, trials_pad))
    padded[:, :K, :trials] = draws
    swaps_padded = np.zeros((n_init, swaps_pad, trials_pad))
    swaps_padded[:, :swaps, :trials] = swap_draws
    sizes = _Sizes(
        min_var=jnp.asarray(std.internal_min_var(min_var, dtype), dtype),
        moved_limit=jnp.asarray(LLOYD_MOVED * n, dtype),
        n_centres=jnp.asarray(K, jnp.int32),
        n_trials=jnp.asarray(trials, jnp.int32),
        n_swaps=jnp.asarray(swaps, jnp.int32),
    )
    out = _seed_batched(
        jnp.asarray(first),
        jnp.asarray(padded, dtype),
        jnp.asarray(swaps_padded, dtype),
        arrays,
        sizes,
        opts,
    )
    out = jax.device_get(out)
    centres, var, weights, chosen = (np.asarray(a)[:, :K] for a in out)
    mu = centres.astype(np.float64) * std.scale + std.offset
    var = var.astype(np.float64) * std.scale**2
    weights = weights.astype(np.float64)
    weights = weights / weights.sum(axis=1, keepdims=True)
    chosen = chosen.astype(np.int64)
    return mu, var, weights, chosen if subset is None else subset[chosen]


def kmeans_plus_plus(
    data: Any, K: int, seed: int, min_var: float = 0.0, **options: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One restart of :func:`kmeans_plus_plus_batched` (the default start of
    :func:`jaxmix.fit_em`): ``(mu (K, d), var (K,), weights (K,))``, float64.

    Keyword ``options`` (``trials``, ``lloyd_steps``, ``swaps``) are passed on.
    """
    mu, var, weights = kmeans_plus_plus_batched(data, K, seed, 1, min_var, **options)
    return mu[0], var[0], weights[0]


# ------------------------------------------------------------------ explicit starts


def check_params(init: Any, K: int, d: int, covariance: Any = "spherical") -> MixtureParams:
    """Validate explicit starting parameters; returns a batched float64 copy ``(R, K, ...)``.

    ``init`` is anything :func:`~jaxmix.models.families.as_params` reads. Its variances are read
    for the family of ``covariance`` (:meth:`~jaxmix.models.families.base.Family.cov_from_var`:
    a spherical ``(K,)`` is repeated over the columns for ``"diag"`` and pooled for
    ``"shared"``; any other shape than the family's is refused).
    """
    family = get_family(covariance)
    raw = init if isinstance(init, MixtureParams) else as_params(init, what="init", forms=True)
    mu = np.array(raw.mu, dtype=np.float64)
    var = np.array(raw.var, dtype=np.float64)
    weights = np.array(raw.weights, dtype=np.float64)
    if mu.ndim == 2:
        mu, var, weights = mu[None], var[None], weights[None]
    if mu.ndim != 3 or mu.shape[1:] != (K, d):
        raise ValueError(f"init mu must have shape ({K}, {d}) (or (R, {K}, {d})); got {mu.shape}")
    R = mu.shape[0]
    if var.shape[:1] != (R,):
        raise ValueError(
            f"init var must have shape {family.var_shape(K, d)} per restart for "
            f"covariance={family.name!r}; got {var.shape}"
        )
    if type(raw.cov) is family.cov_type and family.cov_type is not tuple:
        # typed parameters of this family: keep every field (a factor start keeps its loadings)
        typed = (
            raw.cov
            if np.ndim(raw.mu) == 3
            else jax.tree.map(lambda a: np.asarray(a)[None], raw.cov)
        )
    else:
        typed = None
    cov = family.cov_from_var(var, K, d, batch=1)
    if weights.shape != (R, K):
        raise ValueError(f"init weights must have shape ({K},) per restart; got {weights.shape}")
    if not (np.isfinite(mu).all() and np.isfinite(cov.var).all() and np.isfinite(weights).all()):
        raise ValueError("init parameters must be finite")
    if not (cov.var > 0).all():
        raise ValueError("init var must be strictly positive")
    if typed is not None:  # the variances checked above; the family checks its other fields
        cov = family.check_cov(typed, K, d, batch=1, label="init")
    if (weights < 0).any() or not np.allclose(weights.sum(axis=1), 1.0, atol=1e-6):
        raise ValueError("init weights must be non-negative and sum to 1")
    return MixtureParams(mu, cov, weights)


def init_params(
    init: Any,
    data: Any,
    K: int,
    *,
    n_init: int,
    seed: int,
    min_var: float = 0.0,
    covariance: Any = "spherical",
) -> MixtureParams:
    """Starting parameters for every restart, batched along a leading axis of size ``R``.

    Args:
        init: ``"kmeans++"``, ``"random_rows"``, explicit parameters (``MixtureParams``, a
            mapping, a ``(mu, var, weights)`` tuple, optionally with a leading restart axis) or a
            previous result.
        data: A layout (:func:`jaxmix.data.as_data`).
        K: Number of components.
        n_init: Number of restarts for a named method; explicit parameters bring their own
            (``n_init`` must then be 1 or match).
        seed: Restart ``r`` uses ``seed + r``.
        min_var: Variance floor (used by k-means++, :func:`kmeans_plus_plus_batched`).
        covariance: The covariance family; the named methods' one variance per component is
            made the family's (:meth:`~jaxmix.models.families.base.Family.from_component_variances`:
            repeated over the columns for ``"diag"``, the weighted mean for ``"shared"``).

    Returns:
        :class:`~jaxmix.MixtureParams` of float64 arrays with a leading restart axis ``R``.
    """
    family = get_family(covariance)
    d = data.shape[1]
    if isinstance(init, str):
        if init == "random_rows":
            sets = [random_rows(data, K, seed + r) for r in range(n_init)]
        elif init == "kmeans++":
            batch = kmeans_plus_plus_batched(data, K, seed, n_init, min_var)
            sets = list(zip(*batch, strict=True))
        else:
            raise ValueError(
                f"init must be one of {INIT_METHODS} or explicit parameters; got {init!r}"
            )
        covs = [
            family.from_component_variances(var, w, d, seed + r)
            for r, (_, var, w) in enumerate(sets)
        ]
        mu, _, weights = (np.stack(p) for p in zip(*sets, strict=True))
        cov = jax.tree.map(lambda *parts: np.stack(parts), *covs)
        return MixtureParams(mu, cov, weights)
    explicit = (
        isinstance(init, (MixtureParams, Mapping))
        or (isinstance(init, tuple) and len(init) == 3)
        or isinstance(getattr(init, "params", None), MixtureParams)
    )
    if not explicit:
        raise TypeError(
            f"init must be one of {INIT_METHODS}, a MixtureParams (or a mapping with mu, var "
            f"and weights), or a previous result; got {type(init).__name__}"
        )
    params = check_params(init, K, d, family)
    R = params.mu.shape[0]
    if n_init not in (1, R):
        raise ValueError(f"n_init={n_init} does not match the {R} explicit starting point(s) given")
    return params

"""Merge and split moves of the Gibbs sampler: a group of rows into an empty component, or a
small component's rows into another, in one Metropolis-Hastings step.

The sweep of :mod:`jaxmix.inference.gibbs` moves rows one at a time. A group of rows that the
posterior puts in a component of its own (on the course subset at K = 12, 5 to 8 rows) leaves a
larger component only if each of its rows moves to an empty component alone, which none does,
and a component of a few rows empties only row by row. The moves here carry the whole group in
one step (the split-merge idea of Jain & Neal 2004, "A split-merge Markov chain Monte Carlo
procedure for the Dirichlet process mixture model", J. Comput. Graph. Stat. 13, for K fixed):

* **split**: an empty component ``i`` and a non-empty ``j`` at random, and an *anchor* row ``a``
  of ``j`` (:func:`_anchor_log_probs`: half at random, half favouring the rows ``j`` fits worst).
  Start from ``a`` alone in ``i`` and every other row of ``j`` in ``j``, then visit the other
  rows in random order, each drawn between ``i`` and ``j`` from its conditional given the rows
  placed so far (a restricted Gibbs scan): the new split ``z'``, with probability ``q(z')``;
* **merge**: a component ``i`` of at most :data:`SMALL_SHARE` of the rows and another non-empty
  ``j`` at random; every row of ``i`` goes to ``j``. Its reverse is the split of the merged
  component with an anchor in ``i`` (drawn at random from ``i``'s rows): the same scan, forced
  to the current split, gives ``q(z)``.

A split is accepted with probability ``min(1, pi(z') P(merge back) / (pi(z) P(split) q(z')))``
and a merge with the reciprocal form, where the ``P`` are the probabilities of choosing the
components and the anchor in each direction. The target ``pi(z) = p(z | var, X)`` has the means
**and** the weights integrated out (a row's weight is ``alpha + n_k``: the Dirichlet-multinomial),
so neither an empty component's draw from the prior nor a small weight stops a move; the sweep
draws the weights again from ``p(w | z)`` right after the moves and the means at its parameter
block (a partially collapsed Gibbs sampler, van Dyk & Park 2008: nothing integrated out is
conditioned on before it is drawn again). Given the variances the columns are independent and
every mean has the prior ``N(m0_l, s0_l^2)``, so ``pi`` and each conditional of the scan are
closed forms of three statistics per component and column (count, sum and sum of squares of the
entries about ``m0``). The moves never make a component of more than :data:`SMALL_SHARE` of the
rows (such a split is refused), so every move has its reverse.

A scan is sequential over the pair's rows (``O(d)`` per row); a move that is not possible (no
empty component to split into, no small component to merge) costs nothing. On the course subset
(1200 x 1200, K = 12, 2 CPU cores) :data:`MOVES` = 4 per sweep take about 8 ms.

Tested against the exact ``p(z | var, X)``, enumerated on 6 rows (``tests/test_gibbs.py``).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import Array, lax
from jax.scipy.special import gammaln

from jaxmix.data import DenseArrays
from jaxmix.inference.collapsed import log_marginal, predictive_tables
from jaxmix.models.prior import Prior

__all__ = ["ANCHOR_TILT", "MOVES", "SMALL_SHARE", "merge_split"]

#: Merge or split moves per Gibbs sweep.
MOVES = 4
#: A component of at most this share of the rows (and at least 5 rows' worth) may be merged into
#: another; no split makes a larger one.
SMALL_SHARE = 0.02
#: How strongly a split's anchor favours the rows its component fits worst
#: (:func:`_anchor_log_probs`).
ANCHOR_TILT = 2.0


class _Rows(NamedTuple):
    """The data of the moves: ``feats`` ``(n, 3 d)`` = ``[Xc^2, Xc, M]`` (the layout of
    :func:`~jaxmix.inference.collapsed.predictive_tables`) with ``Xc`` the entries about the
    prior mean (zero where missing), the prior standard deviation of the means ``sd`` ``(d,)``
    and the Dirichlet concentration ``alpha``."""

    feats: Array
    sd: Array
    alpha: Array

    @property
    def d(self) -> int:
        return self.feats.shape[1] // 3


def _pair_stats(side: Array, rows: Array, data: _Rows) -> tuple[Array, Array]:
    """``(3, 2, d)`` statistics (sum of squares, sum, count) and ``(2,)`` row counts of
    ``rows`` split by ``side`` (0 or 1)."""
    onehot = jax.nn.one_hot(side, 2, dtype=data.feats.dtype) * rows[:, None]
    stats = (onehot.T @ data.feats).reshape(2, 3, data.d)
    return jnp.swapaxes(stats, 0, 1), jnp.sum(onehot, axis=0)


def _log_target(stats: Array, n_pair: Array, var: Array, data: _Rows) -> Array:
    """``log pi`` of a split of a pair's rows up to a constant shared by every split of the
    same rows: ``sum_c log Gamma(alpha + n_c)`` plus each component's entries with its means
    integrated out (:func:`~jaxmix.inference.collapsed.log_marginal`)."""
    entries = log_marginal(*stats, var, data.sd * data.sd)
    return jnp.sum(gammaln(data.alpha + n_pair)) + jnp.sum(entries)


def _scan(
    rng_key: Array,
    order: Array,
    size: Array,
    side: Array,
    stats: Array,
    n_pair: Array,
    var: Array,
    data: _Rows,
    forced: Array,
) -> tuple[Array, Array, Array, Array]:
    """A restricted scan over the rows ``order[:size]``: each drawn between the pair's two
    components (``side`` 0 or 1) from its conditional given every other row, or set to
    ``forced`` where that is 0 or 1, recording the probability of its side. Returns the sides,
    statistics, counts and the scan's ``log q``."""
    d = data.d
    prec0 = 1.0 / (data.sd * data.sd)

    def step(p, carry):
        side, stats, n_pair, log_q = carry
        u = order[p]
        row = data.feats[u].reshape(3, d)
        x, mask = row[1], row[2]
        own = jax.nn.one_hot(side[u], 2, dtype=x.dtype)
        rest = stats - own[None, :, None] * row[:, None, :]
        n_rest = n_pair - own
        lam = prec0 + rest[2] / var  # (2, d): the means' conditional precision without u
        t = var + 1.0 / lam
        resid = x - rest[1] / (var * lam)
        score = jnp.log(data.alpha + n_rest) - 0.5 * jnp.sum(
            mask * (jnp.log(t) + resid * resid / t), axis=-1
        )
        drawn = jax.random.categorical(jax.random.fold_in(rng_key, p), score)
        new = jnp.where(forced[u] < 0, drawn.astype(side.dtype), forced[u])
        one = jax.nn.one_hot(new, 2, dtype=x.dtype)
        stats = rest + one[None, :, None] * row[:, None, :]
        return side.at[u].set(new), stats, n_rest + one, log_q + jax.nn.log_softmax(score)[new]

    zero = jnp.zeros((), data.feats.dtype)
    return lax.fori_loop(0, size, step, (side, stats, n_pair, zero))


def _anchor_log_probs(rows: Array, var: Array, data: _Rows) -> Array:
    """Log probabilities of every row of ``rows`` (one component: the merged one of a merge) as
    a split's anchor: half uniform, half ``softmax(-ANCHOR_TILT s)``, ``s`` the row's log
    predictive density per observed entry under the component without it
    (:func:`~jaxmix.inference.collapsed.predictive_tables`' inside scores), standardised over
    ``rows``. The rows the component explains worst start a new one more often, and every row
    keeps at least half its uniform share. ``-inf`` outside ``rows``."""
    d = data.d
    w = rows.astype(data.feats.dtype)
    _, total, count = (w @ data.feats).reshape(3, 1, d)
    inside = predictive_tables(count, total, var[None], 0.0, data.sd)[:, 1]
    n_obs = jnp.maximum(jnp.sum(data.feats[:, 2 * d :], axis=1), 1.0)
    per_entry = (data.feats @ inside) / n_obs
    size = jnp.maximum(jnp.sum(w), 1.0)
    centre = jnp.sum(w * per_entry) / size
    spread = jnp.sqrt(jnp.sum(w * (per_entry - centre) ** 2) / size) + 1e-6
    tilted = jax.nn.log_softmax(
        jnp.where(rows, -ANCHOR_TILT * (per_entry - centre) / spread, -jnp.inf)
    )
    uniform = jnp.where(rows, -jnp.log(size), -jnp.inf)
    return jnp.logaddexp(uniform, tilted) - jnp.log(2.0)


def _counts(n_k: Array, cap: Array) -> tuple[Array, Array, Array]:
    """``(empty, non-empty, mergeable)``: components without rows, with rows, and ordered pairs
    ``(i, j)`` of distinct non-empty components with ``n_i <= cap``."""
    full = n_k > 0
    small = jnp.sum(full & (n_k <= cap))
    return jnp.sum(~full), jnp.sum(full), small * (jnp.sum(full) - 1)


def _move(
    rng_key: Array, z: Array, n_k: Array, var: Array, data: _Rows, cap: Array
) -> tuple[Array, Array, Array]:
    """One merge or split (module docstring): ``(z, n_k, accepted)``."""
    K, n = n_k.shape[0], z.shape[0]
    dtype = data.feats.dtype
    k_kind, k_i, k_j, k_move = jax.random.split(rng_key, 4)
    is_split = jax.random.bernoulli(k_kind)
    full = n_k > 0
    empty, nonempty, pairs = _counts(n_k, cap)
    # split: i empty, j non-empty; merge: i small, j another non-empty component
    i = jax.random.categorical(
        k_i, jnp.where(jnp.where(is_split, ~full, full & (n_k <= cap)), 0.0, -jnp.inf)
    )
    j = jax.random.categorical(k_j, jnp.where(full & (jnp.arange(K) != i), 0.0, -jnp.inf))
    possible = jnp.where(is_split, (empty > 0) & (nonempty > 0), pairs > 0)

    def propose(_):
        k_anchor, k_order, k_scan, k_acc = jax.random.split(k_move, 4)
        in_pair = (z == i) | (z == j)
        # the split's anchor from the merged component; the merge's a row of i at random
        log_p_anchor = _anchor_log_probs(in_pair, var[j], data)
        uniform_i = jnp.where(z == i, 0.0, -jnp.inf)
        anchor = jax.random.categorical(k_anchor, jnp.where(is_split, log_p_anchor, uniform_i))
        others = in_pair & (jnp.arange(n) != anchor)
        order = jnp.argsort(jnp.where(others, jax.random.uniform(k_order, (n,)), 2.0))
        # the scan starts from the anchor alone in i (side 0), the pair's other rows in j
        start = jnp.where(jnp.arange(n) == anchor, 0, 1).astype(jnp.int32)
        stats, n_pair = _pair_stats(start, in_pair, data)
        var2 = jnp.stack([var[i], var[j]])
        forced = jnp.where(is_split, -1, (z == j).astype(jnp.int32))
        size = jnp.sum(others).astype(jnp.int32)
        side, split, n_split, log_q = _scan(
            k_scan, order, size, start, stats, n_pair, var2, data, forced
        )
        merged = jnp.stack([jnp.zeros_like(split[:, 0]), split[:, 0] + split[:, 1]], axis=1)
        n_merged = jnp.stack([jnp.zeros_like(n_split[0]), n_split[0] + n_split[1]])
        log_pi = _log_target(split, n_split, var2, data) - _log_target(merged, n_merged, var2, data)
        # the choices' probabilities: P(merge back | split) / P(split | merged)
        n_k_merged = n_k.at[i].set(0.0).at[j].set(n_merged[1])
        n_k_split = n_k.at[i].set(n_split[0]).at[j].set(n_split[1])
        e_m, f_m, _ = _counts(n_k_merged, cap)
        _, _, p_s = _counts(n_k_split, cap)
        log_choice = (
            jnp.log(e_m.astype(dtype) * f_m.astype(dtype))
            - jnp.log(p_s.astype(dtype) * n_split[0])
            - log_p_anchor[anchor]
        )
        log_ratio = jnp.where(is_split, 1.0, -1.0) * (log_pi + log_choice - log_q)
        # a split must leave both components non-empty and i small (else no merge undoes it)
        valid = jnp.where(is_split, (n_split[0] <= cap) & (n_split[1] > 0), True)
        accept = valid & (jnp.log(jax.random.uniform(k_acc, dtype=dtype)) < log_ratio)
        z_new = jnp.where(in_pair, jnp.where(is_split & (side == 0), i, j), z).astype(z.dtype)
        n_k_new = jnp.where(is_split, n_k_split, n_k_merged)
        return jnp.where(accept, z_new, z), jnp.where(accept, n_k_new, n_k), accept

    return lax.cond(possible, propose, lambda _: (z, n_k, jnp.zeros((), bool)), None)


def merge_split(
    rng_key: Array,
    z: Array,
    var: Array,
    data: DenseArrays,
    prior: Prior,
    moves: int = MOVES,
) -> tuple[Array, Array]:
    """``moves`` merge or split moves (module docstring), each leaving ``p(z | var, X)`` (the
    means and the weights integrated out) invariant.

    Args:
        rng_key: A PRNG key.
        z: The rows' components, ``(n,)`` int32.
        var: The variances per component and column, ``(K, d)`` (:meth:`Family.conditional_var
            <jaxmix.models.families.base.Family.conditional_var>` broadcast).
        data: The dense device arrays.
        prior: A resolved prior of arrays in the units of ``data``.
        moves: Moves to run (static).

    Returns:
        ``(z, accepted)``: the new components and how many moves were accepted (int32).
    """
    x, mask = data.x, data.mask
    dtype = x.dtype
    K, d = var.shape
    mean = jnp.broadcast_to(jnp.asarray(prior.mean, dtype), (d,))
    sd = jnp.broadcast_to(jnp.asarray(prior.mean_sd, dtype), (d,))
    xc = (x - mean) * mask
    rows = _Rows(jnp.concatenate([xc * xc, xc, mask], axis=1), sd, jnp.asarray(prior.alpha, dtype))
    n_k = jnp.sum(jax.nn.one_hot(z, K, dtype=dtype), axis=0)
    cap = jnp.asarray(max(5, int(SMALL_SHARE * z.shape[0])), dtype)

    def body(m, carry):
        z, n_k, accepted = carry
        z, n_k, ok = _move(jax.random.fold_in(rng_key, m), z, n_k, var.astype(dtype), rows, cap)
        return z, n_k, accepted + ok.astype(jnp.int32)

    z, _, accepted = lax.fori_loop(0, moves, body, (z, n_k, jnp.zeros((), jnp.int32)))
    return z, accepted

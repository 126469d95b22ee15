"""Synthetic ratings matrices drawn from a planted mixture."""

from __future__ import annotations

import numbers
from typing import Any, NamedTuple

import numpy as np

from jaxmix._validate import check_n_components, check_positive_int, check_seed
from jaxmix.data import SparseRatings
from jaxmix.models.families import SphericalCov
from jaxmix.params import MixtureParams

__all__ = [
    "SimulatedRatings",
    "SimulatedSparseRatings",
    "simulate_ratings",
    "simulate_sparse_ratings",
]


class SimulatedRatings(NamedTuple):
    """A simulated ratings matrix and its truth.

    Attributes:
        X: ``(n, d)`` ratings with ``NaN`` at the missing entries.
        X_full: ``(n, d)`` every rating, as if all were observed.
        labels: True component of every row, ``(n,)``.
        params: The planted mixture (before rounding to stars).
    """

    X: np.ndarray
    X_full: np.ndarray
    labels: np.ndarray
    params: MixtureParams


def simulate_ratings(
    n_users: int = 600,
    n_items: int = 200,
    K: int = 4,
    *,
    missing: float = 0.25,
    noise: float = 0.6,
    stars: tuple[int, int] | None = (1, 5),
    seed: int = 0,
) -> SimulatedRatings:
    """Draw a users x items ratings matrix from a planted spherical mixture.

    Each component has its own taste profile (item means between the lowest and highest star),
    each user belongs to one component (Dirichlet-drawn weights) and rates
    ``mean + noise * N(0, 1)``, rounded and clipped to whole stars. Entries go missing
    independently with probability ``missing``, more often for less popular items (a realistic
    pattern), at least one observed entry kept per row.

    Args:
        n_users: Rows ``n``.
        n_items: Columns ``d``.
        K: Planted components.
        missing: Expected share of missing entries, in ``[0, 1)``.
        noise: Standard deviation of a rating around its component mean (before rounding).
        stars: ``(low, high)`` whole-star range, or ``None`` for unrounded real values.
        seed: Seed of ``numpy.random.default_rng``.

    Returns:
        A :class:`SimulatedRatings`.
    """
    n_users = check_positive_int(n_users, "n_users")
    n_items = check_positive_int(n_items, "n_items")
    K = check_n_components(K, n_users)
    missing = _check_real(missing, "missing")
    if not 0.0 <= missing < 1.0:
        raise ValueError(f"missing must lie in [0, 1); got {missing}")
    noise = _check_noise(noise)
    lo, hi = _check_stars(stars)
    rng = np.random.default_rng(check_seed(seed))
    weights = rng.dirichlet(np.full(K, 5.0))
    item_base = rng.normal(0.5 * (lo + hi), 0.4, size=n_items)
    mu = np.clip(item_base + rng.normal(0.0, 0.9, size=(K, n_items)), lo, hi)
    labels = rng.choice(K, size=n_users, p=weights)
    X_full = mu[labels] + noise * rng.standard_normal((n_users, n_items))
    if stars is not None:
        X_full = np.clip(np.rint(X_full), lo, hi)
    popularity = rng.pareto(2.0, size=n_items) + 1.0
    popularity /= popularity.mean()
    p_miss = np.clip(missing ** (popularity[None, :] ** 0.5), 0.0, 0.98) if missing > 0 else 0.0
    drop = rng.random((n_users, n_items)) < p_miss
    if missing > 0:
        rescale = missing / max(drop.mean(), 1e-12)
        drop = rng.random((n_users, n_items)) < np.clip(p_miss * rescale, 0.0, 0.98)
    full_rows = drop.all(axis=1)
    drop[full_rows, rng.integers(n_items, size=int(full_rows.sum()))] = False
    X = np.where(drop, np.nan, X_full)
    var = np.full(K, noise**2)
    return SimulatedRatings(
        X=X, X_full=X_full, labels=labels, params=MixtureParams(mu, SphericalCov(var), weights)
    )


class SimulatedSparseRatings(NamedTuple):
    """Simulated sparse ratings and their truth.

    Attributes:
        S: The observed ratings, a :class:`~jaxmix.SparseRatings` (float32 whole stars).
        labels: True component of every user, ``(n_users,)``.
        params: The planted mixture (before rounding to stars).
        item_popularity: Sampling probability of every item, ``(n_items,)``.
    """

    S: SparseRatings
    labels: np.ndarray
    params: MixtureParams
    item_popularity: np.ndarray


def simulate_sparse_ratings(
    n_users: int = 10_000,
    n_items: int = 2_000,
    nnz: int = 200_000,
    K: int = 4,
    seed: int = 0,
    *,
    noise: float = 0.6,
    stars: tuple[int, int] | None = (1, 5),
    user_tail: float = 2.0,
    item_tail: float = 1.5,
    chunk: int = 1 << 22,
) -> SimulatedSparseRatings:
    """Draw sparse ratings from a planted mixture at any size, without an ``n x d`` array.

    Users and items have power-law activity: a user's number of ratings is proportional to a
    Pareto(``user_tail``) draw (at least one, at most ``n_items // 2``), and an item is picked with
    probability proportional to a Pareto(``item_tail``) draw, so a few blockbusters collect many
    ratings and most items few (the Netflix pattern). Each user belongs to one of ``K`` taste
    profiles and rates item ``l`` as ``mu[k, l] + noise * N(0, 1)``, rounded and clipped to whole
    stars. Users are generated in chunks of about ``chunk`` ratings; repeated picks of an item by
    the same user are redrawn, so every (user, item) pair is unique and the total is ``nnz``
    (up to a few ratings of users whose redraws kept colliding).

    Memory: the triples (``int32`` user, ``int32`` item, ``float32`` rating: 12 bytes per rating,
    1.2 GB for 100 million) plus one chunk of temporaries.

    Args:
        n_users: Rows ``n``.
        n_items: Columns ``d``.
        nnz: Number of ratings to draw, at most ``n_users * n_items // 2``.
        K: Planted components.
        seed: Seed of ``numpy.random.default_rng``.
        noise: Standard deviation of a rating around its component mean (before rounding).
        stars: ``(low, high)`` whole-star range, or ``None`` for unrounded real values.
        user_tail: Pareto shape of the user activity (smaller = heavier tail).
        item_tail: Pareto shape of the item popularity.
        chunk: Ratings generated at once.

    Returns:
        A :class:`SimulatedSparseRatings`.

    Example:
        >>> import jaxmix
        >>> sim = jaxmix.simulate_sparse_ratings(1000, 200, 20_000, K=3, seed=0)
        >>> sim.S.shape, sim.S.nnz
        ((1000, 200), 20000)
    """
    n_users = check_positive_int(n_users, "n_users")
    n_items = check_positive_int(n_items, "n_items")
    nnz = check_positive_int(nnz, "nnz")
    K = check_n_components(K, n_users)
    if nnz > n_users * (n_items // 2) or n_items < 2:
        raise ValueError(
            f"nnz = {nnz} is too many for {n_users} x {n_items} (at most n_users * (n_items // 2))"
        )
    noise = _check_noise(noise)
    for name, tail in (("user_tail", user_tail), ("item_tail", item_tail)):
        if not (np.isfinite(_check_real(tail, name)) and tail > 0):
            raise ValueError(f"{name} must be finite and positive; got {tail}")
    chunk = check_positive_int(chunk, "chunk")
    if nnz < n_users:
        raise ValueError(f"nnz = {nnz} must be at least n_users = {n_users} (one rating each)")
    lo, hi = _check_stars(stars)
    rng = np.random.default_rng(check_seed(seed))
    weights = rng.dirichlet(np.full(K, 5.0))
    item_base = rng.normal(0.5 * (lo + hi), 0.4, size=n_items)
    mu = np.clip(item_base + rng.normal(0.0, 0.9, size=(K, n_items)), lo, hi)
    labels = rng.choice(K, size=n_users, p=weights)
    popularity = rng.pareto(item_tail, size=n_items) + 1.0
    popularity /= popularity.sum()
    cdf = np.cumsum(popularity)
    cdf /= cdf[-1]
    counts = _activity(rng, n_users, n_items // 2, nnz, user_tail)
    rows = np.empty(nnz, np.int32)
    cols = np.empty(nnz, np.int32)
    vals = np.empty(nnz, np.float32)
    mu32 = mu.astype(np.float32)
    filled, u0 = 0, 0
    bounds = np.concatenate([[0], np.cumsum(counts)])
    while u0 < n_users:
        u1 = int(np.searchsorted(bounds, bounds[u0] + chunk, side="right")) - 1
        u1 = max(u1, u0 + 1)
        keys = _draw_items(rng, np.arange(u0, u1), counts[u0:u1], cdf, n_items)
        m = keys.size
        r = (keys // n_items).astype(np.int32)
        c = (keys % n_items).astype(np.int32)
        x = mu32[labels[r], c] + np.float32(noise) * rng.standard_normal(m, dtype=np.float32)
        if stars is not None:
            x = np.clip(np.rint(x), lo, hi)
        rows[filled : filled + m] = r
        cols[filled : filled + m] = c
        vals[filled : filled + m] = x
        filled += m
        u0 = u1
    for a in (rows, cols, vals):  # ours alone: read-only views, not copies
        a.flags.writeable = False
    S = SparseRatings(rows[:filled], cols[:filled], vals[:filled], (n_users, n_items))
    return SimulatedSparseRatings(
        S=S,
        labels=labels,
        params=MixtureParams(mu, SphericalCov(np.full(K, noise**2)), weights),
        item_popularity=popularity,
    )


def _check_real(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number; got {value!r}")
    return float(value)


def _check_noise(noise: Any) -> float:
    noise = _check_real(noise, "noise")
    if not (np.isfinite(noise) and noise > 0.0):
        raise ValueError(f"noise must be positive and finite; got {noise}")
    return noise


def _check_stars(stars: Any) -> tuple[int, int]:
    """``(low, high)`` of the whole-star range (``(1, 5)`` for the means when ``stars`` is None)."""
    if stars is None:
        return 1, 5
    try:
        lo, hi = stars
    except (TypeError, ValueError):
        raise ValueError(
            f"stars must be None or a pair (low, high) of integers; got {stars!r}"
        ) from None
    if any(isinstance(v, bool) or not isinstance(v, numbers.Integral) for v in (lo, hi)):
        raise ValueError(f"stars must be None or a pair (low, high) of integers; got {stars!r}")
    if not int(lo) < int(hi):
        raise ValueError(f"stars must have low < high; got {stars!r}")
    return int(lo), int(hi)


def _activity(rng, n_users, cap, nnz, tail):
    """Ratings per user: one each plus a multinomial share of the rest proportional to Pareto
    draws, each at most ``cap``, summing to ``nnz``."""
    raw = rng.pareto(tail, size=n_users) + 1.0
    counts = np.ones(n_users, np.int64)
    for _ in range(100):
        extra = nnz - int(counts.sum())
        if extra <= 0:
            break
        room = cap - counts
        share = raw * (room > 0)
        counts += np.minimum(rng.multinomial(extra, share / share.sum()), room)
    return counts


def _draw_items(rng, users, counts, cdf, n_items, rounds=4):
    """Unique (user, item) keys ``user * n_items + item``, sorted: ``counts[i]`` distinct items
    for user ``users[i]``, drawn by popularity without replacement.

    Light users draw with replacement and redraw their repeats (a few rounds); a user who is
    heavy (``counts >= n_items / 8``) or still short after ``rounds`` rounds takes the exact
    weighted sample without replacement, the top ``counts`` of ``log p + Gumbel`` noise, at
    ``O(n_items)`` cost (at most 8 per rating).
    """
    log_p = np.log(np.diff(np.concatenate([[0.0], cdf])) + 1e-300)
    exact = counts * 8 >= n_items
    need = np.where(exact, 0, counts)
    keys = np.empty(0, np.int64)
    for _ in range(rounds):
        if not need.any():
            break
        who = np.repeat(users, need)
        items = np.minimum(np.searchsorted(cdf, rng.random(who.size), side="right"), n_items - 1)
        keys = _sorted_unique(np.concatenate([keys, who.astype(np.int64) * n_items + items]))
        got = np.bincount(keys // n_items - users[0], minlength=users.size)
        need = np.where(exact, 0, counts - got)
    short = need > 0
    if short.any():  # drop the partial draws of users that are still short
        keys = keys[~short[keys // n_items - users[0]]]
    parts = [keys]
    for i in np.flatnonzero(exact | short):
        score = log_p + rng.gumbel(size=n_items)
        top = np.argpartition(score, n_items - counts[i])[n_items - counts[i] :]
        parts.append(np.int64(users[i]) * n_items + np.sort(top))
    return np.sort(np.concatenate(parts)) if len(parts) > 1 else keys


def _sorted_unique(keys):
    keys.sort()
    keep = np.empty(keys.size, bool)
    keep[:1] = True
    np.not_equal(keys[1:], keys[:-1], out=keep[1:])
    return keys[keep]

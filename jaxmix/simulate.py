"""Synthetic ratings matrices drawn from a planted mixture."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from jaxmix._data import check_n_components, check_positive_int
from jaxmix.types import MixtureParams

__all__ = ["SimulatedRatings", "simulate_ratings"]


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
    if not 0.0 <= float(missing) < 1.0:
        raise ValueError(f"missing must lie in [0, 1); got {missing}")
    if not float(noise) > 0.0:
        raise ValueError(f"noise must be positive; got {noise}")
    rng = np.random.default_rng(seed)
    lo, hi = stars if stars is not None else (1, 5)
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
        X=X, X_full=X_full, labels=labels, params=MixtureParams(mu, var, weights)
    )

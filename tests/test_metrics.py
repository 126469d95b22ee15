"""Model-selection scores, RMSE, hold-out splits, mean baselines and the simulator.

Every expected value is computed by hand (formulas from ``shared/REFERENCE.md``) or with plain
NumPy (``np.nanmean``, boolean indexing), never with jaxmix itself.
"""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import numpy as np
import pytest

import jaxmix
from jaxmix import MixtureParams

NAN = np.nan


def _data(n=60, d=5, K=2, seed=0, missing=0.25, sep=6.0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, sep, size=(K, d))
    X = centres[rng.integers(K, size=n)] + rng.standard_normal((n, d))
    X[rng.random((n, d)) < missing] = NAN
    return X


# ---------------------------------------------------------------- BIC / AIC


@pytest.mark.parametrize(
    "K, d, covariance, expected",
    [
        (1, 1, "spherical", 2),  # one mean, one variance, no free weight
        (1, 5, "spherical", 6),
        (3, 4, "spherical", 12 + 3 + 2),
        (12, 1200, "spherical", 12 * 1200 + 12 + 11),
        (2, 3, "diag", 6 + 6 + 1),
        (1, 4, "diag", 8),
    ],
)
def test_n_parameters(K, d, covariance, expected):
    assert jaxmix.n_parameters(K, d, covariance) == expected


def test_n_parameters_unknown_covariance():
    with pytest.raises(ValueError, match="covariance must be"):
        jaxmix.n_parameters(2, 3, "full")


@pytest.mark.parametrize("K", [1, 2, 3])
@pytest.mark.parametrize("missing", [0.0, 0.3])
def test_bic_aic_formulas(K, missing):
    X = _data(n=50, d=4, seed=K, missing=missing)
    res = jaxmix.fit_em(X, K, n_init=2)
    n, d = X.shape
    p = K * d + K + (K - 1)
    ll = res.log_likelihood
    # the course's convention: log-likelihood scale, higher is better
    assert jaxmix.bic(X, res) == pytest.approx(ll - 0.5 * p * np.log(n), rel=1e-14)
    assert jaxmix.aic(X, res) == pytest.approx(ll - p, rel=1e-14)
    # the textbook versions are -2 times these (lower is better there)
    assert -2 * jaxmix.bic(X, res) == pytest.approx(-2 * ll + p * np.log(n), rel=1e-14)
    assert -2 * jaxmix.aic(X, res) == pytest.approx(2 * p - 2 * ll, rel=1e-14)
    assert jaxmix.bic(X, res) < ll and jaxmix.aic(X, res) < ll
    # n is the number of rows, not the number of observed entries
    assert jaxmix.bic(np.zeros((2 * n, d)), res) == pytest.approx(ll - 0.5 * p * np.log(2 * n))


def test_bic_uses_the_result_covariance_family():
    params = MixtureParams(np.zeros((3, 4)), np.ones((3, 4)), np.full(3, 1 / 3))
    fake = SimpleNamespace(log_likelihood=-100.0, params=params, covariance="diag")
    X = np.zeros((10, 4))
    p = 3 * 4 + 3 * 4 + 2
    assert jaxmix.bic(X, fake) == pytest.approx(-100.0 - 0.5 * p * np.log(10))
    assert jaxmix.aic(X, fake) == pytest.approx(-100.0 - p)


def test_bic_higher_is_better_picks_the_planted_k():
    X = _data(n=200, d=4, K=3, seed=11, missing=0.1, sep=5.0)
    scores = {K: jaxmix.bic(X, jaxmix.fit_em(X, K, n_init=2, seed=0)) for K in (1, 2, 3, 4)}
    assert max(scores, key=scores.get) == 3, scores


def test_bic_aic_bad_arguments():
    X = _data(n=20, d=3)
    res = jaxmix.fit_em(X, 2)
    with pytest.raises(ValueError, match="X has 4 columns but the result was fit on 3"):
        jaxmix.bic(np.zeros((20, 4)), res)
    with pytest.raises(ValueError, match="columns"):
        jaxmix.aic(np.zeros((20, 2)), res)
    with pytest.raises(ValueError, match="2-D"):
        jaxmix.bic(np.zeros(20), res)
    with pytest.raises(TypeError, match="fitted mixture result"):
        jaxmix.bic(X, res.params)
    with pytest.raises(TypeError, match="fitted mixture result"):
        jaxmix.aic(X, "result")


# ---------------------------------------------------------------- RMSE


def test_rmse_on_a_mask(rng):
    t = rng.normal(size=(20, 6))
    p = t + rng.normal(scale=0.3, size=t.shape)
    mask = rng.random(t.shape) < 0.4
    diff = [t[i, j] - p[i, j] for i in range(20) for j in range(6) if mask[i, j]]
    assert jaxmix.rmse(t, p, mask=mask) == pytest.approx(np.sqrt(np.mean(np.square(diff))), 1e-14)
    # entries outside the mask may be anything, NaN included
    p_nan = np.where(mask, p, NAN)
    assert jaxmix.rmse(t, p_nan, mask=mask) == jaxmix.rmse(t, p, mask=mask)
    # default: every entry where neither is NaN
    both = ~np.isnan(p_nan)
    assert jaxmix.rmse(t, p_nan) == pytest.approx(np.sqrt(np.mean((t - p)[both] ** 2)), rel=1e-14)
    assert jaxmix.rmse(t, t) == 0.0
    assert jaxmix.rmse(np.zeros((2, 2)), np.full((2, 2), 3.0)) == pytest.approx(3.0)
    assert jaxmix.rmse(t.tolist(), p.tolist()) == pytest.approx(jaxmix.rmse(t, p), rel=1e-15)


# ---------------------------------------------------------------- hold-out split


@pytest.mark.parametrize("fraction", [0.05, 0.1, 0.25, 0.5, 0.9])
def test_holdout_split_properties(fraction):
    X = _data(n=80, d=10, seed=3, missing=0.3)
    X_before = X.copy()
    observed = ~np.isnan(X)
    train, test = jaxmix.holdout_split(X, fraction, seed=7)
    np.testing.assert_array_equal(X, X_before)
    assert test.dtype == np.bool_ and test.shape == X.shape
    assert test.sum() == round(fraction * observed.sum())  # the requested share
    assert not (test & ~observed).any()  # only observed entries are held out
    np.testing.assert_array_equal(np.isnan(train), ~observed | test)
    np.testing.assert_array_equal(train[~np.isnan(train)], X[observed & ~test])
    # deterministic in the seed, different for another seed
    train2, test2 = jaxmix.holdout_split(X, fraction, seed=7)
    np.testing.assert_array_equal(test2, test)
    np.testing.assert_array_equal(train2, train)
    _, test3 = jaxmix.holdout_split(X, fraction, seed=8)
    assert (test3 != test).any()


def test_holdout_split_with_mask_and_tiny_fraction():
    X = np.arange(1.0, 21.0).reshape(4, 5)
    mask = np.ones_like(X, dtype=bool)
    mask[0, :3] = False
    train, test = jaxmix.holdout_split(X, 0.2, seed=0, mask=mask)
    assert test.sum() == round(0.2 * 17)
    assert not (test & ~mask).any()
    np.testing.assert_array_equal(np.isnan(train), ~mask | test)
    # a tiny fraction still holds out one entry
    _, one = jaxmix.holdout_split(X, 1e-6, seed=0)
    assert one.sum() == 1


def test_holdout_split_then_score():
    """The documented workflow: fit on train, score held-out entries against the truth."""
    X = _data(n=80, d=6, seed=4, missing=0.1)
    train, test = jaxmix.holdout_split(X, 0.2, seed=1)
    res = jaxmix.fit_em(train, 2, n_init=2)
    filled = jaxmix.complete(train, res)
    err = jaxmix.rmse(X, filled, mask=test)
    assert err == pytest.approx(np.sqrt(np.mean((X[test] - filled[test]) ** 2)), rel=1e-14)
    assert err < jaxmix.rmse(X, jaxmix.mean_baseline(train, "global"), mask=test)


# ---------------------------------------------------------------- mean baselines


def _nanmean(a, axis=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices give NaN here
        return np.nanmean(a, axis=axis)


@pytest.mark.parametrize("by", ["global", "user", "item"])
def test_mean_baseline_against_nanmean(by):
    X = _data(n=30, d=7, seed=5, missing=0.4)
    X[4] = NAN  # a user with no rating
    X[:, 2] = NAN  # an item with no rating
    X[4, 5] = NAN
    glob = _nanmean(X)
    if by == "global":
        fill = np.full(X.shape, glob)
    elif by == "user":
        fill = np.tile(_nanmean(X, axis=1)[:, None], (1, X.shape[1]))
    else:
        fill = np.tile(_nanmean(X, axis=0)[None, :], (X.shape[0], 1))
    fill = np.where(np.isnan(fill), glob, fill)  # empty row/column: fall back to the global mean
    got = jaxmix.mean_baseline(X, by)
    observed = ~np.isnan(X)
    np.testing.assert_array_equal(got[observed], X[observed])
    np.testing.assert_allclose(got[~observed], fill[~observed], rtol=1e-13)
    assert not np.isnan(got).any()
    if by == "user":
        np.testing.assert_allclose(got[4], glob, rtol=1e-13)
    if by == "item":
        np.testing.assert_allclose(got[:, 2], glob, rtol=1e-13)


def test_mean_baseline_with_mask():
    X = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    mask = np.array([[True, False, True], [False, True, True]])
    np.testing.assert_allclose(jaxmix.mean_baseline(X, "user", mask=mask), [[1, 2, 3], [5.5, 5, 6]])
    np.testing.assert_allclose(jaxmix.mean_baseline(X, "item", mask=mask), [[1, 5, 3], [1, 5, 6]])
    np.testing.assert_allclose(
        jaxmix.mean_baseline(X, "global", mask=mask), [[1, 3.75, 3], [3.75, 5, 6]]
    )


# ---------------------------------------------------------------- simulate_ratings


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("missing", [0.05, 0.25, 0.5, 0.8, 0.95])
def test_simulate_ratings_missing_share(missing, seed):
    sim = jaxmix.simulate_ratings(600, 200, 4, missing=missing, seed=seed)
    assert sim.X.shape == (600, 200)
    assert abs(np.isnan(sim.X).mean() - missing) < 0.01
    assert (~np.isnan(sim.X)).any(axis=1).all()  # every user rated something


def test_simulate_ratings_structure():
    sim = jaxmix.simulate_ratings(120, 30, 3, missing=0.3, seed=4)
    X, X_full = sim.X, sim.X_full
    assert X.shape == X_full.shape == (120, 30)
    observed = ~np.isnan(X)
    np.testing.assert_array_equal(X[observed], X_full[observed])
    assert not np.isnan(X_full).any()
    # whole stars between 1 and 5
    assert set(np.unique(X_full).tolist()) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    assert sim.labels.shape == (120,) and sim.labels.min() >= 0 and sim.labels.max() < 3
    assert sim.params.mu.shape == (3, 30) and sim.params.var.shape == (3,)
    np.testing.assert_allclose(sim.params.weights.sum(), 1.0)
    assert (sim.params.mu >= 1).all() and (sim.params.mu <= 5).all()
    # other star ranges, unrounded values and no missing entries
    wide = jaxmix.simulate_ratings(50, 10, 2, stars=(0, 10), seed=4)
    assert np.nanmin(wide.X) >= 0 and np.nanmax(wide.X) <= 10
    np.testing.assert_array_equal(np.nan_to_num(wide.X), np.rint(np.nan_to_num(wide.X)))
    real = jaxmix.simulate_ratings(50, 10, 2, stars=None, missing=0.0, seed=4)
    assert not np.isnan(real.X).any()
    assert not np.all(real.X == np.rint(real.X))


def test_simulate_ratings_is_deterministic_in_seed():
    a = jaxmix.simulate_ratings(60, 20, 3, seed=9)
    b = jaxmix.simulate_ratings(60, 20, 3, seed=9)
    c = jaxmix.simulate_ratings(60, 20, 3, seed=10)
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.params.mu, b.params.mu)
    assert not np.array_equal(a.X, c.X, equal_nan=True)


def test_simulate_ratings_planted_clusters_are_recovered():
    """Low noise, many items: EM's memberships match the planted labels up to relabelling."""
    sim = jaxmix.simulate_ratings(200, 60, 3, missing=0.3, noise=0.3, stars=None, seed=2)
    res = jaxmix.fit_em(sim.X, 3, n_init=3)
    found = res.resp.argmax(axis=1)
    table = np.zeros((3, 3), int)
    np.add.at(table, (sim.labels, found), 1)
    assert table.max(axis=1).sum() >= 0.95 * 200


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        ({"missing": 1.0}, ValueError, "missing must lie in"),
        ({"missing": -0.1}, ValueError, "missing must lie in"),
        ({"noise": 0.0}, ValueError, "noise must be positive"),
        ({"K": 0}, ValueError, "at least 1"),
        ({"K": 11}, ValueError, "exceeds the number of rows"),
        ({"n_users": 0}, ValueError, "n_users must be at least 1"),
        ({"n_items": 2.5}, TypeError, "n_items must be an integer"),
    ],
)
def test_simulate_ratings_bad_arguments(kwargs, exc, match):
    args = {"n_users": 10, "n_items": 5, "K": 2, **kwargs}
    with pytest.raises(exc, match=match):
        jaxmix.simulate_ratings(**args)


def test_bias_baseline_solves_its_ridge_problem(rng):
    """``mean_baseline(X, "bias")``: the offsets minimise the squared error plus the ridge
    penalties (oracle: the normal equations solved densely), dense = triples, and a row or
    column with no entry gets no offset."""
    from jaxmix.evaluation.baselines import BIAS_REG_ITEM, BIAS_REG_USER

    n, d = 30, 12
    X = 3.0 + rng.normal(size=(n, 1)) + rng.normal(size=(1, d)) + 0.3 * rng.normal(size=(n, d))
    X[rng.random(X.shape) < 0.5] = np.nan
    X[:, 7] = np.nan
    X[4] = np.nan
    rows, cols = np.nonzero(~np.isnan(X))
    m = np.nanmean(X)
    design = np.zeros((rows.size, n + d))
    design[np.arange(rows.size), rows] = 1.0
    design[np.arange(rows.size), n + cols] = 1.0
    penalty = np.diag(np.r_[np.full(n, BIAS_REG_USER), np.full(d, BIAS_REG_ITEM)])
    coef = np.linalg.solve(design.T @ design + penalty, design.T @ (X[rows, cols] - m))
    expected = m + coef[:n, None] + coef[None, n:]
    filled = jaxmix.mean_baseline(X, "bias")
    miss = np.isnan(X)
    np.testing.assert_allclose(filled[miss], expected[miss], atol=1e-5)
    np.testing.assert_array_equal(filled[~miss], X[~miss])
    S = jaxmix.sparse_ratings(X)
    r, c = np.nonzero(miss)
    np.testing.assert_allclose(jaxmix.mean_baseline(S, "bias", rows=r, cols=c), filled[r, c])
    assert coef[4] == 0.0 and coef[n + 7] == 0.0

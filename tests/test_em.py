"""EM, K-means and completion against independent NumPy/SciPy oracles.

Every oracle here is written from the model in ``shared/REFERENCE.md`` with explicit loops or
``scipy.stats.norm.logpdf``; none reuses jaxmix's kernels. Data are small random matrices with
missing entries, so the whole file runs in seconds.
"""

from __future__ import annotations

import contextlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import dense_arrays, e_step, jax_params, m_step, numpy_params, suff_stats
from scipy.special import logsumexp
from scipy.stats import norm

import jaxmix
from jaxmix import MixtureParams
from jaxmix.data import Standardizer, as_data
from jaxmix.inference import em as em_module
from jaxmix.inference.em import (
    COMPACT_MIN_ENTRIES,
    EMConstants,
    batch_sizes,
    executed_iterations,
    init_state,
    loop,
    step,
)
from jaxmix.inference.init import init_params
from jaxmix.models.families import get_family
from jaxmix.models.mixture import as_device, to_internal
from jaxmix.testing import count_traces

# ---------------------------------------------------------------- helpers and oracles


def make_data(n, d, K, missing, seed, empty_rows=0):
    """Rows from a K-component spherical mixture, entries dropped with probability ``missing``."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 3.0, size=(K, d))
    sd = rng.uniform(0.6, 1.5, size=K)
    labels = rng.integers(K, size=n)
    X = centres[labels] + sd[labels, None] * rng.standard_normal((n, d))
    X[rng.random((n, d)) < missing] = np.nan
    X[:empty_rows] = np.nan
    return X


def random_params(K, d, seed, zero_weight=False):
    rng = np.random.default_rng(seed)
    w = rng.dirichlet(np.ones(K))
    if zero_weight:
        w[0] = 0.0
        w /= w.sum()
    return MixtureParams(rng.normal(0.0, 2.0, (K, d)), rng.uniform(0.3, 3.0, K), w)


as_jax = jax_params


def oracle_log_joint(X, params):
    """log(w_k + 1e-16) + sum over the row's observed coordinates of norm.logpdf, (n, K)."""
    mu, var, w = (np.asarray(p, np.float64) for p in (params.mu, params.var, params.weights))
    n, K = X.shape[0], len(w)
    out = np.empty((n, K))
    for u in range(n):
        c = ~np.isnan(X[u])
        for k in range(K):
            out[u, k] = np.log(w[k] + 1e-16) + norm.logpdf(X[u, c], mu[k, c], np.sqrt(var[k])).sum()
    return out


def oracle_e_step(X, params):
    lj = oracle_log_joint(X, params)
    row = logsumexp(lj, axis=1)
    return np.exp(lj - row[:, None]), row


def oracle_m_step(X, resp, old, min_var):
    """Loop-based M-step: mu_kl only where sum_u r_uk [l in C_u] >= 1; var floored at min_var.

    A component with no expected observed entry keeps its previous variance (jaxmix's documented
    choice; the reference would divide by zero there). The kept variance is floored as well.
    """
    n, d = X.shape
    K = resp.shape[1]
    obs = ~np.isnan(X)
    mu = np.array(old.mu, np.float64, copy=True)
    var = np.array(old.var, np.float64, copy=True)
    for k in range(K):
        for l in range(d):
            den = 0.0
            num = 0.0
            for u in range(n):
                if obs[u, l]:
                    den += resp[u, k]
                    num += resp[u, k] * X[u, l]
            if den >= 1.0:
                mu[k, l] = num / den
    for k in range(K):
        num = 0.0
        den = 0.0
        for u in range(n):
            c = obs[u]
            num += resp[u, k] * np.sum((X[u, c] - mu[k, c]) ** 2)
            den += resp[u, k] * c.sum()
        if den > 0:
            var[k] = num / den
        var[k] = max(var[k], min_var)
    return MixtureParams(mu, var, resp.sum(axis=0) / n)


def oracle_em(X, params, n_iter, min_var):
    """Plain EM loop: returns the LL of every E-step and the parameters after the last M-step."""
    history = []
    for _ in range(n_iter):
        resp, row = oracle_e_step(X, params)
        history.append(row.sum())
        params = oracle_m_step(X, resp, params, min_var)
    return np.array(history), params, resp


def reference_random_rows(X, K, seed):
    """The documented reference initialisation, written from REFERENCE.md."""
    X0 = np.nan_to_num(X, nan=0.0)
    idx = np.random.RandomState(seed).choice(X.shape[0], K, replace=False)
    mu = X0[idx]
    var = np.array([np.mean((X0 - m) ** 2) for m in mu])
    return MixtureParams(mu, var, np.full(K, 1.0 / K))


def assert_params_close(a, b, rtol=1e-10, atol=1e-10):
    np.testing.assert_allclose(a.mu, b.mu, rtol=rtol, atol=atol)
    np.testing.assert_allclose(a.var, b.var, rtol=rtol, atol=atol)
    np.testing.assert_allclose(a.weights, b.weights, rtol=rtol, atol=atol)


# (n, d, K, missing, empty_rows, zero_weight)
LL_CONFIGS = [
    pytest.param(20, 5, 4, 0.3, 2, False, id="n20-d5-K4"),
    pytest.param(50, 8, 3, 0.3, 5, False, id="n50-d8-K3"),
    pytest.param(7, 3, 1, 0.3, 1, False, id="n7-d3-K1"),
    pytest.param(40, 12, 6, 0.3, 3, True, id="n40-d12-K6-zero-weight"),
    pytest.param(30, 1, 2, 0.3, 0, False, id="n30-d1-K2"),
    pytest.param(25, 6, 3, 0.0, 0, False, id="n25-d6-K3-complete"),
]


# ---------------------------------------------------------------- densities and E-step


@pytest.mark.parametrize("n, d, K, missing, empty_rows, zero_weight", LL_CONFIGS)
def test_row_log_likelihood_matches_scipy(n, d, K, missing, empty_rows, zero_weight):
    X = make_data(n, d, K, missing, seed=n * d + K, empty_rows=empty_rows)
    params = random_params(K, d, seed=K, zero_weight=zero_weight)
    observed = ~np.isnan(X)
    got = np.asarray(e_step(as_jax(params), dense_arrays(X)).row_ll)
    expected = logsumexp(oracle_log_joint(X, params), axis=1)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    # A row with nothing observed: logsumexp_k log(w_k + 1e-16) = log(sum_k (w_k + 1e-16)).
    empty = ~observed.any(axis=1)
    assert empty.sum() >= empty_rows
    np.testing.assert_allclose(
        got[empty], np.log(np.sum(params.weights + 1e-16)), rtol=0, atol=1e-15
    )


@pytest.mark.parametrize("n, d, K, missing, empty_rows, zero_weight", LL_CONFIGS)
def test_e_step_matches_brute_force(n, d, K, missing, empty_rows, zero_weight):
    X = make_data(n, d, K, missing, seed=n + d + K, empty_rows=empty_rows)
    params = random_params(K, d, seed=7 * K, zero_weight=zero_weight)
    observed = ~np.isnan(X)
    out = e_step(as_jax(params), dense_arrays(X))
    resp, ll = np.asarray(out.resp), out.log_likelihood
    # brute force, one row at a time: softmax of the brackets
    expected = np.empty((n, K))
    for u in range(n):
        c = observed[u]
        logs = np.array(
            [
                np.log(params.weights[k] + 1e-16)
                + norm.logpdf(X[u, c], params.mu[k, c], np.sqrt(params.var[k])).sum()
                for k in range(K)
            ]
        )
        expected[u] = np.exp(logs - logs.max()) / np.exp(logs - logs.max()).sum()
    np.testing.assert_allclose(resp, expected, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(resp.sum(axis=1), 1.0, rtol=0, atol=1e-13)
    assert float(ll) == pytest.approx(
        logsumexp(oracle_log_joint(X, params), axis=1).sum(), rel=1e-12
    )
    empty = ~observed.any(axis=1)
    np.testing.assert_allclose(
        resp[empty], np.broadcast_to(params.weights, (empty.sum(), K)), atol=1e-15
    )
    if zero_weight:  # an emptied component keeps only the 1e-16 floor's share
        assert np.all(resp[empty, 0] <= 1.01e-16)


# ---------------------------------------------------------------- M-step


def _mstep_case():
    """Data and responsibilities where some (component, column) masses are below, at and above 1."""
    nan = np.nan
    X = np.array(
        [
            [1.0, 10.0, 2.0, nan],
            [2.0, nan, 3.0, 4.0],
            [3.0, nan, nan, 5.0],
            [4.0, nan, 5.0, nan],
            [5.0, nan, nan, nan],
            [nan, nan, nan, nan],
        ]
    )
    # Column 1 is observed only in row 0, so every component's mass there is < 1 and its mean
    # stays put. Column 3 (rows 1, 2): component 0 has mass exactly 0.5 + 0.5 = 1 (updated),
    # component 1 has 0.25 + 0.25 (kept), component 2 has 0.25 + 0.25 (kept).
    resp = np.array(
        [
            [0.6, 0.3, 0.1],
            [0.5, 0.25, 0.25],
            [0.5, 0.25, 0.25],
            [0.125, 0.75, 0.125],
            [0.0, 1.0, 0.0],
            [0.2, 0.3, 0.5],
        ]
    )
    old = MixtureParams(
        np.array([[0.5, -7.0, 1.5, 2.5], [9.0, 8.0, 7.0, 6.0], [-1.0, -2.0, -3.0, -4.0]]),
        np.array([1.3, 0.7, 2.2]),
        np.array([0.2, 0.5, 0.3]),
    )
    return X, resp, old


@pytest.mark.parametrize("min_var", [0.0, 0.25, 1.0, 50.0])
def test_m_step_matches_loop_oracle(min_var):
    X, resp, old = _mstep_case()
    got = m_step(suff_stats(jnp.asarray(resp), dense_arrays(X), "spherical"), as_jax(old), min_var)
    expected = oracle_m_step(X, resp, old, min_var)
    assert_params_close(numpy_params(got), expected, rtol=1e-12, atol=1e-12)
    # the case really exercises the rule: kept means in column 1 for all, column 3 for k = 1, 2
    np.testing.assert_array_equal(np.asarray(got.mu)[:, 1], old.mu[:, 1])
    np.testing.assert_array_equal(np.asarray(got.mu)[1:, 3], old.mu[1:, 3])
    assert np.asarray(got.mu)[0, 3] == pytest.approx(4.5, rel=1e-14)  # (0.5 * 4 + 0.5 * 5) / 1
    assert np.all(np.asarray(got.var) >= min_var)
    if min_var == 50.0:
        np.testing.assert_array_equal(np.asarray(got.var), 50.0)


def test_m_step_random_against_oracle(rng):
    X = make_data(30, 7, 4, 0.5, seed=3, empty_rows=2)
    resp = rng.dirichlet(np.full(4, 0.3), size=30)  # peaked: many masses below 1
    old = random_params(4, 7, seed=11)
    got = m_step(suff_stats(jnp.asarray(resp), dense_arrays(X), "spherical"), as_jax(old), 0.25)
    assert_params_close(numpy_params(got), oracle_m_step(X, resp, old, 0.25), 1e-12, 1e-12)


def test_m_step_floor_on_collapsed_component():
    # Component 0 owns three identical rows: its unfloored variance is 0, so min_var decides.
    X = np.array([[1.0, 2.0], [1.0, 2.0], [1.0, 2.0], [5.0, 9.0], [6.0, 7.0]])
    resp = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    old = MixtureParams(np.zeros((2, 2)), np.ones(2), np.full(2, 0.5))
    got = m_step(suff_stats(jnp.asarray(resp), dense_arrays(X), "spherical"), as_jax(old), 0.3)
    np.testing.assert_allclose(np.asarray(got.mu), [[1.0, 2.0], [5.5, 8.0]], rtol=1e-14)
    assert float(got.var[0]) == 0.3
    assert float(got.var[1]) == pytest.approx((0.25 + 1 + 0.25 + 1) / 4, rel=1e-14)
    np.testing.assert_allclose(np.asarray(got.weights), [0.6, 0.4])


# ---------------------------------------------------------------- full EM runs


# (n, d, K, missing, init, empty_rows)
EM_CONFIGS = [
    pytest.param(60, 6, 3, 0.3, "kmeans++", 0, id="n60-d6-K3-kpp"),
    pytest.param(60, 6, 3, 0.3, "random_rows", 3, id="n60-d6-K3-rr-empty"),
    pytest.param(40, 10, 5, 0.5, "random_rows", 2, id="n40-d10-K5-half-missing"),
    pytest.param(80, 4, 2, 0.0, "kmeans++", 0, id="n80-d4-K2-complete"),
    pytest.param(25, 8, 6, 0.3, "kmeans++", 1, id="n25-d8-K6-many-comp"),
    pytest.param(50, 5, 1, 0.2, "random_rows", 0, id="n50-d5-K1"),
]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("n, d, K, missing, init, empty_rows", EM_CONFIGS)
def test_em_invariants(n, d, K, missing, init, empty_rows, seed):
    X = make_data(n, d, max(K, 2), missing, seed=100 + seed, empty_rows=empty_rows)
    min_var = 0.25
    res = jaxmix.fit_em(X, K, n_init=2, seed=seed, init=init, min_var=min_var)
    h = res.history
    assert len(h) == res.n_iter >= 1
    # log-likelihood never decreases (GEM property, also under the floor and the keep rule)
    assert np.all(np.diff(h) >= -1e-9 * np.abs(h[1:])), np.diff(h)
    assert res.log_likelihood == h[-1]
    assert res.log_likelihood == res.restart_log_likelihoods.max()
    np.testing.assert_allclose(res.weights.sum(), 1.0, rtol=0, atol=1e-12)
    assert np.all(res.weights >= 0)
    assert np.all(res.var >= min_var)
    np.testing.assert_allclose(res.resp.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    assert res.resp.shape == (n, K) and res.mu.shape == (K, d) and res.var.shape == (K,)
    for arr in (res.mu, res.var, res.weights, res.resp, h, res.restart_log_likelihoods):
        assert np.all(np.isfinite(arr))
    if res.converged:
        assert res.n_iter == 1 or h[-1] - h[-2] <= 1e-6 * abs(h[-1])
    # the reported LL is the data's LL at the parameters before the last M-step: check that the
    # final parameters are at least as good (one more E-step can only go up)
    ll_final = logsumexp(oracle_log_joint(X, res.params), axis=1).sum()
    assert ll_final >= res.log_likelihood - 1e-9 * abs(res.log_likelihood)


@pytest.mark.parametrize(
    "n, d, K, missing, empty_rows, min_var",
    [
        pytest.param(30, 5, 3, 0.3, 2, 0.25, id="n30-d5-K3"),
        pytest.param(20, 4, 2, 0.0, 0, 0.01, id="n20-d4-K2-complete"),
        pytest.param(25, 6, 4, 0.6, 1, 1.0, id="n25-d6-K4-sparse"),
    ],
)
def test_fit_em_matches_numpy_em_from_explicit_start(n, d, K, missing, empty_rows, min_var):
    """The whole pipeline (validation, standardisation, compiled loop) vs a plain NumPy loop."""
    X = make_data(n, d, K, missing, seed=n + K, empty_rows=empty_rows)
    start = random_params(K, d, seed=d)
    start = start._replace(cov=np.maximum(start.var, min_var))
    res = jaxmix.fit_em(X, K, init=start, tol=0.0, max_iter=6, min_var=min_var)
    # tol = 0 still stops once the LL stops increasing (rounding); compare what was run
    n_iter = res.n_iter
    assert n_iter >= 4
    hist, params, resp = oracle_em(X, start, n_iter, min_var)
    np.testing.assert_allclose(res.history, hist, rtol=1e-10)
    assert_params_close(res.params, params, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(res.resp, resp, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("init", ["random_rows", "kmeans++"])
def test_batched_restart_equals_single_run(init):
    X = make_data(70, 6, 4, 0.3, seed=5, empty_rows=2)
    seed, R = 3, 4
    batched = jaxmix.fit_em(X, 4, n_init=R, seed=seed, init=init)
    singles = [jaxmix.fit_em(X, 4, n_init=1, seed=seed + r, init=init) for r in range(R)]
    for r, single in enumerate(singles):
        assert batched.restart_n_iter[r] == single.n_iter
        assert batched.restart_converged[r] == single.converged
        assert batched.restart_log_likelihoods[r] == pytest.approx(single.log_likelihood, rel=1e-12)
    # restarts stop on their own criterion: the iteration counts really differ
    assert len(set(batched.restart_n_iter.tolist())) > 1
    best = singles[batched.best_restart]
    assert_params_close(batched.params, best.params, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(batched.history, best.history, rtol=1e-12)
    np.testing.assert_allclose(batched.resp, best.resp, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("init", ["random_rows", "kmeans++"])
def test_batched_kernel_every_restart_equals_single_kernel(init):
    """Every restart of the vmapped loop (not only the winner) equals the unbatched loop."""
    X = make_data(70, 6, 4, 0.3, seed=6, empty_rows=1)
    layout = as_data(X)
    # K = 5 for 4 clusters: the restarts stop after different numbers of iterations
    start = init_params(init, layout, 5, n_init=4, seed=0, min_var=0.25)
    std = Standardizer.fit(layout.summary())
    data = layout.device(std).local()
    internal = as_device(to_internal(start, std), jnp.float64)
    consts = EMConstants(
        tol=jnp.asarray(1e-6),
        min_var=jnp.asarray(0.25 / std.scale**2),
        ll_shift=jnp.asarray(std.log_likelihood_shift(layout.nnz)),
        prior=None,
        prior_shift=jnp.asarray(0.0),
    )
    family = get_family("spherical")

    def run(p):
        state = init_state(p, data.n_slots, data.dtype, 200)
        return loop(lambda s: step(s, data, family, consts), state, 200)

    batched = jax.jit(jax.vmap(run))(internal)
    n_iters = []
    for r in range(4):
        single = jax.jit(run)(jax.tree.map(lambda a, r=r: a[r], internal))
        assert int(batched.n_iter[r]) == int(single.n_iter)
        n_iters.append(int(single.n_iter))
        for a, b in zip(
            jax.tree.leaves(batched.params), jax.tree.leaves(single.params), strict=True
        ):
            np.testing.assert_allclose(np.asarray(a)[r], np.asarray(b), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(batched.history[r], single.history, rtol=1e-12)
        np.testing.assert_allclose(batched.resp[r], single.resp, rtol=1e-12, atol=1e-12)
    assert len(set(n_iters)) > 1


def test_batch_sizes_and_executed_iterations():
    assert batch_sizes(1) == (1,)
    assert batch_sizes(2) == (1, 2)
    assert batch_sizes(5) == (1, 2, 4, 5)
    assert batch_sizes(8) == (1, 2, 4, 8)
    # small blocks are not compacted: compiling the copies would cost more than they save
    assert batch_sizes(5, COMPACT_MIN_ENTRIES) == (5,)
    assert batch_sizes(5, COMPACT_MIN_ENTRIES + 1) == (1, 2, 4, 5)
    # 5 running for 3 iterations, then 4 (batch 4), 3 (batch 4), 1 (batch 1)
    assert executed_iterations([3, 4, 5, 5, 9]) == 3 * 5 + 4 + 4 + 4 * 1
    assert executed_iterations([7, 7, 7]) == 21
    assert executed_iterations([6]) == 6


@pytest.mark.parametrize(
    "method, prior, covariance, seeds",
    [
        pytest.param("dense", None, "spherical", (2, 1, 0, 3), id="dense-ml-spherical"),
        pytest.param("sparse", jaxmix.Prior(), "diag", (1, 2, 6, 4), id="sparse-map-diag"),
    ],
)
def test_restarts_of_very_different_lengths_each_equal_a_single_run(
    monkeypatch, method, prior, covariance, seeds
):
    """Restarts leave the batch as they stop (the batch shrinks 5 -> 4 -> 4 with a finished
    restart as padding -> 2 -> 1): every restart still follows its single-run trajectory.
    Four starts run 13 to 52 iterations, the fifth starts at a converged fit and runs 2. (The
    matrix is small: compaction is forced, as on a large one.)"""
    monkeypatch.setattr(em_module, "COMPACT_MIN_ENTRIES", 0)
    X = make_data(60, 6, 4, 0.3, seed=10, empty_rows=1)
    kw = dict(prior=prior, covariance=covariance, method=method, min_var=0.1, tol=1e-8)

    def start(seed):
        p = reference_random_rows(X, 4, seed)
        var = p.var if covariance == "spherical" else np.repeat(p.var[:, None], 6, axis=1)
        return MixtureParams(p.mu, var, p.weights)

    starts = [start(seed) for seed in seeds]
    singles = [jaxmix.fit_em(X, 4, init=s, **kw) for s in starts]
    converged = singles[0].params
    starts.append(MixtureParams(converged.mu, np.asarray(converged.var), converged.weights))
    singles.append(jaxmix.fit_em(X, 4, init=starts[-1], **kw))
    stacked = MixtureParams(*(np.stack(p) for p in zip(*starts, strict=True)))
    with count_traces() as traces:
        batched = jaxmix.fit_em(X, 4, init=stacked, **kw)
    assert traces["em-batches[4]"] == 1  # compiled with the batch sizes 1, 2, 4, 5
    n_iter = batched.restart_n_iter
    assert len(set(n_iter.tolist())) == 5 and n_iter.max() >= 5 * n_iter.min(), n_iter
    assert executed_iterations(n_iter) < 5 * n_iter.max()
    np.testing.assert_array_equal(n_iter, [s.n_iter for s in singles])
    np.testing.assert_array_equal(batched.restart_converged, [s.converged for s in singles])
    np.testing.assert_allclose(
        batched.restart_objectives, [s.objective for s in singles], rtol=1e-12
    )
    assert batched.best_restart == int(np.argmax([s.objective for s in singles]))
    for r, single in enumerate(singles):
        restart = jax.tree.map(lambda a, r=r: a[r], batched.restart_params)
        assert_params_close(restart, single.params, rtol=1e-11, atol=1e-11)
    best = singles[batched.best_restart]
    np.testing.assert_allclose(batched.history, best.history, rtol=1e-12)
    np.testing.assert_allclose(batched.resp, best.resp, rtol=1e-11, atol=1e-12)


def test_same_shapes_do_not_recompile():
    # shapes no other test uses, so the counter is not disturbed by earlier compilations
    X1 = make_data(41, 13, 3, 0.3, seed=1)
    X2 = make_data(41, 13, 3, 0.4, seed=2) * 3.0 + 1.0
    jaxmix.fit_em(X1, 3, n_init=2, max_iter=53)
    # different values, seed, init method, tol and min_var: same compiled function
    with count_traces() as traces:
        jaxmix.fit_em(
            X2, 3, n_init=2, max_iter=53, seed=5, init="random_rows", tol=1e-5, min_var=0.1
        )
    assert traces["em"] == 0
    # another number of rows pads to the same size class: no new program either
    with count_traces() as traces:
        jaxmix.fit_em(make_data(43, 13, 3, 0.3, seed=3), 3, n_init=2, max_iter=53)
    assert traces["em"] == traces["seed"] == 0
    # a different number of columns does retrace (the counter works)
    with count_traces() as traces:
        jaxmix.fit_em(make_data(43, 14, 3, 0.3, seed=3), 3, n_init=2, max_iter=53)
    assert traces["em"] == 1


# ---------------------------------------------------------------- explicit initialisation


def test_random_rows_init_is_the_reference_initialisation():
    X = make_data(40, 5, 3, 0.3, seed=9)
    for seed in (0, 4):
        named = jaxmix.fit_em(X, 3, init="random_rows", seed=seed)
        explicit = jaxmix.fit_em(X, 3, init=reference_random_rows(X, 3, seed))
        assert named.n_iter == explicit.n_iter
        assert named.log_likelihood == pytest.approx(explicit.log_likelihood, rel=1e-13)
        assert_params_close(named.params, explicit.params, rtol=1e-12, atol=1e-12)


def test_previous_result_as_init_continues_the_run():
    X = make_data(40, 6, 3, 0.3, seed=12, empty_rows=1)
    start = reference_random_rows(X, 3, seed=2)
    first = jaxmix.fit_em(X, 3, init=start, tol=0.0, max_iter=4)
    cont = jaxmix.fit_em(X, 3, init=first, tol=0.0, max_iter=5)
    cont_params = jaxmix.fit_em(X, 3, init=first.params, tol=0.0, max_iter=5)
    whole = jaxmix.fit_em(X, 3, init=start, tol=0.0, max_iter=9)
    assert first.n_iter == 4 and cont.n_iter == 5 and whole.n_iter == 9
    np.testing.assert_allclose(cont.history, whole.history[4:], rtol=1e-11)
    assert_params_close(cont.params, whole.params, rtol=1e-9, atol=1e-9)
    assert_params_close(cont.params, cont_params.params, rtol=0, atol=0)
    # mapping and tuple forms are the same parameters
    mapping = {"mu": start.mu, "var": start.var, "weights": start.weights}
    for form in (mapping, tuple(start)):
        other = jaxmix.fit_em(X, 3, init=form, tol=0.0, max_iter=4)
        assert_params_close(other.params, first.params, rtol=0, atol=0)


def test_batched_explicit_init():
    X = make_data(40, 5, 3, 0.3, seed=13)
    starts = [reference_random_rows(X, 3, seed=s) for s in range(3)]
    stacked = MixtureParams(*(np.stack(p) for p in zip(*starts, strict=True)))
    assert stacked.mu.shape == (3, 3, 5)
    res = jaxmix.fit_em(X, 3, init=stacked)
    singles = [jaxmix.fit_em(X, 3, init=s) for s in starts]
    np.testing.assert_allclose(
        res.restart_log_likelihoods, [s.log_likelihood for s in singles], rtol=1e-12
    )
    np.testing.assert_array_equal(res.restart_n_iter, [s.n_iter for s in singles])
    assert res.best_restart == int(np.argmax([s.log_likelihood for s in singles]))
    assert_params_close(res.params, singles[res.best_restart].params, 1e-12, 1e-12)
    # n_init equal to the number of starting points is accepted too
    assert jaxmix.fit_em(X, 3, init=stacked, n_init=3).log_likelihood == res.log_likelihood


def _good():
    return MixtureParams(np.zeros((3, 5)), np.ones(3), np.full(3, 1 / 3))


@pytest.mark.parametrize(
    "init, n_init, match",
    [
        pytest.param(
            _good()._replace(mu=np.zeros((3, 4))), 1, r"init mu must have shape", id="mu-d"
        ),
        pytest.param(
            _good()._replace(mu=np.zeros((2, 5))), 1, r"init mu must have shape", id="mu-K"
        ),
        pytest.param(_good()._replace(mu=np.zeros(5)), 1, r"init mu must have shape", id="mu-1d"),
        pytest.param(_good()._replace(cov=np.ones(2)), 1, r"init var must have shape", id="var"),
        pytest.param(
            _good()._replace(weights=np.full(4, 0.25)), 1, r"init weights must have shape", id="w"
        ),
        pytest.param(
            MixtureParams(np.zeros((2, 3, 5)), np.ones((3, 3)), np.full((2, 3), 1 / 3)),
            1,
            r"init var must have shape",
            id="R-mismatch",
        ),
        pytest.param(
            MixtureParams(np.zeros((2, 3, 5)), np.ones((2, 3)), np.full((2, 3), 1 / 3)),
            3,
            r"n_init=3 does not match",
            id="n_init-mismatch",
        ),
        pytest.param(_good()._replace(cov=np.array([1.0, 0.0, 1.0])), 1, r"var must be", id="var0"),
        pytest.param(_good()._replace(weights=np.full(3, 0.5)), 1, r"sum to 1", id="w-sum"),
        pytest.param(
            _good()._replace(mu=np.full((3, 5), np.nan)), 1, r"must be finite", id="mu-nan"
        ),
        pytest.param({"mu": np.zeros((3, 5)), "var": np.ones(3)}, 1, r"weights", id="map-key"),
        pytest.param("em++", 1, r"init must be one of", id="bad-name"),
    ],
)
def test_explicit_init_mismatch_raises(init, n_init, match):
    X = make_data(20, 5, 3, 0.2, seed=1)
    with pytest.raises(ValueError, match=match):
        jaxmix.fit_em(X, 3, init=init, n_init=n_init)


def test_explicit_init_of_wrong_type_raises():
    X = make_data(20, 5, 3, 0.2, seed=1)
    with pytest.raises(TypeError, match=r"init must be one of"):
        jaxmix.fit_em(X, 3, init=42)


# ---------------------------------------------------------------- K = 1 closed form


@pytest.mark.parametrize("missing", [0.0, 0.35])
@pytest.mark.parametrize("min_var", [0.25, 30.0])
def test_single_component_closed_form(missing, min_var):
    X = make_data(60, 5, 2, missing, seed=21)
    X[0, 0] = 2.0  # every column observed at least once
    X[:, 1] += 10.0
    obs = ~np.isnan(X)
    # a floor above the data's pooled variance decides the variance, and says so
    above = min_var > 1.0
    with pytest.warns(jaxmix.VarianceFloorWarning) if above else contextlib.nullcontext():
        res = jaxmix.fit_em(X, 1, init="random_rows", min_var=min_var)
    mu = np.array([X[obs[:, l], l].mean() for l in range(X.shape[1])])
    resid = np.concatenate([X[obs[:, l], l] - mu[l] for l in range(X.shape[1])])
    var = max(np.mean(resid**2), min_var)
    if missing == 0.0:
        np.testing.assert_allclose(mu, X.mean(axis=0), rtol=1e-14)
        assert np.mean(resid**2) == pytest.approx(np.mean((X - X.mean(axis=0)) ** 2), rel=1e-13)
    ll = sum(norm.logpdf(X[obs[:, l], l], mu[l], np.sqrt(var)).sum() for l in range(X.shape[1]))
    assert res.converged
    np.testing.assert_allclose(res.mu[0], mu, rtol=1e-12, atol=1e-12)
    assert res.var[0] == pytest.approx(var, rel=1e-12)
    assert res.weights[0] == 1.0
    np.testing.assert_array_equal(res.resp, 1.0)
    assert res.log_likelihood == pytest.approx(ll, rel=1e-12)


# ---------------------------------------------------------------- inputs are never modified


def _fortran_with_nan():
    X = make_data(30, 5, 2, 0.3, seed=31, empty_rows=1)
    return np.asfortranarray(X)


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize(
    "func",
    [
        pytest.param(lambda X: jaxmix.fit_em(X, 2, n_init=2), id="fit_em"),
        pytest.param(lambda X: jaxmix.kmeans(X, 2, n_init=2), id="kmeans"),
        pytest.param(
            lambda X: jaxmix.complete(X, jaxmix.fit_em(X, 2), return_std=True), id="complete"
        ),
        pytest.param(lambda X: jaxmix.responsibilities(X, jaxmix.fit_em(X, 2)), id="resp"),
        pytest.param(lambda X: jaxmix.holdout_split(X, 0.2, seed=1), id="holdout_split"),
        pytest.param(lambda X: jaxmix.mean_baseline(X, "user"), id="mean_baseline-user"),
        pytest.param(lambda X: jaxmix.mean_baseline(X, "item"), id="mean_baseline-item"),
    ],
)
def test_input_is_never_modified(func, order):
    X = _fortran_with_nan() if order == "F" else np.ascontiguousarray(_fortran_with_nan())
    copy = X.copy(order="K")
    flags = (X.flags.c_contiguous, X.flags.f_contiguous, X.flags.writeable)
    out = func(X)
    np.testing.assert_array_equal(X, copy)  # NaN compare equal here
    assert (X.flags.c_contiguous, X.flags.f_contiguous, X.flags.writeable) == flags
    # whatever came back does not alias the input
    for arr in out if isinstance(out, tuple) else (out,):
        if isinstance(arr, np.ndarray):
            assert not np.shares_memory(arr, X)


# ---------------------------------------------------------------- completion


def test_complete_against_independent_posterior():
    X = make_data(50, 6, 3, 0.35, seed=41, empty_rows=2)
    res = jaxmix.fit_em(X, 3, n_init=2, seed=1)
    filled, sd = jaxmix.complete(X, res, return_std=True)
    obs = ~np.isnan(X)
    resp, _ = oracle_e_step(X, res.params)
    mean = resp @ res.mu
    assert not np.isnan(filled).any()
    np.testing.assert_array_equal(filled[obs], X[obs])  # observed entries copied exactly
    np.testing.assert_allclose(filled[~obs], mean[~obs], rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(sd[obs], 0.0)
    # predictive variance by brute force: sum_k r_k (var_k + est_kl + mu_kl^2) - mean^2, where
    # est_kl is what estimating mu_kl and var_k from the data adds (no prior): var_k / N_kl for
    # the mean, and var_k (N_k / (N_k - d - 2) - 1) for the variance (N_kl the expected entries
    # of column l in component k, N_k their sum over columns)
    N_kl = resp.T @ obs.astype(float)
    N_k = N_kl.sum(axis=1)
    coef = res.var[:, None] / np.maximum(N_kl, 1.0)
    noise = res.var * (N_k / (N_k - X.shape[1] - 2.0) - 1.0)
    second = np.zeros_like(X)
    for k in range(3):
        est_k = coef[k] + noise[k]
        second += resp[:, [k]] * (res.var[k] + est_k + res.mu[k] ** 2)[None, :]
    np.testing.assert_allclose(sd[~obs] ** 2, (second - mean**2)[~obs], rtol=1e-9)
    np.testing.assert_allclose(res.estimation_cov.coef, coef, rtol=1e-9)
    assert np.all(sd[~obs] >= np.sqrt(res.var.min()) * (1 - 1e-12))
    # without return_std the same completion comes back
    np.testing.assert_array_equal(jaxmix.complete(X, res), filled)
    # a row with nothing observed is filled with weights @ mu
    np.testing.assert_allclose(filled[0], res.weights @ res.mu, rtol=1e-12)
    np.testing.assert_allclose(jaxmix.responsibilities(X, res), resp, rtol=1e-10, atol=1e-12)


def test_complete_with_mask_and_new_data():
    X = make_data(40, 5, 2, 0.0, seed=42)
    res = jaxmix.fit_em(X, 2)
    mask = np.random.default_rng(0).random(X.shape) > 0.3
    filled = jaxmix.complete(X, res, mask=mask)
    Xn = np.where(mask, X, np.nan)
    resp, _ = oracle_e_step(Xn, res.params)
    np.testing.assert_array_equal(filled[mask], X[mask])
    np.testing.assert_allclose(filled[~mask], (resp @ res.mu)[~mask], rtol=1e-10)
    # MixtureParams work as well as results; wrong number of columns is refused
    np.testing.assert_array_equal(jaxmix.complete(X, res.params, mask=mask), filled)
    with pytest.raises(ValueError, match="columns"):
        jaxmix.complete(X[:, :4], res)


# ---------------------------------------------------------------- K-means


def oracle_lloyd(X, mu, tol):
    """Lloyd's algorithm in the reference's loop order (assign, recompute, cost)."""
    mu = mu.copy()
    prev = None
    while True:
        d2 = ((X[:, None, :] - mu[None, :, :]) ** 2).sum(axis=2)
        labels = np.argmin(d2, axis=1)
        for k in range(mu.shape[0]):
            if np.any(labels == k):
                mu[k] = X[labels == k].mean(axis=0)
        cost = sum(((X[labels == k] - mu[k]) ** 2).sum() for k in range(mu.shape[0]))
        if prev is not None and prev - cost <= tol:
            return mu, labels, cost
        prev = cost


@pytest.mark.parametrize(
    "n, d, K, seed",
    [
        pytest.param(60, 2, 3, 0, id="n60-d2-K3"),
        pytest.param(100, 5, 4, 1, id="n100-d5-K4"),
        pytest.param(30, 3, 1, 2, id="n30-d3-K1"),
        pytest.param(45, 4, 6, 3, id="n45-d4-K6"),
    ],
)
def test_kmeans_matches_lloyd_oracle(n, d, K, seed):
    X = make_data(n, d, max(K, 2), 0.0, seed=50 + seed)
    res = jaxmix.kmeans(X, K, seed=seed, init="random_rows")
    mu, labels, cost = oracle_lloyd(X, reference_random_rows(X, K, seed).mu, 1e-4)
    assert res.cost == pytest.approx(cost, rel=1e-10)
    np.testing.assert_array_equal(res.labels, labels)
    np.testing.assert_allclose(res.mu, mu, rtol=1e-10, atol=1e-10)
    counts = np.bincount(labels, minlength=K)
    np.testing.assert_allclose(res.weights, counts / n, rtol=1e-14)
    sse = np.array([((X[labels == k] - mu[k]) ** 2).sum() for k in range(K)])
    nonempty = counts > 0
    np.testing.assert_allclose(
        res.var[nonempty], sse[nonempty] / (d * counts[nonempty]), rtol=1e-9, atol=1e-12
    )


def test_kmeans_restarts_keep_the_lowest_cost():
    X = make_data(80, 3, 5, 0.0, seed=60)
    res = jaxmix.kmeans(X, 5, n_init=4, seed=2)
    costs = [oracle_lloyd(X, reference_random_rows(X, 5, 2 + r).mu, 1e-4)[2] for r in range(4)]
    np.testing.assert_allclose(res.restart_costs, costs, rtol=1e-10)
    assert res.best_restart == int(np.argmin(costs))
    assert res.cost == min(res.restart_costs)


# --------------------------------------------------------------------------------------------
# progress


def _progress_lines(err: str, prefix: str) -> list[str]:
    assert "\r" not in err  # no carriage-return fragments in a log
    assert err.endswith("\n")
    return [line for line in err.splitlines() if line.startswith(prefix)]


def test_em_progress_shows_the_best_restarts_objective_in_whole_lines(capsys):
    X = jaxmix.load_ratings(jaxmix.sample_path())
    # a case where the winner is not the restart that runs longest (the last one to report)
    for seed in range(10):
        res = jaxmix.fit_em(X, 4, n_init=4, seed=seed, progress=True)
        if res.restart_n_iter[res.best_restart] < res.restart_n_iter.max():
            break
    else:
        pytest.fail("every winner ran longest: the case does not tell the restarts apart")
    last = _progress_lines(capsys.readouterr().err, "EM K=4 x4: ")[-1]
    assert f" {res.restart_n_iter.max()} it," in last
    assert f"obj={res.objective:.6g}," in last
    longest = int(np.argmax(res.restart_n_iter))
    assert f"obj={res.restart_objectives[longest]:.6g}," not in last


def test_plain_progress_writes_one_line_per_update(capsys, monkeypatch):
    from jaxmix import _progress

    monkeypatch.setattr(_progress, "LINE_INTERVAL", 0.0)
    X = make_data(30, 4, 2, 0.2, seed=1)
    res = jaxmix.fit_em(X, 2, n_init=2, seed=0, tol=0.0, max_iter=6, progress=True)
    lines = _progress_lines(capsys.readouterr().err, "EM K=2 x2: ")
    counts = [int(line.split(": ")[1].split(" ")[0]) for line in lines]
    # iterations 2.. are reported (the first runs before the loop), then the final line
    last = int(res.restart_n_iter.max())
    assert last > 2
    assert counts == [*range(2, last + 1), last]
    assert f"obj={res.objective:.6g}," in lines[-1]


def test_select_k_progress(capsys):
    X = make_data(40, 5, 2, 0.2, seed=2)
    sel = jaxmix.select_k(X, [1, 2], criterion="heldout", n_init=1, progress=True)
    lines = _progress_lines(capsys.readouterr().err, "select_k heldout: ")
    assert lines[-1].startswith("select_k heldout: 3/3 fit, ")
    assert f"best lpd={sel.lpd.max():.6g}," in lines[-1]

"""Every covariance family, through the same tests (float64).

A family is one module of ``jaxmix/models/families``; these tests run over ``FAMILIES``, so a new
family is tested here by being registered. Oracles: SciPy's row-by-row log densities with the
family's per-column variances, a NumPy M-step written from the formulas, and the dense layout
against the triples. The shared family also has its own checks (pooled variance, the K-means
limit).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import dense_arrays, jax_params
from scipy import stats
from scipy.special import logsumexp

import jaxmix
from jaxmix.inference.em import e_step, m_step, suff_stats
from jaxmix.models.families import FAMILIES, SharedCov, get_family

NAMES = sorted(FAMILIES)


def _data(rng, n=50, d=6, K=3, missing=0.3):
    centres = rng.normal(0.0, 3.0, (K, d))
    X = centres[rng.integers(K, size=n)] + rng.normal(size=(n, d))
    X[rng.random(X.shape) < missing] = np.nan
    X[0] = np.nan  # a row with nothing observed
    X[:, 1][rng.random(n) < 0.9] = np.nan  # a column observed a few times
    return X


def _params(rng, family, K, d):
    """Random parameters of ``family`` (typed)."""
    var = rng.uniform(0.3, 2.0, family.var_shape(K, d))
    return jaxmix.MixtureParams(
        rng.normal(0.0, 2.0, (K, d)), family.cov_type(var), rng.dirichlet(np.ones(K))
    )


def _oracle_log_joint(X, params, family):
    """log(w_k + 1e-16) + sum over the row's observed coordinates of norm.logpdf, (n, K)."""
    K, d = params.mu.shape
    var = np.asarray(family.var_kd(params.cov, K, d))
    out = np.empty((X.shape[0], K))
    for u in range(X.shape[0]):
        c = ~np.isnan(X[u])
        for k in range(K):
            out[u, k] = (
                np.log(params.weights[k] + 1e-16)
                + stats.norm.logpdf(X[u, c], params.mu[k, c], np.sqrt(var[k, c])).sum()
            )
    return out


@pytest.mark.parametrize("name", NAMES)
def test_log_density_and_e_step_match_scipy(rng, name):
    family = get_family(name)
    X = _data(rng)
    params = _params(rng, family, 3, X.shape[1])
    lj = _oracle_log_joint(X, params, family)
    out = e_step(jax_params(params), dense_arrays(X))
    np.testing.assert_allclose(out.row_ll, logsumexp(lj, axis=1), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(out.resp, np.exp(lj - logsumexp(lj, axis=1, keepdims=True)), 1e-10)
    assert jaxmix.log_objective(X, params) == pytest.approx(logsumexp(lj, axis=1).sum(), 1e-12)
    # the triples give the same E-step
    S = jaxmix.sparse_ratings(X)
    np.testing.assert_allclose(jaxmix.responsibilities(S, params), out.resp, rtol=1e-10)
    assert jaxmix.log_objective(S, params) == pytest.approx(jaxmix.log_objective(X, params), 1e-12)


def _oracle_m_step(X, R, params, family, prior, min_var):
    """The M-step from the formulas: means by column, then the family's variances pooled over
    its cells (a component, a component and column, or everything), then the weights."""
    n, d = X.shape
    K = R.shape[1]
    obs = ~np.isnan(X)
    var_kd = np.asarray(family.var_kd(params.cov, K, d))
    mu = np.array(params.mu, np.float64)
    for k in range(K):
        for l in range(d):
            r, x = R[obs[:, l], k], X[obs[:, l], l]
            if prior is None:
                if r.sum() >= 1.0:
                    mu[k, l] = (r * x).sum() / r.sum()
            else:
                p0 = 1.0 / prior.mean_sd[l] ** 2
                mu[k, l] = (prior.mean[l] * p0 + (r * x).sum() / var_kd[k, l]) / (
                    p0 + r.sum() / var_kd[k, l]
                )
    resid = np.zeros((K, d))
    count = np.zeros((K, d))
    for k in range(K):
        for l in range(d):
            r, x = R[obs[:, l], k], X[obs[:, l], l]
            resid[k, l] = (r * (x - mu[k, l]) ** 2).sum()
            count[k, l] = r.sum()
    old = np.asarray(params.cov.var, np.float64)
    pooled = {(): (resid.sum(), count.sum()), (K,): (resid.sum(1), count.sum(1))}
    S, N = pooled.get(old.shape, (resid, count))
    if prior is None:
        var = np.where(N > 0, S / np.where(N > 0, N, 1.0), old)
        w = R.sum(0) / n
    else:
        a, b = float(prior.var_shape), float(prior.var_scale)
        var = (S + 2 * b) / (N + 2 * a + 2)
        alpha = float(prior.alpha)
        w = (R.sum(0) + alpha - 1) / (n + K * (alpha - 1))
    return mu, np.maximum(var, min_var), w


@pytest.mark.parametrize("use_prior", [False, True])
@pytest.mark.parametrize("name", NAMES)
def test_m_step_matches_oracle(rng, name, use_prior):
    family = get_family(name)
    X = _data(rng)
    params = _params(rng, family, 3, X.shape[1])
    prior = jaxmix.Prior(alpha=3.0).resolve(X) if use_prior else None
    R = rng.dirichlet(np.full(3, 0.5), size=X.shape[0])
    data = dense_arrays(X)
    new = m_step(suff_stats(jnp.asarray(R), data, family), jax_params(params), 0.05, prior)
    mu, var, w = _oracle_m_step(X, R, params, family, prior, 0.05)
    assert type(new.cov) is family.cov_type
    np.testing.assert_allclose(new.mu, mu, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(new.var, var, rtol=1e-10)
    np.testing.assert_allclose(new.weights, w, rtol=1e-12)


# (family, prior, layout)
FIT_CONFIGS = [(n, p) for n in NAMES for p in (None, "default")]


@pytest.mark.parametrize("name, prior", FIT_CONFIGS)
def test_fit_invariants_and_dense_equals_triples(rng, name, prior):
    family = get_family(name)
    X = _data(rng, n=80)
    prior = None if prior is None else jaxmix.Prior()
    kw = dict(n_init=2, covariance=name, prior=prior, min_var=0.05, tol=1e-9)
    a = jaxmix.fit_em(X, 3, method="dense", **kw)
    b = jaxmix.fit_em(jaxmix.sparse_ratings(X), 3, chunk_size=64, dense_row_density=None, **kw)
    h = a.history
    assert np.all(np.diff(h) >= -1e-10 * np.abs(h[1:]))
    assert a.covariance == name and type(a.params.cov) is family.cov_type
    assert a.var.shape == family.var_shape(3, X.shape[1]) and np.all(a.var >= 0.05)
    assert a.weights.sum() == pytest.approx(1.0, abs=1e-12)
    assert a.n_iter == b.n_iter and a.best_restart == b.best_restart
    np.testing.assert_allclose(b.history, a.history, rtol=1e-10)
    for p, q in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params), strict=True):
        np.testing.assert_allclose(q, p, rtol=1e-8, atol=1e-9)
    # the returned parameters are at least as good as the reported objective
    assert jaxmix.log_objective(X, a.params, prior=a.prior) >= a.objective - 1e-9 * abs(a.objective)
    # completion: the law of total variance with the family's per-column variances
    filled, sd = jaxmix.complete(X, a, return_std=True)
    R = jaxmix.responsibilities(X, a)
    var_kd = family.var_kd(a.params.cov, 3, X.shape[1])
    mean = R @ a.mu
    miss = np.isnan(X)
    np.testing.assert_allclose(filled[miss], mean[miss], rtol=1e-10)
    second = R @ (var_kd + a.mu**2) - mean**2
    np.testing.assert_allclose(sd[miss], np.sqrt(second[miss]), rtol=1e-8)
    # BIC counts the family's parameters
    n, d = X.shape
    p = family.n_parameters(3, d)
    assert jaxmix.bic(X, a) == pytest.approx(a.log_likelihood - 0.5 * p * np.log(n))


def test_parameter_counts():
    K, d = 4, 7
    assert jaxmix.n_parameters(K, d, "spherical") == K * d + K + K - 1
    assert jaxmix.n_parameters(K, d, "diag") == K * d + K * d + K - 1
    assert jaxmix.n_parameters(K, d, "shared") == K * d + 1 + K - 1


def test_shared_pools_the_variance_of_all_components(rng):
    X = _data(rng, n=120, missing=0.2)
    res = jaxmix.fit_em(X, 3, covariance="shared", min_var=0.0, tol=1e-12, n_init=2)
    assert res.var.shape == () and type(res.params.cov) is SharedCov
    # at convergence the variance is the responsibility-weighted mean squared residual of every
    # observed entry around its component's mean
    R = jaxmix.responsibilities(X, res)
    obs = ~np.isnan(X)
    sq = np.where(obs[:, None, :], (np.nan_to_num(X)[:, None, :] - res.mu[None]) ** 2, 0.0)
    pooled = np.sum(R * sq.sum(axis=2)) / obs.sum()
    assert float(res.var) == pytest.approx(pooled, rel=1e-6)


def test_shared_family_tends_to_k_means(rng):
    """With a vanishing shared variance the E-step is K-means's assignment and the M-step its
    mean update."""
    X = rng.normal(size=(60, 4)) + 6.0 * rng.integers(3, size=(60, 1))  # complete data
    start = jaxmix.kmeans(X, 3, n_init=1, seed=1, max_iter=1)  # one Lloyd step
    params = jaxmix.MixtureParams(start.mu, SharedCov(np.asarray(1e-6)), np.full(3, 1 / 3))
    data = dense_arrays(X)
    out = e_step(jax_params(params), data)
    labels = np.argmin(((X[:, None, :] - start.mu[None]) ** 2).sum(-1), axis=1)
    np.testing.assert_allclose(out.resp, np.eye(3)[labels], atol=1e-12)
    new = m_step(suff_stats(out.resp, data, "shared"), jax_params(params), 0.0)
    lloyd = np.stack([X[labels == k].mean(axis=0) for k in range(3)])
    np.testing.assert_allclose(new.mu, lloyd, rtol=1e-10)


@pytest.mark.parametrize("name", NAMES)
def test_relabelling_permutes_the_family_parameters(rng, name):
    family = get_family(name)
    params = _params(rng, family, 3, 4)
    perm = np.array([2, 0, 1])
    shuffled = params._replace(
        mu=params.mu[perm], cov=family.permute(params.cov, perm), weights=params.weights[perm]
    )
    back, found = jaxmix.relabel(jax.tree.map(lambda a: np.asarray(a)[None], shuffled), params)
    np.testing.assert_array_equal(found[0], np.argsort(perm))
    for p, q in zip(jax.tree.leaves(back), jax.tree.leaves(params), strict=True):
        np.testing.assert_allclose(np.asarray(p)[0], q)

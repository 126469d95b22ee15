"""MAP-EM and the diagonal family (float64).

Oracles: a NumPy M-step written coordinate by coordinate from the formulas in the module
docstring of :mod:`jaxmix.inference.em`, SciPy's row-by-row log densities, the conditional
optimality of each M-step piece checked by perturbation of the expected complete-data log
posterior, and properties over a table of configurations.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import jax.numpy as jnp
import numpy as np
import pytest
from helpers import dense_arrays, e_step, jax_params, m_step, numpy_params, suff_stats
from scipy import stats
from scipy.special import logsumexp

import jaxmix
from jaxmix.models.families import WEIGHT_EPS, family_of
from jaxmix.models.families.spherical import SphericalStats
from jaxmix.models.prior import log_prior
from jaxmix.testing import count_traces


def _planted(rng, n=120, d=6, K=3, missing=0.3, scale=1.0, offset=0.0):
    centres = rng.normal(0.0, 2.0, (K, d))
    sd = rng.uniform(0.3, 1.5, (K, d))
    labels = rng.integers(K, size=n)
    X = centres[labels] + sd[labels] * rng.normal(size=(n, d))
    X[rng.random(X.shape) < missing] = np.nan
    X[0] = np.nan  # a row with no observed entry
    return scale * X + offset


# (K, d, covariance, prior, missing rate)
CONFIGS = [
    (K, d, cov, prior, missing)
    for (K, d) in [(1, 4), (3, 6)]
    for cov in ("spherical", "diag")
    for prior in (None, "default", "strong")
    for missing in (0.0, 0.3, 0.7)
]
PRIORS = {
    None: None,
    "default": jaxmix.Prior(),
    "strong": jaxmix.Prior(alpha=20.0, mean_sd=0.2, var_shape=30.0),
}


def _ids(cfg):
    K, d, cov, prior, missing = cfg
    return f"K{K}-d{d}-{cov}-{prior}-m{missing}"


@pytest.mark.parametrize("cfg", CONFIGS, ids=_ids)
def test_objective_never_decreases_and_outputs_are_valid(rng, cfg):
    K, d, cov, prior_name, missing = cfg
    X = _planted(rng, d=d, K=K, missing=missing, scale=3.0, offset=10.0)
    res = jaxmix.fit_em(
        X,
        K,
        n_init=3,
        prior=PRIORS[prior_name],
        covariance=cov,
        tol=1e-10,
        max_iter=300,
        min_var=1e-3,
    )
    h = res.history
    assert np.all(np.isfinite(h)) and h.size == res.n_iter
    assert np.all(np.diff(h) >= -1e-10 * np.abs(h[1:])), np.diff(h).min()
    assert res.covariance == cov
    assert res.var.shape == ((K,) if cov == "spherical" else (K, d))
    assert res.weights.sum() == pytest.approx(1.0, abs=1e-12)
    assert np.all(res.weights > 0) or prior_name is None
    assert np.all(res.var >= 1e-3 * (1 - 1e-12))
    assert np.all(np.isfinite(res.mu)) and np.all(np.isfinite(res.resp))
    assert res.objective == res.restart_objectives[res.best_restart] == res.restart_objectives.max()
    assert res.history[-1] == res.objective
    if prior_name is None:
        assert res.prior is None and res.objective == res.log_likelihood
    else:
        assert res.prior.is_resolved and res.objective != res.log_likelihood
    # The returned parameters are after one more M-step: at least as good as the reported objective.
    at_end = jaxmix.log_objective(X, res.params, prior=res.prior)
    assert at_end >= res.objective - 1e-10 * abs(res.objective)


@pytest.mark.parametrize("covariance", ["spherical", "diag"])
@pytest.mark.parametrize("prior", [None, jaxmix.Prior(), jaxmix.Prior(alpha=1.0, mean=0.0)])
def test_reported_objective_is_in_data_units(rng, covariance, prior):
    """fit_em standardises internally; what it reports is the data-unit objective."""
    X = _planted(rng, missing=0.3, scale=1000.0, offset=-50.0)  # far from unit scale
    p0 = jaxmix.fit_em(X, 3, covariance=covariance, max_iter=2, min_var=0.0).params
    one = jaxmix.fit_em(X, 3, init=p0, max_iter=1, prior=prior, covariance=covariance, min_var=0.0)
    expected = jaxmix.log_objective(X, p0, prior=one.prior)
    assert one.objective == pytest.approx(expected, rel=1e-12)
    assert one.history[0] == one.objective
    ll = jaxmix.log_objective(X, p0)
    assert one.log_likelihood == pytest.approx(ll, rel=1e-12)


@pytest.mark.parametrize("covariance", ["spherical", "diag"])
def test_map_em_is_equivariant_under_a_change_of_units(rng, covariance):
    """Fitting c X + t with the prior mapped alike gives the mapped parameters, and objectives
    that differ by the log-Jacobian of the map (densities in data units)."""
    X = _planted(rng, missing=0.25)
    K, d = 3, X.shape[1]
    prior = jaxmix.Prior(alpha=1.5, var_shape=3.0).resolve(X)
    c, t = 7.3, 40.0
    mapped = prior._replace(
        mean=c * prior.mean + t, mean_sd=c * prior.mean_sd, var_scale=c * c * prior.var_scale
    )
    p0 = jaxmix.fit_em(X, K, covariance=covariance, max_iter=2, min_var=0.0).params
    p0c = p0._replace(mu=c * p0.mu + t, cov=p0.cov._replace(var=c * c * p0.var))
    # (12 iterations: before the objective stops changing in float64, where rounding alone
    # would decide which of the two fits stops first)
    kw = dict(covariance=covariance, min_var=0.0, tol=0.0, max_iter=12)
    a = jaxmix.fit_em(X, K, prior=prior, init=p0, **kw)
    b = jaxmix.fit_em(c * X + t, K, prior=mapped, init=p0c, **kw)
    assert a.n_iter == b.n_iter == 12
    np.testing.assert_allclose(b.mu, c * a.mu + t, rtol=1e-9)
    np.testing.assert_allclose(b.var, c * c * a.var, rtol=1e-8)
    np.testing.assert_allclose(b.weights, a.weights, rtol=1e-8)
    n_var = a.var.size
    log_jac = -(np.sum(~np.isnan(X)) + K * d + 2 * n_var) * np.log(c)
    np.testing.assert_allclose(b.history, a.history + log_jac, rtol=1e-10)


# ---------------------------------------------------------------- one step against a NumPy oracle


def _oracle_step(X, mu, var, weights, prior, min_var):
    """E-step with SciPy row by row, M-step coordinate by coordinate (diag or spherical)."""
    n, d = X.shape
    K = len(weights)
    obs = ~np.isnan(X)
    diag = var.ndim == 2
    v = var if diag else np.repeat(var[:, None], d, axis=1)
    logj = np.array(
        [
            [
                np.log(weights[k] + WEIGHT_EPS)
                + stats.norm.logpdf(X[u, obs[u]], mu[k, obs[u]], np.sqrt(v[k, obs[u]])).sum()
                for k in range(K)
            ]
            for u in range(n)
        ]
    )
    row = logsumexp(logj, axis=1)
    R = np.exp(logj - row[:, None])
    new_mu = mu.copy()
    for k in range(K):
        for l in range(d):
            r, x = R[obs[:, l], k], X[obs[:, l], l]
            if prior is None:
                if r.sum() >= 1.0:
                    new_mu[k, l] = (r * x).sum() / r.sum()
            else:
                p0 = 1.0 / prior.mean_sd[l] ** 2
                new_mu[k, l] = (prior.mean[l] * p0 + (r * x).sum() / v[k, l]) / (
                    p0 + r.sum() / v[k, l]
                )
    a = None if prior is None else float(prior.var_shape)
    b = None if prior is None else float(prior.var_scale)
    new_var = var.copy()
    for k in range(K):
        cols = range(d) if diag else [None]
        for l in cols:
            sel = [l] if diag else list(range(d))
            S = sum(((R[obs[:, j], k]) * (X[obs[:, j], j] - new_mu[k, j]) ** 2).sum() for j in sel)
            N = sum(R[obs[:, j], k].sum() for j in sel)
            idx = (k, l) if diag else k
            if prior is None:
                if N > 0:
                    new_var[idx] = S / N
            else:
                new_var[idx] = (S + 2 * b) / (N + 2 * a + 2)
    new_var = np.maximum(new_var, min_var)
    n_k = R.sum(axis=0)
    if prior is None:
        new_w = n_k / n
    else:
        alpha = float(prior.alpha)
        new_w = (n_k + alpha - 1) / (n + K * (alpha - 1))
    return R, row.sum(), jaxmix.MixtureParams(new_mu, new_var, new_w)


def _jaxmix_step(X, params, prior, min_var):
    data = dense_arrays(X)
    p = jax_params(params)
    out = e_step(p, data)
    new = m_step(suff_stats(out.resp, data, family_of(p)), p, min_var, prior)
    return np.asarray(out.resp), float(out.log_likelihood), new


@pytest.mark.parametrize(
    "prior", [None, jaxmix.Prior(), jaxmix.Prior(alpha=4.0, mean_sd=0.3, var_shape=5.0)]
)
@pytest.mark.parametrize("covariance", ["diag", "spherical"])
@pytest.mark.parametrize("missing", [0.0, 0.4, 0.8])
def test_one_step_matches_numpy_oracle(rng, covariance, prior, missing):
    X = _planted(rng, n=40, d=5, missing=missing)
    K = 3
    var_shape = (K,) if covariance == "spherical" else (K, 5)
    params = jaxmix.MixtureParams(
        rng.normal(0, 2, (K, 5)), rng.uniform(0.2, 3.0, var_shape), rng.dirichlet(np.ones(K))
    )
    resolved = None if prior is None else prior.resolve(X)
    R0, ll0, p0 = _oracle_step(X, params.mu, params.var, params.weights, resolved, min_var=0.05)
    R1, ll1, p1 = _jaxmix_step(X, params, resolved, min_var=0.05)
    np.testing.assert_allclose(R1, R0, rtol=1e-10, atol=1e-12)
    assert ll1 == pytest.approx(ll0, rel=1e-12)
    for name in ("mu", "var", "weights"):
        got, want = getattr(p1, name), getattr(p0, name)
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-10, atol=1e-12)


def test_diag_with_equal_column_variances_reproduces_spherical(rng):
    X = _planted(rng, missing=0.4)
    K, d = 3, X.shape[1]
    sph = jaxmix.MixtureParams(
        rng.normal(0, 2, (K, d)), rng.uniform(0.2, 3.0, K), rng.dirichlet(np.ones(K))
    )
    diag = sph._replace(cov=np.repeat(sph.var[:, None], d, axis=1))
    data = dense_arrays(X)
    sph, diag = jax_params(sph), jax_params(diag)
    out_s, out_d = e_step(sph, data), e_step(diag, data)
    Rs, Rd = out_s.resp, out_d.resp
    np.testing.assert_allclose(Rd, Rs, rtol=1e-11, atol=1e-13)
    assert float(out_d.log_likelihood) == pytest.approx(float(out_s.log_likelihood), rel=1e-13)
    # The M-step's means agree too; diag's column variances average (by count) to spherical's.
    ps = m_step(suff_stats(Rs, data, "spherical"), sph, 0.0)
    stats_d = suff_stats(Rd, data, "diag")
    pd = m_step(stats_d, diag, 0.0)
    np.testing.assert_allclose(pd.mu, ps.mu, rtol=1e-11)
    obs_k = np.asarray(stats_d.obs_k)
    pooled = np.sum(np.asarray(pd.var) * obs_k, axis=1) / obs_k.sum(axis=1)
    np.testing.assert_allclose(pooled, ps.var, rtol=1e-10)


def _expected_log_post(R, params, data, prior):
    log_joint, _ = data.log_joint(params, family_of(params))
    return float(jnp.sum(R * log_joint) + log_prior(params, prior))


@pytest.mark.parametrize("covariance", ["spherical", "diag"])
def test_each_map_m_step_piece_maximises_its_conditional(rng, covariance):
    """Perturbing mu (at the old var), var (at the new mu) or the weights lowers Q."""
    X = _planted(rng, missing=0.3)
    K, d = 3, X.shape[1]
    prior = jaxmix.Prior(alpha=2.5).resolve(X)
    data = dense_arrays(X)
    var_shape = (K,) if covariance == "spherical" else (K, d)
    old = jax_params(
        jaxmix.MixtureParams(
            rng.normal(0, 2, (K, d)), rng.uniform(0.2, 3.0, var_shape), rng.dirichlet(np.ones(K))
        )
    )
    R = e_step(old, data).resp
    new = m_step(suff_stats(R, data, covariance), old, 0.0, prior)
    q_mu = _expected_log_post(R, old._replace(mu=new.mu), data, prior)
    q_var = _expected_log_post(R, new, data, prior)
    for _ in range(20):
        dmu = 1e-3 * rng.normal(size=(K, d))
        assert _expected_log_post(R, old._replace(mu=new.mu + dmu), data, prior) < q_mu
        dv = np.exp(1e-3 * rng.normal(size=var_shape))
        scaled = new._replace(cov=new.cov._replace(var=new.var * dv))
        assert _expected_log_post(R, scaled, data, prior) < q_var
        w = np.asarray(new.weights) * np.exp(1e-3 * rng.normal(size=K))
        assert (
            _expected_log_post(R, new._replace(weights=jnp.asarray(w / w.sum())), data, prior)
            < q_var
        )
    # and the whole step does not lower the objective
    assert jaxmix.log_objective(X, numpy_params(new), prior=prior) >= (
        jaxmix.log_objective(X, numpy_params(old), prior=prior)
    )


def test_map_weights_formula():
    n_k = jnp.array([0.0, 3.0, 7.0])
    stats_ = SphericalStats(
        n_k=n_k,
        obs_k=jnp.ones((3, 2)),
        sum_k=jnp.zeros((3, 2)),
        sq_k=jnp.ones(3),
        n_obs_k=jnp.full(3, 2.0),
        n_rows=jnp.asarray(10.0),
    )
    params = jax_params(jaxmix.MixtureParams(np.zeros((3, 2)), np.ones(3), np.full(3, 1 / 3)))
    for alpha in (1.0, 2.0, 5.5):
        prior = jaxmix.Prior(alpha=alpha, mean=0.0, mean_sd=1.0, var_shape=2.0, var_scale=1.0)
        w = m_step(stats_, params, 0.0, prior.resolve(np.ones((2, 2)))).weights
        np.testing.assert_allclose(
            w, (np.array([0.0, 3.0, 7.0]) + alpha - 1) / (10 + 3 * (alpha - 1))
        )
    # alpha = 1 is the maximum-likelihood update
    ml = m_step(stats_, params, 0.0).weights
    np.testing.assert_allclose(ml, [0.0, 0.3, 0.7])


# ---------------------------------------------------------------- posterior-mode sanity


@pytest.mark.parametrize("covariance", ["spherical", "diag"])
def test_strong_priors_pin_the_mode(rng, covariance):
    X = _planted(rng, missing=0.3)
    d = X.shape[1]
    m0 = np.linspace(-1.0, 1.0, d)
    res = jaxmix.fit_em(
        X,
        3,
        covariance=covariance,
        min_var=0.0,
        n_init=2,
        prior=jaxmix.Prior(
            alpha=1e6, mean=m0, mean_sd=1e-5, var_shape=1e6, var_scale=0.7 * (1e6 + 1)
        ),
    )
    np.testing.assert_allclose(res.mu, np.broadcast_to(m0, res.mu.shape), atol=1e-6)
    np.testing.assert_allclose(res.var, 0.7, rtol=1e-3)  # the InverseGamma's mode b / (a + 1)
    np.testing.assert_allclose(res.weights, 1 / 3, atol=1e-3)


def test_weak_prior_is_close_to_maximum_likelihood(rng):
    """Flat weights, a wide mean prior and IG(a -> 0, b -> 0): close to ML, though not equal,
    since even IG(0, 0) (density 1/var) adds two pseudo-entries: var = S / (N + 2)."""
    X = _planted(rng, n=400, missing=0.2)
    ml = jaxmix.fit_em(X, 3, seed=1, min_var=1e-3, tol=1e-10)
    weak = jaxmix.Prior(alpha=1.0, mean_sd=1e4, var_shape=1e-9, var_scale=1e-9)
    map_ = jaxmix.fit_em(X, 3, seed=1, min_var=1e-3, tol=1e-10, prior=weak)
    n_obs = np.sum(ml.resp.T @ (~np.isnan(X)), axis=1)  # expected observed entries per component
    np.testing.assert_allclose(map_.var, ml.var * n_obs / (n_obs + 2), rtol=2e-3)
    np.testing.assert_allclose(map_.mu, ml.mu, atol=1e-3)
    np.testing.assert_allclose(map_.weights, ml.weights, atol=1e-4)
    assert map_.log_likelihood == pytest.approx(ml.log_likelihood, rel=1e-5)


def test_prior_keeps_unobserved_columns_at_the_prior_mean(rng):
    X = _planted(rng, missing=0.2)
    X[:, 2] = np.nan
    res = jaxmix.fit_em(X, 3, prior=jaxmix.Prior(mean=0.5), covariance="diag", min_var=0.0)
    np.testing.assert_allclose(res.mu[:, 2], 0.5, atol=1e-9)
    prior = res.prior
    # a column with no data has var at the InverseGamma's mode
    np.testing.assert_allclose(res.var[:, 2], prior.var_scale / (prior.var_shape + 1), rtol=1e-9)


# ---------------------------------------------------------------- public surface: diag, prior


def test_diag_completion_and_bic(rng):
    X = _planted(rng, missing=0.3)
    res = jaxmix.fit_em(X, 3, covariance="diag", prior=jaxmix.Prior(), min_var=0.01)
    filled, sd = jaxmix.complete(X, res, return_std=True)
    obs = ~np.isnan(X)
    np.testing.assert_array_equal(filled[obs], X[obs])
    R = jaxmix.responsibilities(X, res)
    mean = R @ res.mu
    # the estimation uncertainty of mu_kl under the Normal prior: (N_kl / var_kl + 1 / s0^2)^-1
    N_kl = R.T @ obs.astype(float)
    s0 = np.asarray(res.prior.mean_sd)
    coef = 1.0 / (N_kl / res.var + 1.0 / s0**2)
    np.testing.assert_allclose(res.estimation_cov.coef, coef, rtol=1e-8)
    assert np.all(res.estimation_cov.noise > 0)
    est = res.estimation_cov.coef + res.estimation_cov.noise
    var = R @ (res.var + est + res.mu**2) - mean**2  # the law of total variance, per column
    np.testing.assert_allclose(filled[~obs], mean[~obs], rtol=1e-12)
    np.testing.assert_allclose(sd[~obs], np.sqrt(var[~obs]), rtol=1e-8)
    assert np.all(sd[obs] == 0)
    n, d = X.shape
    p = jaxmix.n_parameters(3, d, "diag")
    assert jaxmix.bic(X, res) == pytest.approx(res.log_likelihood - 0.5 * p * np.log(n))


def test_diag_init_from_spherical_and_errors(rng):
    X = _planted(rng, missing=0.2)
    sph = jaxmix.fit_em(X, 3, max_iter=3)
    diag = jaxmix.fit_em(X, 3, init=sph, covariance="diag", max_iter=1)
    np.testing.assert_allclose(diag.history[0], jaxmix.log_objective(X, sph.params), rtol=1e-12)
    with pytest.raises(ValueError, match="init var"):
        jaxmix.fit_em(X, 3, init=diag, covariance="spherical")
    with pytest.raises(ValueError, match="covariance"):
        jaxmix.fit_em(X, 3, covariance="full")
    with pytest.raises(ValueError, match="alpha >= 1"):
        jaxmix.fit_em(X, 3, prior=jaxmix.Prior(alpha=0.5))
    with pytest.raises(ValueError, match="covariance"):
        jaxmix.log_objective(X, diag.params, covariance="spherical")


def test_no_recompile_across_priors_and_data(rng):
    X1 = _planted(rng, missing=0.3)
    X2 = _planted(rng, missing=0.5)
    X2[1] = np.nan
    jaxmix.fit_em(X1, 3, n_init=2, prior=jaxmix.Prior(), covariance="diag")
    with count_traces() as traces:
        jaxmix.fit_em(
            X2, 3, n_init=2, prior=jaxmix.Prior(alpha=3.0, mean=1.0), covariance="diag", seed=5
        )
        jaxmix.fit_em(
            X1, 3, n_init=2, prior=jaxmix.Prior(var_shape=4.0), covariance="diag", tol=1e-3
        )
    assert traces["em"] == 0


def test_map_diag_in_float32():
    """float32 (x64 off, in a subprocess): finite, monotone up to float32 rounding."""
    code = textwrap.dedent(
        """
        import numpy as np, jax, jaxmix
        assert not jax.config.jax_enable_x64
        rng = np.random.default_rng(0)
        X = rng.integers(1, 6, (300, 40)).astype(float)
        X[rng.random(X.shape) < 0.5] = np.nan
        res = jaxmix.fit_em(X, 4, n_init=2, prior=jaxmix.Prior(), covariance="diag", tol=1e-7)
        h = res.history
        assert np.isfinite(h).all() and np.isfinite(res.mu).all()
        assert (np.diff(h) >= -1e-5 * np.abs(h[1:])).all(), np.diff(h).min()
        ref = jaxmix.log_objective(X, res.params, prior=res.prior)
        assert abs(ref - res.objective) <= 1e-4 * abs(ref), (ref, res.objective)
        print("ok", res.n_iter)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.startswith("ok")

"""The blocked Gibbs sampler (fit_mcmc(kernel="gibbs"), jaxmix.inference.gibbs.MixtureGibbs).

Oracles: the exact posterior of a one-component model with missing entries (the means integrated
out in closed form given the variance, the variance by 1-D quadrature of its marginal density:
SciPy's Normal and InverseGamma densities); jaxmix.log_objective plus the change-of-variables
Jacobian for the potential energy. The agreement with NUTS is in tests/test_mcmc.py, the
calibration of its predictive intervals in tests/test_predictive.py.
"""

from __future__ import annotations

from itertools import product

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpyro.distributions import constraints
from numpyro.distributions.transforms import biject_to
from numpyro.infer import MCMC
from scipy import stats

import jaxmix
from jaxmix.data import Standardizer, as_data
from jaxmix.inference.gibbs import GIBBS_COVARIANCES, MixtureGibbs
from jaxmix.models.families import get_family
from jaxmix.models.mixture import permute_components, relabel, to_internal
from jaxmix.models.prior import standardize_prior
from jaxmix.posterior.diagnostics import import_arviz
from jaxmix.testing import count_traces

az = import_arviz()

SETTINGS = dict(num_chains=2, num_warmup=100, num_samples=300)


def _planted(seed: int, n: int = 60, d: int = 5, K: int = 2, missing: float = 0.2):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 3.0, (K, d))
    X = centres[rng.integers(K, size=n)] + rng.normal(size=(n, d))
    X[rng.random(X.shape) < missing] = np.nan
    X[0] = np.nan  # a row with no observed entry
    return 2.0 * X + 5.0


@pytest.fixture(scope="module")
def fitted():
    X = _planted(0)
    return X, jaxmix.fit_mcmc(X, 2, kernel="gibbs", seed=1, **SETTINGS)


@pytest.mark.parametrize("covariance", ["spherical", "diag", "shared"])
def test_each_block_is_drawn_from_its_conjugate_conditional(covariance):
    """Family.draw_conditional, many times from one state and one assignment: every mean,
    variance and weight, mapped through the CDF of its conditional (SciPy), is uniform.

    Given the old variances, ``(mu_kl - loc_kl) / sd_kl`` is N(0, 1); given the new means,
    ``(b + R / 2) / var`` is Gamma(a + N / 2); every weight is Beta(alpha + n_k, sum - ...).
    One Kolmogorov-Smirnov test per block, pooled over the coordinates."""
    family = get_family(covariance)
    X = _planted(5, n=40, d=3)
    prior = jaxmix.Prior().resolve(X)
    data = as_data(X).device(Standardizer.identity(3), jnp.float64)
    rng = np.random.default_rng(0)
    z = rng.integers(2, size=40)
    z[:3] = 0  # both components have rows
    z[3:6] = 1
    stats_ = data.suff_stats(jax.nn.one_hot(z, 2, dtype=jnp.float64), family)
    var_old = np.array([1.5, 3.0]) if covariance != "shared" else np.array(2.0)
    if covariance == "diag":
        var_old = np.array([[1.5, 2.0, 0.7], [3.0, 1.0, 2.5]])
    params = jaxmix.MixtureParams(np.zeros((2, 3)), family.cov_type(var_old), np.full(2, 0.5))
    prior_dev = jax.tree.map(jnp.asarray, prior)
    keys = jax.random.split(jax.random.PRNGKey(1), 20000)
    draws = jax.jit(jax.vmap(lambda k: family.draw_conditional(k, stats_, params, prior_dev)))(keys)
    draws = jax.tree.map(np.asarray, draws)

    obs = np.stack([(~np.isnan(X[z == k])).sum(0) for k in range(2)]).astype(float)
    sums = np.stack([np.nansum(X[z == k], 0) for k in range(2)])
    var_kd = np.broadcast_to(
        var_old if covariance == "diag" else np.reshape(var_old, (-1, 1)), (2, 3)
    )
    prec = 1 / prior.mean_sd**2 + obs / var_kd
    loc = (prior.mean / prior.mean_sd**2 + sums / var_kd) / prec
    u_mu = stats.norm.cdf((draws.mu - loc) * np.sqrt(prec))

    resid = np.stack(
        [np.nansum((X[z == k][None] - draws.mu[:, k, None, :]) ** 2, axis=1) for k in range(2)],
        axis=1,
    )  # (draws, K, d)
    a, b = float(prior.var_shape), float(prior.var_scale)
    if covariance == "diag":
        count, R = obs, resid
    elif covariance == "spherical":
        count, R = obs.sum(1), resid.sum(2)
    else:
        count, R = obs.sum(), resid.sum((1, 2))
    u_var = stats.gamma.cdf((b + R / 2) / draws.var, a + count / 2)

    n_k = np.bincount(z, minlength=2)
    conc = float(prior.alpha) + n_k
    u_w = stats.beta.cdf(draws.weights, conc, conc.sum() - conc)
    for block, u in [("mu", u_mu), ("var", u_var), ("weights", u_w)]:
        assert stats.kstest(np.ravel(u), "uniform").pvalue > 1e-3, block


def _ess_mean(draws: np.ndarray) -> np.ndarray:
    """ArviZ's ESS of the mean of every coordinate of ``(C, S, ...)`` draws."""
    return az.ess(az.convert_to_dataset({"x": draws}), method="mean")["x"].values


def _exact_one_component(X: np.ndarray, prior: jaxmix.Prior, covariance: str) -> dict:
    """Posterior means and sds of ``mu_l`` and the variance(s) of a one-component model.

    Given a variance ``v`` the columns are independent and each mean is conjugate: column ``l``'s
    ``N`` observed entries (mean ``xbar``, squared deviations ``SS``) have the marginal density
    ``(2 pi v)^(-N/2) exp(-SS / 2v) sqrt(2 pi v / N) N(xbar; m0, s0^2 + v/N)`` and ``mu_l`` the
    posterior ``N((m0/s0^2 + N xbar/v) / P, 1/P)``, ``P = 1/s0^2 + N/v``. The variance's posterior
    (one for all columns, or one per column for "diag") is integrated on a fine grid of log v.
    """
    obs = ~np.isnan(X)
    a, b = float(prior.var_shape), float(prior.var_scale)
    groups = (
        [list(range(X.shape[1]))] if covariance == "spherical" else [[c] for c in range(X.shape[1])]
    )
    out = {}
    for group in groups:
        counts = [int(obs[:, c].sum()) for c in group]
        total = sum(counts)
        rough = np.nanvar(X[:, group]) if total > 1 else b
        log_v = np.linspace(np.log(rough) - 5.0, np.log(rough) + 5.0, 20001)
        v = np.exp(log_v)
        log_post = stats.invgamma.logpdf(v, a, scale=b) + log_v  # density of log v
        for c in group:
            x = X[obs[:, c], c]
            N = x.size
            m0, s0 = float(prior.mean[c]), float(prior.mean_sd[c])
            if N:
                xbar, ss = x.mean(), ((x - x.mean()) ** 2).sum()
                log_post += (
                    -0.5 * N * np.log(2 * np.pi * v)
                    - ss / (2 * v)
                    + 0.5 * np.log(2 * np.pi * v / N)
                    + stats.norm.logpdf(xbar, m0, np.sqrt(s0**2 + v / N))
                )
        w = np.exp(log_post - log_post.max())
        w /= w.sum()
        mean_v = float((w * v).sum())
        out[("var", group[0])] = (mean_v, float(np.sqrt((w * (v - mean_v) ** 2).sum())))
        for c in group:
            x = X[obs[:, c], c]
            m0, s0 = float(prior.mean[c]), float(prior.mean_sd[c])
            prec = 1 / s0**2 + x.size / v
            loc = (m0 / s0**2 + x.sum() / v) / prec
            mean = float((w * loc).sum())
            second = float((w * (1 / prec + loc**2)).sum())
            out[("mu", c)] = (mean, float(np.sqrt(second - mean**2)))
    return out


@pytest.mark.parametrize("covariance", ["spherical", "diag"])
def test_one_component_posterior_matches_the_exact_one(covariance):
    """K = 1, entries missing (one column almost empty, so the prior matters): the Gibbs draws'
    means and sds of every mu_l and variance against the exact posterior, within 4 Monte Carlo
    standard errors (ESS of the mean and of the sd, the sd's error from the draws' kurtosis)."""
    rng = np.random.default_rng(11)
    X = rng.normal([1.0, -2.0, 0.5], [1.3, 1.3, 1.3], size=(30, 3))
    X[rng.random(X.shape) < 0.3] = np.nan
    X[4:, 2] = np.nan  # column 2: at most 4 entries
    prior = jaxmix.Prior().resolve(X)
    # start at the columns' moments (K = 1: no mode to find, and no EM to compile)
    var0 = np.nanvar(X, keepdims=True)[0] if covariance == "spherical" else np.nanvar(X, 0)[None]
    start = jaxmix.MixtureParams(np.nanmean(X, axis=0)[None], var0, np.ones(1))
    res = jaxmix.fit_mcmc(
        X,
        1,
        covariance=covariance,
        kernel="gibbs",
        num_chains=2,
        num_warmup=100,
        num_samples=2000,
        seed=4,
        init=start,
    )
    assert res.prior.var_scale == pytest.approx(prior.var_scale)
    exact = _exact_one_component(X, prior, covariance)
    np.testing.assert_allclose(res.draws.weights, 1.0)
    for (name, col), (mean, sd) in exact.items():
        values = (
            res.draws.mu[..., 0, col]
            if name == "mu"
            else (
                res.draws.var[..., 0] if covariance == "spherical" else res.draws.var[..., 0, col]
            )
        )
        ess_mean = float(az.ess(values, method="mean"))
        ess_sd = float(az.ess(values, method="sd"))
        assert ess_mean > 500, (name, col, ess_mean)
        kurt = stats.kurtosis(values.ravel(), fisher=False)
        assert abs(values.mean() - mean) <= 4.0 * sd / np.sqrt(ess_mean), (name, col)
        se_sd = sd * np.sqrt((kurt - 1.0) / (4.0 * ess_sd))
        assert abs(values.std() - sd) <= 4.0 * se_sd, (name, col, values.std(), sd)


def test_result_inference_data_diagnose_and_save(fitted, tmp_path):
    X, res = fitted
    n, d = X.shape
    C, S, K = 2, 300, 2
    assert isinstance(res, jaxmix.MCMCResult) and res.kernel == "gibbs"
    assert res.draws.mu.shape == (C, S, K, d) and res.draws.var.shape == (C, S, K)
    assert res.draws.weights.shape == (C, S, K) and res.permutation.shape == (C, S, K)
    np.testing.assert_allclose(res.draws.weights.sum(-1), 1.0, rtol=1e-12)
    assert np.all(res.draws.var > 0) and np.all(np.isfinite(res.draws.mu))
    # the draws move (a Gibbs draw is always accepted) and are not NUTS's statistics
    assert np.all(np.diff(res.draws.mu[..., 0, 0], axis=1) != 0)
    assert not res.diverging.any() and np.all(res.accept_prob == 1.0)
    assert np.all(res.n_leapfrog == 0) and np.all(np.isnan(res.step_size))
    assert "kernel='gibbs'" in repr(res) and "no divergences" in repr(res)
    np.testing.assert_allclose(res.params.mu, res.draws.mu.mean(axis=(0, 1)))
    # well separated: the posterior mean is near the MAP start
    assert (
        np.max(np.abs(res.params.mu - res.reference.mu) / np.sqrt(res.reference.var[:, None])) < 0.5
    )

    idata = jaxmix.to_inference_data(res, X, seed=2)
    assert set(idata.sample_stats.data_vars) == {"lp", "relabelled"}
    np.testing.assert_array_equal(idata.sample_stats["lp"].values, -res.potential_energy)
    assert idata.log_likelihood["x"].shape == (C, S, n)
    report = jaxmix.diagnose(res, verbose=False, warn=False)
    assert report.num_divergent == 0 and report.num_draws == S
    assert report.max_r_hat < 1.05 and report.min_ess_bulk > 100
    table = jaxmix.predictive_summary(res, X, 0.9, num_samples=100, seed=3)
    assert table.n_entries == int(np.isnan(X).sum()) and np.all(table.lower < table.upper)

    jaxmix.save(res, tmp_path / "gibbs.npz")
    back = jaxmix.load(tmp_path / "gibbs.npz")
    assert back.kernel == "gibbs"
    np.testing.assert_array_equal(back.draws.mu, res.draws.mu)


def test_potential_energy_is_minus_log_objective_minus_jacobian(fitted):
    """The Gibbs state's potential is the quantity NUTS reports: -(log p(params, X) + log|J|) in
    the standardised unconstrained coordinates."""
    X, res = fitted
    std = Standardizer.fit(as_data(X).summary())
    X_int = (X - std.offset) / std.scale
    prior_int = standardize_prior(res.prior, std.offset, std.scale)
    simplex = biject_to(constraints.simplex)
    for c, s in [(0, 0), (0, 150), (1, 299)]:
        draw = jax.tree.map(lambda a, i=(c, s): a[i], res.draws)
        internal = to_internal(permute_components(draw, np.argsort(res.permutation[c, s])), std)
        log_joint = jaxmix.log_objective(X_int, internal, prior=prior_int)
        u = simplex.inv(jnp.asarray(internal.weights))
        log_jac = float(simplex.log_abs_det_jacobian(u, jnp.asarray(internal.weights)))
        log_jac += float(np.sum(np.log(internal.var)))
        assert -res.potential_energy[c, s] == pytest.approx(log_joint + log_jac, rel=1e-8)


def test_second_fit_of_same_shape_does_not_recompile(fitted):
    X, _ = fitted
    with count_traces() as traces:
        res = jaxmix.fit_mcmc(X - 1.0, 2, kernel="gibbs", seed=7, **SETTINGS)
    assert traces["gibbs"] == 0
    assert res.draws.mu.shape == (2, 300, 2, 5)


def test_numpyro_mcmc_runs_the_kernel(fitted):
    """numpyro.infer.MCMC: several chains (sequential with its progress bar; vectorized),
    get_samples and the potential energy as an extra field; the draws agree with fit_mcmc's."""
    X, res = fitted
    prior = res.prior
    mask = ~np.isnan(X)
    start = jax.tree.map(lambda a: np.stack([a, a]), res.reference)
    mcmc = MCMC(
        MixtureGibbs(2),
        num_warmup=100,
        num_samples=300,
        num_chains=2,
        chain_method="sequential",
        progress_bar=True,
    )
    mcmc.run(jax.random.PRNGKey(3), X, mask, prior, init_params=start)
    draws = mcmc.get_samples(group_by_chain=True)
    assert isinstance(draws, jaxmix.MixtureParams)
    assert draws.mu.shape == (2, 300, 2, 5) and draws.var.shape == (2, 300, 2)
    assert mcmc.get_samples().mu.shape == (600, 2, 5)
    assert mcmc.get_extra_fields()["potential_energy"].shape == (600,)
    draws = jax.tree.map(lambda a: np.asarray(a, np.float64), draws)
    mine, _ = relabel(draws, res.reference)
    for name in ("mu", "var", "weights"):
        a, b = getattr(mine, name), getattr(res.draws, name)
        se = np.sqrt(a.var((0, 1)) / _ess_mean(a) + b.var((0, 1)) / _ess_mean(b))
        assert np.all(np.abs(a.mean((0, 1)) - b.mean((0, 1))) <= 4.0 * se), name


@pytest.mark.slow
def test_numpyro_mcmc_runs_the_kernel_vectorized(fitted):
    """chain_method="vectorized": NumPyro hands the kernel one key and one start per chain (here
    draws of the prior: init_params=None)."""
    X, res = fitted
    mcmc = MCMC(
        MixtureGibbs(2, "diag"),
        num_warmup=50,
        num_samples=20,
        num_chains=2,
        chain_method="vectorized",
        progress_bar=False,
    )
    mcmc.run(jax.random.PRNGKey(4), X, ~np.isnan(X), res.prior)
    out = mcmc.get_samples(group_by_chain=True)
    assert out.mu.shape == (2, 20, 2, 5) and out.var.shape == (2, 20, 2, 5)
    assert np.all(np.isfinite(out.mu)) and np.all(out.var > 0)
    assert not np.allclose(out.mu[0], out.mu[1])  # two chains, not one copied


def test_gibbs_refuses_what_it_cannot_sample():
    X = _planted(3, n=20, d=3)
    assert GIBBS_COVARIANCES == ("spherical", "diag", "shared")
    with pytest.raises(ValueError, match="spherical', 'diag', 'shared'"):
        jaxmix.fit_mcmc(X, 2, covariance="factor", rank=1, kernel="gibbs")
    with pytest.raises(ValueError, match="proper prior"):
        jaxmix.fit_mcmc(X, 2, prior=None, kernel="gibbs")
    with pytest.raises(ValueError, match="kernel must be one of"):
        jaxmix.fit_mcmc(X, 2, kernel="hmc")
    with pytest.raises(ValueError, match="spherical, diag, shared"):
        MixtureGibbs(2, "factor")
    with pytest.raises(ValueError, match="resolved jaxmix.Prior"):
        MixtureGibbs(2).init(jax.random.PRNGKey(0), 0, None, (X, ~np.isnan(X), jaxmix.Prior()), {})


def _collapsed_target(X, var_kd, prior, K, log_weight):
    """Every assignment of the rows of X to K components and its probability under
    p(z | var, X) with the means integrated out, enumerated: log_weight(z) (the weights' term)
    plus every component's columns as a multivariate Normal with covariance var I + s0^2 11'
    about the prior mean (SciPy)."""
    configs = np.array(list(product(range(K), repeat=X.shape[0])))
    log_p = np.zeros(len(configs))
    for c, z in enumerate(configs):
        log_p[c] = log_weight(z)
        for k, col in product(range(K), range(X.shape[1])):
            x = X[(z == k) & ~np.isnan(X[:, col]), col]
            if x.size:
                cov = var_kd[k, col] * np.eye(x.size) + float(prior.mean_sd[col]) ** 2
                mean = np.full(x.size, float(prior.mean[col]))
                log_p[c] += stats.multivariate_normal.logpdf(x, mean, cov)
    p = np.exp(log_p - log_p.max())
    return configs, p / p.sum()


def _chisquare_pvalue(out, p, K):
    """The chi-square p-value of the assignments ``out`` (draws x rows) against the
    probabilities ``p`` of :func:`_collapsed_target`'s cells, the rare cells pooled into one."""
    draws, n = out.shape
    counts = np.bincount(out @ (K ** np.arange(n)[::-1]), minlength=len(p))
    keep = p * draws >= 5
    expected = np.append(p[keep], p[~keep].sum()) * draws
    observed = np.append(counts[keep], counts[~keep].sum())
    expected, observed = expected[expected > 0], observed[expected > 0]
    return stats.chisquare(observed, expected).pvalue


@pytest.mark.parametrize("covariance", ["spherical", "diag", "shared"])
def test_collapsed_row_scan_leaves_the_exact_conditional_invariant(covariance):
    """collapsed_assign on 5 rows, K = 2, entries missing, one row empty, blocks of 3 (two
    overlapping blocks): start from exact draws of p(z | var, w, X) with the means integrated
    out (enumerated over all 2^5 assignments, every component's columns a multivariate Normal
    with covariance var I + s0^2 11'); after one scan the assignments still follow it
    (chi-square over the 32 cells), and the scan does move rows."""
    from jaxmix.inference.gibbs import collapsed_assign, dense_arrays

    family = get_family(covariance)
    rng = np.random.default_rng(3)
    X = np.array([[0.0, 0.4], [0.3, np.nan], [1.1, 1.4], [np.nan, np.nan], [0.9, np.nan]])
    X = X + 0.1 * rng.normal(size=X.shape)
    prior = jaxmix.Prior(mean=0.5, mean_sd=1.0, var_scale=0.5).resolve(X)
    var = {"spherical": np.array([0.3, 0.5]), "diag": np.array([[0.3, 0.6], [0.5, 0.2]])}
    var = var.get(covariance, np.array(0.4))
    weights = np.array([0.4, 0.6])
    var_kd = np.broadcast_to(np.reshape(var, np.shape(var) + (1,) * (2 - np.ndim(var))), (2, 2))
    K = 2
    configs, p = _collapsed_target(X, var_kd, prior, K, lambda z: np.log(weights[z]).sum())

    data = dense_arrays(np.nan_to_num(X), ~np.isnan(X))
    params = jaxmix.MixtureParams(jnp.zeros((K, 2)), family.cov_type(jnp.asarray(var)), weights)
    prior_dev = jax.tree.map(jnp.asarray, prior)
    draws = 40000
    start = configs[rng.choice(len(configs), size=draws, p=p)]
    scan = jax.jit(
        jax.vmap(lambda key, z: collapsed_assign(key, z, params, data, prior_dev, family, 3))
    )
    out = np.asarray(scan(jax.random.split(jax.random.PRNGKey(0), draws), jnp.asarray(start)))
    assert np.mean(np.any(out != start, axis=1)) > 0.2
    assert _chisquare_pvalue(out, p, K) > 1e-3


def test_warmup_flattens_the_scan_in_its_first_half_only():
    """warmup_beta rises linearly from WARMUP_BETA to 1 over the first half of the warm-up and is
    1 from then on (every kept draw comes from the exact kernel); no warm-up, no flattening."""
    from jaxmix.inference.gibbs import WARMUP_BETA, warmup_beta

    betas = np.array([float(warmup_beta(i, 500)) for i in (0, 125, 249, 250, 499, 500, 1499)])
    np.testing.assert_allclose(
        betas,
        [WARMUP_BETA, (1 + WARMUP_BETA) / 2, 1 - (1 - WARMUP_BETA) / 250, 1, 1, 1, 1],
        rtol=1e-6,
    )
    assert float(warmup_beta(0, 0)) == 1.0 and float(warmup_beta(0, 1)) == 1.0


def test_merge_split_moves_leave_the_collapsed_target_invariant():
    """merge_split on 6 rows, K = 3, entries missing, one row empty: start from exact draws of
    p(z | var, X) with the means and the weights integrated out (enumerated over all 3^6
    assignments: a Dirichlet-multinomial times every component's columns as a multivariate
    Normal with covariance var I + s0^2 11'); after 10 moves the assignments still follow it
    (chi-square over the 729 cells, rare ones pooled), and the moves change most of them.
    Leaving the scan's proposal probability or the anchor's out of the acceptance ratio fails
    this check (p < 1e-100 when tried)."""
    from scipy.special import gammaln

    from jaxmix.inference.gibbs import dense_arrays
    from jaxmix.inference.gibbs_moves import merge_split

    rng = np.random.default_rng(3)
    X = np.array(
        [[0.0, 0.4], [0.3, np.nan], [1.1, 1.4], [np.nan, np.nan], [0.9, np.nan], [0.2, 0.1]]
    )
    X = X + 0.1 * rng.normal(size=X.shape)
    alpha, K = 1.5, 3
    prior = jaxmix.Prior(mean=0.5, mean_sd=1.0, var_scale=0.5, alpha=alpha).resolve(X)
    var = np.array([[0.3, 0.6], [0.5, 0.2], [0.1, 0.4]])

    def dirichlet_multinomial(z):
        return gammaln(alpha + np.bincount(z, minlength=K)).sum()

    configs, p = _collapsed_target(X, var, prior, K, dirichlet_multinomial)

    data = dense_arrays(np.nan_to_num(X), ~np.isnan(X))
    prior_dev = jax.tree.map(jnp.asarray, prior)
    draws = 40000
    start = configs[rng.choice(len(configs), size=draws, p=p)]
    moves = jax.jit(
        jax.vmap(lambda key, z: merge_split(key, z, jnp.asarray(var), data, prior_dev, 10))
    )
    out, accepted = moves(
        jax.random.split(jax.random.PRNGKey(0), draws), jnp.asarray(start, jnp.int32)
    )
    out = np.asarray(out)
    assert np.mean(np.any(out != start, axis=1)) > 0.5
    assert 0 < np.mean(accepted) < 10
    assert _chisquare_pvalue(out, p, K) > 1e-3

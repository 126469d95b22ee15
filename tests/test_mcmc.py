"""NUTS on the mixture (fit_mcmc), relabelling, ArviZ InferenceData and the diagnostics report.

Oracles: a grid posterior (numerical integration of SciPy's densities) for a one-component model
with missing entries; the sampler's potential energy against jaxmix.log_objective plus the
change-of-variables Jacobian; brute-force enumeration of permutations for the relabelling;
SciPy's row-by-row log densities for the log-likelihood group; synthetic chains with known
pathologies for the report.
"""

from __future__ import annotations

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpyro.distributions import constraints
from numpyro.distributions.transforms import biject_to
from scipy import stats
from scipy.special import logsumexp

import jaxmix
from jaxmix.data import Standardizer, as_data
from jaxmix.inference import mcmc as mcmc_module
from jaxmix.models.families import SharedCov, as_params, get_family
from jaxmix.models.mixture import permute_components, to_internal
from jaxmix.models.prior import standardize_prior
from jaxmix.posterior.diagnostics import import_arviz
from jaxmix.testing import count_traces

az = import_arviz()


def _planted(seed: int, n: int, d: int, K: int, missing: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 3.0, (K, d))
    labels = rng.integers(K, size=n)
    X = centres[labels] + 0.8 * rng.normal(size=(n, d))
    X[rng.random(X.shape) < missing] = np.nan
    X[0] = np.nan  # a row with no observed entry
    return 2.0 * X + 5.0


@pytest.fixture(scope="module")
def spherical():
    X = _planted(1, n=80, d=5, K=2, missing=0.3)
    res = jaxmix.fit_mcmc(X, 2, num_chains=2, num_warmup=150, num_samples=150, seed=0)
    return X, res


@pytest.fixture(scope="module")
def diag():
    X = _planted(2, n=60, d=3, K=2, missing=0.2)
    res = jaxmix.fit_mcmc(
        X,
        2,
        covariance="diag",
        num_chains=2,
        num_warmup=150,
        num_samples=100,
        chain_method="vectorized",
        seed=1,
    )
    return X, res


@pytest.fixture(scope="module")
def shared():
    X = _planted(3, n=40, d=4, K=2, missing=0.3)
    res = jaxmix.fit_mcmc(
        X, 2, covariance="shared", num_chains=2, num_warmup=60, num_samples=40, seed=2
    )
    return X, res


def _leaves_are_storable(obj) -> bool:
    """Only arrays, scalars, strings, None and NamedTuples of those (what a generic saver takes)."""
    if obj is None or isinstance(obj, (np.ndarray, np.generic, int, float, bool, str)):
        return True
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return all(_leaves_are_storable(v) for v in obj)
    return False


# --------------------------------------------------------------------------------------------
# fit_mcmc


@pytest.mark.parametrize("case", ["spherical", "diag"])
def test_result_shapes_and_point_estimate(case, request):
    X, res = request.getfixturevalue(case)
    n, d = X.shape
    C, S, K = res.num_chains, res.num_samples, res.n_components
    assert (C, K) == (2, 2)
    assert isinstance(res, jaxmix.MCMCResult)
    assert _leaves_are_storable(res)
    assert res.draws.mu.shape == (C, S, K, d)
    assert res.draws.var.shape == ((C, S, K) if case == "spherical" else (C, S, K, d))
    assert res.draws.weights.shape == (C, S, K)
    assert res.mu.shape == (K, d) and res.weights.shape == (K,)  # the posterior mean
    assert res.n_iter == res.num_warmup + S
    for name in ("diverging", "accept_prob", "n_leapfrog", "tree_depth", "potential_energy"):
        assert getattr(res, name).shape == (C, S)
    assert res.diverging.dtype == np.bool_
    assert res.step_size.shape == (C,)
    assert res.permutation.shape == (C, S, K)
    assert res.covariance == case
    assert res.init == "map_em"
    np.testing.assert_allclose(res.draws.weights.sum(-1), 1.0, rtol=1e-10)
    assert np.all(res.draws.var > 0) and np.all(np.isfinite(res.draws.mu))
    for name in ("mu", "var", "weights"):
        np.testing.assert_allclose(
            getattr(res.params, name), getattr(res.draws, name).mean(axis=(0, 1))
        )
    assert res.n_relabelled == int(np.any(res.permutation != np.arange(K), axis=-1).sum())
    np.testing.assert_array_equal(
        res.tree_depth, np.floor(np.log2(np.maximum(res.n_leapfrog, 1))).astype(int) + 1
    )
    # well-separated clusters: the posterior mean sits next to the MAP it started from
    ref_sd = np.sqrt(get_family(case).var_kd(res.reference.cov, K, d))
    assert np.max(np.abs(res.params.mu - res.reference.mu) / ref_sd) < 0.5
    # the point estimate completes the matrix like any fitted result
    filled = jaxmix.complete(X, res)
    np.testing.assert_allclose(filled, jaxmix.complete(X, res.params))
    assert not np.isnan(filled).any()


@pytest.mark.parametrize("case", ["spherical", "diag"])
def test_potential_energy_is_minus_log_objective_minus_jacobian(case, request):
    """The sampler targets log_objective: -potential = log p(params, X) + log|J| (standardised)."""
    X, res = request.getfixturevalue(case)
    std = Standardizer.fit(as_data(X).summary())
    X_int = (X - std.offset) / std.scale
    prior_int = standardize_prior(res.prior, std.offset, std.scale)
    simplex = biject_to(constraints.simplex)
    for c, s in [(0, 0), (0, 77), (1, 42), (1, res.num_samples - 1)]:
        perm = res.permutation[c, s]
        inverse = np.argsort(perm)  # back to the sampler's order (the Jacobian is not symmetric)
        draw = permute_components(jax.tree.map(lambda a, i=(c, s): a[i], res.draws), inverse)
        internal = to_internal(draw, std)
        log_joint = jaxmix.log_objective(X_int, internal, prior=prior_int)
        u = simplex.inv(jnp.asarray(internal.weights))
        log_jac = float(simplex.log_abs_det_jacobian(u, jnp.asarray(internal.weights)))
        log_jac += float(np.sum(np.log(internal.var)))
        assert -res.potential_energy[c, s] == pytest.approx(log_joint + log_jac, rel=1e-8)


def test_posterior_moments_match_a_grid_oracle():
    """K = 1, d = 2, entries missing: the posterior of (mu_1, mu_2, var) by 3-D quadrature."""
    rng = np.random.default_rng(7)
    X = rng.normal([1.0, -2.0], 1.3, size=(30, 2))
    X[rng.random(X.shape) < 0.3] = np.nan
    prior = jaxmix.Prior().resolve(X)
    res = jaxmix.fit_mcmc(X, 1, num_chains=2, num_warmup=300, num_samples=1000, seed=3)

    obs = ~np.isnan(X)
    N = obs.sum(0)
    S1 = np.where(obs, X, 0).sum(0)
    S2 = (np.where(obs, X, 0) ** 2).sum(0)
    m1 = np.linspace(S1[0] / N[0] - 1.5, S1[0] / N[0] + 1.5, 121)
    m2 = np.linspace(S1[1] / N[1] - 1.5, S1[1] / N[1] + 1.5, 121)
    logv = np.linspace(np.log(0.4), np.log(6.0), 161)
    A, B, L = np.meshgrid(m1, m2, logv, indexing="ij")
    v = np.exp(L)
    log_post = np.zeros_like(v)
    for col, mu in enumerate((A, B)):
        log_post += -0.5 * N[col] * np.log(2 * np.pi * v) - (
            S2[col] - 2 * mu * S1[col] + N[col] * mu**2
        ) / (2 * v)
        log_post += stats.norm.logpdf(mu, prior.mean[col], prior.mean_sd[col])
    log_post += stats.invgamma.logpdf(v, float(prior.var_shape), scale=float(prior.var_scale))
    log_post += L  # density of log var
    w = np.exp(log_post - log_post.max())
    w /= w.sum()
    draws = {
        "mu1": res.draws.mu[..., 0, 0],
        "mu2": res.draws.mu[..., 0, 1],
        "var": res.draws.var[..., 0],
    }
    grid = {"mu1": A, "mu2": B, "var": v}
    ess = az.ess(az.convert_to_dataset(draws))
    for name, values in draws.items():
        mean = float((w * grid[name]).sum())
        sd = float(np.sqrt((w * (grid[name] - mean) ** 2).sum()))
        se = sd / math.sqrt(float(ess[name]))
        assert abs(values.mean() - mean) < 4.5 * se, name
        assert values.std() == pytest.approx(sd, rel=0.12), name
    np.testing.assert_allclose(res.draws.weights, 1.0)


def _ess(draws: np.ndarray, method: str) -> np.ndarray:
    """ArviZ's ESS (``method`` "mean" or "sd") of every coordinate of ``(C, S, ...)`` draws."""
    return az.ess(az.convert_to_dataset({"x": draws}), method=method)["x"].values


@pytest.mark.slow
@pytest.mark.parametrize("case", ["spherical", "diag"])
def test_gibbs_and_nuts_agree(case, request):
    """Both kernels sample one posterior: the relabelled draws' means and sds of every mu, var
    and weight, and the predictive means of the missing entries, agree within 4 Monte Carlo
    standard errors from the ESS of both (an sd's error from the draws' kurtosis; a predictive
    mean's sd across draws is at most the predictive sd, by the law of total variance)."""
    X, nuts = request.getfixturevalue(case)
    gibbs = jaxmix.fit_mcmc(
        X,
        2,
        covariance=case,
        kernel="gibbs",
        num_chains=2,
        num_warmup=200,
        num_samples=2000,
        init=nuts.reference,  # the same labels
        seed=9,
    )
    assert gibbs.kernel == "gibbs" and nuts.kernel == "nuts"
    ess_min = []
    for name in ("mu", "var", "weights"):
        a, b = getattr(gibbs.draws, name), getattr(nuts.draws, name)
        sd_a, sd_b = a.std(axis=(0, 1)), b.std(axis=(0, 1))
        ess_a, ess_b = _ess(a, "mean"), _ess(b, "mean")
        ess_min.append(min(ess_a.min(), ess_b.min()))
        se = np.sqrt(sd_a**2 / ess_a + sd_b**2 / ess_b)
        np.testing.assert_array_less(np.abs(a.mean(axis=(0, 1)) - b.mean(axis=(0, 1))), 4 * se)

        def se_sd(x, sd):
            kurt = stats.kurtosis(x.reshape(-1, *x.shape[2:]), axis=0, fisher=False)
            return sd * np.sqrt((kurt - 1.0) / (4.0 * _ess(x, "sd")))

        se = np.sqrt(se_sd(a, sd_a) ** 2 + se_sd(b, sd_b) ** 2)
        np.testing.assert_array_less(np.abs(sd_a - sd_b), 4 * se)
    pa = jaxmix.predictive_summary(gibbs, X, num_samples=1000, seed=1)  # every 4th draw
    pb = jaxmix.predictive_summary(nuts, X, num_samples=2 * nuts.num_samples, seed=1)
    ess = min(ess_min)
    bound = 4 * np.maximum(pa.sd, pb.sd) * np.sqrt(1 / ess + 1 / ess)
    np.testing.assert_array_less(np.abs(pa.mean - pb.mean), bound)


def test_second_fit_of_same_shape_does_not_recompile(spherical):
    X, _ = spherical
    other = np.where(np.isnan(X), np.nan, X + 0.5)  # new values, same shape and settings
    with count_traces() as traces:
        res = jaxmix.fit_mcmc(other, 2, num_chains=2, num_warmup=150, num_samples=150, seed=5)
    assert traces["mcmc"] == 0
    assert res.draws.mu.shape == (2, 150, 2, 5)


def test_relabelling_inside_fit_mcmc(monkeypatch, spherical):
    """Draws coming out of the sampler with swapped labels are put back in the reference order."""
    X, fitted = spherical
    ref = fitted.reference
    std = Standardizer.fit(as_data(X).summary())
    internal = to_internal(ref, std)
    C, S = 2, 6
    swap = np.zeros((C, S), bool)
    swap[0, 1] = swap[1, 2] = swap[1, 5] = True
    order = np.where(swap[..., None], [1, 0], [0, 1])  # sampler's component j holds ref order[j]

    def fake_sample_chains(*args, **kwargs):
        batched = jax.tree.map(lambda a: np.broadcast_to(a, (C, S, *np.shape(a))), internal)
        zeros = np.zeros((C, S))
        return mcmc_module.ChainDraws(
            permute_components(batched, order),
            zeros.astype(bool),
            zeros + 0.9,
            zeros + 7,
            zeros,
            zeros + 0.1,
        )

    monkeypatch.setattr(mcmc_module, "sample_chains", fake_sample_chains)
    res = jaxmix.fit_mcmc(X, 2, num_chains=C, num_warmup=1, num_samples=S, init=ref)
    assert res.init == "given"
    assert res.n_relabelled == 3
    np.testing.assert_array_equal(res.permutation, order)
    mu, weights = res.draws.mu, res.draws.weights
    np.testing.assert_allclose(mu, np.broadcast_to(ref.mu, mu.shape), atol=1e-9)
    np.testing.assert_allclose(weights, np.broadcast_to(ref.weights, weights.shape))


def test_fit_mcmc_rejects_bad_options():
    X = _planted(0, n=20, d=3, K=2, missing=0.2)
    with pytest.raises(ValueError, match="proper prior"):
        jaxmix.fit_mcmc(X, 2, prior=None)
    with pytest.raises(ValueError, match="chain_method"):
        jaxmix.fit_mcmc(X, 2, chain_method="parallel")
    with pytest.raises(ValueError, match="num_warmup"):
        jaxmix.fit_mcmc(X, 2, num_warmup=-1)
    with pytest.raises(TypeError, match="num_warmup must be an integer"):
        jaxmix.fit_mcmc(X, 2, num_warmup=2.5)
    with pytest.raises(ValueError, match="target_accept_prob"):
        jaxmix.fit_mcmc(X, 2, target_accept_prob=1.0)
    bad = jaxmix.MixtureParams(np.zeros((3, 3)), np.ones(3), np.ones(3) / 3)
    with pytest.raises(ValueError, match="init must have"):
        jaxmix.fit_mcmc(X, 2, init=bad)
    with pytest.raises(TypeError, match="init must be"):
        jaxmix.fit_mcmc(X, 2, init="kmeans++")
    diag_init = jaxmix.MixtureParams(np.zeros((2, 3)), np.ones((2, 3)), np.ones(2) / 2)
    with pytest.raises(ValueError, match="diagonal"):
        jaxmix.fit_mcmc(X, 2, init=diag_init)


@pytest.mark.slow
def test_shared_family_draws_and_point_estimate(shared):
    """One variance for every component: draws (C, S), a scalar posterior mean, no relabelling
    of the variance."""
    X, res = shared
    n, d = X.shape
    C, S, K = res.num_chains, res.num_samples, res.n_components
    assert res.covariance == "shared" and isinstance(res.cov, SharedCov)
    assert isinstance(res.draws.cov, SharedCov)
    assert res.draws.mu.shape == (C, S, K, d) and res.draws.var.shape == (C, S)
    assert res.draws.weights.shape == (C, S, K)
    assert res.mu.shape == (K, d) and np.shape(res.var) == () and res.weights.shape == (K,)
    assert res.reference.var.shape == ()
    assert np.all(np.isfinite(res.draws.mu)) and np.all(res.draws.var > 0)
    np.testing.assert_allclose(res.draws.weights.sum(-1), 1.0, rtol=1e-10)
    np.testing.assert_allclose(res.var, res.draws.var.mean())
    np.testing.assert_allclose(res.mu, res.draws.mu.mean(axis=(0, 1)))
    assert np.all(np.isfinite(res.potential_energy)) and res.step_size.shape == (C,)
    # the point estimate completes the matrix like any fitted result
    filled = jaxmix.complete(X, res)
    assert filled.shape == (n, d) and np.all(np.isfinite(filled))


@pytest.mark.slow
def test_shared_family_inference_data_and_diagnose(shared):
    X, res = shared
    n, d = X.shape
    C, S = res.num_chains, res.num_samples
    idata = jaxmix.to_inference_data(res, X, seed=1)
    post = idata.posterior
    assert post["var"].dims == ("chain", "draw")
    assert post["mu"].dims == ("chain", "draw", "component", "item")
    np.testing.assert_array_equal(post["var"].values, res.draws.var)
    ll = idata.log_likelihood["x"].values
    assert ll.shape == (C, S, n) and np.all(np.isfinite(ll))
    draws = res.draws
    c, s = 1, S - 1
    expected = []
    for row in X:  # the oracle: every component has the same variance
        o = ~np.isnan(row)
        sd = np.sqrt(draws.var[c, s])
        terms = [
            np.log(draws.weights[c, s, k])
            + stats.norm.logpdf(row[o], draws.mu[c, s, k, o], sd).sum()
            for k in range(res.n_components)
        ]
        expected.append(logsumexp(terms))
    np.testing.assert_allclose(ll[c, s], expected, rtol=1e-9, atol=1e-9)
    pp = idata.posterior_predictive["x_missing"].values
    assert pp.shape == (C, S, int(np.isnan(X).sum())) and np.all(np.isfinite(pp))
    report = jaxmix.diagnose(res, verbose=False, warn=False)
    assert [v.name for v in report.variables] == ["mu", "var", "weights"]
    assert np.isfinite(report.max_r_hat) and report.min_ess_bulk > 0
    assert report.num_chains == C and report.num_draws == S
    table = jaxmix.predictive_summary(res, X, 0.9, num_samples=50, seed=3)
    assert table.n_entries == int(np.isnan(X).sum())
    assert np.all(np.isfinite(table.mean)) and np.all(table.sd > 0)
    assert np.all(table.lower < table.upper)


# --------------------------------------------------------------------------------------------
# relabel


@pytest.mark.parametrize("covariance", ["spherical", "diag"])
def test_relabel_matches_brute_force_over_permutations(rng, covariance):
    K, d, B = 4, 3, 50
    var_shape = (K,) if covariance == "spherical" else (K, d)
    ref = jaxmix.MixtureParams(
        rng.normal(0, 3, (K, d)), rng.uniform(0.5, 2, var_shape), rng.dirichlet(np.ones(K))
    )
    draws = jaxmix.MixtureParams(
        rng.normal(0, 3, (B, K, d)),
        rng.uniform(0.5, 2, (B, *var_shape)),
        rng.dirichlet(np.ones(K), size=B),
    )
    out, perm = jaxmix.relabel(draws, ref)
    prec = 1.0 / (ref.var[:, None] if covariance == "spherical" else ref.var)
    for b in range(B):
        costs = {
            p: sum(((draws.mu[b, p[k]] - ref.mu[k]) ** 2 * prec[k]).sum() for k in range(K))
            for p in itertools.permutations(range(K))
        }
        best = min(costs, key=costs.get)
        assert costs[tuple(perm[b])] == pytest.approx(costs[best], rel=1e-12)
        np.testing.assert_array_equal(out.mu[b], draws.mu[b, perm[b]])
        np.testing.assert_array_equal(out.var[b], draws.var[b, perm[b]])
        np.testing.assert_array_equal(out.weights[b], draws.weights[b, perm[b]])
    again, perm2 = jaxmix.relabel(out, ref)  # relabelling is idempotent
    np.testing.assert_array_equal(perm2, np.broadcast_to(np.arange(K), perm2.shape))
    np.testing.assert_array_equal(again.mu, out.mu)


def test_relabel_keeps_batch_shape_and_recovers_known_swaps(rng):
    ref = jaxmix.MixtureParams(np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]]), np.ones(3), None)
    ref = ref._replace(weights=np.array([0.2, 0.3, 0.5]))
    perms = np.array([[[0, 1, 2], [2, 0, 1]], [[1, 2, 0], [0, 2, 1]]])  # (2, 2, 3)
    mu = ref.mu[perms] + 0.1 * rng.normal(size=(2, 2, 3, 2))
    draws = jaxmix.MixtureParams(mu, ref.var[perms], ref.weights[perms])
    out, perm = jaxmix.relabel(draws, ref)
    assert perm.shape == (2, 2, 3)
    np.testing.assert_allclose(out.weights, np.broadcast_to(ref.weights, (2, 2, 3)))
    np.testing.assert_allclose(out.mu, np.broadcast_to(ref.mu, (2, 2, 3, 2)), atol=0.5)
    with pytest.raises(ValueError, match="reference has K=3"):
        two = jaxmix.MixtureParams(mu[..., :2, :], draws.cov[..., :2], draws.weights[..., :2])
        jaxmix.relabel(two, ref)


@pytest.mark.parametrize("covariance", ["spherical", "diag"])
def test_relabel_by_responsibilities_matches_brute_force(rng, covariance):
    """relabel(draws, ref, X): the permutation of least sum_k c[perm_k, k], with
    c[j, k] = -sum_u r_ref[u, k] log p(z_u = j | x_u, draw) from SciPy's row-by-row densities
    on the observed entries, over every permutation."""
    K, d, n, B = 3, 3, 40, 12
    var_shape = (K,) if covariance == "spherical" else (K, d)
    centres = rng.normal(0, 3, (K, d))
    X = centres[rng.integers(K, size=n)] + rng.normal(size=(n, d))
    X[rng.random(X.shape) < 0.3] = np.nan
    ref = jaxmix.MixtureParams(centres, rng.uniform(0.5, 2, var_shape), rng.dirichlet(np.ones(K)))
    draws = jaxmix.MixtureParams(
        centres[None] + rng.normal(0, 2, (B, K, d)),
        rng.uniform(0.5, 2, (B, *var_shape)),
        rng.dirichlet(np.ones(K), size=B),
    )

    def log_resp(params):
        var = params.var[:, None] if covariance == "spherical" else params.var
        out = np.log(params.weights)[None, :].repeat(n, 0)
        for u, k in itertools.product(range(n), range(K)):
            seen = ~np.isnan(X[u])
            sd = np.sqrt(np.broadcast_to(var[k], (d,))[seen])
            out[u, k] += stats.norm.logpdf(X[u, seen], params.mu[k, seen], sd).sum()
        return out - logsumexp(out, axis=1, keepdims=True)

    resp_ref = np.exp(log_resp(ref))
    out, perm = jaxmix.relabel(draws, ref, X)
    _, from_triples = jaxmix.relabel(draws, ref, jaxmix.sparse_ratings(X))
    np.testing.assert_array_equal(from_triples, perm)
    for b in range(B):
        draw = jax.tree.map(lambda a, b=b: a[b], draws)
        cost = -(log_resp(draw).T @ resp_ref)
        total = {p: sum(cost[p[k], k] for k in range(K)) for p in itertools.permutations(range(K))}
        best = min(total.values())
        assert total[tuple(perm[b])] <= best + 1e-4 * abs(best) + 1e-4
        np.testing.assert_array_equal(out.mu[b], draws.mu[b, perm[b]])
        np.testing.assert_array_equal(out.weights[b], draws.weights[b, perm[b]])


def test_relabel_by_responsibilities_ignores_an_empty_components_parameters():
    """The reference (a MAP) has a tiny component of tiny variance between two clusters; a
    draw's emptied component (weight 1e-4, parameters from the prior) sits elsewhere. Matching
    the means pairs a real component with the tiny one (its precision dominates the cost);
    matching the rows each component explains gets every label right."""
    rng = np.random.default_rng(4)
    X = np.concatenate([rng.normal(0, 1, (30, 2)), rng.normal(10, 1, (30, 2))])
    X[rng.random(X.shape) < 0.2] = np.nan
    ref = jaxmix.MixtureParams(
        np.array([[0.0, 0.0], [10.0, 10.0], [5.0, 5.0]]),
        np.array([1.0, 1.0, 0.01]),
        np.array([0.5, 0.498, 0.002]),
    )
    # the draw's components, in the reference's order: real, real, emptied
    truth = jaxmix.MixtureParams(
        np.array([[0.1, 0.0], [10.0, 10.1], [-3.0, -3.0]]),
        np.array([1.1, 0.9, 10.0]),
        np.array([0.5, 0.4999, 1e-4]),
    )
    orders = np.array([[0, 1, 2], [2, 0, 1], [1, 2, 0], [2, 1, 0]])  # draw j holds truth order[j]
    draws = permute_components(as_params(jax.tree.map(lambda a: np.stack([a] * 4), truth)), orders)
    inverse = np.argsort(orders, axis=1)  # draw component holding truth k

    _, by_params = jaxmix.relabel(draws, ref)
    assert not np.array_equal(by_params, inverse)  # the failure this guards against
    out, perm = jaxmix.relabel(draws, ref, X)
    np.testing.assert_array_equal(perm, inverse)
    np.testing.assert_allclose(out.mu, np.broadcast_to(truth.mu, out.mu.shape))
    np.testing.assert_allclose(out.weights, np.broadcast_to(truth.weights, out.weights.shape))
    with pytest.raises(ValueError, match="columns"):
        jaxmix.relabel(draws, ref, X[:, :1])


# --------------------------------------------------------------------------------------------
# to_inference_data


# az.loo's notice about high Pareto k (300 draws: its threshold is 0.6) is not under test here.
@pytest.mark.filterwarnings("ignore:Estimated shape parameter of Pareto distribution:UserWarning")
def test_inference_data_groups_dims_and_log_likelihood_oracle(spherical):
    X, res = spherical
    n, d = X.shape
    idata = jaxmix.to_inference_data(res, X, seed=2)
    assert set(idata.groups()) == {
        "posterior",
        "log_likelihood",
        "posterior_predictive",
        "observed_data",
        "constant_data",
        "sample_stats",
    }
    post = idata.posterior
    assert post["mu"].dims == ("chain", "draw", "component", "item")
    assert post["var"].dims == ("chain", "draw", "component")
    assert post["weights"].dims == ("chain", "draw", "component")
    np.testing.assert_array_equal(post["mu"].values, res.draws.mu)
    assert post.attrs["n_relabelled"] == res.n_relabelled
    ll = idata.log_likelihood["x"]
    assert ll.dims == ("chain", "draw", "row") and ll.shape == (2, res.num_samples, n)
    draws = res.draws
    for c, s in [(0, 3), (1, 100)]:
        rows = []
        for row in X:
            o = ~np.isnan(row)
            terms = [
                np.log(draws.weights[c, s, k])
                + stats.norm.logpdf(row[o], draws.mu[c, s, k, o], np.sqrt(draws.var[c, s, k])).sum()
                for k in range(2)
            ]
            rows.append(logsumexp(terms))
        np.testing.assert_allclose(ll.values[c, s], rows, rtol=1e-9, atol=1e-9)
    missing_rows, missing_cols = np.nonzero(np.isnan(X))
    pp = idata.posterior_predictive["x_missing"]
    assert pp.dims == ("chain", "draw", "missing_entry")
    np.testing.assert_array_equal(pp["row"].values, missing_rows)
    np.testing.assert_array_equal(pp["column"].values, missing_cols)
    assert np.isfinite(pp.values).all()
    np.testing.assert_array_equal(idata.constant_data["observed"].values, ~np.isnan(X))
    np.testing.assert_array_equal(np.isnan(idata.observed_data["x"].values), np.isnan(X))
    stats_ = idata.sample_stats
    for name in ("diverging", "acceptance_rate", "n_steps", "tree_depth", "lp", "step_size"):
        assert stats_[name].shape == (2, res.num_samples)
    np.testing.assert_array_equal(stats_["lp"].values, -res.potential_energy)
    summary = az.summary(idata, var_names=["weights", "var"])
    assert {"r_hat", "ess_bulk", "ess_tail"} <= set(summary.columns)
    loo = az.loo(idata)
    assert np.isfinite(loo.elpd_loo) and loo.loo_i.shape == (n,)


def test_inference_data_without_missing_entries_or_predictive(diag):
    X, res = diag
    idata = jaxmix.to_inference_data(res, X, posterior_predictive=False)
    assert "posterior_predictive" not in idata.groups()
    assert idata.posterior["var"].dims == ("chain", "draw", "component", "item")
    full = np.nan_to_num(X, nan=1.0)
    # no missing entry: the predictive holds only the replicate of the observed entries
    pp = jaxmix.to_inference_data(res, full).posterior_predictive
    assert list(pp.data_vars) == ["x"] and pp["x"].shape == (2, res.num_samples, full.size)


def test_inference_data_rejects_point_estimates(spherical):
    X, _ = spherical
    em = jaxmix.fit_em(X, 2)
    with pytest.raises(TypeError, match="posterior draws"):
        jaxmix.to_inference_data(em, X)
    with pytest.raises(TypeError, match="MCMCResult"):
        jaxmix.diagnose(em)


def test_inference_data_of_a_meanfield_svi_result(spherical):
    if not hasattr(jaxmix, "fit_svi"):
        pytest.skip("jaxmix.fit_svi is not available")
    X, _ = spherical
    svi = jaxmix.fit_svi(X, 2, guide="meanfield", prior=jaxmix.Prior(), num_steps=300, seed=0)
    idata = jaxmix.to_inference_data(svi, X, num_samples=200, seed=1)
    assert idata.posterior.sizes["chain"] == 1 and idata.posterior.sizes["draw"] == 200
    assert "sample_stats" not in idata.groups()
    assert idata.log_likelihood["x"].shape == (1, 200, X.shape[0])
    report = jaxmix.diagnose(svi, verbose=False, warn=False)
    assert report.num_chains == 1 and report.num_divergent == 0
    svi_map = svi._replace(guide="map", variational_loc=None, variational_scale=None)
    with pytest.raises(TypeError, match="posterior draws"):
        jaxmix.to_inference_data(svi_map, X)


# --------------------------------------------------------------------------------------------
# diagnose


def test_diagnose_accepts_well_mixed_chains(capsys):
    rng = np.random.default_rng(0)
    idata = az.from_dict(
        posterior={"mu": rng.normal(size=(4, 1000, 3)), "weights": rng.random((4, 1000, 2))},
        sample_stats={"diverging": np.zeros((4, 1000), bool)},
    )
    report = jaxmix.diagnose(idata)  # warnings are errors: none may be issued
    assert report.ok and report.problems == ()
    assert report.max_r_hat < 1.01 and report.min_ess_bulk > 400
    assert (report.num_chains, report.num_draws, report.ess_threshold) == (4, 1000, 400.0)
    assert [v.name for v in report.variables] == ["mu", "weights"]
    assert "status: OK" in capsys.readouterr().out


def test_diagnose_warns_on_stuck_chains_low_ess_and_divergences():
    rng = np.random.default_rng(1)
    mu = rng.normal(size=(2, 500, 3))
    mu[1] += 0.5  # the chains disagree
    diverging = np.zeros((2, 500), bool)
    diverging[0, [3, 70]] = True
    idata = az.from_dict(posterior={"mu": mu}, sample_stats={"diverging": diverging})
    with pytest.warns(jaxmix.DiagnosticsWarning, match="r_hat") as record:
        report = jaxmix.diagnose(idata, verbose=False)
    assert "2 divergent" in str(record[0].message)
    assert not report.ok and report.num_divergent == 2
    assert report.max_r_hat > 1.01
    walk = np.cumsum(rng.normal(size=(2, 500, 1)), axis=1)  # a random walk: tiny ESS
    with pytest.warns(jaxmix.DiagnosticsWarning, match="ESS"):
        jaxmix.diagnose(az.from_dict(posterior={"mu": walk}), verbose=False)


def test_diagnose_names_chains_at_different_log_density_levels():
    """Chains whose parameters agree but whose lp (minus the potential energy) sits at two
    levels 0.5 apart (1000 independent draws each: about 11 standard errors) are reported, the
    higher chain named; at one level, or with one chain, they are not."""
    rng = np.random.default_rng(5)
    mu = rng.normal(size=(2, 1000, 2))
    lp = rng.normal(size=(2, 1000))
    same = az.from_dict(posterior={"mu": mu}, sample_stats={"lp": lp})
    report = jaxmix.diagnose(same, verbose=False)  # warnings are errors: none may be issued
    assert report.ok
    np.testing.assert_allclose(report.chain_lp, lp.mean(axis=1))
    lp[1] += 0.5
    apart = az.from_dict(posterior={"mu": mu}, sample_stats={"lp": lp})
    with pytest.warns(jaxmix.DiagnosticsWarning, match="different levels") as record:
        report = jaxmix.diagnose(apart, verbose=False)
    assert not report.ok and len(report.problems) == 1 and len(record) == 1
    assert "(chain 1: mean lp" in report.problems[0]
    one = az.from_dict(posterior={"mu": mu[:1]}, sample_stats={"lp": lp[:1]})
    assert jaxmix.diagnose(one, verbose=False).ok
    flat = az.from_dict(posterior={"mu": mu}, sample_stats={"lp": np.zeros((2, 1000))})
    assert jaxmix.diagnose(flat, verbose=False).chain_lp == (0.0, 0.0)
    lp = rng.normal(size=(2, 1000))
    lp[0] = lp[1].mean()  # one chain constant at the other's mean: no standard error, no gap
    assert jaxmix.diagnose(az.from_dict(posterior={"mu": mu}, sample_stats={"lp": lp})).ok
    lp[0] = lp[1].mean() + 1.0  # ... and one 1.0 above it (30 of the other's standard errors)
    with pytest.warns(jaxmix.DiagnosticsWarning, match=r"\(chain 0: mean lp"):
        jaxmix.diagnose(az.from_dict(posterior={"mu": mu}, sample_stats={"lp": lp}), verbose=False)


def test_diagnose_splits_a_single_chain_for_r_hat():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(1, 1000, 2))
    assert jaxmix.diagnose(az.from_dict(posterior={"mu": x}), verbose=False).ok
    x[0, 500:] += 1.0  # the second half drifted
    with pytest.warns(jaxmix.DiagnosticsWarning, match="r_hat"):
        report = jaxmix.diagnose(az.from_dict(posterior={"mu": x}), verbose=False)
    expected = float(az.rhat(az.from_dict(posterior={"mu": x.reshape(2, 500, 2)}))["mu"].max())
    assert report.max_r_hat == pytest.approx(expected)


def test_diagnose_an_mcmc_result(spherical):
    _, res = spherical
    report = jaxmix.diagnose(res, verbose=False, warn=False)
    assert report.num_chains == 2 and report.num_draws == res.num_samples
    assert report.n_relabelled == res.n_relabelled
    assert report.num_divergent == int(res.diverging.sum())
    assert np.isfinite(report.max_r_hat) and report.min_ess_bulk > 0
    assert "relabelled draws" in report.format()
    with pytest.raises(ValueError, match="none of"):
        jaxmix.diagnose(res, var_names=("theta",), verbose=False)


def test_diagnose_tells_a_problem_once(capsys):
    """Printed (verbose, the default) or warned (verbose=False), never both."""
    rng = np.random.default_rng(4)
    mu = rng.normal(size=(2, 300, 2))
    mu[1] += 1.0  # the chains disagree: r_hat fails
    idata = az.from_dict(posterior={"mu": mu})
    report = jaxmix.diagnose(idata)  # warnings are errors here: none may be issued
    out = capsys.readouterr().out
    assert not report.ok and "status: PROBLEMS" in out
    assert all(problem in out for problem in report.problems)
    with pytest.warns(jaxmix.DiagnosticsWarning) as record:
        quiet = jaxmix.diagnose(idata, verbose=False)
    assert len(record) == 1 and capsys.readouterr().out == ""
    assert all(problem in str(record[0].message) for problem in quiet.problems)
    assert quiet.problems == report.problems
    silent = jaxmix.diagnose(idata, verbose=False, warn=False)  # no output, no warning
    assert capsys.readouterr().out == "" and silent.problems == report.problems

"""The NumPyro model and EM's objective are the same function (float64).

Oracles: NumPyro's own enumerated log density (funsor sums the component of every row out) and
``TraceEnum_ELBO`` with a point-mass guide; SciPy's ``logpdf`` of every density, row by row.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpyro import handlers
from numpyro.contrib.funsor import enum, log_density
from numpyro.infer import TraceEnum_ELBO
from scipy import stats
from scipy.special import logsumexp

import jaxmix
from jaxmix.models.families import WEIGHT_EPS, SharedCov, get_family

RTOL = 1e-9
K, N_ROWS, N_COLS = 3, 25, 4
COVARIANCES = ["spherical", "diag", "shared"]  # every family of jaxmix.FAMILIES


def _matrix(rng, missing: float) -> np.ndarray:
    X = rng.integers(1, 6, (N_ROWS, N_COLS)).astype(float)
    X[rng.random(X.shape) < missing] = np.nan
    X[3] = np.nan  # a row with no observed entry
    X[4, 1:] = np.nan  # a row with a single one
    return X


def _params(rng, covariance: str) -> jaxmix.MixtureParams:
    """Arbitrary (not fitted) parameters of the family."""
    family = get_family(covariance)
    return jaxmix.MixtureParams(
        mu=rng.normal(3.0, 1.5, (K, N_COLS)),
        cov=family.cov_type(rng.uniform(0.3, 3.0, family.var_shape(K, N_COLS))),
        weights=rng.dirichlet(np.full(K, 2.0)),
    )


PRIORS = {
    "none": None,
    "default": jaxmix.Prior(),
    "custom": jaxmix.Prior(
        alpha=3.5, mean=3.0, mean_sd=[0.5, 1.0, 2.0, 4.0], var_shape=1.5, var_scale=0.7
    ),
}


def _numpyro_log_density(X, params, prior, covariance):
    model = enum(jaxmix.mixture_model, first_available_dim=-2)
    values = {"mu": params.mu, "var": params.var, "weights": params.weights}
    lp, _ = log_density(
        model, (X, ~np.isnan(X), K), {"prior": prior, "covariance": covariance}, values
    )
    return float(lp)


def _scipy_objective(X, params, prior, covariance):
    """Row-by-row log-likelihood and the prior's densities, all from SciPy."""
    d = X.shape[1]
    var = {  # every component's variance in every column, written out per family
        "spherical": lambda v: np.repeat(v[:, None], d, axis=1),
        "diag": lambda v: v,
        "shared": lambda v: np.full((K, d), v),
    }[covariance](np.asarray(params.var))
    total = 0.0
    for row in X:
        c = ~np.isnan(row)
        terms = [
            np.log(params.weights[k] + WEIGHT_EPS)
            + stats.norm.logpdf(row[c], params.mu[k, c], np.sqrt(var[k, c])).sum()
            for k in range(K)
        ]
        total += logsumexp(terms)
    if prior is not None:
        total += stats.dirichlet.logpdf(params.weights, np.full(K, float(prior.alpha)))
        total += stats.norm.logpdf(params.mu, prior.mean, prior.mean_sd).sum()
        total += stats.invgamma.logpdf(
            params.var, float(prior.var_shape), scale=float(prior.var_scale)
        ).sum()
    return total


@pytest.mark.parametrize("missing", [0.0, 0.3, 0.7])
@pytest.mark.parametrize("prior_name", list(PRIORS))
@pytest.mark.parametrize("covariance", COVARIANCES)
def test_numpyro_log_density_equals_em_objective(rng, covariance, prior_name, missing):
    X = _matrix(rng, missing)
    prior = PRIORS[prior_name]
    resolved = None if prior is None else prior.resolve(X)
    for _ in range(3):  # several arbitrary parameter points
        params = _params(rng, covariance)
        ours = jaxmix.log_objective(X, params, prior=resolved, covariance=covariance)
        theirs = _numpyro_log_density(X, params, resolved, covariance)
        assert ours == pytest.approx(theirs, rel=RTOL)
        assert ours == pytest.approx(_scipy_objective(X, params, resolved, covariance), rel=RTOL)


@pytest.mark.parametrize("covariance", COVARIANCES)
def test_trace_enum_elbo_with_point_mass_guide_is_minus_objective(rng, covariance):
    """The ELBO of a point-mass guide is the log joint: what SVI with AutoDelta maximises."""
    import numpyro
    import numpyro.distributions as dist

    X = _matrix(rng, 0.4)
    prior = jaxmix.Prior().resolve(X)
    params = _params(rng, covariance)

    def guide(X0, mask, K, prior=None, covariance="spherical"):
        numpyro.sample("weights", dist.Delta(jnp.asarray(params.weights), event_dim=1))
        numpyro.sample("var", dist.Delta(jnp.asarray(params.var), event_dim=params.var.ndim))
        numpyro.sample("mu", dist.Delta(jnp.asarray(params.mu), event_dim=2))

    loss = TraceEnum_ELBO(max_plate_nesting=1).loss(
        jax.random.PRNGKey(0),
        {},
        jaxmix.mixture_model,
        guide,
        X,
        ~np.isnan(X),
        K,
        prior,
        covariance,
    )
    assert float(loss) == pytest.approx(-jaxmix.log_objective(X, params, prior=prior), rel=RTOL)


@pytest.mark.parametrize("covariance", COVARIANCES)
def test_model_sites_shapes_and_enumeration(rng, covariance):
    X = _matrix(rng, 0.3)
    params = _params(rng, covariance)
    values = {"mu": params.mu, "var": params.var, "weights": params.weights}
    model = handlers.substitute(handlers.seed(jaxmix.mixture_model, 0), data=values)
    tr = handlers.trace(model).get_trace(X, ~np.isnan(X), K, jaxmix.Prior().resolve(X), covariance)
    assert list(tr) == ["weights", "var", "mu", "rows", "z", "x"]
    assert tr["weights"]["fn"].event_shape == (K,)
    assert tr["var"]["fn"].event_shape == params.var.shape
    assert tr["mu"]["fn"].event_shape == (K, N_COLS)
    assert tr["z"]["infer"].get("enumerate") == "parallel"
    assert tr["z"]["value"].shape == (N_ROWS,)
    assert [f.name for f in tr["z"]["cond_indep_stack"]] == ["rows"]
    assert tr["x"]["is_observed"] and tr["x"]["fn"].event_shape == (N_COLS,)
    assert tr["x"]["fn"].batch_shape == (N_ROWS,)
    assert bool(jnp.all(jnp.isfinite(tr["x"]["value"])))  # NaNs replaced before the likelihood


def test_every_family_is_covered():
    """The independent-entry families run through the tests above; the factor family through
    its own (its sites differ: loadings and the offset)."""
    assert sorted([*COVARIANCES, "factor"]) == sorted(jaxmix.FAMILIES)


@pytest.mark.parametrize("prior_name", ["none", "default"])
def test_shared_model_is_the_spherical_one_with_tied_variances(rng, prior_name):
    """The shared family's model is the spherical one with every variance equal (the likelihood);
    with a prior the two differ by the InverseGamma terms of the K - 1 extra variances."""
    X = _matrix(rng, 0.4)
    prior = None if PRIORS[prior_name] is None else PRIORS[prior_name].resolve(X)
    shared = _params(rng, "shared")
    assert isinstance(shared.cov, SharedCov) and np.shape(shared.var) == ()
    tied = shared._replace(cov=get_family("spherical").cov_type(np.full(K, shared.var)))
    lp_shared = _numpyro_log_density(X, shared, prior, "shared")
    lp_tied = _numpyro_log_density(X, tied, prior, "spherical")
    extra = 0.0
    if prior is not None:
        extra = (K - 1) * stats.invgamma.logpdf(
            float(shared.var), float(prior.var_shape), scale=float(prior.var_scale)
        )
    assert lp_tied == pytest.approx(lp_shared + extra, rel=RTOL)
    assert lp_shared == pytest.approx(jaxmix.log_objective(X, shared, prior=prior), rel=RTOL)


def test_flat_priors_contribute_nothing(rng):
    """prior=None: the model's log density is the plain log-likelihood (the reference model)."""
    X = _matrix(rng, 0.3)
    params = _params(rng, "spherical")
    data_ll = _scipy_objective(X, params, None, "spherical")
    assert _numpyro_log_density(X, params, None, "spherical") == pytest.approx(data_ll, rel=RTOL)


def test_model_subsampling_scales_the_likelihood(rng):
    X = _matrix(rng, 0.0)
    params = _params(rng, "spherical")
    values = {"mu": params.mu, "var": params.var, "weights": params.weights}
    model = handlers.substitute(handlers.seed(jaxmix.mixture_model, 1), data=values)
    tr = handlers.trace(model).get_trace(X, ~np.isnan(X), K, None, "spherical", subsample_size=5)
    assert tr["x"]["fn"].batch_shape == (5,) and tr["x"]["value"].shape == (5, N_COLS)
    assert tr["x"]["scale"] == pytest.approx(N_ROWS / 5)


def test_model_rejects_unresolved_prior_and_bad_arguments(rng):
    X = _matrix(rng, 0.3)
    model = handlers.seed(jaxmix.mixture_model, 0)
    with pytest.raises(ValueError, match="resolve"):
        model(X, ~np.isnan(X), K, jaxmix.Prior())
    with pytest.raises(ValueError, match="covariance"):
        model(X, ~np.isnan(X), K, None, "full")
    with pytest.raises(ValueError, match="K must"):
        model(X, ~np.isnan(X), 0)


# ---------------------------------------------------------------- the Prior object


def test_prior_defaults_resolve_to_documented_values():
    X = np.array([[1.0, 2.0, np.nan], [3.0, np.nan, np.nan], [5.0, 6.0, np.nan]])
    p = jaxmix.Prior().resolve(X)
    assert p.is_resolved and not jaxmix.Prior().is_resolved
    # column means; the empty column gets the global mean 17 / 5
    np.testing.assert_allclose(p.mean, [3.0, 4.0, 3.4])
    pooled = (4.0 + 0.0 + 4.0 + 4.0 + 4.0) / 5.0  # squared residuals around the column means
    np.testing.assert_allclose(p.mean_sd, np.full(3, 2.0 * np.sqrt(pooled)))
    assert float(p.alpha) == 2.0 and float(p.var_shape) == 2.0
    assert float(p.var_scale) == pytest.approx(0.5 * 3.0 * pooled)
    again = p.resolve(X)  # resolving a resolved prior keeps its numbers
    for a, b in zip(p, again, strict=True):
        np.testing.assert_array_equal(a, b)


def test_prior_explicit_fields_are_kept_and_broadcast():
    X = np.arange(12.0).reshape(4, 3)
    p = jaxmix.Prior(alpha=1.0, mean=2.5, mean_sd=[1.0, 2.0, 3.0], var_shape=3.0, var_scale=0.1)
    r = p.resolve(X)
    np.testing.assert_array_equal(r.mean, [2.5, 2.5, 2.5])
    np.testing.assert_array_equal(r.mean_sd, [1.0, 2.0, 3.0])
    assert float(r.var_scale) == 0.1 and float(r.alpha) == 1.0


@pytest.mark.parametrize(
    "bad, err",
    [
        (dict(alpha=0.0), ValueError),
        (dict(alpha=True), TypeError),
        (dict(mean=[1.0, 2.0]), ValueError),
        (dict(mean_sd=-1.0), ValueError),
        (dict(var_shape=np.inf), ValueError),
        (dict(var_scale="a"), TypeError),
    ],
)
def test_prior_validation(bad, err):
    with pytest.raises(err):
        jaxmix.Prior(**bad).resolve(np.ones((3, 3)) + np.eye(3))


def test_prior_default_scale_for_ratings(rng):
    """For ratings 1..5 the default mean prior spans the star range, the variance prior is weak."""
    X = rng.integers(1, 6, (200, 30)).astype(float)
    X[rng.random(X.shape) < 0.3] = np.nan
    p = jaxmix.Prior().resolve(X)
    assert np.all((p.mean > 1) & (p.mean < 5))
    assert np.all((p.mean_sd > 2) & (p.mean_sd < 4))  # pooled sd of uniform stars is sqrt(2)
    mode = float(p.var_scale) / (float(p.var_shape) + 1.0)
    assert 0.5 < mode < 1.5


def _factor_params(rng, rank: int, row_offset: bool) -> jaxmix.MixtureParams:
    family = get_family("factor", rank=rank, row_offset=row_offset)
    cov = family.cov_type(
        rng.uniform(0.3, 2.0, (K, N_COLS)),
        rng.normal(0.0, 0.8, (K, N_COLS, rank)),
        rng.uniform(0.2, 1.0, (K, int(row_offset))),
    )
    return jaxmix.MixtureParams(rng.normal(3.0, 1.5, (K, N_COLS)), cov, rng.dirichlet(np.ones(K)))


def _scipy_factor_objective(X, params, prior):
    """Row by row: SciPy's multivariate normal of the observed coordinates under ``W W' +
    tau^2 1 1' + diag(var)``; the prior's densities from SciPy."""
    cov = params.cov
    total = 0.0
    for row in X:
        c = ~np.isnan(row)
        terms = []
        for k in range(K):
            w = cov.loadings[k][c]
            sigma = w @ w.T + cov.offset[k].sum() + np.diag(cov.var[k][c])
            ll = stats.multivariate_normal.logpdf(row[c], params.mu[k, c], sigma) if c.any() else 0
            terms.append(np.log(params.weights[k] + WEIGHT_EPS) + ll)
        total += logsumexp(terms)
    if prior is not None:
        a, b = float(prior.var_shape), float(prior.var_scale)
        total += stats.dirichlet.logpdf(params.weights, np.full(K, float(prior.alpha)))
        total += stats.norm.logpdf(params.mu, prior.mean, prior.mean_sd).sum()
        total += stats.invgamma.logpdf(cov.var, a, scale=b).sum()
        total += stats.invgamma.logpdf(cov.offset, a, scale=b).sum()
        total += stats.norm.logpdf(cov.loadings, 0.0, prior.loading_sd).sum()
    return total


@pytest.mark.parametrize("missing", [0.0, 0.3, 0.7])
@pytest.mark.parametrize("prior_name", ["none", "default"])
@pytest.mark.parametrize("rank, row_offset", [(1, True), (2, False), (2, True)])
def test_factor_model_log_density_equals_em_objective(rng, rank, row_offset, prior_name, missing):
    """The component summed out and the factors integrated out, NumPyro's log density of the
    factor model is EM's objective, and both are SciPy's dense multivariate normals."""
    X = _matrix(rng, missing)
    prior = PRIORS[prior_name]
    resolved = None if prior is None else prior.resolve(X)
    opts = {"covariance": "factor", "rank": rank, "row_offset": row_offset}
    model = enum(jaxmix.mixture_model, first_available_dim=-2)
    for _ in range(2):
        params = _factor_params(rng, rank, row_offset)
        values = {"mu": params.mu, "weights": params.weights}
        values.update(
            get_family("factor", rank=rank, row_offset=row_offset).site_values(params.cov)
        )
        theirs, _ = log_density(model, (X, ~np.isnan(X), K), {"prior": resolved, **opts}, values)
        ours = jaxmix.log_objective(X, params, prior=resolved)
        assert ours == pytest.approx(float(theirs), rel=RTOL)
        assert ours == pytest.approx(_scipy_factor_objective(X, params, resolved), rel=RTOL)

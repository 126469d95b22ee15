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
from helpers import dense_arrays, e_step, jax_params, m_step, numpy_params, suff_stats
from scipy import stats
from scipy.special import logsumexp

import jaxmix
from jaxmix.models.families import FAMILIES, SharedCov, get_family

NAMES = sorted(FAMILIES)
#: Every registered family, and the factor family with two factors and no row offset.
CASES = [*NAMES, "factor-2"]
#: The families whose entries are independent given the component.
INDEPENDENT = [n for n in NAMES if n != "factor"]


def _family(case):
    if case == "factor-2":
        return get_family("factor", rank=2, row_offset=False)
    return get_family(case)


def _options(family):
    """``fit_em`` keyword arguments that select ``family``."""
    if family.name == "factor":
        return {"covariance": "factor", "rank": family.rank, "row_offset": family.row_offset}
    return {"covariance": family.name}


def _data(rng, n=50, d=6, K=3, missing=0.3):
    centres = rng.normal(0.0, 3.0, (K, d))
    X = centres[rng.integers(K, size=n)] + rng.normal(size=(n, d))
    X[rng.random(X.shape) < missing] = np.nan
    X[0] = np.nan  # a row with nothing observed
    X[:, 1][rng.random(n) < 0.9] = np.nan  # a column observed a few times
    return X


def _cold_data(rng, n=60):
    """:func:`_data` moved away from 0, with a column nobody observed (4) and a second row with
    nothing (5)."""
    X = _data(rng, n=n) + 3.0  # away from 0
    X[:, 4] = np.nan  # a never-seen column
    X[5] = np.nan  # and a row with nothing
    return X


#: The sparse layout of the padding and cold-start tests: the hybrid layout in small chunks, so
#: that some rows are dense, the rest triples in several chunks. The cold-start test fits the same
#: matrix with the same options as the padding test's padded fits, so it reuses their compiled
#: programs (a program is specific to its shapes and static options).
HYBRID = dict(chunk_size=64, dense_row_density=0.5)


def _params(rng, family, K, d):
    """Random parameters of ``family`` (typed)."""
    var = rng.uniform(0.3, 2.0, family.var_shape(K, d))
    cov = family.cov_from_var(var, K, d)
    if family.name == "factor":  # loadings of the size of the noise, not the small start
        cov = cov._replace(loadings=rng.normal(0.0, 0.8, np.shape(cov.loadings)))
    return jaxmix.MixtureParams(rng.normal(0.0, 2.0, (K, d)), cov, rng.dirichlet(np.ones(K)))


def _oracle_log_joint(X, params, family):
    """log(w_k + 1e-16) + SciPy's multivariate normal log density of the row's observed
    coordinates under the component's full covariance, (n, K)."""
    K, d = params.mu.shape
    sigma = family.covariance_matrix(params.cov, K, d)
    out = np.empty((X.shape[0], K))
    for u in range(X.shape[0]):
        c = ~np.isnan(X[u])
        for k in range(K):
            ll = 0.0
            if c.any():
                ll = stats.multivariate_normal.logpdf(
                    X[u, c], params.mu[k, c], sigma[k][np.ix_(c, c)]
                )
            out[u, k] = np.log(params.weights[k] + 1e-16) + ll
    return out


def _oracle_completion(X, params, family, R):
    """Mean and variance of every entry given the row's observed ones, by conditioning each
    component's full Gaussian (dense linear algebra), mixed by ``R``."""
    K, d = params.mu.shape
    sigma = family.covariance_matrix(params.cov, K, d)
    mean = np.zeros(X.shape)
    second = np.zeros(X.shape)
    for u in range(X.shape[0]):
        c = ~np.isnan(X[u])
        for k in range(K):
            m, v = params.mu[k].copy(), np.diag(sigma[k]).copy()
            if c.any():
                gain = np.linalg.solve(sigma[k][np.ix_(c, c)], sigma[k][c]).T  # (d, |C|)
                m = m + gain @ (X[u, c] - params.mu[k, c])
                v = v - np.sum(gain * sigma[k][:, c], axis=1)
            mean[u] += R[u, k] * m
            second[u] += R[u, k] * (v + m * m)
    return mean, second - mean * mean


@pytest.mark.parametrize("case", CASES)
def test_log_density_and_e_step_match_scipy(rng, case):
    family = _family(case)
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
@pytest.mark.parametrize("name", INDEPENDENT)
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


# (family, prior)
FIT_CONFIGS = [(n, p) for n in CASES for p in (None, "default")]


@pytest.mark.parametrize(
    "case, prior",
    # the factor family without a prior: over 10 s each (its own programs, many iterations)
    [
        pytest.param(*c, marks=pytest.mark.slow)
        if c in (("factor", None), ("factor-2", None))
        else c
        for c in FIT_CONFIGS
    ],
)
def test_fit_invariants_and_dense_equals_triples(rng, case, prior):
    family = _family(case)
    name = family.name
    X = _data(rng, n=80)
    prior = None if prior is None else jaxmix.Prior()
    kw = dict(n_init=2, prior=prior, min_var=0.05, tol=1e-9, **_options(family))
    a = jaxmix.fit_em(X, 3, method="dense", **kw)
    S = jaxmix.sparse_ratings(X)
    b = jaxmix.fit_em(S, 3, chunk_size=64, dense_row_density=None, **kw)
    h = a.history
    assert np.all(np.diff(h) >= -1e-10 * np.abs(h[1:]))
    assert a.covariance == name and type(a.params.cov) is family.cov_type
    assert a.var.shape == family.var_shape(3, X.shape[1]) and np.all(a.var >= 0.05)
    assert a.weights.sum() == pytest.approx(1.0, abs=1e-12)
    # every restart alike on both layouts
    np.testing.assert_array_equal(b.restart_n_iter, a.restart_n_iter)
    np.testing.assert_allclose(b.restart_objectives, a.restart_objectives, rtol=1e-10)
    for p, q in zip(
        jax.tree.leaves(a.restart_params), jax.tree.leaves(b.restart_params), strict=True
    ):
        np.testing.assert_allclose(q, p, rtol=1e-8, atol=1e-9)
    if b.best_restart != a.best_restart:
        # both restarts reach the same optimum (relabelled) and rounding picks the winner:
        # compare with the triples' run of a's winner alone (restart r is a run with seed r)
        obj = a.restart_objectives
        assert obj[b.best_restart] == pytest.approx(obj[a.best_restart], rel=1e-12)
        single = {**kw, "n_init": 1, "seed": a.best_restart}
        b = jaxmix.fit_em(S, 3, chunk_size=64, dense_row_density=None, **single)
    assert a.n_iter == b.n_iter
    np.testing.assert_allclose(b.history, a.history, rtol=1e-10)
    for p, q in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params), strict=True):
        np.testing.assert_allclose(q, p, rtol=1e-8, atol=1e-9)
    # the returned parameters are at least as good as the reported objective
    assert jaxmix.log_objective(X, a.params, prior=a.prior) >= a.objective - 1e-9 * abs(a.objective)
    # completion: each component's Gaussian conditioned on the row's observed entries, mixed
    # by the responsibilities (the law of total variance)
    filled, sd = jaxmix.complete(X, a.params, return_std=True)  # the plain plug-in
    R = jaxmix.responsibilities(X, a)
    mean, var = _oracle_completion(X, a.params, family, R)
    miss = np.isnan(X)
    np.testing.assert_allclose(filled[miss], mean[miss], rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(sd[miss], np.sqrt(var[miss]), rtol=1e-7)
    # the fit's estimation uncertainty (the same on both layouts) widens, never moves, the
    # predictions; without it the fit predicts as its parameters do
    for p, q in zip(
        jax.tree.leaves(a.estimation_cov), jax.tree.leaves(b.estimation_cov), strict=True
    ):
        np.testing.assert_allclose(q, p, rtol=1e-6, atol=1e-12)
    filled_e, sd_e = jaxmix.complete(X, a, return_std=True)
    np.testing.assert_allclose(filled_e, filled, rtol=1e-12)
    assert np.all(sd_e[miss] > sd[miss])
    plain = jaxmix.complete(X, a._replace(estimation_cov=None), return_std=True)[1]
    np.testing.assert_array_equal(plain, sd)
    # BIC counts the family's parameters
    n, d = X.shape
    p = family.n_parameters(3, d)
    assert jaxmix.bic(X, a) == pytest.approx(a.log_likelihood - 0.5 * p * np.log(n))


def _unpadded(monkeypatch):
    """``fit_em`` and completion without the size classes: every array of the matrix's size."""
    from jaxmix.data import dense, triples
    from jaxmix.inference import init

    monkeypatch.setattr(dense, "padded_rows", lambda n, d: n)
    monkeypatch.setattr(init, "padded_rows", lambda n, d: n)
    monkeypatch.setattr(init, "size_class", lambda n, unit=1: n)
    monkeypatch.setattr(init, "_seed_components", lambda K, trials, swaps, data: (K, trials, swaps))
    monkeypatch.setattr(triples, "size_class", lambda n, unit=1: n)


def _same_fit(a, b):
    assert a.n_iter == b.n_iter and a.best_restart == b.best_restart
    assert a.resp.shape == b.resp.shape
    assert a.log_likelihood == pytest.approx(b.log_likelihood, rel=1e-12)
    np.testing.assert_allclose(a.history, b.history, rtol=1e-12)
    for name, p, q in (
        ("params", a.params, b.params),
        ("resp", a.resp, b.resp),
        ("estimation_cov", a.estimation_cov, b.estimation_cov),
    ):
        for x, y in zip(jax.tree.leaves(p), jax.tree.leaves(q), strict=True):
            np.testing.assert_allclose(x, y, rtol=1e-9, atol=1e-12, err_msg=name)


PAD_FAST = [("spherical", None), ("diag", "default")]  # the others (factor too): slow


@pytest.mark.parametrize(
    "case, prior",
    [c if c in PAD_FAST else pytest.param(*c, marks=pytest.mark.slow) for c in FIT_CONFIGS],
)
def test_padding_to_size_classes_changes_nothing(rng, monkeypatch, case, prior):
    # fits pad the rows (and the triples' chunks) to size classes, so that matrices of nearby
    # sizes share their programs; the padding carries no weight: the same fit, responsibilities
    # and completion as without it, on both layouts
    from jaxmix.data import Standardizer, as_data

    # (on the cold-start test's matrix: its never-seen column and empty rows must stay
    # weightless too)
    family = _family(case)
    X = _cold_data(rng)
    n, d = X.shape
    prior = None if prior is None else jaxmix.Prior()
    kw = dict(n_init=2, prior=prior, min_var=0.05, tol=1e-9, **_options(family))
    sparse = HYBRID
    std = Standardizer.fit(as_data(X).summary())
    assert as_data(X).device(std, pad=True).n_slots > n  # the padding is there

    def run(S):
        out = [jaxmix.fit_em(X, 3, method="dense", **kw), jaxmix.fit_em(S, 3, **kw, **sparse)]
        for res in out[:]:
            out.append(jaxmix.responsibilities(X, res))
            out.append(jaxmix.complete(S, res, return_std=True))
        return out

    padded = run(jaxmix.sparse_ratings(X))
    with monkeypatch.context() as m:
        _unpadded(m)
        assert as_data(X).device(std, pad=True).n_slots == n
        plain = run(jaxmix.sparse_ratings(X))  # a new matrix: its own layouts
    for a, b in zip(padded[:2], plain[:2], strict=True):
        _same_fit(a, b)
        assert a.resp.shape == (n, 3)
    for a, b in zip(padded[2:], plain[2:], strict=True):
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
            np.testing.assert_allclose(x, y, rtol=1e-9, atol=1e-12)


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


@pytest.mark.parametrize("case", CASES)
def test_relabelling_permutes_the_family_parameters(rng, case):
    family = _family(case)
    params = _params(rng, family, 3, 4)
    perm = np.array([2, 0, 1])
    shuffled = params._replace(
        mu=params.mu[perm], cov=family.permute(params.cov, perm), weights=params.weights[perm]
    )
    back, found = jaxmix.relabel(jax.tree.map(lambda a: np.asarray(a)[None], shuffled), params)
    np.testing.assert_array_equal(found[0], np.argsort(perm))
    for p, q in zip(jax.tree.leaves(back), jax.tree.leaves(params), strict=True):
        np.testing.assert_allclose(np.asarray(p)[0], q)


def _factor_q(X, R, m, S, family, prior):
    """EM's expected complete-data log density (plus the log prior of the means, loadings and
    variances when ``prior`` is given) of the factor family as a JAX function of ``(mu,
    loadings, var, offset)``, with the responsibilities ``R`` and the latent posteriors ``(m,
    S)`` of the old parameters held fixed (written from the model, not from the package)."""
    obs = ~np.isnan(X)
    x = np.nan_to_num(X)
    o = family.o

    def q(mu, loadings, var, offset):
        lam = loadings
        if o:
            lam = jnp.concatenate([jnp.ones((*loadings.shape[:-1], 1)), loadings], axis=-1)
        fit = mu[None] + jnp.einsum("kdp,nkp->nkd", lam, m)  # (n, K, d)
        spread = jnp.einsum("kdp,nkpq,kdq->nkd", lam, S, lam)
        sq = (x[:, None, :] - fit) ** 2 + spread
        per_entry = -0.5 * (jnp.log(2 * np.pi * var)[None] + sq / var[None])
        total = jnp.sum(R[..., None] * jnp.where(obs[:, None, :], per_entry, 0.0))
        if o:
            second = S[..., 0, 0] + m[..., 0] ** 2  # (n, K)
            tau2 = offset[:, 0][None]
            total = total + jnp.sum(R * -0.5 * (jnp.log(2 * np.pi * tau2) + second / tau2))
        if prior is not None:
            a, b = float(prior.var_shape), float(prior.var_scale)
            for v in (var, offset):
                total = total + jnp.sum(-(a + 1.0) * jnp.log(v) - b / v)
            total = total - 0.5 * jnp.sum(((mu - prior.mean) / prior.mean_sd) ** 2)
            total = total - 0.5 * jnp.sum((loadings / prior.loading_sd) ** 2)
        return total

    return q


@pytest.mark.parametrize("use_prior", [False, True])
@pytest.mark.parametrize("case", ["factor", "factor-2"])
def test_factor_m_step_maximises_the_expected_log_density(rng, case, use_prior):
    """The M-step's update is a stationary point of EM's expected complete-data log density:
    jointly (ML); for MAP the means and loadings given the old noise variances (the ridge
    regression is a conditional maximisation), the variances given the new means."""
    family = _family(case)
    X = _data(rng, n=80, missing=0.2)
    X[:, 1] = rng.normal(size=80)  # every column well observed: every cell is updated
    X[rng.random(X.shape) < 0.2] = np.nan
    K, d = 3, X.shape[1]
    params = numpy_params(_params(rng, family, K, d))
    prior = jaxmix.Prior(alpha=3.0).resolve(X) if use_prior else None
    # the old parameters' responsibilities and latent posteriors, by dense linear algebra
    lj = _oracle_log_joint(X, params, family)
    R = np.exp(lj - logsumexp(lj, axis=1, keepdims=True))
    lam = np.asarray(family._lambda(params.cov))
    p = lam.shape[-1]
    latent = np.ones(p)
    m = np.zeros((X.shape[0], K, p))
    S = np.zeros((X.shape[0], K, p, p))
    for u in range(X.shape[0]):
        c = ~np.isnan(X[u])
        for k in range(K):
            if family.o:
                latent[0] = params.cov.offset[k, 0]
            lc = lam[k][c] / params.cov.var[k, c][:, None]
            prec = np.diag(1.0 / latent) + lam[k][c].T @ lc
            S[u, k] = np.linalg.inv(prec)
            m[u, k] = S[u, k] @ lc.T @ (X[u, c] - params.mu[k, c])
    data = dense_arrays(X)
    new = numpy_params(
        m_step(
            suff_stats(jnp.asarray(R), data, family, jax_params(params)),
            jax_params(params),
            1e-8,
            prior,
        )
    )
    q = _factor_q(X, R, m, S, family, prior)
    psi_for_lam = params.cov.var if use_prior else new.cov.var
    grads = jax.grad(q, argnums=(0, 1))(new.mu, new.cov.loadings, psi_for_lam, new.cov.offset)
    grads += jax.grad(q, argnums=(2, 3))(new.mu, new.cov.loadings, new.cov.var, new.cov.offset)
    # (ML's tiny ridge, 1e-9 of the regression's trace, leaves gradients of ~1e-7; a wrong
    # update leaves O(1))
    for g in grads:
        np.testing.assert_allclose(g, 0.0, atol=1e-6)
    # and the update is an ascent of the expected log density
    assert q(new.mu, new.cov.loadings, new.cov.var, new.cov.offset) > q(
        params.mu, params.cov.loadings, params.cov.var, params.cov.offset
    )


def test_factor_family_parameter_count_and_covariance():
    family = get_family("factor", rank=2)
    K, d = 3, 5
    assert family.n_parameters(K, d) == K * d + K * d + K * (2 * d - 1) + K + (K - 1)
    cov = family.cov_from_var(np.full((K, d), 2.0), K, d)
    sigma = family.covariance_matrix(cov, K, d)
    np.testing.assert_allclose(np.diagonal(sigma, axis1=1, axis2=2), family.var_kd(cov, K, d))
    assert np.all(np.linalg.eigvalsh(sigma) > 0)
    with pytest.raises(TypeError, match="rank"):
        get_family("diag", rank=2)
    with pytest.raises(ValueError, match="rank"):
        get_family("factor", rank=-1)


@pytest.mark.parametrize("use_prior", [False, True])
@pytest.mark.parametrize("case", CASES)
def test_cold_start_gets_the_model_prediction(rng, case, use_prior):
    """A column nobody observed is completed with what the model implies there: its means are
    the global mean of the observed entries (the start of an ML mean that no entry moves; the
    prior's mean under MAP), never 0, plus, for the factor family, the row's level; a row with no
    observed entry gets the mixture of the means under the weights."""
    family = _family(case)
    X = _cold_data(rng)
    prior = jaxmix.Prior() if use_prior else None
    for layout in ("dense", "triples"):
        # the triples in the padding test's layout (the hybrid, with every kind of row): the
        # same shapes and options as its padded fits, so their compiled programs are reused
        data, opts = (X, {}) if layout == "dense" else (jaxmix.sparse_ratings(X), HYBRID)
        fit = jaxmix.fit_em(data, 3, prior=prior, n_init=2, **_options(family), **opts)
        assert np.all(np.isfinite(fit.mu)) and np.all(np.isfinite(fit.var))
        filled = jaxmix.complete(X, fit)
        np.testing.assert_allclose(fit.mu[:, 4], np.nanmean(X), rtol=1e-6)
        if family.name == "factor":  # the row's level carries over; no loading in the column
            np.testing.assert_allclose(fit.params.cov.loadings[:, 4], 0.0, atol=1e-6)
            R = jaxmix.responsibilities(X, fit)
            np.testing.assert_allclose(filled, _oracle_completion(X, fit.params, family, R)[0])
        else:
            np.testing.assert_allclose(filled[:, 4], np.nanmean(X), rtol=1e-6)
        np.testing.assert_allclose(filled[5], fit.weights @ fit.mu, rtol=1e-6)


def test_factor_family_without_factors_or_offset_is_the_diag_family(rng):
    """Rank 0 without the row offset leaves ``Sigma_k = diag(var_k)``: the same fit, objective
    and NumPyro log density as the diagonal family."""
    X = _data(rng, n=40)
    kw = dict(prior=jaxmix.Prior(), min_var=0.01, n_init=2, tol=1e-10)
    a = jaxmix.fit_em(X, 3, covariance="factor", rank=0, row_offset=False, **kw)
    b = jaxmix.fit_em(X, 3, covariance="diag", **kw)
    assert a.params.cov.loadings.shape == (3, X.shape[1], 0)
    assert a.objective == pytest.approx(b.objective, rel=1e-10)
    # restart by restart (when both restarts reach one optimum, which wins is a rounding tie)
    np.testing.assert_allclose(a.restart_objectives, b.restart_objectives, rtol=1e-10)
    np.testing.assert_allclose(a.restart_params.mu, b.restart_params.mu, rtol=1e-8)
    np.testing.assert_allclose(a.restart_params.var, b.restart_params.var, rtol=1e-8)
    assert jaxmix.log_objective(X, a.params, prior=a.prior) == pytest.approx(
        jaxmix.log_objective(X, b.params, prior=b.prior), rel=1e-10
    )


@pytest.mark.parametrize(
    "options, err, match",
    [
        (dict(covariance="factor", rank=1.5), TypeError, "rank must be an integer"),
        (dict(covariance="factor", rank=-1), ValueError, "rank must be non-negative"),
        (dict(covariance="factor", row_offset="yes"), TypeError, "row_offset must be True"),
        (dict(covariance="diag", rank=2), TypeError, "takes no options; got rank"),
        (dict(covariance="shared", row_offset=True), TypeError, "takes no options; got row_off"),
    ],
)
def test_family_options_are_checked(options, err, match):
    X = np.arange(12.0).reshape(4, 3)
    with pytest.raises(err, match=match):
        jaxmix.fit_em(X, 2, **options)


@pytest.mark.parametrize("p, batch", [(1, (4,)), (3, (2, 5)), (9, (6,))])
def test_factor_unrolled_posterior_solve_equals_the_exact_inverse(rng, p, batch):
    from jaxmix.data.base import chunk_loop, in_chunk_loop
    from jaxmix.models.families import factor

    A = rng.normal(size=(*batch, p, p + 2))
    M = A @ np.swapaxes(A, -1, -2) + 0.1 * np.eye(p)
    b = rng.normal(size=(*batch, p))
    m, S, logdet = factor._small_posterior_solve(jnp.asarray(M), jnp.asarray(b))
    inv = np.linalg.inv(M)
    np.testing.assert_allclose(np.asarray(S), inv, rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(np.asarray(m), np.einsum("...ij,...j->...i", inv, b), rtol=1e-9)
    np.testing.assert_allclose(np.asarray(logdet), np.linalg.slogdet(M)[1], rtol=1e-12)
    # the LAPACK path outside a chunk loop, the unrolled one inside: the same numbers
    assert not in_chunk_loop()
    ref = factor._posterior_solve(jnp.asarray(M), jnp.asarray(b))
    with chunk_loop():
        assert in_chunk_loop()
        inside = factor._posterior_solve(jnp.asarray(M), jnp.asarray(b))
    assert not in_chunk_loop()
    for a, c in zip(inside, ref, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(c), rtol=1e-9, atol=1e-11)


def test_factor_unrolled_posterior_solve_gives_nan_on_a_matrix_that_is_not_positive_definite():
    from jaxmix.models.families import factor

    M = jnp.asarray([[[1.0, 2.0], [2.0, 1.0]], [[2.0, 0.0], [0.0, 3.0]]])  # eigenvalues 3, -1
    m, S, logdet = factor._small_posterior_solve(M, jnp.ones((2, 2)))
    assert np.isnan(np.asarray(logdet)[0]) and np.all(np.isnan(np.asarray(S)[0]))
    assert np.all(np.isfinite(np.asarray(S)[1]))  # the other matrix of the batch is unaffected
    np.testing.assert_allclose(np.asarray(m)[1], [0.5, 1.0 / 3.0])

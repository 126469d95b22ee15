"""Split-and-merge moves of EM (``jaxmix.inference.split_merge``, ``fit_em(..., split_merge=N)``).

The oracle for the move: three well-separated groups of rows and a start whose EM optimum
spends two components on one group and one on the other two; the move must reach the optimum
EM reaches from the groups' centres. The candidates' construction is checked entry by entry.
"""

from __future__ import annotations

import numpy as np
import pytest

import jaxmix
from jaxmix.inference.split_merge import PATIENCE, SPLIT_SCALE, candidate_starts, merge_pairs
from jaxmix.models.families import DiagCov, FactorCov, SharedCov, SphericalCov

CENTRES = np.array([[0.0, 0.0, 0.0, 0.0], [8.0, 8.0, 0.0, 0.0], [8.0, -8.0, 0.0, 0.0]])


@pytest.fixture(scope="module")
def groups():
    rng = np.random.default_rng(0)
    X = np.concatenate([c + rng.normal(size=(60, 4)) for c in CENTRES])
    X[rng.random(X.shape) < 0.2] = np.nan
    return X


def _bad_start():
    """Two components in the first group, one between the other two."""
    mu = np.array([[-0.5, 0.0, 0.0, 0.0], [0.5, 0.0, 0.0, 0.0], [8.0, 0.0, 0.0, 0.0]])
    return jaxmix.MixtureParams(mu, SphericalCov(np.ones(3)), np.full(3, 1 / 3))


@pytest.mark.parametrize(
    "covariance, method",
    [
        ("spherical", "dense"),
        ("spherical", "sparse"),
        ("diag", "dense"),
        ("diag", "sparse"),
        ("factor", "dense"),
    ],
)
def test_leaves_a_local_optimum(groups, covariance, method):
    extra = {"rank": 1} if covariance == "factor" else {}
    kw = dict(covariance=covariance, method=method, min_var=0.01, **extra)
    plain = jaxmix.fit_em(groups, 3, init=_bad_start(), **kw)
    moved = jaxmix.fit_em(groups, 3, init=_bad_start(), split_merge=3, **kw)
    good = jaxmix.MixtureParams(CENTRES, SphericalCov(np.ones(3)), np.full(3, 1 / 3))
    good = jaxmix.fit_em(groups, 3, init=good, **kw)
    assert plain.split_merge_objectives is None
    # the plain fit is stuck: one component's mean sits between the second and third group
    assert plain.objective < good.objective - 50
    assert moved.objective >= good.objective - 1e-4 * abs(good.objective)
    order = np.argsort(moved.params.mu[:, 1])
    np.testing.assert_allclose(moved.params.mu[order][:, :2], CENTRES[[2, 0, 1], :2], atol=0.5)
    kept = moved.split_merge_objectives
    assert kept.size >= 1 and kept[-1] == moved.objective
    assert np.all(np.diff(kept) > 0) and kept[0] > plain.objective
    # the history runs on from the restart through the kept rounds (each round starts again
    # from its candidate) and ends at the objective
    assert moved.n_iter == moved.history.size > plain.n_iter
    np.testing.assert_allclose(moved.history[: plain.n_iter], plain.history)
    assert moved.history[-1] == moved.objective
    # the restarts are reported as they ran
    np.testing.assert_array_equal(moved.restart_objectives, plain.restart_objectives)
    assert moved.best_restart == plain.best_restart
    np.testing.assert_allclose(moved.resp.sum(axis=1), 1.0)


def test_no_gain_keeps_the_fit(groups):
    good = jaxmix.MixtureParams(CENTRES, SphericalCov(np.ones(3)), np.full(3, 1 / 3))
    plain = jaxmix.fit_em(groups, 3, init=good, min_var=0.01)
    moved = jaxmix.fit_em(groups, 3, init=good, min_var=0.01, split_merge=2)
    assert moved.split_merge_objectives.size == 0
    assert moved.objective == plain.objective
    np.testing.assert_array_equal(moved.params.mu, plain.params.mu)


@pytest.mark.parametrize("rounds", [1, 5])
def test_rounds_stop_after_the_patience(groups, monkeypatch, rounds):
    """From the optimum no round gains: the rounds stop after PATIENCE of them (or the cap)."""
    import jaxmix.inference.em as em

    calls = []

    def counted(*args):
        calls.append(1)
        return candidate_starts(*args)

    monkeypatch.setattr(em, "candidate_starts", counted)
    good = jaxmix.MixtureParams(CENTRES, SphericalCov(np.ones(3)), np.full(3, 1 / 3))
    fit = jaxmix.fit_em(groups, 3, init=good, min_var=0.01, split_merge=rounds)
    assert len(calls) == min(rounds, PATIENCE) and PATIENCE >= 2
    assert fit.split_merge_objectives.size == 0


@pytest.mark.parametrize("broken", ["one", "all"])
def test_a_failed_candidate_does_not_fail_the_fit(groups, monkeypatch, broken):
    """A candidate whose EM run ends non-finite is left out of its round; the fit goes on."""
    import jaxmix.inference.em as em

    sizes = []

    def with_nan(*args):
        starts = candidate_starts(*args)
        sizes.append(starts.mu.shape[0])
        mu = np.array(starts.mu)
        mu[-1 if broken == "one" else slice(None), 0, 0] = np.nan
        return starts._replace(mu=mu)

    monkeypatch.setattr(em, "candidate_starts", with_nan)
    plain = jaxmix.fit_em(groups, 3, init=_bad_start(), min_var=0.01)
    moved = jaxmix.fit_em(groups, 3, init=_bad_start(), min_var=0.01, split_merge=3)
    assert np.isfinite(moved.objective) and np.all(np.isfinite(moved.params.mu))
    assert min(sizes) > 1  # every round had a broken candidate and others
    if broken == "all":
        assert moved.split_merge_objectives.size == 0
        assert moved.objective == plain.objective
    else:
        assert moved.objective > plain.objective + 50


def test_merge_pairs_overlap_and_lightest():
    resp = np.array(
        [[0.5, 0.5, 0.0, 0.0], [0.4, 0.6, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.1, 0.0, 0.9]]
    )
    mu = np.array([[0.0], [1.0], [5.0], [1.2]])
    params = jaxmix.MixtureParams(mu, SphericalCov(np.ones(4)), np.array([0.3, 0.3, 0.39, 0.01]))
    pairs = merge_pairs(params, resp)
    assert pairs[0] == (0, 1)
    assert len(pairs) == len(set(pairs))
    # the lightest component (3) with its nearest (1, then 0, then 2)
    for pair in [(1, 3), (0, 3), (2, 3)]:
        assert pair in pairs


@pytest.mark.parametrize("family", ["spherical", "diag", "shared", "factor"])
def test_candidate_starts(family):
    rng = np.random.default_rng(1)
    K, d = 4, 3
    mu = rng.normal(size=(K, d))
    weights = np.array([0.1, 0.4, 0.2, 0.3])
    cov = {
        "spherical": SphericalCov(np.array([1.0, 2.0, 3.0, 4.0])),
        "diag": DiagCov(rng.uniform(1, 2, size=(K, d))),
        "shared": SharedCov(np.asarray(1.5)),
        "factor": FactorCov(
            rng.uniform(1, 2, size=(K, d)), rng.normal(size=(K, d, 2)), rng.uniform(size=(K, 1))
        ),
    }[family]
    params = jaxmix.MixtureParams(mu, cov, weights)
    resp = rng.dirichlet(np.ones(K), size=20)
    pairs = merge_pairs(params, resp)
    starts = candidate_starts(params, resp, 2.0, np.random.default_rng(0))
    assert starts.mu.shape == (len(pairs) * (K - 2), K, d)
    np.testing.assert_allclose(starts.weights.sum(axis=1), 1.0)
    c = 0
    for i, j in pairs:
        heavier = i if weights[i] >= weights[j] else j
        for k in range(K):
            if k in (i, j):
                continue
            m = starts.mu[c]
            total = weights[i] + weights[j]
            np.testing.assert_allclose(m[i], (weights[i] * mu[i] + weights[j] * mu[j]) / total)
            # the halves of k sit symmetrically about its mean, at the split's scale
            np.testing.assert_allclose((m[k] + m[j]) / 2, mu[k])
            if family == "factor":  # along the longest loading
                W = cov.loadings[k]
                longest = W[:, np.argmax((W * W).sum(axis=0))]
                np.testing.assert_allclose(m[k] - mu[k], longest)
            else:
                assert 0 < np.abs(m[k] - mu[k]).max() < 10 * SPLIT_SCALE * 2.0
            np.testing.assert_allclose(starts.weights[c, [k, j]], weights[k] / 2)
            np.testing.assert_allclose(starts.weights[c, i], total)
            for got, old in zip(starts.cov, cov, strict=True):
                got, old = np.asarray(got)[c], np.asarray(old)
                if family == "shared":
                    np.testing.assert_array_equal(got, old)
                    continue
                np.testing.assert_array_equal(got[i], old[heavier])
                np.testing.assert_array_equal(got[j], old[k])
                np.testing.assert_array_equal(got[k], old[k])
            c += 1


def test_bad_arguments(groups):
    with pytest.raises(ValueError, match="split_merge"):
        jaxmix.fit_em(groups, 3, split_merge=-1)
    with pytest.raises(ValueError, match="K >= 3"):
        jaxmix.fit_em(groups, 2, split_merge=1)
    with pytest.raises(ValueError, match="K >= 3"):
        candidate_starts(_bad_start()._replace(weights=np.ones(2) / 2), np.ones((4, 2)), 1.0, None)
    fit = jaxmix.fit_em(groups, 3, prior=jaxmix.Prior(), min_var=0.0)
    with pytest.raises(ValueError, match="init=None"):
        jaxmix.fit_mcmc(groups, 3, init=fit, kernel="gibbs", split_merge=1)


def test_saved_and_loaded(groups, tmp_path):
    moved = jaxmix.fit_em(groups, 3, init=_bad_start(), min_var=0.01, split_merge=2)
    path = tmp_path / "fit.jaxmix"
    jaxmix.save(moved, path)
    back = jaxmix.load(path)
    np.testing.assert_array_equal(back.split_merge_objectives, moved.split_merge_objectives)
    np.testing.assert_array_equal(back.params.mu, moved.params.mu)
    assert "split_merge: " in repr(moved)

"""The scikit-learn estimators (``jaxmix.sklearn``): scikit-learn's own estimator checks, agreement
with :func:`jaxmix.fit_em` and SciPy, Pipeline and GridSearchCV, NaN and DataFrame input, errors,
and the optional extra (``import jaxmix`` never imports scikit-learn).

The row densities of the estimators are computed in NumPy float64; the oracles here are SciPy's
``norm.logpdf`` on each row's observed entries and jaxmix's own JAX computations
(:func:`jaxmix.log_objective`, :func:`jaxmix.responsibilities`, :func:`jaxmix.complete`), a
separate implementation.
"""

from __future__ import annotations

import importlib
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("sklearn")

import pandas as pd  # noqa: E402
from scipy.special import logsumexp  # noqa: E402
from scipy.stats import norm  # noqa: E402
from sklearn.exceptions import NotFittedError  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import jaxmix  # noqa: E402
from jaxmix.sklearn import GaussianMixture, MixtureImputer  # noqa: E402

NAN = np.nan


def _blobs(n=90, d=4, K=3, seed=0, missing=0.2, sep=8.0):
    """Rows of ``K`` well-separated clusters, a share ``missing`` of entries ``NaN``; labels.

    Most tests fit ``(90, 4)`` with ``K = 3`` and default options: one compiled EM program.
    """
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, sep, size=(K, d))
    labels = np.arange(n) % K
    X = centres[labels] + rng.standard_normal((n, d)) * rng.uniform(0.5, 2.0, size=d)
    X[rng.random((n, d)) < missing] = NAN
    return X, labels


# ---------------------------------------------------------------- scikit-learn's checks

# Every check passes: nothing is listed as an expected failure. (check_array_api_input is
# skipped by scikit-learn itself unless SCIPY_ARRAY_API=1 is set; with it set it passes too.)
# Cheap parameters keep the run short; most of its time is XLA compiling one program per data
# shape.
_CHECKED = [GaussianMixture(max_iter=20), MixtureImputer(max_iter=20)]


@pytest.mark.slow
@parametrize_with_checks(_CHECKED)
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


# ---------------------------------------------------------------- agreement with jaxmix


def test_gaussian_mixture_is_fit_em_with_the_same_seed():
    X, _ = _blobs()
    kwargs = dict(n_init=2, max_iter=200, min_var=0.01)
    gm = GaussianMixture(3, covariance_type="diag", random_state=5, **kwargs).fit(X)
    res = jaxmix.fit_em(X, 3, covariance="diag", seed=5, **kwargs)
    np.testing.assert_array_equal(gm.means_, res.mu)
    np.testing.assert_array_equal(gm.weights_, res.weights)
    np.testing.assert_array_equal(gm.variances_, res.var)
    assert gm.variances_.shape == (3, 4)
    np.testing.assert_array_equal(gm.covariances_, np.stack([np.diag(v) for v in res.var]))
    assert gm.n_iter_ == res.n_iter and gm.converged_ == res.converged
    assert gm.lower_bound_ == pytest.approx(res.objective / X.shape[0])
    # the float64 row densities against jaxmix's JAX E-step (a separate implementation)
    np.testing.assert_allclose(gm.predict_proba(X), jaxmix.responsibilities(X, res), atol=1e-5)
    total = gm.score_samples(X).sum()
    assert total == pytest.approx(jaxmix.log_objective(X, res.params), rel=1e-5)
    assert gm.score(X) == pytest.approx(total / X.shape[0])
    np.testing.assert_array_equal(gm.predict(X), np.argmax(gm.predict_proba(X), axis=1))
    # scikit-learn's sign convention: -2 times jaxmix's (log-likelihood scale) criteria
    assert gm.bic(X) == pytest.approx(-2.0 * jaxmix.bic(X, res), rel=1e-4)
    assert gm.aic(X) == pytest.approx(-2.0 * jaxmix.aic(X, res), rel=1e-4)


def test_split_merge_is_fit_em_s():
    X, _ = _blobs()
    kwargs = dict(min_var=0.01, split_merge=2)
    gm = GaussianMixture(3, covariance_type="diag", random_state=1, **kwargs).fit(X)
    res = jaxmix.fit_em(X, 3, covariance="diag", seed=1, **kwargs)
    np.testing.assert_array_equal(gm.means_, res.mu)
    np.testing.assert_array_equal(gm.result_.split_merge_objectives, res.split_merge_objectives)
    assert gm.n_iter_ == res.n_iter


@pytest.mark.parametrize("covariance", ["spherical", "shared"])
def test_other_families_and_a_prior_agree_with_fit_em(covariance):
    X, _ = _blobs(n=40, d=3, missing=0.2)
    prior = jaxmix.Prior()
    gm = GaussianMixture(2, covariance_type=covariance, prior=prior, random_state=3).fit(X)
    res = jaxmix.fit_em(X, 2, covariance=covariance, prior=prior, seed=3)
    np.testing.assert_array_equal(gm.means_, res.mu)
    np.testing.assert_array_equal(gm.variances_, res.var)
    assert gm.result_.prior is not None  # MAP-EM: the objective has the log-prior
    assert gm.lower_bound_ * 40 == pytest.approx(res.objective)
    assert gm.covariances_.shape == (2, 3, 3)
    np.testing.assert_allclose(
        gm.covariances_, np.stack([np.diag(np.broadcast_to(v, 3)) for v in res.var * np.ones(2)])
    )
    assert gm.score_samples(X).sum() == pytest.approx(jaxmix.log_objective(X, res.params), rel=1e-5)
    assert gm.bic(X) == pytest.approx(-2.0 * jaxmix.bic(X, res), rel=1e-4)


def test_score_samples_equals_scipy_on_the_observed_entries():
    X, _ = _blobs(missing=0.3)
    X[3] = NAN  # a row with no observed entry scores log sum_k w_k = 0
    gm = GaussianMixture(3, covariance_type="diag", min_var=0.01, random_state=0).fit(X)
    expected = np.empty(X.shape[0])
    for u, row in enumerate(X):
        seen = ~np.isnan(row)
        terms = [
            np.log(w) + norm.logpdf(row[seen], m[seen], np.sqrt(v[seen])).sum()
            for w, m, v in zip(gm.weights_, gm.means_, gm.variances_, strict=True)
        ]
        expected[u] = logsumexp(terms)
    np.testing.assert_allclose(gm.score_samples(X), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gm.predict_proba(X[3:4]), gm.weights_[None], rtol=1e-12)


@pytest.mark.slow
def test_a_full_covariance_family_agrees_with_jaxmix():
    """The factor family's covariances are full: the per-pattern Cholesky path."""
    X, _ = _blobs(n=60, d=5, K=2, missing=0.25)
    gm = GaussianMixture(2, covariance_type="factor", rank=1, max_iter=50, random_state=0).fit(X)
    assert gm.covariances_.shape == (2, 5, 5)
    assert np.any(np.abs(gm.covariances_[0] - np.diag(np.diag(gm.covariances_[0]))) > 1e-3)
    res = gm.result_
    assert gm.score_samples(X).sum() == pytest.approx(jaxmix.log_objective(X, res.params), rel=1e-5)
    np.testing.assert_allclose(gm.predict_proba(X), jaxmix.responsibilities(X, res), atol=1e-5)
    assert gm.bic(X) == pytest.approx(-2.0 * jaxmix.bic(X, res), rel=1e-4)


def test_sample_draws_from_the_fitted_mixture():
    X, _ = _blobs(missing=0.0)
    gm = GaussianMixture(3, random_state=1, min_var=0.01).fit(X)
    draws, comp = gm.sample(6000)
    assert draws.shape == (6000, 4) and comp.shape == (6000,)
    np.testing.assert_allclose(np.bincount(comp, minlength=3) / 6000, gm.weights_, atol=0.03)
    for k in range(3):
        rows = draws[comp == k]
        sd = np.sqrt(gm.variances_[k])
        error = np.abs(rows.mean(axis=0) - gm.means_[k])
        assert np.all(error < 5.0 * sd / np.sqrt(len(rows))), (k, error)
        np.testing.assert_allclose(rows.std(axis=0), sd, rtol=0.1)
    again, _ = gm.sample(6000)
    np.testing.assert_array_equal(again, draws)  # an integer random_state repeats its draws
    with pytest.raises(ValueError, match="n_samples"):
        gm.sample(0)


# ---------------------------------------------------------------- the imputer


def test_imputer_fills_with_jaxmix_complete_and_leaves_x_alone():
    X, _ = _blobs()
    before = X.copy()
    imp = MixtureImputer(3, min_var=0.01, random_state=0)
    filled = imp.fit_transform(X)
    np.testing.assert_array_equal(X, before, strict=True)  # input untouched
    assert not np.isnan(filled).any()
    seen = ~np.isnan(X)
    np.testing.assert_array_equal(filled[seen], X[seen])
    np.testing.assert_allclose(filled, jaxmix.complete(X, imp.result_), rtol=1e-12)
    np.testing.assert_allclose(imp.transform(X), filled, rtol=1e-12)
    # a row with nothing observed gets the mixture's mean
    empty = np.full((1, X.shape[1]), NAN)
    np.testing.assert_allclose(imp.transform(empty)[0], imp.weights_ @ imp.means_, rtol=1e-6)


def test_imputer_in_a_pipeline():
    X, labels = _blobs()
    model = make_pipeline(
        MixtureImputer(3, min_var=0.01, random_state=0), LogisticRegression(max_iter=500)
    )
    model.fit(X, labels)
    assert model.score(X, labels) > 0.9  # well-separated clusters, NaN filled before the model
    imputer = model.named_steps["mixtureimputer"]
    np.testing.assert_allclose(
        model.named_steps["logisticregression"].predict(imputer.transform(X)), model.predict(X)
    )


@pytest.mark.slow
def test_grid_search_over_n_components_picks_the_planted_number():
    X, _ = _blobs(n=90, K=3, sep=10.0)
    search = GridSearchCV(
        MixtureImputer(min_var=0.01, n_init=2, max_iter=100, random_state=0),
        {"n_components": [1, 3]},
        cv=3,
    )
    search.fit(X)
    assert search.best_params_ == {"n_components": 3}
    scores = search.cv_results_["mean_test_score"]
    assert np.all(np.isfinite(scores)) and scores[1] > scores[0]


# ---------------------------------------------------------------- DataFrames


def test_dataframe_input_keeps_the_column_names():
    X, _ = _blobs()
    df = pd.DataFrame(X, columns=["a", "b", "c", "d"], index=np.arange(100, 190))
    imp = MixtureImputer(3, min_var=0.01, random_state=0).set_output(transform="pandas")
    out = imp.fit_transform(df)
    assert list(imp.feature_names_in_) == ["a", "b", "c", "d"]
    assert isinstance(out, pd.DataFrame)
    assert list(out.columns) == ["a", "b", "c", "d"] and list(out.index) == list(df.index)
    assert not out.isna().any().any()
    gm = GaussianMixture(3, min_var=0.01, random_state=0).fit(df)
    np.testing.assert_allclose(gm.means_, imp.means_)
    # pandas' nullable Float64 with NA is missing data, like NaN
    nullable = df.astype("Float64")
    assert nullable.isna().sum().sum() == np.isnan(X).sum()
    np.testing.assert_allclose(gm.score_samples(nullable), gm.score_samples(df), rtol=1e-12)
    with pytest.raises(ValueError, match="feature names"):
        gm.score_samples(df.rename(columns={"a": "z"}))


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize("cls", [GaussianMixture, MixtureImputer])
def test_not_fitted(cls):
    est = cls()
    method = est.predict_proba if cls is GaussianMixture else est.transform
    with pytest.raises(NotFittedError):
        method(np.zeros((2, 2)))
    with pytest.raises(NotFittedError):
        est.score(np.zeros((2, 2)))
    if cls is GaussianMixture:
        with pytest.raises(NotFittedError):
            est.sample(3)


@pytest.mark.parametrize(
    "params, error, match",
    [
        ({"n_components": 0}, ValueError, "n_components must be at least 1"),
        ({"n_components": 2.0}, TypeError, "n_components must be an integer"),
        ({"n_components": 50}, ValueError, "at most the number of rows"),
        ({"covariance_type": "full"}, ValueError, "use 'factor' with a rank"),
        ({"covariance_type": 3}, TypeError, "covariance_type must be a string"),
        ({"n_init": 0}, ValueError, "n_init"),
        ({"max_iter": -1}, ValueError, "max_iter"),
        ({"tol": -1.0}, ValueError, "tol"),
        ({"min_var": "big"}, TypeError, "min_var"),
        ({"prior": "flat"}, TypeError, "prior must be None or a jaxmix.Prior"),
        ({"init_params": "random"}, ValueError, "init_params"),
        ({"random_state": -1}, ValueError, "random_state must be non-negative"),
        ({"random_state": "0"}, TypeError, "random_state"),
        ({"rank": 2}, TypeError, "rank and row_offset apply to covariance='factor'"),
        ({"split_merge": -1}, ValueError, "split_merge"),
        ({"split_merge": 1, "n_components": 2}, ValueError, "K >= 3"),
    ],
)
def test_bad_parameters_are_named(params, error, match):
    X = np.arange(20.0).reshape(10, 2)
    with pytest.raises(error, match=match):
        GaussianMixture(**params).fit(X)


def test_bad_data_is_refused():
    gm = GaussianMixture()
    with pytest.raises(ValueError, match="[Ii]nf"):
        gm.fit(np.array([[1.0, np.inf], [2.0, 3.0]]))
    with pytest.raises(ValueError, match="no observed entry"):
        gm.fit(np.full((3, 2), NAN))
    with pytest.raises(ValueError, match="2D array"):
        gm.fit(np.arange(4.0))


# ---------------------------------------------------------------- the optional extra


def test_import_jaxmix_does_not_import_sklearn():
    code = "import sys, jaxmix; print('sklearn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_without_scikit_learn_the_error_says_what_to_install(monkeypatch):
    for name in [m for m in sys.modules if m == "sklearn" or m.startswith("sklearn.")]:
        monkeypatch.setitem(sys.modules, name, None)  # makes `import sklearn...` fail
    monkeypatch.delitem(sys.modules, "jaxmix.sklearn")
    with pytest.raises(ImportError, match=r'pip install "jaxmix\[sklearn\]"'):
        importlib.import_module("jaxmix.sklearn")

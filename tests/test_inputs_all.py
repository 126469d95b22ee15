"""Every entry point answers bad input clearly, works on awkward valid input, never modifies it.

``tests/test_inputs.py`` covers ``fit_em``, ``kmeans``, ``complete``, ``responsibilities``,
``holdout_split``, ``mean_baseline``, ``rmse`` and ``load_ratings``; this file extends the same
tables to the other entry points: ``fit_svi`` (both guides), ``fit_mcmc``,
``predictive_summary``, ``to_inference_data``, ``select_k``, ``log_objective``,
``sparse_ratings``, the fitted parameters given to ``complete`` / ``responsibilities``,
``save`` / ``load`` and the command line.

A refusal is a ``ValueError`` or ``TypeError`` whose message names the argument and the problem
(checked with ``match``). The samplers must refuse before doing any work: the bad-input tests run
with the sampling and optimisation programs replaced by a function that fails the test.
Valid awkward inputs all have the same shape (6 x 3), so each entry point compiles once.
"""

from __future__ import annotations

import functools
import os
import re
import warnings

import numpy as np
import pytest

import jaxmix
import jaxmix.inference.mcmc as mcmc_module
import jaxmix.inference.svi as svi_module
from jaxmix import MixtureParams
from jaxmix.cli import main

NAN = np.nan
SVI = dict(num_steps=5, polish_steps=2)
MEANFIELD = dict(guide="meanfield", num_steps=5)
MCMC = dict(num_warmup=5, num_samples=5, num_chains=1)
SELECT = dict(n_init=1, num_warmup=5, num_samples=5)
SUMMARY = dict(num_samples=20)


def _X() -> np.ndarray:
    """A small valid 6 x 3 matrix with two missing entries."""
    return np.array(
        [
            [1.0, 2.0, NAN],
            [1.5, 2.5, 3.0],
            [4.0, NAN, 5.0],
            [4.5, 5.5, 6.0],
            [2.0, 2.0, 2.0],
            [5.0, 5.0, 5.0],
        ]
    )


PARAMS3 = MixtureParams(np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]), np.ones(2), np.full(2, 0.5))


@pytest.fixture
def no_sampling(monkeypatch):
    """Replace every expensive program (NUTS, SVI, the MAP-EM start of fit_mcmc) by a failure."""

    def started(*args, **kwargs):
        raise AssertionError("work started before the input was checked")

    monkeypatch.setattr(mcmc_module, "sample_chains", started)
    monkeypatch.setattr(mcmc_module, "fit_em", started)
    monkeypatch.setattr(svi_module, "_compiled", started)


def _draws_result(d: int = 3) -> jaxmix.MCMCResult:
    """A hand-made MCMC result with 1 chain of 4 draws on ``d`` columns (no sampling needed)."""
    rng = np.random.default_rng(0)
    mu = rng.normal(size=(1, 4, 2, d))
    var = np.ones((1, 4, 2))
    weights = np.full((1, 4, 2), 0.5)
    zeros = np.zeros((1, 4))
    point = MixtureParams(mu.mean(axis=(0, 1)), np.ones(2), np.full(2, 0.5))
    return jaxmix.MCMCResult(
        params=point,
        mu=mu,
        var=var,
        weights=weights,
        diverging=zeros.astype(bool),
        accept_prob=zeros + 0.8,
        num_steps=np.ones((1, 4), np.int64),
        tree_depth=np.ones((1, 4), np.int64),
        potential_energy=zeros,
        step_size=np.ones(1),
        permutation=np.tile(np.arange(2), (1, 4, 1)),
        n_relabelled=0,
        reference=point,
        prior=jaxmix.Prior(),
    )


# ---------------------------------------------------------------- malformed matrices

# Functions that take a matrix X (and an optional mask) and validate it.
MATRIX_FUNCS = {
    "fit_svi-map": lambda X, mask=None: jaxmix.fit_svi(X, 1, mask=mask, **SVI),
    "fit_svi-meanfield": lambda X, mask=None: jaxmix.fit_svi(X, 1, mask=mask, **MEANFIELD),
    "fit_mcmc": lambda X, mask=None: jaxmix.fit_mcmc(X, 1, mask=mask, **MCMC),
    "predictive_summary": lambda X, mask=None: jaxmix.predictive_summary(
        PARAMS3, X, mask=mask, **SUMMARY
    ),
    "predictive_summary-draws": lambda X, mask=None: jaxmix.predictive_summary(
        _draws_result(), X, mask=mask, **SUMMARY
    ),
    "to_inference_data": lambda X, mask=None: jaxmix.to_inference_data(
        _draws_result(), X, mask=mask
    ),
    "select_k": lambda X, mask=None: jaxmix.select_k(X, [1], mask=mask, **SELECT),
    "log_objective": lambda X, mask=None: jaxmix.log_objective(X, PARAMS3, mask=mask),
    "sparse_ratings": lambda X, mask=None: jaxmix.sparse_ratings(X, mask=mask),
}


def _inf_at(value: float) -> np.ndarray:
    X = _X()
    X[1, 1] = value
    return X


# (case id, X factory, mask factory, exception, message regex, functions exempt)
MATRIX_CASES = [
    ("1-D", lambda: np.arange(6.0), None, ValueError, r"X must be a 2-D array.*1-D", ()),
    ("3-D", lambda: np.zeros((2, 3, 3)), None, ValueError, r"X must be a 2-D array.*3-D", ()),
    ("no-rows", lambda: np.zeros((0, 3)), None, ValueError, r"X is empty", ()),
    ("no-cols", lambda: np.zeros((4, 0)), None, ValueError, r"X is empty", ()),
    ("empty-list", lambda: [], None, ValueError, r"X must be a 2-D array", ()),
    (
        "object",
        lambda: np.array([[1.0, "a", 3.0]] * 6, dtype=object),
        None,
        TypeError,
        r"X must be an array of real numbers.*object",
        (),
    ),
    (
        "numeric-strings",
        lambda: np.array([["1", "2", "3"]] * 6),
        None,
        TypeError,
        r"X must be an array of real numbers.*convert strings",
        (),
    ),
    ("bool", lambda: np.ones((6, 3), dtype=bool), None, TypeError, r"X must be .*real", ()),
    ("complex", lambda: _X() + 1j, None, TypeError, r"X must be .*real.*complex", ()),
    ("ragged-list", lambda: [[1.0, 2.0], [3.0]], None, ValueError, r"X could not be read", ()),
    ("inf", lambda: _inf_at(np.inf), None, ValueError, r"X has 1 infinite value.*row 1, col", ()),
    ("-inf", lambda: _inf_at(-np.inf), None, ValueError, r"X has 1 infinite value", ()),
    (
        "all-missing",
        lambda: np.full((4, 3), NAN),
        None,
        ValueError,
        r"every entry of X is missing",
        ("sparse_ratings",),  # an empty set of triples is a valid SparseRatings
    ),
    (
        "all-masked",
        _X,
        lambda: np.zeros((6, 3), dtype=bool),
        ValueError,
        r"every entry of X is missing",
        ("sparse_ratings",),
    ),
    (
        "mask-shape",
        _X,
        lambda: np.ones((6, 4), dtype=bool),
        ValueError,
        r"mask has shape \(6, 4\) but X has shape \(6, 3\)",
        (),
    ),
    ("mask-int", _X, lambda: np.ones((6, 3), dtype=int), TypeError, r"mask must be a boolean", ()),
    (
        "mask-float",
        _X,
        lambda: np.ones((6, 3), dtype=float),
        TypeError,
        r"mask must be a boolean",
        (),
    ),
    (
        "mask-observes-nan",
        _X,
        lambda: np.ones((6, 3), dtype=bool),
        ValueError,
        r"X is NaN at 2 entries that mask marks observed",
        (),
    ),
]


def _matrix_params():
    for case, make_X, make_mask, exc, match, exempt in MATRIX_CASES:
        for fname in MATRIX_FUNCS:
            if fname not in exempt:
                yield pytest.param(fname, make_X, make_mask, exc, match, id=f"{fname}-{case}")


@pytest.mark.usefixtures("no_sampling")
@pytest.mark.parametrize("fname, make_X, make_mask, exc, match", list(_matrix_params()))
def test_bad_matrix_is_refused(fname, make_X, make_mask, exc, match):
    mask = None if make_mask is None else make_mask()
    with pytest.raises(exc, match=match):
        MATRIX_FUNCS[fname](make_X(), mask=mask)


# ---------------------------------------------------------------- bad K, for every fitter

FITTERS = {
    "fit_svi": lambda K: jaxmix.fit_svi(_X(), K, **SVI),
    "fit_svi-meanfield": lambda K: jaxmix.fit_svi(_X(), K, **MEANFIELD),
    "fit_mcmc": lambda K: jaxmix.fit_mcmc(_X(), K, **MCMC),
    "select_k": lambda K: jaxmix.select_k(_X(), [K], **SELECT),
    "fit_em-sparse": lambda K: jaxmix.fit_em(jaxmix.sparse_ratings(_X()), K, max_iter=5),
    "fit_em-method-sparse": lambda K: jaxmix.fit_em(_X(), K, method="sparse", max_iter=5),
    "simulate_ratings": lambda K: jaxmix.simulate_ratings(6, 3, K),
}

K_CASES = [
    ("0", 0, ValueError, r"K \(number of components\) must be at least 1; got 0"),
    ("negative", -2, ValueError, r"K \(number of components\) must be at least 1; got -2"),
    ("2.5", 2.5, TypeError, r"K \(number of components\) must be an integer; got 2\.5"),
    ("float-2.0", 2.0, TypeError, r"K \(number of components\) must be an integer"),
    ("str", "3", TypeError, r"K \(number of components\) must be an integer; got '3'"),
    ("True", True, TypeError, r"K \(number of components\) must be an integer; got True"),
    ("None", None, TypeError, r"K \(number of components\) must be an integer; got None"),
    ("rows+1", 7, ValueError, r"K \(number of components\) = 7 exceeds the number of rows, 6"),
]


@pytest.mark.usefixtures("no_sampling")
@pytest.mark.parametrize(
    "fname, K, exc, match",
    [
        pytest.param(f, K, e, m, id=f"{f}-K-{i}")
        for f in FITTERS
        for i, K, e, m in K_CASES
        if not (f == "simulate_ratings" and i == "rows+1")  # n_users=6: 7 is the same case
    ],
)
def test_bad_K_is_refused(fname, K, exc, match):
    with pytest.raises(exc, match=match):
        FITTERS[fname](K)


# ---------------------------------------------------------------- bad options


def _svi(**kw):
    return lambda: jaxmix.fit_svi(_X(), 2, **{**SVI, **kw})


def _mcmc(**kw):
    return lambda: jaxmix.fit_mcmc(_X(), 2, **{**MCMC, **kw})


def _summary(hdi_prob=0.9, result=PARAMS3, **kw):
    return lambda: jaxmix.predictive_summary(result, _X(), hdi_prob, **{**SUMMARY, **kw})


def _idata(result=None, **kw):
    return lambda: jaxmix.to_inference_data(result or _draws_result(), _X(), **kw)


def _select(ks=(1,), **kw):
    return lambda: jaxmix.select_k(_X(), ks, **{**SELECT, **kw})


def _sim(**kw):
    return lambda: jaxmix.simulate_ratings(10, 3, 2, **kw)


def _sparse_fit(**kw):
    return lambda: jaxmix.fit_em(jaxmix.sparse_ratings(_X()), 2, **{"max_iter": 5, **kw})


# (id, call, exception, message regex)
OPTION_CASES = [
    # fit_svi (test_svi.py has guide, K, num_steps, learning_rate, polish_steps, covariance...)
    ("svi-seed-float", _svi(seed=1.5), TypeError, r"seed must be an integer"),
    ("svi-seed-str", _svi(seed="0"), TypeError, r"seed must be an integer"),
    ("svi-num_steps-True", _svi(num_steps=True), TypeError, r"num_steps must be an integer"),
    ("svi-lr-inf", _svi(learning_rate=np.inf), ValueError, r"learning_rate must be finite"),
    ("svi-lr-0", _svi(learning_rate=0.0), ValueError, r"learning_rate must be finite and pos"),
    ("svi-lr-str", _svi(learning_rate="0.1"), TypeError, r"learning_rate must be a positive"),
    ("svi-init_scale-nan", _svi(init_scale=NAN), ValueError, r"init_scale must be finite"),
    ("svi-particles-float", _svi(num_particles=1.5), TypeError, r"num_particles must be an int"),
    ("svi-record-neg", _svi(record_every=-1), ValueError, r"record_every must be non-negative"),
    ("svi-polish-float", _svi(polish_steps=1.5), TypeError, r"polish_steps must be an integer"),
    ("svi-guide-None", _svi(guide=None), ValueError, r"guide must be one of"),
    ("svi-covariance-None", _svi(covariance=None), ValueError, r"covariance must be one of"),
    ("svi-prior-str", _svi(prior="Prior"), TypeError, r"prior must be a jaxmix.Prior or None"),
    ("svi-init-dict", _svi(init={"mu": 1}), ValueError, r"init mapping lacks the key 'var'"),
    (
        "svi-init-nan",
        _svi(init=MixtureParams(np.full((2, 3), NAN), np.ones(2), np.full(2, 0.5))),
        ValueError,
        r"init parameters must be finite",
    ),
    (
        "svi-init-negative-var",
        _svi(init=MixtureParams(np.zeros((2, 3)), -np.ones(2), np.full(2, 0.5))),
        ValueError,
        r"init var must be strictly positive",
    ),
    # fit_mcmc (test_mcmc.py has prior=None, chain_method, num_warmup=-1, target 1.0, init)
    ("mcmc-num_samples0", _mcmc(num_samples=0), ValueError, r"num_samples must be at least 1"),
    ("mcmc-num_samples-float", _mcmc(num_samples=2.5), TypeError, r"num_samples must be an int"),
    ("mcmc-num_chains0", _mcmc(num_chains=0), ValueError, r"num_chains must be at least 1"),
    ("mcmc-num_chains-True", _mcmc(num_chains=True), TypeError, r"num_chains must be an integer"),
    ("mcmc-num_warmup-float", _mcmc(num_warmup=2.5), ValueError, r"num_warmup must be a non-neg"),
    ("mcmc-jitter-neg", _mcmc(jitter=-0.1), ValueError, r"jitter must be finite and non-negative"),
    ("mcmc-jitter-nan", _mcmc(jitter=NAN), ValueError, r"jitter must be finite"),
    ("mcmc-jitter-inf", _mcmc(jitter=np.inf), ValueError, r"jitter must be finite"),
    ("mcmc-target-0", _mcmc(target_accept_prob=0.0), ValueError, r"target_accept_prob must lie"),
    ("mcmc-target-nan", _mcmc(target_accept_prob=NAN), ValueError, r"target_accept_prob must be"),
    ("mcmc-target-str", _mcmc(target_accept_prob="0.8"), TypeError, r"target_accept_prob must be"),
    ("mcmc-tree-depth0", _mcmc(max_tree_depth=0), ValueError, r"max_tree_depth must be at least"),
    ("mcmc-seed-neg", _mcmc(seed=-1), ValueError, r"seed must be non-negative"),
    ("mcmc-seed-float", _mcmc(seed=0.5), TypeError, r"seed must be an integer"),
    ("mcmc-n_init0", _mcmc(n_init=0), ValueError, r"n_init must be at least 1"),
    ("mcmc-covariance", _mcmc(covariance="full"), ValueError, r"covariance must be one of"),
    ("mcmc-prior-dict", _mcmc(prior={"alpha": 2}), TypeError, r"prior must be a jaxmix.Prior"),
    # predictive_summary (test_predictive.py has entries, hdi_prob=1.0, num_samples=5, columns)
    ("summary-hdi-0", _summary(0.0), ValueError, r"hdi_prob must lie in \(0, 1\); got 0"),
    ("summary-hdi-neg", _summary(-0.5), ValueError, r"hdi_prob must lie in \(0, 1\)"),
    ("summary-hdi-nan", _summary(NAN), ValueError, r"hdi_prob must lie in \(0, 1\); got nan"),
    ("summary-hdi-inf", _summary(np.inf), ValueError, r"hdi_prob must lie in \(0, 1\)"),
    ("summary-hdi-None", _summary(None), TypeError, r"hdi_prob must be a (real )?number"),
    ("summary-hdi-str", _summary("0.9"), TypeError, r"hdi_prob must be a (real )?number"),
    ("summary-hdi-array", _summary(np.array([0.5, 0.9])), TypeError, r"hdi_prob must be a"),
    ("summary-num_samples0", _summary(num_samples=0), ValueError, r"num_samples must be at least"),
    ("summary-num_samples9", _summary(num_samples=9), ValueError, r"num_samples must be at least"),
    ("summary-num_samples-float", _summary(num_samples=20.0), TypeError, r"num_samples must be"),
    ("summary-seed-neg", _summary(seed=-1), ValueError, r"seed must be non-negative"),
    ("summary-seed-float", _summary(seed=1.5), TypeError, r"seed must be an integer"),
    ("summary-result-None", _summary(result=None), TypeError, r"result must be a fitted result"),
    ("summary-result-dict", _summary(result={"mu": 1}), TypeError, r"result must be a fitted"),
    ("summary-entries-float", _summary(entries=([0.5], [2.0])), TypeError, r"entries must hold"),
    # to_inference_data (test_mcmc.py has point estimates refused)
    (
        "idata-None",
        lambda: jaxmix.to_inference_data(None, _X()),
        TypeError,
        r"to_inference_data needs posterior draws.*got NoneType",
    ),
    ("idata-params", _idata(result=PARAMS3), TypeError, r"to_inference_data needs posterior"),
    ("idata-dict", _idata(result={"mu": 1}), TypeError, r"to_inference_data needs posterior"),
    ("idata-seed-neg", _idata(seed=-1), ValueError, r"seed must be non-negative"),
    ("idata-seed-float", _idata(seed=0.5), TypeError, r"seed must be an integer"),
    (
        "idata-columns",
        lambda: jaxmix.to_inference_data(_draws_result(d=4), _X()),
        ValueError,
        r"the draws' means have shape .* but X has 3 columns",
    ),
    # select_k (test_selection.py has duplicated, empty and too large ks)
    ("select-ks-int", _select(ks=2), TypeError, r"ks must be a (non-empty )?sequence"),
    ("select-ks-None", _select(ks=None), TypeError, r"ks must be a (non-empty )?sequence"),
    ("select-ks-zero", _select(ks=[0, 1]), ValueError, r"K .* must be at least 1; got 0"),
    ("select-ks-float", _select(ks=[1, 2.5]), TypeError, r"K .* must be an integer; got 2\.5"),
    ("select-ks-bool", _select(ks=[True]), TypeError, r"K .* must be an integer; got True"),
    ("select-covariance", _select(covariance="full"), ValueError, r"covariance must be one of"),
    ("select-n_init0", _select(n_init=0), ValueError, r"n_init must be at least 1"),
    ("select-seed-neg", _select(seed=-1), ValueError, r"seed must be non-negative"),
    ("select-min_var-nan", _select(min_var=NAN), ValueError, r"min_var must be finite and non-n"),
    ("select-min_var-neg", _select(min_var=-1.0), ValueError, r"min_var must be finite and non-n"),
    ("select-num_samples0", _select(num_samples=0), ValueError, r"num_samples must be at least 1"),
    ("select-num_chains0", _select(num_chains=0), ValueError, r"num_chains must be at least 1"),
    ("select-num_warmup-neg", _select(num_warmup=-1), ValueError, r"num_warmup must be a non-neg"),
    ("select-prior-None", _select(prior=None), ValueError, r"fit_mcmc needs a proper prior"),
    # fit_em on a SparseRatings (the dense path is in test_inputs.py)
    ("sparse-tol-neg", _sparse_fit(tol=-1e-6), ValueError, r"tol must be finite and non-negative"),
    ("sparse-tol-nan", _sparse_fit(tol=NAN), ValueError, r"tol must be finite and non-negative"),
    ("sparse-min_var-neg", _sparse_fit(min_var=-0.25), ValueError, r"min_var must be finite"),
    ("sparse-min_var-nan", _sparse_fit(min_var=NAN), ValueError, r"min_var must be finite"),
    ("sparse-n_init0", _sparse_fit(n_init=0), ValueError, r"n_init must be at least 1"),
    ("sparse-max_iter0", _sparse_fit(max_iter=0), ValueError, r"max_iter must be at least 1"),
    ("sparse-seed-neg", _sparse_fit(seed=-1), ValueError, r"seed must be non-negative"),
    ("sparse-covariance", _sparse_fit(covariance="full"), ValueError, r"covariance must be one"),
    (
        "sparse-mask",
        _sparse_fit(mask=np.ones((6, 3), bool)),
        TypeError,
        r"mask does not apply to a SparseRatings",
    ),
    ("fit_em-method", lambda: jaxmix.fit_em(_X(), 2, method="fast"), ValueError, r"method must"),
    # simulate_ratings / simulate_sparse_ratings (K, missing and noise ranges are checked)
    ("sim-seed-neg", _sim(seed=-1), ValueError, r"seed must be non-negative"),
    ("sim-seed-float", _sim(seed=1.5), TypeError, r"seed must be an integer"),
    ("sim-missing-str", _sim(missing="0.1"), TypeError, r"missing must be a (real )?number"),
    ("sim-stars-reversed", _sim(stars=(5, 1)), ValueError, r"stars"),
    (
        "sim-sparse-seed-neg",
        lambda: jaxmix.simulate_sparse_ratings(50, 20, 300, K=2, seed=-1),
        ValueError,
        r"seed must be non-negative",
    ),
]


@pytest.mark.usefixtures("no_sampling")
@pytest.mark.parametrize(
    "call, exc, match", [pytest.param(c, e, m, id=i) for i, c, e, m in OPTION_CASES]
)
def test_bad_option_is_refused(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


# ---------------------------------------------------------------- bad fitted parameters


def _params(mu=None, var=None, weights=None):
    return MixtureParams(
        PARAMS3.mu if mu is None else np.asarray(mu, float),
        PARAMS3.var if var is None else np.asarray(var, float),
        PARAMS3.weights if weights is None else np.asarray(weights, float),
    )


# Parameters no fit can produce: every consumer of fitted parameters must refuse them instead of
# returning NaN (or a matrix that is silently still missing its entries).
BAD_PARAMS = [
    ("mu-nan", _params(mu=[[1.0, NAN, 3.0], [4.0, 5.0, 6.0]]), r"\bmu\b.*finite|finite.*\bmu\b"),
    ("mu-inf", _params(mu=[[1.0, np.inf, 3.0], [4.0, 5.0, 6.0]]), r"\bmu\b.*finite|finite.*\bmu"),
    ("var-zero", _params(var=[1.0, 0.0]), r"\bvar\b.*positive|positive.*\bvar"),
    ("var-negative", _params(var=[1.0, -1.0]), r"\bvar\b.*positive|positive.*\bvar"),
    ("var-nan", _params(var=[1.0, NAN]), r"\bvar\b"),
    ("weights-negative", _params(weights=[1.5, -0.5]), r"\bweights\b"),
    ("weights-nan", _params(weights=[NAN, 0.5]), r"\bweights\b"),
    ("weights-shape", _params(weights=[0.2, 0.3, 0.5]), r"\bweights\b.*shape|shape.*\bweights"),
]

PARAM_CONSUMERS = {
    "complete": lambda p: jaxmix.complete(_X(), p),
    "complete-std": lambda p: jaxmix.complete(_X(), p, return_std=True),
    "complete-entries": lambda p: jaxmix.complete(_X(), p, rows=[0], cols=[2]),
    "responsibilities": lambda p: jaxmix.responsibilities(_X(), p),
    "predictive_summary": lambda p: jaxmix.predictive_summary(p, _X(), **SUMMARY),
}


@pytest.mark.parametrize("params, match", [pytest.param(p, m, id=i) for i, p, m in BAD_PARAMS])
def test_impossible_fitted_parameters_are_refused(params, match):
    """Every consumer of fitted parameters refuses them with a ValueError naming the field."""
    answers = {}
    for name, consume in PARAM_CONSUMERS.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # NumPy's NaN warnings
                out = consume(params)
            answers[name] = f"returned {type(out).__name__} (NaN: {_has_nan(out)})"
        except ValueError as err:
            if not re.search(match, str(err)):
                answers[name] = f"ValueError without {match!r}: {err}"
        except Exception as err:  # any other exception is a failure too: report it
            answers[name] = f"{type(err).__name__}: {err}"
    assert not answers, "not refused:\n" + "\n".join(f"  {k}: {v}" for k, v in answers.items())


def _has_nan(out) -> bool:
    arrays = out if isinstance(out, tuple) else (out,)
    return any(np.isnan(np.asarray(a, np.float64)).any() for a in arrays)


# ---------------------------------------------------------------- awkward valid input


def _base() -> np.ndarray:
    """Six rows from two well-separated groups, three missing entries."""
    return np.array(
        [
            [1.0, 2.0, NAN],
            [1.5, 2.5, 1.0],
            [1.2, NAN, 1.5],
            [5.0, 6.0, 5.5],
            [5.5, 5.0, NAN],
            [6.0, 5.5, 5.0],
        ]
    )


def _integers(dtype) -> np.ndarray:
    return np.array([[1, 2, 1], [1, 2, 2], [2, 1, 1], [5, 6, 5], [6, 5, 6], [5, 5, 6]], dtype)


def _strided() -> np.ndarray:
    X = np.repeat(np.repeat(_base(), 2, axis=0), 3, axis=1)[::2, ::3]
    assert not X.flags.c_contiguous and not X.flags.f_contiguous
    return X


def _nan_row_and_column() -> np.ndarray:
    X = _base()
    X[2] = NAN
    X[:, 1] = NAN
    return X


def _dataframe():
    pd = pytest.importorskip("pandas")
    return pd.DataFrame(_base(), columns=["a", "b", "c"])


# (case id, X factory). Every matrix is 6 x 3: one compilation per entry point for all cases.
VALID_CASES = [
    ("int64", lambda: _integers(np.int64)),
    ("uint8", lambda: _integers(np.uint8)),
    ("float16", lambda: _base().astype(np.float16)),
    ("float32", lambda: _base().astype(np.float32)),
    ("fortran", lambda: np.asfortranarray(_base())),
    ("strided", _strided),
    ("negative-strides", lambda: _base()[::-1, ::-1]),
    ("read-only", lambda: _read_only(_base())),
    ("dataframe", _dataframe),
    ("nested-list", lambda: _base().tolist()),
    ("nan-row-and-column", _nan_row_and_column),
    ("duplicated-rows", lambda: np.vstack([_base()[:3], _base()[:3]])),
    ("constant", lambda: np.where(np.isnan(_base()), NAN, 3.0)),
    ("constant-zero", lambda: np.where(np.isnan(_base()), NAN, 0.0)),
    ("huge-1e150", lambda: _base() * 1e150),
    ("tiny-1e-150", lambda: _base() * 1e-150),
    ("offset-1e12", lambda: _base() + 1e12),
]


def _read_only(X: np.ndarray) -> np.ndarray:
    X.flags.writeable = False
    return X


def _all_finite(value, where="result") -> None:
    """Every float in a result (arrays, NamedTuples, tuples, InferenceData groups) is finite."""
    if isinstance(value, (np.ndarray, np.generic, float)):
        arr = np.asarray(value)
        if arr.dtype.kind in "fc":
            assert np.all(np.isfinite(arr)), where
    elif isinstance(value, jaxmix.SparseRatings):
        _all_finite(value.values, f"{where}.values")
    elif isinstance(value, tuple):
        names = getattr(value, "_fields", range(len(value)))
        for name, item in zip(names, value, strict=True):
            _all_finite(item, f"{where}.{name}")
    elif hasattr(value, "groups") and callable(value.groups):  # arviz.InferenceData
        for group in value.groups():
            for name, da in value[group].data_vars.items():
                if da.dtype.kind == "f" and group != "observed_data":
                    assert np.all(np.isfinite(da.values)), f"{where}.{group}.{name}"


@functools.cache
def _fits(case: str):
    """EM and MCMC fits of a valid case, shared by the entry points that take a result."""
    X = dict(VALID_CASES)[case]()
    return jaxmix.fit_em(X, 2, n_init=2), jaxmix.fit_mcmc(X, 2, **MCMC)


VALID_FUNCS = {
    "fit_svi-map": lambda X, case: jaxmix.fit_svi(X, 2, **SVI),
    "fit_svi-meanfield": lambda X, case: jaxmix.fit_svi(X, 2, **MEANFIELD),
    "fit_mcmc": lambda X, case: _fits(case)[1],
    "predictive_summary-em": lambda X, case: jaxmix.predictive_summary(_fits(case)[0], X),
    "predictive_summary-mcmc": lambda X, case: jaxmix.predictive_summary(_fits(case)[1], X),
    "to_inference_data": lambda X, case: jaxmix.to_inference_data(_fits(case)[1], X),
    "responsibilities": lambda X, case: jaxmix.responsibilities(X, _fits(case)[0]),
    "complete-std": lambda X, case: jaxmix.complete(X, _fits(case)[1], return_std=True),
    "log_objective": lambda X, case: jaxmix.log_objective(X, _fits(case)[0], prior=jaxmix.Prior()),
    "sparse_ratings": lambda X, case: jaxmix.sparse_ratings(X),
}


@pytest.mark.parametrize(
    "fname, case",
    [pytest.param(f, c, id=f"{f}-{c}") for f in VALID_FUNCS for c, _ in VALID_CASES],
)
def test_awkward_valid_input_gives_a_finite_result(fname, case):
    X = dict(VALID_CASES)[case]()
    out = VALID_FUNCS[fname](X, case)
    _all_finite(out, fname)
    if fname == "sparse_ratings":
        np.testing.assert_array_equal(out.to_dense(), np.asarray(X, np.float64))


@pytest.mark.filterwarnings("ignore::jaxmix.DiagnosticsWarning")  # 5 draws: Pareto k is high
@pytest.mark.parametrize("case", ["int64", "dataframe", "nan-row-and-column", "huge-1e150"])
def test_select_k_on_awkward_valid_input(case):
    X = dict(VALID_CASES)[case]()
    sel = jaxmix.select_k(X, [1, 2], **SELECT)
    assert np.all(np.isfinite(sel.bic)) and np.all(np.isfinite(sel.elpd_loo))
    assert sel.best_k_bic in (1, 2) and sel.best_k_loo in (1, 2)


# ---------------------------------------------------------------- inputs are never modified


def _snapshot(value):
    """A deep copy of every array in ``value`` (NamedTuples and tuples kept)."""
    if isinstance(value, np.ndarray):
        return value.copy(order="K"), (value.flags.c_contiguous, value.flags.f_contiguous)
    if isinstance(value, tuple):
        return (
            type(value)(*map(_snapshot, value))
            if hasattr(value, "_fields")
            else tuple(map(_snapshot, value))
        )
    return value


def _assert_unchanged(value, snap, where="input"):
    if isinstance(value, np.ndarray):
        copy, flags = snap
        assert value.dtype == copy.dtype and value.shape == copy.shape, where
        np.testing.assert_array_equal(value, copy, err_msg=where)
        assert (value.flags.c_contiguous, value.flags.f_contiguous) == flags, where
    elif isinstance(value, tuple):
        for i, (a, b) in enumerate(zip(value, snap, strict=True)):
            _assert_unchanged(a, b, f"{where}[{i}]")
    else:
        assert value == snap or (value is None and snap is None), where


def _mixed_input(order: str) -> np.ndarray:
    X = _base()
    return np.asfortranarray(X) if order == "F" else X


INIT2 = MixtureParams(np.array([[1.0, 2.0, 1.0], [5.0, 6.0, 5.0]]), np.ones(2), np.full(2, 0.5))

# name -> call(X, mask, init, em_result, mcmc_result); returns what came back
NOT_MODIFIED = {
    "fit_svi-map": lambda X, m, init, em, mc: jaxmix.fit_svi(X, 2, mask=m, init=init, **SVI),
    "fit_svi-meanfield": lambda X, m, init, em, mc: jaxmix.fit_svi(
        X, 2, mask=m, init=init, **MEANFIELD
    ),
    "fit_mcmc": lambda X, m, init, em, mc: jaxmix.fit_mcmc(X, 2, mask=m, init=init, **MCMC),
    "fit_mcmc-map-start": lambda X, m, init, em, mc: jaxmix.fit_mcmc(X, 2, mask=m, **MCMC),
    "predictive_summary-em": lambda X, m, init, em, mc: jaxmix.predictive_summary(em, X, mask=m),
    "predictive_summary-mcmc": lambda X, m, init, em, mc: jaxmix.predictive_summary(mc, X, mask=m),
    "to_inference_data": lambda X, m, init, em, mc: jaxmix.to_inference_data(mc, X, mask=m),
    "select_k": lambda X, m, init, em, mc: jaxmix.select_k(X, [1, 2], mask=m, **SELECT),
    "log_objective": lambda X, m, init, em, mc: jaxmix.log_objective(X, em, mask=m),
    "sparse_ratings": lambda X, m, init, em, mc: jaxmix.sparse_ratings(X, mask=m),
    "fit_em-sparse": lambda X, m, init, em, mc: jaxmix.fit_em(
        jaxmix.sparse_ratings(X, mask=m), 2, init=init, max_iter=5
    ),
    "complete-entries": lambda X, m, init, em, mc: jaxmix.complete(
        X, em, mask=m, rows=[0, 1], cols=[2, 2], return_std=True
    ),
    "bic": lambda X, m, init, em, mc: (jaxmix.bic(X, em), jaxmix.aic(X, em)),
}


@pytest.fixture(scope="module")
def fitted_for_inputs():
    return jaxmix.fit_em(_base(), 2, n_init=2), _fits("fortran")[1]


@pytest.mark.filterwarnings("ignore::jaxmix.DiagnosticsWarning")
@pytest.mark.parametrize(
    "order, with_mask", [("C", False), ("F", True)], ids=["C-order-nan", "F-order-mask"]
)
@pytest.mark.parametrize("fname", list(NOT_MODIFIED))
def test_no_entry_point_modifies_its_input(fname, order, with_mask, fitted_for_inputs):
    em, mc = fitted_for_inputs
    X = _mixed_input(order)
    mask = None
    if with_mask:
        mask = ~np.isnan(X)
        X = np.where(mask, X, -99.0)  # the values under a False mask are ignored, not changed
        X = np.asfortranarray(X) if order == "F" else X
    init = MixtureParams(*(p.copy() for p in INIT2))
    before = _snapshot((X, mask, init, em, mc))
    out = NOT_MODIFIED[fname](X, mask, init, em, mc)
    _assert_unchanged((X, mask, init, em, mc), before)
    # nothing that came back shares memory with the input
    for arr in out if isinstance(out, tuple) else (out,):
        if isinstance(arr, np.ndarray):
            assert not np.shares_memory(arr, X)


def test_dataframe_input_is_not_modified():
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame(_base(), columns=["a", "b", "c"])
    copy = df.copy(deep=True)
    em, mc = _fits("dataframe")
    jaxmix.fit_svi(df, 2, **SVI)
    jaxmix.predictive_summary(mc, df)
    jaxmix.to_inference_data(mc, df)
    jaxmix.responsibilities(df, em)
    jaxmix.sparse_ratings(df)
    pd.testing.assert_frame_equal(df, copy)


def test_save_does_not_modify_the_result(tmp_path, fitted_for_inputs):
    for result in fitted_for_inputs:
        before = _snapshot(result)
        jaxmix.save(result, tmp_path / "r.npz")
        _assert_unchanged(result, before)


# ---------------------------------------------------------------- save and load

SAVE_OBJECTS = [
    ("list", lambda: [1, 2]),
    ("none", lambda: None),
    ("array", lambda: np.zeros(3)),
    ("dict", lambda: {"mu": np.zeros(3)}),
    ("summary", lambda: jaxmix.predictive_summary(PARAMS3, _X(), **SUMMARY)),
    ("sparse", lambda: jaxmix.sparse_ratings(_X())),
    ("simulated", lambda: jaxmix.simulate_ratings(6, 3, 2)),
]


@pytest.mark.parametrize("make", [pytest.param(m, id=i) for i, m in SAVE_OBJECTS])
def test_save_refuses_objects_it_does_not_store(tmp_path, make):
    with pytest.raises(TypeError, match=r"save\(\) can store .*EMResult.*; got "):
        jaxmix.save(make(), tmp_path / "x.npz")
    assert os.listdir(tmp_path) == []


def test_save_bad_paths(tmp_path, fitted_for_inputs):
    res = fitted_for_inputs[0]
    with pytest.raises(FileNotFoundError, match="No such folder"):
        jaxmix.save(res, tmp_path / "no" / "model.npz")
    with pytest.raises(IsADirectoryError, match="give a file name"):
        jaxmix.save(res, tmp_path)
    for path in (None, 3, 2.5):
        with pytest.raises(TypeError, match="PathLike|path"):
            jaxmix.save(res, path)
    assert os.listdir(tmp_path) == []


def test_save_to_an_empty_path_names_it_and_writes_nothing(
    tmp_path, monkeypatch, fitted_for_inputs
):
    """``save(result, "")`` must not write next to (or above) the working folder, and must not
    talk about a temporary file the user never named."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    with pytest.raises((ValueError, OSError)) as info:
        jaxmix.save(fitted_for_inputs[0], "")
    assert ".tmp" not in str(info.value), str(info.value)
    assert os.listdir(work) == [] and os.listdir(tmp_path) == ["work"]


def test_load_bad_paths(tmp_path):
    with pytest.raises(FileNotFoundError):
        jaxmix.load(tmp_path / "absent.npz")
    with pytest.raises(IsADirectoryError):
        jaxmix.load(tmp_path)
    with pytest.raises(TypeError, match="PathLike|path"):
        jaxmix.load(None)
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty\.npz: the file is empty"):
        jaxmix.load(empty)
    plain = tmp_path / "plain.npz"
    np.savez(plain, mu=np.zeros(3))
    with pytest.raises(ValueError, match=r"plain\.npz: .*(not a jaxmix file|metadata|missing)"):
        jaxmix.load(plain)


# ---------------------------------------------------------------- load_ratings: more bad files

LOAD_CASES = [
    ("semicolon", "1;2;3\n4;5;6\n", r"line 1: '1;2;3' is not a number"),
    ("double-colon", "1::2::3\n", r"line 1: '1::2::3' is not a number"),
    ("ragged-longer", "1 2\n3 4 5\n", r"line 2: 3 values where earlier lines have 2"),
    ("-inf", "1 2\n-inf 4\n", r"infinite"),
    ("text-in-last-line", "1 2\n3 4\nend\n", r"line 3: 'end' is not a number"),
]


@pytest.mark.parametrize("content, match", [pytest.param(c, m, id=i) for i, c, m in LOAD_CASES])
def test_load_ratings_more_bad_files(tmp_path, content, match):
    path = tmp_path / "ratings.txt"
    path.write_text(content)
    with pytest.raises(ValueError, match=match) as info:
        jaxmix.load_ratings(path)
    assert "ratings.txt" in str(info.value)


def test_load_ratings_of_a_binary_file_gives_a_short_message(tmp_path, fitted_for_inputs):
    """A saved model passed as a ratings file: the message names the file and stays readable
    (no screenful of binary bytes)."""
    model = tmp_path / "model.npz"
    jaxmix.save(fitted_for_inputs[0], model)
    with pytest.raises(ValueError, match=r"model\.npz") as info:
        jaxmix.load_ratings(model)
    message = str(info.value).replace(str(model), "")
    assert len(message) < 200, f"{len(message)} characters besides the path: {message[:120]!r}..."


def test_load_ratings_directory(tmp_path):
    with pytest.raises(IsADirectoryError):
        jaxmix.load_ratings(tmp_path)


def test_load_ratings_with_a_byte_order_mark(tmp_path):
    """A file saved by an editor that writes a UTF-8 BOM reads like the same file without it."""
    path = tmp_path / "bom.txt"
    path.write_bytes(b"\xef\xbb\xbf1 0 3\n4 5 0\n")
    np.testing.assert_array_equal(jaxmix.load_ratings(path), [[1.0, NAN, 3.0], [4.0, 5.0, NAN]])


def test_all_missing_file_is_refused_by_the_fit(tmp_path):
    path = tmp_path / "zeros.txt"
    path.write_text("0 0 0\n0 0 0\n")
    X = jaxmix.load_ratings(path)
    assert np.isnan(X).all()
    with pytest.raises(ValueError, match="every entry of X is missing"):
        jaxmix.fit_em(X, 1)


# ---------------------------------------------------------------- the command line


def _one_line_error(code, capsys) -> str:
    """The command failed with status 2 and one ``jaxmix: error:`` line on stderr."""
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    assert "Traceback" not in out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("jaxmix: error: ")
    return lines[0]


@pytest.fixture
def files(tmp_path, fitted_for_inputs):
    """A valid ratings file, a saved model and a set of bad files."""
    paths = {"dir": tmp_path}
    contents = {
        "ratings": None,
        "empty": "",
        "blank": "\n \n",
        "ragged": "1 2 3\n4 5\n",
        "semicolon": "1;2;3\n4;5;6\n",
        "comma": "1,2,3\n4,5,6\n",
        "words": "a b c\n1 2 3\n",
        "inf": "1 2 3\ninf 5 6\n",
        "zeros": "0 0 0\n0 0 0\n",
        "triples-text": "1,2,good\n2,3,bad\n",
    }
    for name, text in contents.items():
        paths[name] = tmp_path / f"{name}.txt"
        if text is None:
            jaxmix.save_ratings(paths[name], _base())
        else:
            paths[name].write_text(text)
    paths["model"] = tmp_path / "model.npz"
    jaxmix.save(fitted_for_inputs[0], paths["model"])
    paths["out"] = tmp_path / "out.txt"
    return {k: str(v) for k, v in paths.items()}


# (id, argv built from the files fixture, text the error line must contain)
CLI_ERRORS = [
    ("fit-K0", lambda f: ["fit", f["ratings"], "-K", "0"], "K (number of components) must be at"),
    ("fit-K-neg", lambda f: ["fit", f["ratings"], "-K", "-3"], "must be at least 1; got -3"),
    ("fit-K>n", lambda f: ["fit", f["ratings"], "-K", "7"], "exceeds the number of rows, 6"),
    ("fit-dir", lambda f: ["fit", f["dir"], "-K", "2"], "Is a directory"),
    ("fit-empty", lambda f: ["fit", f["empty"], "-K", "1"], "holds no data"),
    ("fit-blank", lambda f: ["fit", f["blank"], "-K", "1"], "holds no data"),
    ("fit-ragged", lambda f: ["fit", f["ragged"], "-K", "1"], "ragged rows"),
    ("fit-semicolon", lambda f: ["fit", f["semicolon"], "-K", "1"], "'1;2;3' is not a number"),
    ("fit-comma", lambda f: ["fit", f["comma"], "-K", "1"], "'1,2,3' is not a number"),
    ("fit-words", lambda f: ["fit", f["words"], "-K", "1"], "'a' is not a number"),
    ("fit-inf", lambda f: ["fit", f["inf"], "-K", "1"], "infinite"),
    ("fit-zeros", lambda f: ["fit", f["zeros"], "-K", "1"], "every entry of X is missing"),
    (
        "fit-holdout-all",
        lambda f: ["fit", f["ratings"], "-K", "1", "--holdout", "0.99"],
        "leaves none to fit",
    ),
    (
        "fit-model-as-ratings",
        lambda f: ["fit", f["model"], "-K", "1"],
        "model.npz",
    ),
    (
        "fit-triples-empty",
        lambda f: ["fit", f["empty"], "-K", "1", "--format", "triples"],
        "holds no data",
    ),
    (
        "fit-triples-text",
        lambda f: ["fit", f["triples-text"], "-K", "1", "--format", "triples"],
        "triples-text.txt",
    ),
    (
        "fit-triples-output",
        lambda f: ["fit", f["ratings"], "-K", "1", "--format", "triples", "--output", f["out"]],
        "need the dense matrix",
    ),
    (
        "complete-empty-fit",
        lambda f: ["complete", f["ratings"], "--fit", f["empty"], "--output", f["out"]],
        "empty.txt: the file is empty",
    ),
    (
        "complete-fit-dir",
        lambda f: ["complete", f["ratings"], "--fit", f["dir"], "--output", f["out"]],
        "Is a directory",
    ),
    (
        "complete-empty",
        lambda f: ["complete", f["empty"], "--fit", f["model"], "--output", f["out"]],
        "holds no data",
    ),
    (
        "complete-ragged",
        lambda f: ["complete", f["ragged"], "--fit", f["model"], "--output", f["out"]],
        "ragged rows",
    ),
    (
        "complete-semicolon",
        lambda f: ["complete", f["semicolon"], "--fit", f["model"], "--output", f["out"]],
        "is not a number",
    ),
    (
        "complete-inf",
        lambda f: ["complete", f["inf"], "--fit", f["model"], "--output", f["out"]],
        "infinite",
    ),
    ("demo-K0", lambda f: ["demo", "-K", "0", "--no-plot"], "must be at least 1; got 0"),
    ("demo-K-neg", lambda f: ["demo", "-K", "-2", "--no-plot"], "must be at least 1; got -2"),
    (
        "demo-plot-folder",
        lambda f: ["demo", "--plot", f["dir"] + "/no/demo.png"],
        "does not exist",
    ),
]


@pytest.mark.parametrize("argv, expected", [pytest.param(a, e, id=i) for i, a, e in CLI_ERRORS])
def test_cli_input_errors_are_one_short_line(argv, expected, files, capsys):
    line = _one_line_error(main([*argv(files), "-q"]), capsys)
    assert expected in line, line
    rest = line.replace(files["dir"], "")
    assert len(rest) < 200, f"{len(rest)} characters besides the paths: {rest[:120]!r}..."
    assert not os.path.exists(files["out"])


# Option values argparse refuses: status 2, no traceback, and the error line names the option.
CLI_USAGE = [
    (["fit", "r.txt", "-K", "2.5"], "-K/--components"),
    (["fit", "r.txt", "-K", "x"], "-K/--components"),
    (["fit", "r.txt", "-K", "2", "--tol", "nan"], "--tol"),
    (["fit", "r.txt", "-K", "2", "--tol", "-1"], "--tol"),
    (["fit", "r.txt", "-K", "2", "--min-var", "-0.5"], "--min-var"),
    (["fit", "r.txt", "-K", "2", "--min-var", "inf"], "--min-var"),
    (["fit", "r.txt", "-K", "2", "--max-iter", "0"], "--max-iter"),
    (["fit", "r.txt", "-K", "2", "--seed", "-1"], "--seed"),
    (["fit", "r.txt", "-K", "2", "--restarts", "1.5"], "--restarts"),
    (["fit", "r.txt", "-K", "2", "--holdout", "1"], "--holdout"),
    (["fit", "r.txt", "-K", "2", "--holdout", "nan"], "--holdout"),
    (["fit", "r.txt", "-K", "2", "--missing-value", "abc"], "--missing-value"),
    (["fit", "r.txt", "-K", "2", "--format", "csv"], "--format"),
    (["complete", "r.txt", "--fit", "m.npz", "--missing-value", "x"], "--missing-value"),
    (["demo", "--users", "0"], "--users"),
    (["demo", "--items", "-4"], "--items"),
    (["demo", "--missing", "1.0"], "--missing"),
    (["demo", "-K", "two"], "-K/--components"),
]


@pytest.mark.parametrize(
    "argv, option", [pytest.param(a, o, id=" ".join(a[:1] + a[-2:])) for a, o in CLI_USAGE]
)
def test_cli_bad_option_values_name_the_option(argv, option, capsys):
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1, err
    assert f"argument {option}" in errors[0], errors[0]

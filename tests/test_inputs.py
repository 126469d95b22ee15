"""Every entry point refuses bad input clearly, works on awkward valid input, never modifies it.

One set of tables over every public entry point:

* **Matrices** (``MATRIX_FUNCS`` x ``MATRIX_CASES``): every function that takes a matrix ``X``
  (and an optional ``mask``) against every malformed matrix, minus the per-case exemptions.
* **K** (``FITTERS`` x ``K_CASES``): every function that takes a number of components.
* **Options** (``OPTION_CASES``): one table per entry point.
* **Fitted parameters** (``BAD_PARAMS`` x ``PARAM_CONSUMERS``): parameters no fit can produce.
* **Files**: ``load_ratings``, ``save`` and ``load``.
* **The command line**: input errors and option values argparse refuses.
* **Awkward valid input** (``VALID_FUNCS`` x ``VALID_CASES``, then exact properties: dtypes,
  memory layouts, rows and columns with nothing observed, constant data, extreme scales).
* **Input never modified** (``NOT_MODIFIED``).

A refusal is a ``ValueError`` (a bad value) or a ``TypeError`` (a value of the wrong kind; see
``jaxmix/_validate.py``) whose message names the argument and the problem (checked with
``match``). Every refusal must come before any work: no compiled program of jaxmix is traced
(:func:`jaxmix.testing.count_traces`) and the expensive steps of the samplers (NUTS, the MAP-EM
start of ``fit_mcmc``, the SVI program's inputs) are replaced by a function that fails the test.
Valid awkward inputs of the tables all have the same shape (6 x 3), so each entry point compiles
once.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import warnings

import numpy as np
import pytest
from scipy.stats import norm

import jaxmix
import jaxmix.inference.mcmc
import jaxmix.inference.svi
from jaxmix import MixtureParams
from jaxmix.cli import main
from jaxmix.models.families import SphericalCov
from jaxmix.testing import count_traces

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


PARAMS3 = MixtureParams(
    np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]), SphericalCov(np.ones(2)), np.full(2, 0.5)
)


def _draws_result(d: int = 3) -> jaxmix.MCMCResult:
    """A hand-made MCMC result with 1 chain of 4 draws on ``d`` columns (no sampling needed)."""
    rng = np.random.default_rng(0)
    mu = rng.normal(size=(1, 4, 2, d))
    draws = MixtureParams(mu, SphericalCov(np.ones((1, 4, 2))), np.full((1, 4, 2), 0.5))
    zeros = np.zeros((1, 4))
    point = MixtureParams(mu.mean(axis=(0, 1)), SphericalCov(np.ones(2)), np.full(2, 0.5))
    return jaxmix.MCMCResult(
        params=point,
        draws=draws,
        diverging=zeros.astype(bool),
        accept_prob=zeros + 0.8,
        n_leapfrog=np.ones((1, 4), np.int64),
        tree_depth=np.ones((1, 4), np.int64),
        potential_energy=zeros,
        step_size=np.ones(1),
        permutation=np.tile(np.arange(2), (1, 4, 1)),
        n_relabelled=0,
        reference=point,
        prior=jaxmix.Prior(),
    )


# ---------------------------------------------------------------- refusal before any work


@pytest.fixture
def no_work(monkeypatch):
    """Replace the expensive steps of the samplers by a failure.

    NUTS (``jaxmix.inference.mcmc.sample_chains``), the MAP-EM start of ``fit_mcmc``
    (``jaxmix.inference.mcmc.fit_em``) and the SVI program
    (``jaxmix.inference.svi.compiled_program``), besides :func:`refused`'s trace count.
    """

    def started(*args, **kwargs):
        raise AssertionError("work started before the input was checked")

    monkeypatch.setattr(jaxmix.inference.mcmc, "sample_chains", started)
    monkeypatch.setattr(jaxmix.inference.mcmc, "fit_em", started)
    monkeypatch.setattr(jaxmix.inference.svi, "compiled_program", started)


@contextlib.contextmanager
def refused(exc, match):
    """The block raises ``exc`` matching ``match`` and traces none of jaxmix's programs."""
    with count_traces() as traces, pytest.raises(exc, match=match):
        yield
    assert traces.total == 0, f"compiled before the input was refused: {dict(traces)}"


# ---------------------------------------------------------------- malformed matrices

# Every function that takes a matrix X (and an optional mask) and validates it.
MATRIX_FUNCS = {
    "fit_em": lambda X, mask=None: jaxmix.fit_em(X, 1, mask=mask, max_iter=5),
    "kmeans": lambda X, mask=None: jaxmix.kmeans(X, 1, mask=mask, max_iter=5),
    "complete": lambda X, mask=None: jaxmix.complete(X, PARAMS3, mask=mask),
    "responsibilities": lambda X, mask=None: jaxmix.responsibilities(X, PARAMS3, mask=mask),
    "holdout_split": lambda X, mask=None: jaxmix.holdout_split(X, 0.2, mask=mask),
    "mean_baseline": lambda X, mask=None: jaxmix.mean_baseline(X, "user", mask=mask),
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


# Functions for which a matrix with nothing observed is valid input.
NOTHING_OBSERVED_OK = (
    "complete",  # completion of nothing observed is allowed
    "responsibilities",
    "sparse_ratings",  # an empty set of triples is a valid SparseRatings
)

# (case id, X factory, mask factory, exception, message regex, functions exempt)
MATRIX_CASES = [
    ("1-D", lambda: np.arange(6.0), None, ValueError, r"X must be a 2-D array.*1-D", ()),
    ("3-D", lambda: np.zeros((2, 3, 3)), None, ValueError, r"X must be a 2-D array.*3-D", ()),
    ("0-D", lambda: np.float64(3.0), None, ValueError, r"X must be a 2-D array.*0-D", ()),
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
        NOTHING_OBSERVED_OK,
    ),
    (
        "all-masked",
        _X,
        lambda: np.zeros((6, 3), dtype=bool),
        ValueError,
        r"every entry of X is missing",
        NOTHING_OBSERVED_OK,
    ),
    (
        "mask-shape",
        _X,
        lambda: np.ones((6, 4), dtype=bool),
        ValueError,
        r"mask has shape \(6, 4\) but X has shape \(6, 3\)",
        (),
    ),
    (
        "mask-transposed",
        _X,
        lambda: np.ones((3, 6), dtype=bool),
        ValueError,
        r"mask has shape",
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
        r"X is NaN at 2 entries that mask marks observed.*row 0, column 2",
        (),
    ),
    (
        "mask-observes-inf",
        lambda: _inf_at(np.inf),
        lambda: ~np.isnan(_X()),
        ValueError,
        r"infinite",
        (),
    ),
]


def _matrix_params():
    for case, make_X, make_mask, exc, match, exempt in MATRIX_CASES:
        for fname in MATRIX_FUNCS:
            if fname not in exempt:
                yield pytest.param(fname, make_X, make_mask, exc, match, id=f"{fname}-{case}")


@pytest.mark.usefixtures("no_work")
@pytest.mark.parametrize("fname, make_X, make_mask, exc, match", list(_matrix_params()))
def test_bad_matrix_is_refused(fname, make_X, make_mask, exc, match):
    mask = None if make_mask is None else make_mask()
    X = make_X()
    with refused(exc, match):
        MATRIX_FUNCS[fname](X, mask=mask)


# ---------------------------------------------------------------- bad K, for every fitter

FITTERS = {
    "fit_em": lambda K: jaxmix.fit_em(_X(), K, max_iter=5),
    "kmeans": lambda K: jaxmix.kmeans(_X(), K, max_iter=5),
    "fit_svi": lambda K: jaxmix.fit_svi(_X(), K, **SVI),
    "fit_svi-meanfield": lambda K: jaxmix.fit_svi(_X(), K, **MEANFIELD),
    "fit_mcmc": lambda K: jaxmix.fit_mcmc(_X(), K, **MCMC),
    "select_k": lambda K: jaxmix.select_k(_X(), [K], **SELECT),
    "fit_em-sparse": lambda K: jaxmix.fit_em(jaxmix.sparse_ratings(_X()), K, max_iter=5),
    "fit_em-method-sparse": lambda K: jaxmix.fit_em(_X(), K, method="sparse", max_iter=5),
    "simulate_ratings": lambda K: jaxmix.simulate_ratings(6, 3, K),
}

# (case id, K, exception, message regex); _X() has 6 rows
K_CASES = [
    ("0", 0, ValueError, r"K \(number of components\) must be at least 1; got 0"),
    ("negative", -2, ValueError, r"K \(number of components\) must be at least 1; got -2"),
    ("2.5", 2.5, TypeError, r"K \(number of components\) must be an integer; got 2\.5"),
    ("1.5", 1.5, TypeError, r"K \(number of components\) must be an integer; got 1\.5"),
    ("float-2.0", 2.0, TypeError, r"K \(number of components\) must be an integer"),
    ("str", "3", TypeError, r"K \(number of components\) must be an integer; got '3'"),
    ("str-2", "2", TypeError, r"K \(number of components\) must be an integer; got '2'"),
    ("True", True, TypeError, r"K \(number of components\) must be an integer; got True"),
    ("None", None, TypeError, r"K \(number of components\) must be an integer; got None"),
    ("rows+1", 7, ValueError, r"K \(number of components\) = 7 exceeds the number of rows, 6"),
    ("rows+4", 10, ValueError, r"K \(number of components\) = 10 exceeds the number of rows, 6"),
]


@pytest.mark.usefixtures("no_work")
@pytest.mark.parametrize(
    "fname, K, exc, match",
    [
        pytest.param(f, K, e, m, id=f"{f}-K-{i}")
        for f in FITTERS
        for i, K, e, m in K_CASES
        # n_users=6: the rows cases are the same case as for the fitters
        if not (f == "simulate_ratings" and i.startswith("rows+"))
    ],
)
def test_bad_K_is_refused(fname, K, exc, match):
    with refused(exc, match):
        FITTERS[fname](K)


# ---------------------------------------------------------------- bad options, per entry point


def _fit(**kw):
    return lambda: jaxmix.fit_em(_X(), **{"K": 2, "max_iter": 5, **kw})


def _sparse_fit(**kw):
    return lambda: jaxmix.fit_em(jaxmix.sparse_ratings(_X()), 2, **{"max_iter": 5, **kw})


def _km(**kw):
    return lambda: jaxmix.kmeans(_X(), **{"K": 2, "max_iter": 5, **kw})


def _holdout(fraction=0.2, X=None, **kw):
    return lambda: jaxmix.holdout_split(_X() if X is None else X, fraction, **kw)


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


_T = np.array([[1.0, 2.0], [3.0, 4.0]])

# entry point -> [(case id, call, exception, message regex)]; K is in K_CASES above.
OPTION_CASES = {
    "fit_em": [
        ("fit_em-tol-neg", _fit(tol=-1e-6), ValueError, r"tol must be finite and non-negative"),
        ("fit_em-tol-nan", _fit(tol=NAN), ValueError, r"tol must be finite and non-negative"),
        ("fit_em-tol-inf", _fit(tol=np.inf), ValueError, r"tol must be finite"),
        ("fit_em-tol-str", _fit(tol="1e-6"), TypeError, r"tol must be a real number"),
        ("fit_em-min_var-neg", _fit(min_var=-0.25), ValueError, r"min_var must be finite and non"),
        ("fit_em-min_var-nan", _fit(min_var=NAN), ValueError, r"min_var must be finite"),
        ("fit_em-min_var-str", _fit(min_var="0.25"), TypeError, r"min_var must be a real number"),
        ("fit_em-n_init0", _fit(n_init=0), ValueError, r"n_init must be at least 1; got 0"),
        ("fit_em-n_init-neg", _fit(n_init=-3), ValueError, r"n_init must be at least 1"),
        ("fit_em-n_init-float", _fit(n_init=2.0), TypeError, r"n_init must be an integer"),
        ("fit_em-max_iter0", _fit(max_iter=0), ValueError, r"max_iter must be at least 1"),
        ("fit_em-seed-neg", _fit(seed=-1), ValueError, r"seed must be non-negative"),
        ("fit_em-seed-float", _fit(seed=0.5), TypeError, r"seed must be an integer"),
        ("fit_em-init-name", _fit(init="kmeans"), ValueError, r"init must be one of"),
        ("fit_em-method", _fit(method="fast"), ValueError, r"method must"),
    ],
    "fit_em (SparseRatings)": [
        ("sparse-tol-neg", _sparse_fit(tol=-1e-6), ValueError, r"tol must be finite and non-neg"),
        ("sparse-tol-nan", _sparse_fit(tol=NAN), ValueError, r"tol must be finite and non-neg"),
        ("sparse-min_var-neg", _sparse_fit(min_var=-0.25), ValueError, r"min_var must be finite"),
        ("sparse-min_var-nan", _sparse_fit(min_var=NAN), ValueError, r"min_var must be finite"),
        ("sparse-n_init0", _sparse_fit(n_init=0), ValueError, r"n_init must be at least 1"),
        ("sparse-max_iter0", _sparse_fit(max_iter=0), ValueError, r"max_iter must be at least 1"),
        ("sparse-seed-neg", _sparse_fit(seed=-1), ValueError, r"seed must be non-negative"),
        (
            "sparse-covariance",
            _sparse_fit(covariance="full"),
            ValueError,
            r"covariance must be one",
        ),
        (
            "sparse-mask",
            _sparse_fit(mask=np.ones((6, 3), bool)),
            TypeError,
            r"mask does not apply to a SparseRatings",
        ),
    ],
    "kmeans": [
        ("kmeans-tol-neg", _km(tol=-1.0), ValueError, r"tol must be finite and non-negative"),
        ("kmeans-tol-nan", _km(tol=NAN), ValueError, r"tol must be finite"),
        ("kmeans-n_init0", _km(n_init=0), ValueError, r"n_init must be at least 1"),
        ("kmeans-max_iter0", _km(max_iter=0), ValueError, r"max_iter must be at least 1"),
        ("kmeans-init-name", _km(init="random"), ValueError, r"init must be one of"),
    ],
    "holdout_split": [
        (
            "holdout-fraction0",
            _holdout(0.0),
            ValueError,
            r"fraction must lie strictly between 0 and 1",
        ),
        ("holdout-fraction1", _holdout(1.0), ValueError, r"fraction"),
        ("holdout-fraction-neg", _holdout(-0.1), ValueError, r"fraction"),
        ("holdout-fraction-nan", _holdout(NAN), ValueError, r"fraction"),
        ("holdout-fraction-str", _holdout("0.1"), TypeError, r"fraction"),
        ("holdout-seed-neg", _holdout(seed=-1), ValueError, r"seed"),
        (
            "holdout-too-few",
            _holdout(0.5, X=np.array([[1.0, NAN], [NAN, NAN]])),
            ValueError,
            r"leaves none to fit",
        ),
    ],
    "mean_baseline": [
        ("baseline-by", lambda: jaxmix.mean_baseline(_X(), "median"), ValueError, r"by must be"),
    ],
    "complete": [
        (
            "complete-result-type",
            lambda: jaxmix.complete(_X(), {"mu": 1}),
            TypeError,
            r"result must be a fitted result",
        ),
        (
            "complete-result-cols",
            lambda: jaxmix.complete(_X()[:, :2], PARAMS3),
            ValueError,
            r"\(2, 3\) but X has 2 columns",
        ),
    ],
    "rmse": [
        ("rmse-shape", lambda: jaxmix.rmse(_T, _T[:, :1]), ValueError, r"X_true has shape .*X_pr"),
        (
            "rmse-empty",
            lambda: jaxmix.rmse(np.zeros((0, 2)), np.zeros((0, 2))),
            ValueError,
            r"no entry",
        ),
        (
            "rmse-all-nan",
            lambda: jaxmix.rmse(np.full((2, 2), NAN), _T),
            ValueError,
            r"no entry is selected",
        ),
        (
            "rmse-mask-none-selected",
            lambda: jaxmix.rmse(_T, _T, mask=np.zeros((2, 2), bool)),
            ValueError,
            r"no entry is selected",
        ),
        (
            "rmse-mask-shape",
            lambda: jaxmix.rmse(_T, _T, mask=np.ones((2, 3), bool)),
            ValueError,
            r"mask has shape",
        ),
        (
            "rmse-mask-int",
            lambda: jaxmix.rmse(_T, _T, mask=np.ones((2, 2), int)),
            TypeError,
            r"mask must",
        ),
        (
            "rmse-inf-true",
            lambda: jaxmix.rmse(np.where(_T == 4, np.inf, _T), _T),
            ValueError,
            r"infinite",
        ),
        (
            "rmse--inf-pred",
            lambda: jaxmix.rmse(_T, np.where(_T == 1, -np.inf, _T)),
            ValueError,
            r"infinite",
        ),
        (
            "rmse-nan-selected-by-mask",
            lambda: jaxmix.rmse(_T, np.where(_T == 1, NAN, _T), mask=np.ones((2, 2), bool)),
            ValueError,
            r"NaN",
        ),
        (
            "rmse-strings",
            lambda: jaxmix.rmse(np.array([["1", "2"], ["3", "4"]]), _T),
            TypeError,
            r"X_true",
        ),
        (
            "rmse-object",
            lambda: jaxmix.rmse(_T, np.array([[1.0, None], [3.0, 4.0]], dtype=object)),
            TypeError,
            r"X_pred",
        ),
    ],
    # test_svi.py has guide, K, num_steps, learning_rate, polish_steps, covariance...
    "fit_svi": [
        ("svi-seed-float", _svi(seed=1.5), TypeError, r"seed must be an integer"),
        ("svi-seed-str", _svi(seed="0"), TypeError, r"seed must be an integer"),
        ("svi-num_steps-True", _svi(num_steps=True), TypeError, r"num_steps must be an integer"),
        ("svi-lr-inf", _svi(learning_rate=np.inf), ValueError, r"learning_rate must be finite"),
        ("svi-lr-0", _svi(learning_rate=0.0), ValueError, r"learning_rate must be finite and pos"),
        ("svi-lr-str", _svi(learning_rate="0.1"), TypeError, r"learning_rate must be a positive"),
        ("svi-init_scale-nan", _svi(init_scale=NAN), ValueError, r"init_scale must be finite"),
        (
            "svi-particles-float",
            _svi(num_particles=1.5),
            TypeError,
            r"num_particles must be an int",
        ),
        ("svi-record-neg", _svi(record_every=-1), ValueError, r"record_every must be non-negative"),
        ("svi-polish-float", _svi(polish_steps=1.5), TypeError, r"polish_steps must be an integer"),
        ("svi-guide-None", _svi(guide=None), ValueError, r"guide must be one of"),
        ("svi-covariance-None", _svi(covariance=None), ValueError, r"covariance must be one of"),
        ("svi-prior-str", _svi(prior="Prior"), TypeError, r"prior must be a jaxmix.Prior or None"),
        ("svi-init-dict", _svi(init={"mu": 1}), ValueError, r"init mapping lacks the key 'var'"),
        (
            "svi-init-nan",
            _svi(
                init=MixtureParams(np.full((2, 3), NAN), SphericalCov(np.ones(2)), np.full(2, 0.5))
            ),
            ValueError,
            r"init parameters must be finite",
        ),
        (
            "svi-init-negative-var",
            _svi(init=MixtureParams(np.zeros((2, 3)), SphericalCov(-np.ones(2)), np.full(2, 0.5))),
            ValueError,
            r"init var must be strictly positive",
        ),
    ],
    # test_mcmc.py has prior=None, chain_method, num_warmup=-1, target 1.0, init
    "fit_mcmc": [
        ("mcmc-num_samples0", _mcmc(num_samples=0), ValueError, r"num_samples must be at least 1"),
        (
            "mcmc-num_samples-float",
            _mcmc(num_samples=2.5),
            TypeError,
            r"num_samples must be an int",
        ),
        ("mcmc-num_chains0", _mcmc(num_chains=0), ValueError, r"num_chains must be at least 1"),
        (
            "mcmc-num_chains-True",
            _mcmc(num_chains=True),
            TypeError,
            r"num_chains must be an integer",
        ),
        # a float is a value of the wrong kind (jaxmix 0.1: ValueError "must be a non-negative")
        ("mcmc-num_warmup-float", _mcmc(num_warmup=2.5), TypeError, r"num_warmup must be an int"),
        ("mcmc-jitter-neg", _mcmc(jitter=-0.1), ValueError, r"jitter must be finite and non-neg"),
        ("mcmc-jitter-nan", _mcmc(jitter=NAN), ValueError, r"jitter must be finite"),
        ("mcmc-jitter-inf", _mcmc(jitter=np.inf), ValueError, r"jitter must be finite"),
        (
            "mcmc-target-0",
            _mcmc(target_accept_prob=0.0),
            ValueError,
            r"target_accept_prob must lie",
        ),
        (
            "mcmc-target-nan",
            _mcmc(target_accept_prob=NAN),
            ValueError,
            r"target_accept_prob must be",
        ),
        (
            "mcmc-target-str",
            _mcmc(target_accept_prob="0.8"),
            TypeError,
            r"target_accept_prob must be",
        ),
        (
            "mcmc-tree-depth0",
            _mcmc(max_tree_depth=0),
            ValueError,
            r"max_tree_depth must be at least",
        ),
        ("mcmc-seed-neg", _mcmc(seed=-1), ValueError, r"seed must be non-negative"),
        ("mcmc-seed-float", _mcmc(seed=0.5), TypeError, r"seed must be an integer"),
        ("mcmc-n_init0", _mcmc(n_init=0), ValueError, r"n_init must be at least 1"),
        ("mcmc-covariance", _mcmc(covariance="full"), ValueError, r"covariance must be one of"),
        ("mcmc-prior-dict", _mcmc(prior={"alpha": 2}), TypeError, r"prior must be a jaxmix.Prior"),
    ],
    # test_predictive.py has entries, hdi_prob=1.0, num_samples=5, columns
    "predictive_summary": [
        ("summary-hdi-0", _summary(0.0), ValueError, r"hdi_prob must lie in \(0, 1\); got 0"),
        ("summary-hdi-neg", _summary(-0.5), ValueError, r"hdi_prob must lie in \(0, 1\)"),
        ("summary-hdi-nan", _summary(NAN), ValueError, r"hdi_prob must lie in \(0, 1\); got nan"),
        ("summary-hdi-inf", _summary(np.inf), ValueError, r"hdi_prob must lie in \(0, 1\)"),
        ("summary-hdi-None", _summary(None), TypeError, r"hdi_prob must be a (real )?number"),
        ("summary-hdi-str", _summary("0.9"), TypeError, r"hdi_prob must be a (real )?number"),
        ("summary-hdi-array", _summary(np.array([0.5, 0.9])), TypeError, r"hdi_prob must be a"),
        (
            "summary-num_samples0",
            _summary(num_samples=0),
            ValueError,
            r"num_samples must be at least",
        ),
        (
            "summary-num_samples9",
            _summary(num_samples=9),
            ValueError,
            r"num_samples must be at least",
        ),
        (
            "summary-num_samples-float",
            _summary(num_samples=20.0),
            TypeError,
            r"num_samples must be",
        ),
        ("summary-seed-neg", _summary(seed=-1), ValueError, r"seed must be non-negative"),
        ("summary-seed-float", _summary(seed=1.5), TypeError, r"seed must be an integer"),
        (
            "summary-result-None",
            _summary(result=None),
            TypeError,
            r"result must be a fitted result",
        ),
        ("summary-result-dict", _summary(result={"mu": 1}), TypeError, r"result must be a fitted"),
        (
            "summary-entries-float",
            _summary(entries=([0.5], [2.0])),
            TypeError,
            r"entries must hold",
        ),
    ],
    # test_mcmc.py has point estimates refused
    "to_inference_data": [
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
    ],
    # test_selection.py has duplicated, empty and too large ks
    "select_k": [
        ("select-ks-int", _select(ks=2), TypeError, r"ks must be a (non-empty )?sequence"),
        ("select-ks-None", _select(ks=None), TypeError, r"ks must be a (non-empty )?sequence"),
        ("select-ks-zero", _select(ks=[0, 1]), ValueError, r"K .* must be at least 1; got 0"),
        ("select-ks-float", _select(ks=[1, 2.5]), TypeError, r"K .* must be an integer; got 2\.5"),
        ("select-ks-bool", _select(ks=[True]), TypeError, r"K .* must be an integer; got True"),
        ("select-covariance", _select(covariance="full"), ValueError, r"covariance must be one"),
        ("select-n_init0", _select(n_init=0), ValueError, r"n_init must be at least 1"),
        ("select-seed-neg", _select(seed=-1), ValueError, r"seed must be non-negative"),
        ("select-min_var-nan", _select(min_var=NAN), ValueError, r"min_var must be finite and "),
        ("select-min_var-neg", _select(min_var=-1.0), ValueError, r"min_var must be finite and "),
        (
            "select-num_samples0",
            _select(num_samples=0),
            ValueError,
            r"num_samples must be at least 1",
        ),
        ("select-num_chains0", _select(num_chains=0), ValueError, r"num_chains must be at least 1"),
        # the message of the one policy (jaxmix 0.1: "num_warmup must be a non-negative integer")
        (
            "select-num_warmup-neg",
            _select(num_warmup=-1),
            ValueError,
            r"num_warmup must be non-negative",
        ),
        ("select-prior-None", _select(prior=None), ValueError, r"fit_mcmc needs a proper prior"),
    ],
    # K, missing and noise ranges are checked in test_model.py / test_sparse.py
    "simulate": [
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
    ],
}


@pytest.mark.usefixtures("no_work")
@pytest.mark.parametrize(
    "call, exc, match",
    [pytest.param(c, e, m, id=i) for cases in OPTION_CASES.values() for i, c, e, m in cases],
)
def test_bad_option_is_refused(call, exc, match):
    with refused(exc, match):
        call()


# ---------------------------------------------------------------- bad fitted parameters


def _params(mu=None, var=None, weights=None, typed=True):
    var = PARAMS3.var if var is None else np.asarray(var, float)
    return MixtureParams(
        PARAMS3.mu if mu is None else np.asarray(mu, float),
        SphericalCov(var) if typed else var,
        PARAMS3.weights if weights is None else np.asarray(weights, float),
    )


# Parameters no fit can produce: every consumer of fitted parameters must refuse them instead of
# returning NaN (or a matrix that is silently still missing its entries).
# (case id, fields, message regex)
BAD_PARAMS = [
    ("mu-nan", dict(mu=[[1.0, NAN, 3.0], [4.0, 5.0, 6.0]]), r"\bmu\b.*finite|finite.*\bmu\b"),
    ("mu-inf", dict(mu=[[1.0, np.inf, 3.0], [4.0, 5.0, 6.0]]), r"\bmu\b.*finite|finite.*\bmu"),
    ("var-zero", dict(var=[1.0, 0.0]), r"\bvar\b.*positive|positive.*\bvar"),
    ("var-negative", dict(var=[1.0, -1.0]), r"\bvar\b.*positive|positive.*\bvar"),
    ("var-nan", dict(var=[1.0, NAN]), r"\bvar\b"),
    ("weights-negative", dict(weights=[1.5, -0.5]), r"\bweights\b"),
    ("weights-nan", dict(weights=[NAN, 0.5]), r"\bweights\b"),
    ("weights-shape", dict(weights=[0.2, 0.3, 0.5]), r"\bweights\b.*shape|shape.*\bweights"),
]

PARAM_CONSUMERS = {
    "complete": lambda p: jaxmix.complete(_X(), p),
    "complete-std": lambda p: jaxmix.complete(_X(), p, return_std=True),
    "complete-entries": lambda p: jaxmix.complete(_X(), p, rows=[0], cols=[2]),
    "responsibilities": lambda p: jaxmix.responsibilities(_X(), p),
    "predictive_summary": lambda p: jaxmix.predictive_summary(p, _X(), **SUMMARY),
}


@pytest.mark.parametrize("typed", [True, False], ids=["typed", "plain-var"])
@pytest.mark.parametrize("fields, match", [pytest.param(f, m, id=i) for i, f, m in BAD_PARAMS])
def test_impossible_fitted_parameters_are_refused(fields, match, typed):
    """Every consumer of fitted parameters refuses them with a ValueError naming the field, given
    as ``MixtureParams(mu, SphericalCov(var), weights)`` or with the plain ``var`` array."""
    params = _params(**fields, typed=typed)
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


def _read_only(X: np.ndarray) -> np.ndarray:
    X.flags.writeable = False
    return X


# (case id, X factory). Every matrix is 6 x 3: one compilation per entry point for all cases.
VALID_CASES = [
    ("int64", lambda: _integers(np.int64)),
    ("int32", lambda: _integers(np.int32)),
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
    "fit_em": lambda X, case: _fits(case)[0],
    "kmeans": lambda X, case: jaxmix.kmeans(X, 2),
    "fit_svi-map": lambda X, case: jaxmix.fit_svi(X, 2, **SVI),
    "fit_svi-meanfield": lambda X, case: jaxmix.fit_svi(X, 2, **MEANFIELD),
    "fit_mcmc": lambda X, case: _fits(case)[1],
    "predictive_summary-em": lambda X, case: jaxmix.predictive_summary(_fits(case)[0], X),
    "predictive_summary-mcmc": lambda X, case: jaxmix.predictive_summary(_fits(case)[1], X),
    "to_inference_data": lambda X, case: jaxmix.to_inference_data(_fits(case)[1], X),
    "responsibilities": lambda X, case: jaxmix.responsibilities(X, _fits(case)[0]),
    "complete": lambda X, case: jaxmix.complete(X, _fits(case)[0]),
    "complete-std": lambda X, case: jaxmix.complete(X, _fits(case)[1], return_std=True),
    "log_objective": lambda X, case: jaxmix.log_objective(X, _fits(case)[0], prior=jaxmix.Prior()),
    "mean_baseline": lambda X, case: jaxmix.mean_baseline(X, "item"),
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


def test_numpy_integer_K_is_accepted():
    res = jaxmix.fit_em(_X(), np.int64(2), n_init=np.int32(2))
    assert res.mu.shape == (2, 3)


# Exact properties of awkward valid input: the same fit as the plain float64 matrix, or the fit
# the property predicts. These need more data than 6 x 3.


def _data(n=40, d=5, seed=0, missing=0.25):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 3.0, size=(3, d))
    X = centres[rng.integers(3, size=n)] + rng.standard_normal((n, d))
    X[rng.random((n, d)) < missing] = NAN
    return X


def _finite(res):
    for arr in (res.mu, res.var, res.weights, res.resp, res.history):
        assert np.all(np.isfinite(arr))
    assert np.isfinite(res.log_likelihood)


def test_rows_with_nothing_observed():
    X = _data(seed=1)
    X[[0, 7, 19]] = NAN
    res = jaxmix.fit_em(X, 3, n_init=2)
    _finite(res)
    resp = jaxmix.responsibilities(X, res)
    np.testing.assert_allclose(resp[[0, 7, 19]], np.tile(res.weights, (3, 1)), atol=1e-14)
    # in the fit's own last E-step (at the previous weights) the three rows agree with each other
    np.testing.assert_array_equal(res.resp[0], res.resp[7])
    np.testing.assert_allclose(res.resp[0], res.weights, atol=1e-3)
    filled = jaxmix.complete(X, res)
    np.testing.assert_allclose(filled[7], res.weights @ res.mu, rtol=1e-12)


def test_nan_only_column():
    X = _data(seed=2)
    X[:, 3] = NAN
    res = jaxmix.fit_em(X, 3, n_init=2)
    _finite(res)
    km = jaxmix.kmeans(X, 3)
    assert np.isfinite(km.cost) and np.all(np.isfinite(km.mu))
    filled, sd = jaxmix.complete(X, res, return_std=True)
    assert np.all(np.isfinite(filled)) and np.all(np.isfinite(sd))
    item = jaxmix.mean_baseline(X, "item")
    np.testing.assert_allclose(item[:, 3], np.nanmean(X), rtol=1e-13)  # falls back to global
    train, test = jaxmix.holdout_split(X, 0.2)
    assert not test[:, 3].any()


@pytest.mark.parametrize(
    "params",
    [PARAMS3, MixtureParams(PARAMS3.mu, PARAMS3.var, PARAMS3.weights)],
    ids=["typed", "plain-var"],
)
def test_complete_with_nothing_observed(params):
    X = np.full((3, 3), NAN)
    filled, sd = jaxmix.complete(X, params, return_std=True)
    np.testing.assert_allclose(filled, np.tile(PARAMS3.weights @ PARAMS3.mu, (3, 1)), rtol=1e-14)
    np.testing.assert_allclose(sd**2, 1.0 + 2.25, rtol=1e-12)  # var + spread of the two means


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint8, np.float16, np.float32])
def test_other_dtypes_equal_float64(dtype):
    rng = np.random.default_rng(3)
    X = rng.integers(1, 6, size=(30, 4)).astype(dtype)
    mask = rng.random((30, 4)) > 0.2
    ref = jaxmix.fit_em(X.astype(np.float64), 2, mask=mask, n_init=2)
    res = jaxmix.fit_em(X, 2, mask=mask, n_init=2)
    _finite(res)
    np.testing.assert_array_equal(res.mu, ref.mu)
    assert res.log_likelihood == ref.log_likelihood
    if np.issubdtype(dtype, np.floating):  # NaN convention in a low-precision float array
        Xn = np.where(mask, X, np.nan).astype(dtype)
        assert jaxmix.fit_em(Xn, 2, n_init=2).log_likelihood == ref.log_likelihood


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda X: np.asfortranarray(X), id="fortran"),
        pytest.param(lambda X: np.repeat(np.repeat(X, 2, 0), 3, 1)[::2, ::3], id="strided"),
        pytest.param(lambda X: np.ascontiguousarray(X[::-1])[::-1], id="negative-stride"),
        pytest.param(lambda X: np.asfortranarray(X.T).T.copy(order="F"), id="fortran-copy"),
    ],
)
def test_memory_layouts_give_the_same_fit(make):
    X = _data(seed=4)
    Y = make(X)
    np.testing.assert_array_equal(Y, X)
    ref = jaxmix.fit_em(X, 3, n_init=2)
    res = jaxmix.fit_em(Y, 3, n_init=2)
    np.testing.assert_allclose(res.mu, ref.mu, rtol=1e-12, atol=1e-12)
    assert res.log_likelihood == pytest.approx(ref.log_likelihood, rel=1e-13)
    np.testing.assert_array_equal(jaxmix.kmeans(Y, 3).labels, jaxmix.kmeans(X, 3).labels)
    np.testing.assert_array_equal(jaxmix.complete(Y, ref), jaxmix.complete(X, ref))
    np.testing.assert_array_equal(jaxmix.mean_baseline(Y), jaxmix.mean_baseline(X))


def test_pandas_dataframe():
    pd = pytest.importorskip("pandas")
    X = _data(seed=5)
    df = pd.DataFrame(X, columns=[f"item{j}" for j in range(X.shape[1])])
    ref = jaxmix.fit_em(X, 3, n_init=2)
    res = jaxmix.fit_em(df, 3, n_init=2)
    # a DataFrame's values are column-major: equal up to rounding, as for a Fortran array
    np.testing.assert_allclose(res.mu, ref.mu, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(jaxmix.complete(df, ref), jaxmix.complete(X, ref), rtol=1e-12)
    np.testing.assert_allclose(
        jaxmix.mean_baseline(df, "item"), jaxmix.mean_baseline(X, "item"), rtol=1e-14
    )
    assert jaxmix.kmeans(df, 3).cost == pytest.approx(jaxmix.kmeans(X, 3).cost, rel=1e-12)


def test_duplicated_rows_double_the_log_likelihood():
    X = _data(seed=6)
    start = MixtureParams(
        np.nan_to_num(X[[0, 10, 20]]), SphericalCov(np.full(3, 2.0)), np.full(3, 1 / 3)
    )
    # tol well above rounding: the two fits sum their rows in different orders (size classes),
    # so tol=0 would stop each at its own last-bit plateau
    single = jaxmix.fit_em(X, 3, init=start, tol=1e-12, max_iter=20)
    double = jaxmix.fit_em(np.vstack([X, X]), 3, init=start, tol=1e-12, max_iter=20)
    assert double.n_iter == single.n_iter
    np.testing.assert_allclose(double.history, 2 * single.history, rtol=1e-11)
    np.testing.assert_allclose(double.mu, single.mu, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(double.var, single.var, rtol=1e-10)
    np.testing.assert_allclose(double.weights, single.weights, rtol=1e-10)
    np.testing.assert_allclose(double.resp, np.vstack([single.resp, single.resp]), atol=1e-10)
    km1 = jaxmix.kmeans(X, 3, init=start)
    km2 = jaxmix.kmeans(np.vstack([X, X]), 3, init=start)
    assert km2.cost == pytest.approx(2 * km1.cost, rel=1e-12)


def test_fewer_distinct_rows_than_components():
    X = np.array([[1.0, 2.0], [1.0, 2.0], [1.0, 2.0], [4.0, 4.0], [4.0, 4.0], [4.0, 4.0]])
    res = jaxmix.fit_em(X, 3, n_init=3)
    _finite(res)
    np.testing.assert_allclose(res.var, 0.25)  # every component collapses onto the floor
    km = jaxmix.kmeans(X, 3, n_init=3)
    assert km.cost == 0.0 and np.all(np.isfinite(km.var))


@pytest.mark.parametrize("min_var", [0.25, 0.0])
@pytest.mark.parametrize("value", [3.0, 0.0, -1e6])
def test_constant_data(value, min_var):
    X = np.full((12, 4), value)
    X[2, 1] = NAN
    res = jaxmix.fit_em(X, 2, n_init=2, min_var=min_var)
    _finite(res)
    np.testing.assert_allclose(res.mu, value, rtol=1e-14, atol=1e-14)
    assert np.all(res.var >= min_var) and np.all(res.var > 0)
    if min_var > 0:
        np.testing.assert_allclose(res.var, min_var)
        n_obs = 47
        assert res.log_likelihood == pytest.approx(n_obs * norm.logpdf(0.0, 0.0, 0.5), rel=1e-12)
    km = jaxmix.kmeans(X, 2)
    assert km.cost == 0.0
    filled = jaxmix.complete(X, res)
    assert filled[2, 1] == pytest.approx(value, rel=1e-14, abs=1e-14)


@pytest.mark.parametrize("scale", [1e150, 1e-150, 3.0, 2.0**-40])
@pytest.mark.parametrize("init", ["random_rows", "kmeans++", "explicit"])
def test_extreme_scales_are_the_scaled_unit_fit(scale, init):
    """Mixture fits are equivariant: X * s gives mu * s, var * s^2 and LL - n_obs log s."""
    X = _data(n=50, d=6, seed=7, missing=0.3)
    n_obs = int((~np.isnan(X)).sum())
    min_var = 0.25
    if init == "explicit":
        start = MixtureParams(
            np.nan_to_num(X[[0, 1, 2]]), SphericalCov(np.full(3, 1.5)), np.full(3, 1 / 3)
        )
        start_s = MixtureParams(start.mu * scale, SphericalCov(start.var * scale**2), start.weights)
    else:
        start = start_s = init
    # tol = 0 and a short fixed iteration cap: the relative stopping rule compares LL differences
    # with |LL|, which is not scale-invariant (LL shifts by -n_obs log s), and near the optimum
    # the rounding noise of a large |LL| stops a tol = 0 run earlier. Ten iterations are still far
    # from the plateau, so both runs do exactly the same steps.
    n_init = 1 if init == "explicit" else 2
    kw = dict(n_init=n_init, tol=0.0, max_iter=10)
    unit = jaxmix.fit_em(X, 3, init=start, min_var=min_var, **kw)
    big = jaxmix.fit_em(X * scale, 3, init=start_s, min_var=min_var * scale**2, **kw)
    assert unit.n_iter == big.n_iter == 10
    _finite(big)
    assert big.best_restart == unit.best_restart
    np.testing.assert_allclose(big.mu / scale, unit.mu, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(big.var / scale**2, unit.var, rtol=1e-9)
    np.testing.assert_allclose(big.weights, unit.weights, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(big.resp, unit.resp, rtol=1e-8, atol=1e-10)
    shift = -n_obs * np.log(scale)
    assert big.log_likelihood == pytest.approx(unit.log_likelihood + shift, rel=1e-11, abs=1e-8)
    np.testing.assert_allclose(big.history, unit.history + shift, rtol=1e-11, atol=1e-8)
    # completion and K-means scale too
    np.testing.assert_allclose(
        jaxmix.complete(X * scale, big) / scale, jaxmix.complete(X, unit), rtol=1e-9, atol=1e-9
    )
    if init != "explicit":
        km_u = jaxmix.kmeans(X, 3, init=init, tol=0.0)
        km_s = jaxmix.kmeans(X * scale, 3, init=init, tol=0.0)
        assert km_s.cost / scale**2 == pytest.approx(km_u.cost, rel=1e-10)
        np.testing.assert_array_equal(km_s.labels, km_u.labels)


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


INIT2 = MixtureParams(
    np.array([[1.0, 2.0, 1.0], [5.0, 6.0, 5.0]]), SphericalCov(np.ones(2)), np.full(2, 0.5)
)

# name -> call(X, mask, init, em_result, mcmc_result); returns what came back
NOT_MODIFIED = {
    "fit_em": lambda X, m, init, em, mc: jaxmix.fit_em(X, 2, mask=m, init=init, max_iter=5),
    "kmeans": lambda X, m, init, em, mc: jaxmix.kmeans(X, 2, mask=m, init=init, max_iter=5),
    "complete": lambda X, m, init, em, mc: jaxmix.complete(X, em, mask=m, return_std=True),
    "responsibilities": lambda X, m, init, em, mc: jaxmix.responsibilities(X, em, mask=m),
    "holdout_split": lambda X, m, init, em, mc: jaxmix.holdout_split(X, 0.2, mask=m),
    "mean_baseline": lambda X, m, init, em, mc: jaxmix.mean_baseline(X, "item", mask=m),
    "rmse": lambda X, m, init, em, mc: jaxmix.rmse(X, jaxmix.complete(X, em, mask=m), mask=m),
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
    init = MixtureParams(INIT2.mu.copy(), SphericalCov(INIT2.var.copy()), INIT2.weights.copy())
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
    jaxmix.complete(df, em)
    jaxmix.mean_baseline(df, "item")
    jaxmix.sparse_ratings(df)
    pd.testing.assert_frame_equal(df, copy)


def test_save_does_not_modify_the_result(tmp_path, fitted_for_inputs):
    for result in fitted_for_inputs:
        before = _snapshot(result)
        jaxmix.save(result, tmp_path / "r.npz")
        _assert_unchanged(result, before)


# ---------------------------------------------------------------- files: load_ratings

# (case id, file content, message regex)
LOAD_CASES = [
    ("empty", "", r"holds no data"),
    ("blank-lines", "\n  \n\n", r"holds no data"),
    ("ragged", "1 2 3\n4 5 6\n7 8\n", r"line 3: 2 values where earlier lines have 3"),
    ("ragged-longer", "1 2\n3 4 5\n", r"line 2: 3 values where earlier lines have 2"),
    ("non-numeric", "1 2 3\n4 five 6\n", r"line 2: 'five' is not a number"),
    ("comma", "1,2,3\n4,5,6\n", r"line 1: '1,2,3' is not a number.*comma"),
    ("semicolon", "1;2;3\n4;5;6\n", r"line 1: '1;2;3' is not a number"),
    ("double-colon", "1::2::3\n", r"line 1: '1::2::3' is not a number"),
    ("header", "a b c\n1 2 3\n", r"line 1: 'a' is not a number"),
    ("text-in-last-line", "1 2\n3 4\nend\n", r"line 3: 'end' is not a number"),
    ("inf", "1 2\ninf 4\n", r"infinite"),
    ("-inf", "1 2\n-inf 4\n", r"infinite"),
]


@pytest.mark.parametrize("content, match", [pytest.param(c, m, id=i) for i, c, m in LOAD_CASES])
def test_load_ratings_bad_file(tmp_path, content, match):
    path = tmp_path / "ratings.txt"
    path.write_text(content)
    with pytest.raises(ValueError, match=match) as info:
        jaxmix.load_ratings(path)
    assert "ratings.txt" in str(info.value)  # the message names the file


def test_load_ratings_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        jaxmix.load_ratings(tmp_path / "nope.txt")


def test_load_ratings_directory(tmp_path):
    with pytest.raises(IsADirectoryError):
        jaxmix.load_ratings(tmp_path)


def test_load_ratings_of_a_binary_file_gives_a_short_message(tmp_path, fitted_for_inputs):
    """A saved model passed as a ratings file: the message names the file and stays readable
    (no screenful of binary bytes)."""
    model = tmp_path / "model.npz"
    jaxmix.save(fitted_for_inputs[0], model)
    with pytest.raises(ValueError, match=r"model\.npz") as info:
        jaxmix.load_ratings(model)
    message = str(info.value).replace(str(model), "")
    assert len(message) < 200, f"{len(message)} characters besides the path: {message[:120]!r}..."


def test_load_ratings_valid_variants(tmp_path):
    path = tmp_path / "r.txt"
    path.write_text("1 0 3\r\n\n0\t5   nan\n\n")
    X = jaxmix.load_ratings(path)
    np.testing.assert_array_equal(X, [[1.0, NAN, 3.0], [NAN, 5.0, NAN]])
    np.testing.assert_array_equal(jaxmix.load_ratings(path, missing=None), [[1, 0, 3], [0, 5, NAN]])
    jaxmix.save_ratings(tmp_path / "s.txt", X)
    np.testing.assert_array_equal(jaxmix.load_ratings(tmp_path / "s.txt"), X)


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


# ---------------------------------------------------------------- files: save and load

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


# ---------------------------------------------------------------- missing values of other kinds


def test_none_and_pandas_na_are_missing_values():
    pd = pytest.importorskip("pandas")
    X = _X()
    X[1, 2] = X[4, 0] = NAN
    as_list = [[None if np.isnan(v) else float(v) for v in row] for row in X]
    frame = pd.DataFrame(X).astype("Float64")  # nullable: pd.NA, to_numpy gives objects
    n_missing = int(np.isnan(X).sum())
    assert frame.to_numpy().dtype == object and frame.isna().to_numpy().sum() == n_missing
    for value in (as_list, frame):
        values, observed = jaxmix.validate_matrix(value)
        assert values.dtype == np.float64
        np.testing.assert_array_equal(values, X)  # NaN where X is NaN, equal elsewhere
        np.testing.assert_array_equal(observed, ~np.isnan(X))
    ints = pd.DataFrame({"a": [1, None, 3], "b": [4, 5, None]}, dtype="Int64")
    values, observed = jaxmix.validate_matrix(ints)
    np.testing.assert_array_equal(observed, [[True, True], [False, True], [True, False]])
    np.testing.assert_array_equal(values[observed], [1.0, 4.0, 5.0, 3.0])
    ref = jaxmix.fit_em(X, 2, min_var=0.01)
    for value in (as_list, frame):
        res = jaxmix.fit_em(value, 2, min_var=0.01)
        np.testing.assert_array_equal(res.mu, ref.mu)
    assert frame.isna().to_numpy().sum() == n_missing  # the frame is untouched


@pytest.mark.parametrize(
    "value, where",
    [
        ([[1.0, None], [2.0, "3"]], r"'3' of type str at \[1, 1\]"),
        ([[None, True], [2.0, 3.0]], r"True of type bool at \[0, 1\]"),
        ([[1.0, 2.0], [2.0, {}]], r"\{\} of type dict at \[1, 1\]"),
    ],
)
def test_objects_other_than_numbers_and_missing_values_are_refused(value, where):
    with pytest.raises(TypeError, match=r"X must be an array of real numbers.*" + where):
        jaxmix.fit_em(value, 1)


def test_a_large_sparse_matrix_is_refused_where_it_would_be_made_dense():
    """672 x 163,950 (MovieLens ids without reindexing) would be materialised by the functions
    that need the dense matrix: they refuse before any work, naming what runs on the triples."""
    S = jaxmix.sparse_ratings([0, 5, 671], [3, 163_949, 7], [4.0, 5.0, 3.0], shape=(672, 163_950))
    calls = {
        "fit_svi": lambda: jaxmix.fit_svi(S, 2),
        "fit_mcmc": lambda: jaxmix.fit_mcmc(S, 2),
        "kmeans": lambda: jaxmix.kmeans(S, 2),
        "compare_em_svi": lambda: jaxmix.compare_em_svi(S, 2),
        "select_k": lambda: jaxmix.select_k(S, [1, 2]),
    }
    for name, call in calls.items():
        with refused(ValueError, rf"SparseRatings of shape 672 x 163950; {name}.*MAX_DENSE"):
            call()
    with refused(ValueError, r"fit_em.*run on the triples.*reindex=True"):
        jaxmix.fit_em(S, 2, method="dense")


def test_load_ratings_reads_a_missing_value_word(tmp_path):
    path = tmp_path / "na.txt"
    path.write_text("1 NA 3\nNA 5 0\n")
    X = jaxmix.load_ratings(path, missing="NA")
    np.testing.assert_array_equal(np.isnan(X), [[False, True, False], [True, False, False]])
    assert X[1, 2] == 0.0  # with a word for missing, 0 is a value
    with pytest.raises(ValueError, match=r"line 1: 'NA' is not a number, nor the missing-value"):
        jaxmix.load_ratings(path, missing="N/A")
    with pytest.raises(ValueError, match="one word"):
        jaxmix.load_ratings(path, missing="not rated")

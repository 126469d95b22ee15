"""Properties that hold for every input: hypothesis over shapes, K, missing rates and seeds.

JAX compiles once per shape and static option, so the shapes come from a small set (``(n, d)``
in ``SHAPES``, ``K`` in ``KS``) and every fit uses the same ``max_iter`` and restart count: the
examples of all the tests mostly reuse the same few compiled programs. ``derandomize=True``
makes every run draw the same examples, and ``database=None`` keeps hypothesis from writing into
the checkout.

float32 is checked in a child interpreter (the test session enables x64), in one run for all its
cases.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import jaxmix
from jaxmix import MixtureParams

# Random tiny problems (8 rows, K = 3) legitimately empty a component or put the variances on
# the floor: these tests check invariances, the DataWarnings are tested in test_scales.py.
pytestmark = pytest.mark.filterwarnings("ignore::jaxmix.DataWarning")

SHAPES = ((8, 3), (13, 2), (13, 5), (20, 3))  # (n, d): rows below, at and above 2.5 d
KS = (1, 2, 3)
MISSING = (0.0, 0.2, 0.5)
MAX_ITER = 25  # one static value for every fit, so compiled programs are shared
N_INIT = 2

# Relative slack of "never decreases": rounding of a float64 objective of this size.
MONOTONE_RTOL = 1e-12
# Agreement of two float64 runs that differ only in the order of the rows or columns.
PERMUTE_RTOL = 1e-9


def _settings(n: int) -> settings:
    return settings(
        max_examples=n,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )


def make_matrix(n: int, d: int, missing: float, seed: int, n_true: int = 3) -> np.ndarray:
    """Rows from a planted ``n_true``-component spherical mixture, entries dropped at random.

    At least one entry stays observed (the fit needs one); rows and columns may be all missing.
    """
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 3.0, size=(n_true, d))
    sd = rng.uniform(0.5, 1.5, size=n_true)
    labels = rng.integers(n_true, size=n)
    X = centres[labels] + sd[labels, None] * rng.standard_normal((n, d))
    drop = rng.random((n, d)) < missing
    drop.flat[rng.integers(n * d)] = False
    X[drop] = np.nan
    return X


def random_start(X: np.ndarray, K: int, seed: int, covariance: str, min_var: float):
    """An explicit, feasible starting point (``var >= min_var``) for ``X``."""
    rng = np.random.default_rng(seed + 7)
    n, d = X.shape
    spread = float(np.nanstd(X)) or 1.0
    mu = np.nanmean(X) + spread * rng.standard_normal((K, d))
    shape = (K,) if covariance == "spherical" else (K, d)
    var = np.maximum(spread**2 * rng.uniform(0.5, 2.0, size=shape), min_var)
    weights = rng.dirichlet(np.full(K, 3.0))
    return MixtureParams(mu, var, weights)


@st.composite
def problems(draw):
    n, d = draw(st.sampled_from(SHAPES))
    K = draw(st.sampled_from(KS))
    missing = draw(st.sampled_from(MISSING))
    seed = draw(st.integers(0, 2**20))
    return make_matrix(n, d, missing, seed), K, seed


def _assert_close_rel(a, b, rtol, what):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    scale = max(1.0, float(np.max(np.abs(b))))
    np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * scale, err_msg=what)


# ---------------------------------------------------------------- EM invariants


@_settings(20)
@given(
    problem=problems(),
    covariance=st.sampled_from(["spherical", "diag"]),
    use_prior=st.booleans(),
    init=st.sampled_from(["kmeans++", "random_rows"]),
    min_var=st.sampled_from([0.0, 0.01, 0.25]),
)
def test_em_objective_never_decreases_and_outputs_are_valid(
    problem, covariance, use_prior, init, min_var
):
    X, K, seed = problem
    prior = jaxmix.Prior() if use_prior else None
    if use_prior:
        init = "kmeans++"  # MAP monotonicity needs a feasible start (kmeans++ floors its var)
    elif min_var == 0.0:
        # Maximum likelihood without a floor is unbounded: a variance can collapse to the eps
        # floor, where the expanded squared residual has no correct digit left.
        min_var = 0.01
    res = jaxmix.fit_em(
        X,
        K,
        n_init=N_INIT,
        seed=seed,
        init=init,
        covariance=covariance,
        prior=prior,
        min_var=min_var,
        tol=1e-10,
        max_iter=MAX_ITER,
    )
    h = res.history
    assert len(h) == res.n_iter >= 1
    drops = np.diff(h)
    slack = MONOTONE_RTOL * np.abs(h[1:])
    assert np.all(drops >= -slack), f"objective decreased: {drops[drops < -slack]}"
    assert res.objective == h[-1] == np.max(res.restart_objectives)
    for name in ("mu", "var", "weights", "resp", "history"):
        assert np.all(np.isfinite(getattr(res, name))), name
    np.testing.assert_allclose(res.weights.sum(), 1.0, rtol=0, atol=1e-12)
    assert np.all(res.weights >= 0)
    assert np.all(res.var >= min_var) and np.all(res.var > 0)
    assert res.var.shape == ((K,) if covariance == "spherical" else (K, X.shape[1]))
    np.testing.assert_allclose(res.resp.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    assert np.all(res.resp >= 0)


# ---------------------------------------------------------------- completion


@_settings(15)
@given(
    problem=problems(),
    covariance=st.sampled_from(["spherical", "diag"]),
    zero_weight=st.booleans(),
)
def test_completion_keeps_observed_entries_and_responsibilities_sum_to_one(
    problem, covariance, zero_weight
):
    X, K, seed = problem
    params = random_start(X, K, seed, covariance, 0.0)
    if zero_weight and K > 1:  # an emptied component is a legal fitted state
        w = params.weights.copy()
        w[0] = 0.0
        params = params._replace(weights=w / w.sum())
    observed = ~np.isnan(X)
    resp = jaxmix.responsibilities(X, params)
    assert resp.shape == (X.shape[0], K)
    assert np.all(np.isfinite(resp)) and np.all(resp >= 0)
    np.testing.assert_allclose(resp.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    filled, sd = jaxmix.complete(X, params, return_std=True)
    np.testing.assert_array_equal(filled[observed], X[observed])  # exactly, not up to rounding
    assert np.all(np.isfinite(filled)) and np.all(np.isfinite(sd))
    assert np.all(sd[observed] == 0) and np.all(sd[~observed] > 0)
    # a missing entry's prediction lies within the range of the component means of its column
    lo, hi = params.mu.min(axis=0), params.mu.max(axis=0)
    span = 1e-9 * (1.0 + np.abs(params.mu).max())
    assert np.all((filled <= hi + span) | observed)
    assert np.all((filled >= lo - span) | observed)


# ---------------------------------------------------------------- permutations


def _fit_pair(Xa, start_a, Xb, start_b, K, covariance, prior, min_var):
    """Fit two equivalent problems from equivalent starts for the same number of iterations.

    With ``tol = 0`` a run stops once an iteration gains nothing, which near the optimum is
    decided by rounding: the two runs may stop one iteration apart, after a step of about
    ``sqrt(eps)`` in the parameters. Then both are rerun for the iterations both completed.
    """

    def fit(X, start, max_iter):
        return jaxmix.fit_em(
            X,
            K,
            init=start,
            covariance=covariance,
            prior=prior,
            min_var=min_var,
            tol=0.0,
            max_iter=max_iter,
        )

    a, b = fit(Xa, start_a, MAX_ITER), fit(Xb, start_b, MAX_ITER)
    if a.n_iter != b.n_iter:
        common = min(a.n_iter, b.n_iter) - 1
        assert common >= 1
        a, b = fit(Xa, start_a, common), fit(Xb, start_b, common)
        assert a.n_iter == b.n_iter == common
    return a, b


@_settings(12)
@given(
    problem=problems(),
    covariance=st.sampled_from(["spherical", "diag"]),
    use_prior=st.booleans(),
    perm_seed=st.integers(0, 2**16),
)
def test_permuting_rows_permutes_resp_and_completion_and_keeps_the_fit(
    problem, covariance, use_prior, perm_seed
):
    X, K, seed = problem
    min_var = 0.05
    prior = jaxmix.Prior() if use_prior else None
    start = random_start(X, K, seed, covariance, min_var)
    perm = np.random.default_rng(perm_seed).permutation(X.shape[0])
    a, b = _fit_pair(X, start, X[perm], start, K, covariance, prior, min_var)
    # the start fixes the component order, so the parameters compare directly
    _assert_close_rel(b.mu, a.mu, PERMUTE_RTOL, "mu")
    _assert_close_rel(b.var, a.var, PERMUTE_RTOL, "var")
    _assert_close_rel(b.weights, a.weights, PERMUTE_RTOL, "weights")
    assert b.log_likelihood == pytest.approx(a.log_likelihood, rel=PERMUTE_RTOL, abs=1e-9)
    assert b.objective == pytest.approx(a.objective, rel=PERMUTE_RTOL, abs=1e-9)
    _assert_close_rel(b.resp, a.resp[perm], PERMUTE_RTOL, "resp")
    _assert_close_rel(b.history, a.history, PERMUTE_RTOL, "history")
    filled_a = jaxmix.complete(X, a)
    filled_b = jaxmix.complete(X[perm], b)
    _assert_close_rel(filled_b, filled_a[perm], PERMUTE_RTOL, "completion")


@_settings(12)
@given(
    problem=problems(),
    covariance=st.sampled_from(["spherical", "diag"]),
    use_prior=st.booleans(),
    perm_seed=st.integers(0, 2**16),
)
def test_permuting_columns_permutes_mu_var_and_completion_and_keeps_the_fit(
    problem, covariance, use_prior, perm_seed
):
    X, K, seed = problem
    min_var = 0.05
    prior = jaxmix.Prior() if use_prior else None
    start = random_start(X, K, seed, covariance, min_var)
    perm = np.random.default_rng(perm_seed).permutation(X.shape[1])
    start_p = start._replace(
        mu=start.mu[:, perm], cov=start.var[:, perm] if covariance == "diag" else start.var
    )
    a, b = _fit_pair(X, start, X[:, perm], start_p, K, covariance, prior, min_var)
    _assert_close_rel(b.mu, a.mu[:, perm], PERMUTE_RTOL, "mu")
    _assert_close_rel(b.var, a.var[:, perm] if covariance == "diag" else a.var, PERMUTE_RTOL, "var")
    _assert_close_rel(b.weights, a.weights, PERMUTE_RTOL, "weights")
    assert b.log_likelihood == pytest.approx(a.log_likelihood, rel=PERMUTE_RTOL, abs=1e-9)
    assert b.objective == pytest.approx(a.objective, rel=PERMUTE_RTOL, abs=1e-9)
    _assert_close_rel(b.resp, a.resp, PERMUTE_RTOL, "resp")
    _assert_close_rel(b.history, a.history, PERMUTE_RTOL, "history")
    _assert_close_rel(
        jaxmix.complete(X[:, perm], b), jaxmix.complete(X, a)[:, perm], PERMUTE_RTOL, "completion"
    )


# ---------------------------------------------------------------- batched restarts


@_settings(10)
@given(
    problem=problems(),
    covariance=st.sampled_from(["spherical", "diag"]),
    use_prior=st.booleans(),
    init=st.sampled_from(["kmeans++", "random_rows"]),
)
def test_restart_r_of_a_batch_is_the_single_run_with_seed_plus_r(
    problem, covariance, use_prior, init
):
    X, K, seed = problem
    prior = jaxmix.Prior() if use_prior else None
    kw = dict(covariance=covariance, prior=prior, init=init, min_var=0.05, max_iter=MAX_ITER)
    batched = jaxmix.fit_em(X, K, n_init=N_INIT, seed=seed, **kw)
    singles = [jaxmix.fit_em(X, K, n_init=1, seed=seed + r, **kw) for r in range(N_INIT)]
    for r, single in enumerate(singles):
        assert batched.restart_n_iter[r] == single.n_iter
        assert batched.restart_converged[r] == single.converged
        assert batched.restart_objectives[r] == pytest.approx(single.objective, rel=1e-12)
        assert batched.restart_log_likelihoods[r] == pytest.approx(single.log_likelihood, rel=1e-12)
    best = singles[batched.best_restart]
    for name in ("mu", "var", "weights", "resp"):
        _assert_close_rel(getattr(batched, name), getattr(best, name), 1e-12, name)
    _assert_close_rel(batched.history, best.history, 1e-12, "history")


# ---------------------------------------------------------------- float32 (child interpreter)

FLOAT32_CHILD = r"""
import json, sys
import numpy as np
import jax
assert not jax.config.jax_enable_x64, "the child must compute in float32"
import jaxmix
from jaxmix import MixtureParams
from jaxmix.data import float_dtype
assert float_dtype() == np.float32

spec = json.loads(sys.argv[1])
data = np.load(spec["data"])
out = {}


def params(name):
    return MixtureParams(data[name + "/mu"], data[name + "/var"], data[name + "/w"])


for case in spec["agree"]:
    name = case["name"]
    res = jaxmix.fit_em(
        data[name + "/X"], case["K"], init=params(name), covariance=case["covariance"],
        prior=jaxmix.Prior() if case["prior"] else None, min_var=case["min_var"], tol=0.0,
        max_iter=case["max_iter"],
    )
    for key in ("mu", "var", "weights", "resp", "history"):
        out[name + "/" + key] = getattr(res, key)
    out[name + "/n_iter"] = res.n_iter
for name in spec["complete"]:
    out[name + "/filled"], out[name + "/sd"] = jaxmix.complete(
        data[name + "/X"], params(name), return_std=True
    )
for case in spec["adversarial"]:
    name, X = case["name"], data[case["data"] + "/X"]
    try:
        res = jaxmix.fit_em(X, 2, n_init=2, covariance=case["covariance"],
                            prior=jaxmix.Prior() if case["prior"] else None, min_var=0.0)
    except FloatingPointError as err:  # a clear refusal would be allowed, a wrong answer not
        out[name + "/error"] = np.array(str(err))
        continue
    filled, sd = jaxmix.complete(X, res, return_std=True)
    for key in ("var", "mu", "weights", "resp", "history"):
        out[name + "/" + key] = getattr(res, key)
    out[name + "/sd"], out[name + "/filled"] = sd, filled
    out[name + "/km_var"] = jaxmix.kmeans(X, 2, n_init=2).var
np.savez(spec["out"], **{k: np.asarray(v) for k, v in out.items()})
"""

# Well-conditioned problems, one shape (one compilation per model in the child):
# (name, missing, covariance, prior, seed, offset)
AGREE_SHAPE = (60, 5, 3)
AGREE_CASES = [
    ("sph-ml", 0.2, "spherical", False, 1, 0.0),
    ("diag-ml", 0.3, "diag", False, 2, 0.0),
    ("sph-map", 0.0, "spherical", True, 3, 0.0),
    ("diag-map", 0.5, "diag", True, 4, 0.0),
    ("offset-1e4", 0.2, "spherical", False, 5, 1e4),  # standardisation at work
    ("offset-1e6", 0.2, "diag", False, 6, 1e6),
]
# Iterations of both runs from the same start with tol = 0: few enough that neither run stops
# early, so the two follow the same trajectory and only the rounding differs.
F32_ITER = 5
# The tolerance established for float32 vs float64 on these problems (measured worst cases in
# brackets): means (in units of the data's spread) [3e-7], variances (relative) [2.3e-6],
# weights and responsibilities (absolute) [4e-7], completed entries (in units of the spread,
# from the same float64 parameters) and the objective history (relative) [1.6e-7].
F32_PARAM_RTOL = 2e-5
F32_OBJECTIVE_RTOL = 1e-6

ADVERSARIAL_SHAPE = (40, 4)


def _well_conditioned(missing, seed, offset):
    n, d, K = AGREE_SHAPE
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 4.0, size=(K, d))
    X = centres[rng.integers(K, size=n)] + rng.standard_normal((n, d)) + offset
    X[rng.random((n, d)) < missing] = np.nan
    return X


def _adversarial() -> dict[str, np.ndarray]:
    """float32's hard cases: large offsets with noise at or below its resolution."""
    n, d = ADVERSARIAL_SHAPE
    rng = np.random.default_rng(11)
    lab = rng.integers(2, size=n)[:, None]
    cases = {
        # clusters 1e6 apart, noise far below float32's resolution of the standardised values
        "apart-1e6-noise-1e-3": 1e6 + 1e6 * lab + 1e-3 * rng.standard_normal((n, d)),
        # a common offset of 1e6 with unit noise: 7 significant digits of float32 left
        "offset-1e6-noise-1": 1e6 + rng.standard_normal((n, d)),
        # values that differ only beyond float32's digits, and a constant column
        "offset-1e6-noise-1e-6": 1e6 + 1e-6 * rng.standard_normal((n, d)),
        # two levels 0.1 apart at 1e6
        "two-levels": np.where(np.arange(n)[:, None] % 2 == 0, 1e6, 1e6 + 0.1) + np.zeros(d),
    }
    cases["offset-1e6-noise-1e-6"][:, 0] = 1e6
    for X in cases.values():
        X[rng.random((n, d)) < 0.2] = np.nan
    return cases


@pytest.fixture(scope="module")
def float32_run(tmp_path_factory):
    """Run every float32 case in one child interpreter; returns (inputs, specs, outputs)."""
    tmp = tmp_path_factory.mktemp("float32")
    arrays, agree = {}, []
    n, d, K = AGREE_SHAPE
    for name, missing, cov, prior, seed, offset in AGREE_CASES:
        X = _well_conditioned(missing, seed, offset)
        start = random_start(X, K, seed, cov, 0.1)
        arrays.update({f"{name}/X": X, f"{name}/mu": start.mu, f"{name}/var": start.var})
        arrays[f"{name}/w"] = start.weights
        agree.append(
            dict(name=name, K=K, covariance=cov, prior=prior, min_var=0.1, max_iter=F32_ITER)
        )
    adversarial = []
    for data_name, X in _adversarial().items():
        arrays[f"{data_name}/X"] = X
        for cov in ("spherical", "diag"):
            for prior in (False, True):
                name = f"{data_name}-{cov}-{'map' if prior else 'ml'}"
                adversarial.append(dict(name=name, data=data_name, covariance=cov, prior=prior))
    np.savez(tmp / "data.npz", **arrays)
    spec = dict(
        data=str(tmp / "data.npz"),
        out=str(tmp / "out.npz"),
        agree=agree,
        complete=[case["name"] for case in agree],
        adversarial=adversarial,
    )
    env = {k: v for k, v in os.environ.items() if k != "JAX_ENABLE_X64"}
    proc = subprocess.run(
        [sys.executable, "-W", "error", "-c", FLOAT32_CHILD, json.dumps(spec)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    with np.load(spec["out"]) as f:
        out = {k: f[k] for k in f.files}
    return arrays, spec, out


def _fit64(arrays, case):
    name = case["name"]
    start = MixtureParams(arrays[f"{name}/mu"], arrays[f"{name}/var"], arrays[f"{name}/w"])
    return jaxmix.fit_em(
        arrays[f"{name}/X"],
        case["K"],
        init=start,
        covariance=case["covariance"],
        prior=jaxmix.Prior() if case["prior"] else None,
        min_var=case["min_var"],
        tol=0.0,
        max_iter=case["max_iter"],
    )


def test_float32_fit_agrees_with_float64_on_well_conditioned_data(float32_run):
    arrays, spec, f32 = float32_run
    for case in spec["agree"]:
        name = case["name"]
        res = _fit64(arrays, case)
        assert int(f32[f"{name}/n_iter"]) == res.n_iter == F32_ITER, name
        spread = float(np.nanstd(arrays[f"{name}/X"]))
        errors = {
            "mu": np.max(np.abs(f32[f"{name}/mu"] - res.mu)) / spread,
            "var": np.max(np.abs(f32[f"{name}/var"] - res.var) / res.var),
            "weights": np.max(np.abs(f32[f"{name}/weights"] - res.weights)),
            "resp": np.max(np.abs(f32[f"{name}/resp"] - res.resp)),
        }
        for key, err in errors.items():
            assert err < F32_PARAM_RTOL, (name, key, err)
        np.testing.assert_allclose(
            f32[f"{name}/history"], res.history, rtol=F32_OBJECTIVE_RTOL, err_msg=name
        )


def test_float32_completion_agrees_with_float64_on_well_conditioned_data(float32_run):
    """Same float64 parameters, completed in float32 and in float64: the completed entries agree
    to the fit's tolerance in units of the data's spread, whatever the data's offset."""
    arrays, spec, f32 = float32_run
    errors = {}
    for name in spec["complete"]:
        X = arrays[f"{name}/X"]
        params = MixtureParams(arrays[f"{name}/mu"], arrays[f"{name}/var"], arrays[f"{name}/w"])
        filled, sd = jaxmix.complete(X, params, return_std=True)
        spread = float(np.nanstd(X))
        errors[name] = (
            float(np.max(np.abs(f32[f"{name}/filled"] - filled))) / spread,
            float(np.max(np.abs(f32[f"{name}/sd"] - sd))) / spread,
        )
    bad = {name: err for name, err in errors.items() if max(err) >= F32_PARAM_RTOL}
    assert not bad, f"float32 completion off by (mean, sd) / spread: {bad}"


def test_float32_variance_is_never_negative_on_adversarial_data(float32_run):
    arrays, spec, f32 = float32_run
    for case in spec["adversarial"]:
        name = case["name"]
        assert f"{name}/error" not in f32, (name, str(f32.get(f"{name}/error")))
        for key in ("var", "km_var"):
            assert np.all(f32[f"{name}/{key}"] > 0), (name, key, f32[f"{name}/{key}"])
        for key in ("mu", "weights", "resp", "history", "sd", "filled"):
            assert np.all(np.isfinite(f32[f"{name}/{key}"])), (name, key)
        assert np.all(f32[f"{name}/sd"] >= 0), name
        np.testing.assert_allclose(f32[f"{name}/resp"].sum(axis=1), 1.0, atol=1e-5)
        np.testing.assert_allclose(f32[f"{name}/weights"].sum(), 1.0, atol=1e-5)
        X = arrays[f"{case['data']}/X"]
        observed = ~np.isnan(X)
        np.testing.assert_array_equal(f32[f"{name}/filled"][observed], X[observed])

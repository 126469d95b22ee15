"""Malformed input is refused with a message that names the problem; awkward valid input works.

Tables of ``(function, bad input, exception, message)``; the message check (``match``) makes sure a
user is told which argument is wrong, not just that something failed deep in JAX.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

import jaxmix
from jaxmix import MixtureParams

NAN = np.nan


def _X():
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


# Functions that take a matrix X (and an optional mask) and validate it the same way.
MATRIX_FUNCS = {
    "fit_em": lambda X, mask=None: jaxmix.fit_em(X, 1, mask=mask, max_iter=5),
    "kmeans": lambda X, mask=None: jaxmix.kmeans(X, 1, mask=mask, max_iter=5),
    "complete": lambda X, mask=None: jaxmix.complete(X, PARAMS3, mask=mask),
    "responsibilities": lambda X, mask=None: jaxmix.responsibilities(X, PARAMS3, mask=mask),
    "holdout_split": lambda X, mask=None: jaxmix.holdout_split(X, 0.2, mask=mask),
    "mean_baseline": lambda X, mask=None: jaxmix.mean_baseline(X, "user", mask=mask),
}


def _inf_at(value):
    X = _X()
    X[1, 1] = value
    return X


def _all_missing():
    return np.full((4, 3), NAN)


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
        _all_missing,
        None,
        ValueError,
        r"every entry of X is missing",
        ("complete", "responsibilities"),  # completion of nothing observed is allowed
    ),
    (
        "all-masked",
        _X,
        lambda: np.zeros((6, 3), dtype=bool),
        ValueError,
        r"every entry of X is missing",
        ("complete", "responsibilities"),
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
            if fname in exempt:
                continue
            yield pytest.param(fname, make_X, make_mask, exc, match, id=f"{fname}-{case}")


@pytest.mark.parametrize("fname, make_X, make_mask, exc, match", list(_matrix_params()))
def test_bad_matrix_is_refused(fname, make_X, make_mask, exc, match):
    mask = None if make_mask is None else make_mask()
    with pytest.raises(exc, match=match):
        MATRIX_FUNCS[fname](make_X(), mask=mask)


def _fit(**kw):
    return lambda: jaxmix.fit_em(_X(), **{"K": 2, "max_iter": 5, **kw})


def _km(**kw):
    return lambda: jaxmix.kmeans(_X(), **{"K": 2, "max_iter": 5, **kw})


# (id, call, exception, message regex)
OPTION_CASES = [
    ("fit_em-K0", _fit(K=0), ValueError, r"K \(number of components\) must be at least 1; got 0"),
    ("fit_em-K-neg", _fit(K=-2), ValueError, r"K .* at least 1"),
    ("fit_em-K>n", _fit(K=7), ValueError, r"K .* = 7 exceeds the number of rows, 6"),
    ("fit_em-K-float", _fit(K=2.0), TypeError, r"K .* must be an integer"),
    ("fit_em-K-str", _fit(K="2"), TypeError, r"K .* must be an integer"),
    ("fit_em-K-None", _fit(K=None), TypeError, r"K .* must be an integer"),
    ("fit_em-K-bool", _fit(K=True), TypeError, r"K .* must be an integer"),
    ("kmeans-K0", _km(K=0), ValueError, r"K .* at least 1"),
    ("kmeans-K>n", _km(K=10), ValueError, r"K .* exceeds the number of rows"),
    ("kmeans-K-float", _km(K=1.5), TypeError, r"K .* must be an integer"),
    ("fit_em-tol-neg", _fit(tol=-1e-6), ValueError, r"tol must be finite and non-negative"),
    ("fit_em-tol-nan", _fit(tol=NAN), ValueError, r"tol must be finite and non-negative"),
    ("fit_em-tol-inf", _fit(tol=np.inf), ValueError, r"tol must be finite"),
    ("fit_em-tol-str", _fit(tol="1e-6"), TypeError, r"tol must be a real number"),
    ("fit_em-min_var-neg", _fit(min_var=-0.25), ValueError, r"min_var must be finite and non-neg"),
    ("fit_em-min_var-nan", _fit(min_var=NAN), ValueError, r"min_var must be finite"),
    ("fit_em-min_var-None", _fit(min_var=None), TypeError, r"min_var must be a real number"),
    ("kmeans-tol-neg", _km(tol=-1.0), ValueError, r"tol must be finite and non-negative"),
    ("kmeans-tol-nan", _km(tol=NAN), ValueError, r"tol must be finite"),
    ("fit_em-n_init0", _fit(n_init=0), ValueError, r"n_init must be at least 1; got 0"),
    ("fit_em-n_init-neg", _fit(n_init=-3), ValueError, r"n_init must be at least 1"),
    ("fit_em-n_init-float", _fit(n_init=2.0), TypeError, r"n_init must be an integer"),
    ("kmeans-n_init0", _km(n_init=0), ValueError, r"n_init must be at least 1"),
    ("fit_em-max_iter0", _fit(max_iter=0), ValueError, r"max_iter must be at least 1"),
    ("kmeans-max_iter0", _km(max_iter=0), ValueError, r"max_iter must be at least 1"),
    ("fit_em-seed-neg", _fit(seed=-1), ValueError, r"seed must be non-negative"),
    ("fit_em-seed-float", _fit(seed=0.5), TypeError, r"seed must be an integer"),
    ("fit_em-init-name", _fit(init="kmeans"), ValueError, r"init must be one of"),
    ("kmeans-init-name", _km(init="random"), ValueError, r"init must be one of"),
    (
        "holdout-fraction0",
        lambda: jaxmix.holdout_split(_X(), 0.0),
        ValueError,
        r"fraction must lie strictly between 0 and 1",
    ),
    ("holdout-fraction1", lambda: jaxmix.holdout_split(_X(), 1.0), ValueError, r"fraction"),
    ("holdout-fraction-neg", lambda: jaxmix.holdout_split(_X(), -0.1), ValueError, r"fraction"),
    ("holdout-fraction-nan", lambda: jaxmix.holdout_split(_X(), NAN), ValueError, r"fraction"),
    ("holdout-fraction-str", lambda: jaxmix.holdout_split(_X(), "0.1"), TypeError, r"fraction"),
    ("holdout-seed-neg", lambda: jaxmix.holdout_split(_X(), 0.2, seed=-1), ValueError, r"seed"),
    (
        "holdout-too-few",
        lambda: jaxmix.holdout_split(np.array([[1.0, NAN], [NAN, NAN]]), 0.5),
        ValueError,
        r"leaves none to fit",
    ),
    ("baseline-by", lambda: jaxmix.mean_baseline(_X(), "median"), ValueError, r"by must be"),
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
]


@pytest.mark.parametrize(
    "call, exc, match", [pytest.param(c, e, m, id=i) for i, c, e, m in OPTION_CASES]
)
def test_bad_option_is_refused(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_numpy_integer_K_is_accepted():
    res = jaxmix.fit_em(_X(), np.int64(2), n_init=np.int32(2))
    assert res.mu.shape == (2, 3)


# ---------------------------------------------------------------- rmse

_T = np.array([[1.0, 2.0], [3.0, 4.0]])

RMSE_CASES = [
    ("shape", lambda: jaxmix.rmse(_T, _T[:, :1]), ValueError, r"X_true has shape .* X_pred"),
    ("empty", lambda: jaxmix.rmse(np.zeros((0, 2)), np.zeros((0, 2))), ValueError, r"no entry"),
    (
        "all-nan",
        lambda: jaxmix.rmse(np.full((2, 2), NAN), _T),
        ValueError,
        r"no entry is selected",
    ),
    (
        "mask-none-selected",
        lambda: jaxmix.rmse(_T, _T, mask=np.zeros((2, 2), bool)),
        ValueError,
        r"no entry is selected",
    ),
    (
        "mask-shape",
        lambda: jaxmix.rmse(_T, _T, mask=np.ones((2, 3), bool)),
        ValueError,
        r"mask has shape",
    ),
    ("mask-int", lambda: jaxmix.rmse(_T, _T, mask=np.ones((2, 2), int)), TypeError, r"mask must"),
    (
        "inf-true",
        lambda: jaxmix.rmse(np.where(_T == 4, np.inf, _T), _T),
        ValueError,
        r"infinite",
    ),
    (
        "-inf-pred",
        lambda: jaxmix.rmse(_T, np.where(_T == 1, -np.inf, _T)),
        ValueError,
        r"infinite",
    ),
    (
        "nan-selected-by-mask",
        lambda: jaxmix.rmse(_T, np.where(_T == 1, NAN, _T), mask=np.ones((2, 2), bool)),
        ValueError,
        r"NaN",
    ),
    (
        "strings",
        lambda: jaxmix.rmse(np.array([["1", "2"], ["3", "4"]]), _T),
        TypeError,
        r"X_true",
    ),
    (
        "object",
        lambda: jaxmix.rmse(_T, np.array([[1.0, None], [3.0, 4.0]], dtype=object)),
        TypeError,
        r"X_pred",
    ),
]


@pytest.mark.parametrize(
    "call, exc, match", [pytest.param(c, e, m, id=i) for i, c, e, m in RMSE_CASES]
)
def test_rmse_bad_input(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


# ---------------------------------------------------------------- load_ratings

LOAD_CASES = [
    ("empty", "", r"holds no data"),
    ("blank-lines", "\n  \n\n", r"holds no data"),
    ("ragged", "1 2 3\n4 5 6\n7 8\n", r"line 3: 2 values where earlier lines have 3"),
    ("non-numeric", "1 2 3\n4 five 6\n", r"line 2: 'five' is not a number"),
    ("comma", "1,2,3\n4,5,6\n", r"line 1: '1,2,3' is not a number.*comma"),
    ("header", "a b c\n1 2 3\n", r"line 1: 'a' is not a number"),
    ("inf", "1 2\ninf 4\n", r"infinite"),
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


def test_load_ratings_valid_variants(tmp_path):
    path = tmp_path / "r.txt"
    path.write_text("1 0 3\r\n\n0\t5   nan\n\n")
    X = jaxmix.load_ratings(path)
    np.testing.assert_array_equal(X, [[1.0, NAN, 3.0], [NAN, 5.0, NAN]])
    np.testing.assert_array_equal(jaxmix.load_ratings(path, missing=None), [[1, 0, 3], [0, 5, NAN]])
    jaxmix.save_ratings(tmp_path / "s.txt", X)
    np.testing.assert_array_equal(jaxmix.load_ratings(tmp_path / "s.txt"), X)


# ---------------------------------------------------------------- valid edge cases


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


def test_complete_with_nothing_observed():
    X = np.full((3, 3), NAN)
    filled, sd = jaxmix.complete(X, PARAMS3, return_std=True)
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
    start = MixtureParams(np.nan_to_num(X[[0, 10, 20]]), np.full(3, 2.0), np.full(3, 1 / 3))
    single = jaxmix.fit_em(X, 3, init=start, tol=0.0, max_iter=20)
    double = jaxmix.fit_em(np.vstack([X, X]), 3, init=start, tol=0.0, max_iter=20)
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
        start = MixtureParams(np.nan_to_num(X[[0, 1, 2]]), np.full(3, 1.5), np.full(3, 1 / 3))
        start_s = MixtureParams(start.mu * scale, start.var * scale**2, start.weights)
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

"""Sparse ratings: construction, loaders, validation, and sparse EM against the dense path.

The oracle of the sparse path is the dense path (itself tested against SciPy and the published
numbers): on the same matrix both must give the same log-likelihood, parameters,
responsibilities and iteration counts, up to float64 rounding, for every covariance family,
with and without a prior, with restarts, empty rows and empty columns, through the triples
(``dense_row_density=None``) and through the hybrid layout (dense rows by matrix products). The
published Netflix numbers are reproduced through the triples.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

import jaxmix
from jaxmix import SparseRatings, sparse_ratings
from jaxmix.data import Standardizer, as_data
from jaxmix.data.triples import build_layout
from jaxmix.inference.init import init_params
from jaxmix.testing import count_traces


def fit_sparse_em(S, K, **kw):
    """EM through the triples layout."""
    return jaxmix.fit_em(S, K, method="sparse", **kw)


def standardizer(S):
    return Standardizer.fit(as_data(S).summary())


ROOT = Path(__file__).resolve().parents[1]


def make_data(n=90, d=11, K=3, missing=0.5, seed=0, empty_rows=(2,), empty_cols=(4,)):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 3.0, size=(K, d))
    sd = rng.uniform(0.5, 1.5, size=(K, d))
    labels = rng.integers(K, size=n)
    X = 5.0 + centres[labels] + sd[labels] * rng.standard_normal((n, d))
    # uneven row densities: some rows nearly full (dense in the hybrid layout), some sparse
    keep = rng.random((n, d)) < rng.uniform(0.05, 1.0, size=(n, 1)) * (1.0 - missing) * 2
    X[~keep] = np.nan
    X[list(empty_rows)] = np.nan
    X[:, list(empty_cols)] = np.nan
    return X


def assert_same_fit(a, b, rtol=1e-9, atol=1e-9):
    assert a.n_iter == b.n_iter
    np.testing.assert_array_equal(a.restart_n_iter, b.restart_n_iter)
    assert a.best_restart == b.best_restart
    np.testing.assert_allclose(a.log_likelihood, b.log_likelihood, rtol=rtol)
    np.testing.assert_allclose(a.objective, b.objective, rtol=rtol)
    np.testing.assert_allclose(a.restart_objectives, b.restart_objectives, rtol=rtol)
    np.testing.assert_allclose(a.history, b.history, rtol=rtol)
    for p, q in zip(a.params, b.params, strict=True):
        np.testing.assert_allclose(p, q, rtol=rtol, atol=atol)
    np.testing.assert_allclose(a.resp, b.resp, rtol=rtol, atol=atol)


# ---------------------------------------------------------------- construction


def test_from_arrays_sorts_and_converts():
    S = sparse_ratings([2, 0, 0, 1], [1, 2, 0, 1], [3, 4, 5, 1], shape=(4, 3))
    assert isinstance(S, SparseRatings)
    assert S.shape == (4, 3) and S.nnz == 4
    assert S.rows.dtype == np.int32 and S.cols.dtype == np.int32
    assert S.values.dtype == np.float64  # integers become float64
    np.testing.assert_array_equal(S.rows, [0, 0, 1, 2])
    np.testing.assert_array_equal(S.cols, [0, 2, 1, 1])
    np.testing.assert_array_equal(S.values, [5, 4, 1, 3])
    np.testing.assert_array_equal(S.row_counts(), [2, 1, 1, 0])
    np.testing.assert_array_equal(S.col_counts(), [1, 2, 1])
    dense = S.to_dense()
    assert dense.shape == (4, 3) and np.isnan(dense[3]).all() and dense[0, 2] == 4
    assert sparse_ratings([0], [0], np.array([1.5], np.float32)).values.dtype == np.float32
    assert sparse_ratings([0, 1], [1, 0], [1.0, 2.0]).shape == (2, 2)  # inferred
    assert "nnz=4" in repr(S)


def test_from_dense_and_back(rng):
    X = make_data(20, 6)
    S = sparse_ratings(X)
    np.testing.assert_array_equal(S.to_dense(), X)
    assert S.nnz == int((~np.isnan(X)).sum())
    mask = ~np.isnan(X)
    X0 = np.where(mask, X, -99.0)
    np.testing.assert_array_equal(sparse_ratings(X0, mask=mask).values, S.values)
    np.testing.assert_array_equal(SparseRatings.from_dense(X).cols, S.cols)


def test_reindex_keeps_the_ids():
    S = sparse_ratings([100, 7, 100, 55], ["b", "a", "a", "c"], [1.0, 2.0, 3.0, 4.0], reindex=True)
    assert S.shape == (3, 3)
    np.testing.assert_array_equal(S.row_ids, [7, 55, 100])
    np.testing.assert_array_equal(S.col_ids, ["a", "b", "c"])
    dense = S.to_dense()
    assert dense[2, 1] == 1.0 and dense[0, 0] == 2.0 and dense[2, 0] == 3.0 and dense[1, 2] == 4.0


def test_from_pandas_columns():
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"userId": [9, 9, 4], "movieId": [30, 10, 30], "rating": [4.5, 3, 2]})
    S = sparse_ratings(frame["userId"], frame["movieId"], frame["rating"], reindex=True)
    np.testing.assert_array_equal(S.row_ids, [4, 9])
    np.testing.assert_array_equal(S.col_ids, [10, 30])
    np.testing.assert_array_equal(S.to_dense(), [[np.nan, 2.0], [3.0, 4.5]])


def test_duplicate_policies():
    r, c, v = [0, 1, 0, 0], [1, 0, 1, 1], [1.0, 2.0, 3.0, 8.0]
    with pytest.raises(ValueError, match="appears more than once"):
        sparse_ratings(r, c, v)
    last = sparse_ratings(r, c, v, duplicates="last")
    np.testing.assert_array_equal(last.values, [8.0, 2.0])
    mean = sparse_ratings(r, c, v, duplicates="mean")
    np.testing.assert_array_equal(mean.values, [4.0, 2.0])
    with pytest.raises(ValueError, match="duplicates must be one of"):
        sparse_ratings(r, c, v, duplicates="sum")


@pytest.mark.parametrize(
    "args, kwargs, error, match",
    [
        (([0, 1], [0], [1.0, 2.0]), {}, ValueError, "same length"),
        (([0, 3], [0, 1], [1.0, 2.0]), {"shape": (3, 2)}, ValueError, r"rows\[1\] = 3"),
        (([0, -1], [0, 1], [1.0, 2.0]), {"shape": (3, 2)}, ValueError, "out of range"),
        (([0, 1], [0, 5], [1.0, 2.0]), {"shape": (3, 2)}, ValueError, r"cols\[1\] = 5"),
        (([0, 1], [0, 1], [1.0, np.nan]), {}, ValueError, "not finite"),
        (([0, 1], [0, 1], [1.0, np.inf]), {}, ValueError, "not finite"),
        (([0.5, 1], [0, 1], [1.0, 2.0]), {}, TypeError, "integers"),
        ((["a", "b"], [0, 1], [1.0, 2.0]), {"shape": (2, 2)}, TypeError, "integers"),
        (([0.5, 1], [0, 1], [1.0, 2.0]), {"shape": (2, 2)}, TypeError, "integers"),
        (([0, 1], [0, 1], [True, False]), {}, TypeError, "real numbers"),
        (([0, 1], [0, 1], ["x", "y"]), {}, TypeError, "real numbers"),
        (([0, 1], [0, 1], [1.0, 2.0]), {"shape": (2,)}, ValueError, "pair"),
        (([0, 1], [0, 1], [1.0, 2.0]), {"shape": (0, 2)}, ValueError, "shape entries"),
        (([0, 1], [0, 1], [1.0, 2.0]), {"shape": (2.0, 2)}, TypeError, "integers"),
        (([], [], []), {}, ValueError, "shape is needed"),
        (([0], [0], [1.0]), {"reindex": True, "shape": (1, 1)}, ValueError, "reindex"),
        (([0], [0], [1.0]), {"dtype": np.int32}, TypeError, "float32 or float64"),
        (([0], None, [1.0]), {}, TypeError, "rows, cols and values"),
    ],
)
def test_validation_errors(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        sparse_ratings(*args, **kwargs)


def test_constructor_checks_types():
    with pytest.raises(TypeError, match="int32"):
        SparseRatings(np.array([0]), np.array([0], np.int32), np.array([1.0]), (1, 1))
    with pytest.raises(ValueError, match="equal length"):
        SparseRatings(np.array([0], np.int32), np.array([0, 1], np.int32), np.array([1.0]), (1, 2))
    with pytest.raises(ValueError, match="to_dense would allocate"):
        sparse_ratings([0], [0], [1.0], shape=(100_000, 100_000)).to_dense()


# ---------------------------------------------------------------- files


MOVIELENS_CSV = """userId,movieId,rating,timestamp
1,31,2.5,1260759144
1,1029,3.0,1260759179
1,1061,3.0,1260759182
7,31,4.0,851868750
7,2105,4.5,851866744
42,1029,5.0,851869035
"""

U_DATA = "196\t242\t3\t881250949\n186\t302\t3\t891717742\n22\t377\t1\t878887116\n196\t377\t4\t1\n"

RATINGS_DAT = "1::122::5::838985046\n1::185::5::838983525\n2::122::3::838983392\n"


def _check_movielens(S):
    assert S.shape == (3, 4) and S.nnz == 6
    assert S.values.dtype == np.float32
    np.testing.assert_array_equal(S.row_ids, [1, 7, 42])
    np.testing.assert_array_equal(S.col_ids, [31, 1029, 1061, 2105])
    dense = S.to_dense()
    assert dense[0, 0] == 2.5 and dense[1, 3] == 4.5 and dense[2, 1] == 5.0
    assert np.isnan(dense[2, 0])


@pytest.fixture(params=["pandas", "numpy"])
def reader(request, monkeypatch):
    """Run each loader test with pandas and with the NumPy fallback (pandas hidden)."""
    if request.param == "numpy":
        monkeypatch.setitem(sys.modules, "pandas", None)
    else:
        pytest.importorskip("pandas")
    return request.param


def test_load_movielens_csv(tmp_path, reader):
    path = tmp_path / "ratings.csv"
    path.write_text(MOVIELENS_CSV)
    _check_movielens(jaxmix.load_sparse_ratings(path))


def test_load_u_data_and_ratings_dat(tmp_path, reader):
    path = tmp_path / "u.data"
    path.write_text(U_DATA)
    S = jaxmix.load_sparse_ratings(path, dtype=np.float64)
    assert S.shape == (3, 3) and S.values.dtype == np.float64
    np.testing.assert_array_equal(S.row_ids, [22, 186, 196])
    np.testing.assert_array_equal(S.col_ids, [242, 302, 377])
    assert S.to_dense()[2, 2] == 4.0
    dat = tmp_path / "ratings.dat"
    dat.write_text(RATINGS_DAT)
    S = jaxmix.load_sparse_ratings(dat)
    assert S.shape == (2, 2) and S.to_dense()[1, 0] == 3.0


def test_load_without_reindex_and_other_columns(tmp_path, reader):
    path = tmp_path / "t.txt"
    path.write_text("0 1 5\n2 0 3\n")
    S = jaxmix.load_sparse_ratings(path, reindex=False, shape=(4, 2))
    assert S.shape == (4, 2) and S.row_ids is None
    path.write_text("item;rating;user\n3;4.0;1\n1;2.0;1\n")
    S = jaxmix.load_sparse_ratings(path, columns=(2, 0, 1))
    np.testing.assert_array_equal(S.col_ids, [1, 3])
    np.testing.assert_array_equal(S.values, [2.0, 4.0])


def test_load_errors(tmp_path, reader):
    empty = tmp_path / "empty.csv"
    empty.write_text("\n\n")
    with pytest.raises(ValueError, match="holds no data"):
        jaxmix.load_sparse_ratings(empty)
    bad = tmp_path / "bad.csv"
    bad.write_text("1,2,3\n1,3,oops\n")
    with pytest.raises(ValueError, match="bad.csv"):
        jaxmix.load_sparse_ratings(bad)
    short = tmp_path / "short.csv"
    short.write_text("1,2\n")
    with pytest.raises(ValueError, match="fields"):
        jaxmix.load_sparse_ratings(short)
    dup = tmp_path / "dup.csv"
    dup.write_text("1,2,3\n1,2,4\n")
    with pytest.raises(ValueError, match="dup.csv.*more than once"):
        jaxmix.load_sparse_ratings(dup)
    assert jaxmix.load_sparse_ratings(dup, duplicates="mean").values[0] == 3.5
    nan = tmp_path / "nan.csv"
    nan.write_text("1,2,3\n1,3,nan\n")
    with pytest.raises(ValueError, match="not finite"):
        jaxmix.load_sparse_ratings(nan)
    with pytest.raises(FileNotFoundError):
        jaxmix.load_sparse_ratings(tmp_path / "absent.csv")


# ---------------------------------------------------------------- sparse EM = dense EM

PRIORS = {"ml": None, "map": jaxmix.Prior()}
CONFIGS = [
    (cov, prior, layout)
    for cov in ("spherical", "diag")
    for prior in ("ml", "map")
    for layout in ("triples", "hybrid")
]


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: "-".join(c))
def test_sparse_em_equals_dense_em(cfg):
    cov, prior, layout = cfg
    X = make_data(seed=1)
    S = sparse_ratings(X)
    dense_rows = None if layout == "triples" else 0.4
    kw = dict(n_init=3, seed=2, covariance=cov, prior=PRIORS[prior], min_var=0.05)
    # K = 4: the restarts stop after different numbers of iterations (at K = 3 the default
    # start puts every restart at the same optimum)
    a = jaxmix.fit_em(X, 4, method="dense", **kw)
    b = fit_sparse_em(S, 4, chunk_size=64, dense_row_density=dense_rows, **kw)
    assert_same_fit(a, b)
    assert len(set(b.restart_n_iter.tolist())) > 1 or cov == "diag"
    if prior == "map":
        np.testing.assert_allclose(b.prior.mean, a.prior.mean, rtol=1e-12)
        np.testing.assert_allclose(b.prior.var_scale, a.prior.var_scale, rtol=1e-12)


@pytest.mark.parametrize("init", ["random_rows", "kmeans++"])
def test_sparse_initialisations_equal_dense(init):
    X = make_data(seed=3)
    dense = init_params(init, as_data(X), 4, n_init=3, seed=5, min_var=0.1)
    sparse = init_params(init, as_data(sparse_ratings(X)), 4, n_init=3, seed=5, min_var=0.1)
    for p, q in zip(jax.tree.leaves(dense), jax.tree.leaves(sparse), strict=True):
        np.testing.assert_allclose(p, q, rtol=1e-12, atol=1e-12)


def test_fit_em_dispatch():
    X = make_data(seed=4)
    S = sparse_ratings(X)
    base = jaxmix.fit_em(X, 2, method="dense", max_iter=30)
    assert_same_fit(base, jaxmix.fit_em(X, 2, method="sparse", max_iter=30))
    assert_same_fit(base, jaxmix.fit_em(S, 2, max_iter=30))  # "auto" on a SparseRatings
    assert_same_fit(base, jaxmix.fit_em(S, 2, method="dense", max_iter=30))
    assert_same_fit(base, jaxmix.fit_em(X, 2, max_iter=30))  # small: auto stays dense
    with pytest.raises(ValueError, match="method must be one of"):
        jaxmix.fit_em(X, 2, method="fast")
    with pytest.raises(TypeError, match="mask does not apply"):
        jaxmix.fit_em(S, 2, mask=~np.isnan(X))
    with pytest.raises(ValueError, match="mesh needs the sparse path"):
        jaxmix.fit_em(X, 2, method="dense", mesh=[object()])
    with pytest.raises(ValueError, match="nothing to fit"):
        jaxmix.fit_em(sparse_ratings([], [], [], shape=(3, 3)), 1)
    with pytest.raises(ValueError, match="exceeds the number of rows"):
        jaxmix.fit_em(S, 500)


def test_progress_bar(capsys):
    S = sparse_ratings(make_data(seed=4))
    quiet = fit_sparse_em(S, 2, n_init=2, max_iter=30)
    shown = fit_sparse_em(S, 2, n_init=2, max_iter=30, progress=True)
    assert "EM K=2 x2" in capsys.readouterr().err
    assert_same_fit(quiet, shown, rtol=0, atol=0)


def test_auto_takes_the_sparse_path_for_large_sparse_dense_input(monkeypatch):
    import jaxmix.data

    X = make_data(seed=4)
    monkeypatch.setattr(jaxmix.data, "AUTO_MIN_ENTRIES", 10)
    monkeypatch.setattr(jaxmix.data, "SPARSE_CROSSOVER_DENSITY", 0.99)
    with count_traces() as traces:
        jaxmix.fit_em(X, 2, max_iter=7, n_init=3)
    assert traces["em[ChunkedTriples]"] == 1


def test_golden_netflix_through_the_triples(ref_dir):
    X = jaxmix.load_ratings(ref_dir / "netflix_incomplete.txt")
    gold = np.loadtxt(ref_dir / "netflix_complete.txt")
    S = sparse_ratings(X)
    k1 = fit_sparse_em(S, 1, n_init=5, seed=0, init="random_rows", dense_row_density=None)
    np.testing.assert_allclose(k1.restart_log_likelihoods, -1521060.9539852, rtol=1e-8)
    res = fit_sparse_em(S, 12, n_init=5, seed=0, init="random_rows", dense_row_density=None)
    assert res.best_restart == 1
    assert res.log_likelihood == pytest.approx(-1390234.4223, rel=1e-8)
    missing = np.isnan(X)
    r, c = np.nonzero(missing)
    X_pred = X.copy()
    X_pred[r, c] = jaxmix.complete(S, res, rows=r, cols=c)
    assert jaxmix.rmse(gold, X_pred) == pytest.approx(0.4804908505, rel=1e-8)
    # the default (hybrid) layout: same fit
    hybrid = jaxmix.fit_em(S, 12, n_init=5, seed=0, init="random_rows")
    assert_same_fit(res, hybrid, rtol=1e-9, atol=1e-8)


@pytest.mark.parametrize("chunk", [7, 37, 1000])
def test_results_do_not_depend_on_the_chunk_size(chunk):
    X = make_data(n=70, seed=5)
    S = sparse_ratings(X)
    layout = build_layout(S, standardizer(S), np.float64, chunk)
    assert layout.chunk_size < S.nnz or chunk == 1000
    kw = dict(n_init=2, covariance="diag", prior=jaxmix.Prior(), dense_row_density=None)
    assert_same_fit(fit_sparse_em(S, 3, **kw), fit_sparse_em(S, 3, chunk_size=chunk, **kw))


def test_layout_shapes_are_bounded():
    X = make_data(n=200, d=30, seed=6)
    S = sparse_ratings(X)
    layout = build_layout(S, standardizer(S), np.float64, 64, dense_row_density=None)
    data = layout.data
    n_chunks, C = data.col.shape[1:]
    assert C == 64 and data.dense is None
    assert n_chunks * C < 2 * S.nnz + 2 * C  # padding stays small
    assert data.n_obs.shape[1] <= S.shape[0] + data.rows_per_chunk + 1
    # every entry is in exactly one chunk, rows never split
    assert int((data.local_row < data.rows_per_chunk).sum()) == S.nnz


def test_never_allocates_n_by_d():
    """10^6 x 10^5 = 10^11 entries (800 GB as float64): only the 10^4 triples exist."""
    sim = jaxmix.simulate_sparse_ratings(1_000_000, 100_000, 1_000_000, K=2, seed=0)
    S = sim.S.select(np.arange(0, sim.S.nnz, 100))  # 10^4 ratings, most rows empty
    assert S.nnz == 10_000 and S.shape == (1_000_000, 100_000)
    res = jaxmix.fit_em(S, 2, max_iter=3, init="random_rows")
    assert res.resp.shape == (1_000_000, 2) and np.isfinite(res.log_likelihood)
    pred = jaxmix.complete(S, res, rows=[0, 999_999], cols=[99_999, 0], return_std=True)
    assert np.isfinite(pred[0]).all() and (pred[1] > 0).all()
    tr, te = jaxmix.holdout_split(S, 0.1)
    assert np.isfinite(
        jaxmix.rmse(te, jaxmix.mean_baseline(tr, "item", rows=te.rows, cols=te.cols))
    )


def test_same_layout_does_not_recompile():
    X = make_data(n=41, d=13, seed=7)
    S = sparse_ratings(X)
    fit_sparse_em(S, 3, n_init=2, max_iter=21, dense_row_density=None)
    with count_traces() as traces:
        fit_sparse_em(
            S,
            3,
            n_init=2,
            max_iter=21,
            seed=9,
            init="random_rows",
            tol=1e-3,
            min_var=0.1,
            dense_row_density=None,
        )
    assert traces["em"] == 0
    with count_traces() as traces:
        fit_sparse_em(S, 3, n_init=3, max_iter=21, dense_row_density=None)
    assert traces["em"] == 1


# ---------------------------------------------------------------- the layout, built once


def test_sparse_ratings_is_immutable():
    S = sparse_ratings(make_data(n=20, seed=11))
    for a in (S.rows, S.cols, S.values, S.select(np.arange(5)).values):
        with pytest.raises(ValueError, match="read-only"):
            a[0] = a[1]
    # the caller's writeable arrays are copied: changing them later changes nothing
    r, c, v = np.array([0, 1], np.int32), np.array([1, 0], np.int32), np.array([4.0, 5.0])
    T = SparseRatings(r, c, v, (2, 2))
    U = sparse_ratings(r, c, v, shape=(2, 2))
    v[0] = 99.0
    assert T.values[0] == U.values[0] == 4.0
    import copy
    import pickle

    for W in (pickle.loads(pickle.dumps(S)), copy.deepcopy(S)):
        assert not W.values.flags.writeable
        np.testing.assert_array_equal(W.values, S.values)


def test_layout_is_built_once_per_matrix_and_reused():
    import gc
    import weakref

    from jaxmix.data import layout_cache

    X = make_data(n=60, seed=12)
    S = sparse_ratings(X)
    builds = layout_cache.builds.copy()

    def new(kind):
        return layout_cache.builds[kind] - builds[kind]

    kw = dict(n_init=2, covariance="diag", max_iter=30)
    a = jaxmix.fit_em(S, 3, **kw)
    assert new("layout") == new("seed") == new("start") == new("summary") == 1
    # a second fit, completion, responsibilities and predictive summaries reuse it all
    b = jaxmix.fit_em(S, 3, **kw)
    rows, cols = np.nonzero(np.isnan(X))
    filled = jaxmix.complete(S, a, rows=rows[:5], cols=cols[:5], positions=True)
    resp = jaxmix.responsibilities(S, a)
    table = jaxmix.predictive_summary(a, S, 0.9, entries=(rows[:5], cols[:5]), positions=True)
    assert new("layout") == new("seed") == new("start") == new("summary") == 1
    # another family reuses the seeding; another seed seeds anew from the kept copy
    jaxmix.fit_em(S, 3, n_init=2, max_iter=30, covariance="spherical")
    assert (new("start"), new("seed"), new("layout")) == (1, 1, 1)
    jaxmix.fit_em(S, 3, n_init=2, seed=3, max_iter=30, covariance="spherical")
    assert (new("start"), new("seed"), new("layout")) == (2, 1, 1)
    # identical to a fresh build
    layout_cache.clear(S)
    c = jaxmix.fit_em(S, 3, **kw)
    assert new("layout") == 2
    for res in (b, c):
        assert_same_fit(a, res, rtol=0.0, atol=0.0)
    np.testing.assert_array_equal(jaxmix.complete(S, c, rows=rows[:5], cols=cols[:5]), filled)
    np.testing.assert_array_equal(jaxmix.responsibilities(S, c), resp)
    np.testing.assert_array_equal(
        jaxmix.predictive_summary(c, S, 0.9, entries=(rows[:5], cols[:5])).mean, table.mean
    )
    # a changed option, dtype or matrix builds anew; at most max_layouts are kept per matrix
    layout, std = as_data(S), standardizer(S)
    for i, options in enumerate(
        [{"chunk_size": 64}, {"dense_row_density": None}, {"dtype": np.float32}, {"pad": False}]
    ):
        options = {"dtype": np.float64, "pad": True, **options}
        layout.device(std, **options)
        layout.device(std, **options)
        assert new("layout") == 3 + i
    layout.device(Standardizer.identity(S.shape[1]), np.float64, pad=True)
    assert new("layout") == 7
    assert layout_cache.size(S, "layout") == layout_cache.max_layouts == 2
    T = S.select(np.arange(S.nnz - 1))
    d = jaxmix.fit_em(T, 3, **kw)
    assert new("layout") == 8 and d.log_likelihood != a.log_likelihood
    # the cache never keeps a matrix alive
    ref = weakref.ref(T)
    del T
    gc.collect()
    assert ref() is None


# ---------------------------------------------------------------- completion and metrics


def test_completion_and_metrics_match_dense():
    X = make_data(seed=8)
    S = sparse_ratings(X)
    res = jaxmix.fit_em(X, 3, covariance="diag", prior=jaxmix.Prior(), min_var=0.05)
    np.testing.assert_allclose(
        jaxmix.responsibilities(S, res), jaxmix.responsibilities(X, res), atol=1e-12
    )
    full, sd = jaxmix.complete(X, res, return_std=True)
    full_s, sd_s = jaxmix.complete(S, res, return_std=True)  # densified form
    np.testing.assert_allclose(full_s, full, atol=1e-12)
    r, c = np.nonzero(np.ones(X.shape, bool))
    v, s = jaxmix.complete(S, res, rows=r, cols=c, return_std=True)
    np.testing.assert_allclose(v, full[r, c], atol=1e-12)
    np.testing.assert_allclose(s, sd[r, c], atol=1e-12)
    v_dense = jaxmix.complete(X, res, rows=r[:50], cols=c[:50])
    np.testing.assert_allclose(v_dense, full[r[:50], c[:50]], atol=1e-12)
    for obj_prior in (None, res.prior):
        assert jaxmix.log_objective(S, res, prior=obj_prior) == pytest.approx(
            jaxmix.log_objective(X, res, prior=obj_prior), rel=1e-12
        )
    assert jaxmix.bic(S, res) == pytest.approx(jaxmix.bic(X, res), rel=1e-12)
    assert jaxmix.aic(S, res) == pytest.approx(jaxmix.aic(X, res), rel=1e-12)

    tr, te = jaxmix.holdout_split(S, 0.2, seed=3)
    X_tr, test_mask = jaxmix.holdout_split(X, 0.2, seed=3)
    assert tr.nnz + te.nnz == S.nnz and tr.shape == te.shape == S.shape
    np.testing.assert_array_equal(np.stack(np.nonzero(test_mask)), np.stack([te.rows, te.cols]))
    np.testing.assert_array_equal(tr.to_dense(), X_tr)
    for by in ("global", "user", "item"):
        b = jaxmix.mean_baseline(tr, by, rows=te.rows, cols=te.cols)
        np.testing.assert_allclose(b, jaxmix.mean_baseline(X_tr, by)[test_mask], rtol=1e-12)
        np.testing.assert_allclose(
            b, jaxmix.mean_baseline(X_tr, by, rows=te.rows, cols=te.cols), rtol=1e-12
        )
        assert jaxmix.rmse(te, b) == pytest.approx(
            jaxmix.rmse(X, jaxmix.mean_baseline(X_tr, by), mask=test_mask), rel=1e-12
        )
    pred = jaxmix.complete(tr, res, rows=te.rows, cols=te.cols)
    assert jaxmix.rmse(te, pred) == jaxmix.rmse(te, SparseRatings(te.rows, te.cols, pred, te.shape))
    assert jaxmix.rmse(te, full) == pytest.approx(jaxmix.rmse(X, full, mask=test_mask))


def test_completion_and_metric_errors():
    S = sparse_ratings(make_data(n=20, seed=9))
    res = jaxmix.fit_em(S, 2)
    with pytest.raises(TypeError, match="both rows and cols"):
        jaxmix.complete(S, res, rows=[0])
    with pytest.raises(ValueError, match="out of range"):
        jaxmix.complete(S, res, rows=[0], cols=[99])
    with pytest.raises(ValueError, match="columns"):
        jaxmix.complete(sparse_ratings([0], [0], [1.0], shape=(3, 4)), res, rows=[0], cols=[0])
    with pytest.raises(ValueError, match="predictions"):
        jaxmix.rmse(S, np.zeros(3))
    with pytest.raises(ValueError, match="same entries"):
        jaxmix.rmse(S, S.select(np.arange(3)))
    with pytest.raises(ValueError, match="leaves none"):
        jaxmix.holdout_split(sparse_ratings([0], [0], [1.0]), 0.5)
    with pytest.raises(TypeError, match="mask"):
        jaxmix.holdout_split(S, 0.1, mask=np.ones((20, 11), bool))


# ---------------------------------------------------------------- simulation and benchmarks


def test_simulate_sparse_ratings():
    sim = jaxmix.simulate_sparse_ratings(3000, 500, 60_000, K=4, seed=1)
    S = sim.S
    assert S.shape == (3000, 500) and S.nnz == 60_000
    assert S.values.dtype == np.float32 and set(np.unique(S.values)) <= {1, 2, 3, 4, 5}
    key = S.rows.astype(np.int64) * 500 + S.cols
    assert np.all(np.diff(key) > 0)  # sorted, no repeated pair
    counts, pop = S.row_counts(), S.col_counts()
    assert counts.min() >= 1 and counts.max() <= 250
    assert pop.max() > 10 * np.median(pop)  # power-law popularity
    assert sim.labels.shape == (3000,) and sim.params.mu.shape == (4, 500)
    again = jaxmix.simulate_sparse_ratings(3000, 500, 60_000, K=4, seed=1)
    np.testing.assert_array_equal(again.S.values, S.values)
    with pytest.raises(ValueError, match="too many"):
        jaxmix.simulate_sparse_ratings(10, 10, 100)


@pytest.mark.parametrize(
    "script, args",
    [
        ("benchmarks/sparse_scale.py", ["--sizes", "tiny", "--K", "2", "--iters", "2"]),
        ("benchmarks/many_shapes.py", ["--fits", "2", "--max-K", "1", "--same", "0"]),
        (
            "benchmarks/dense_vs_sparse.py",
            ["--rows", "120", "--cols", "80", "--densities", "0.05", "0.5", "--iters", "3"],
        ),
    ],
)
def test_benchmarks_run_tiny(script, args, tmp_path):
    out = subprocess.run(
        [sys.executable, str(ROOT / script), *args, "--json", str(tmp_path / "out.json")],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert (tmp_path / "out.json").is_file()


def test_cli_fit_triples(tmp_path, capsys):
    from jaxmix.cli import main

    sim = jaxmix.simulate_sparse_ratings(300, 60, 5000, K=3, seed=2)
    S = sim.S
    lines = ["userId,movieId,rating,timestamp"]
    triples = zip(S.rows, S.cols, S.values, strict=True)
    lines += [f"{r * 3 + 1},{c * 7 + 2},{v},0" for r, c, v in triples]
    path = tmp_path / "ratings.csv"
    path.write_text("\n".join(lines) + "\n")
    fit = tmp_path / "fit.npz"
    code = main(
        [
            "fit",
            str(path),
            "--format",
            "triples",
            "-K",
            "3",
            "--restarts",
            "2",
            "-q",
            "--save-fit",
            str(fit),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "300 users x 60 items, 5,000 ratings" in out and "held-out" in out
    assert "item mean" in out and fit.is_file()
    assert main(["fit", str(path), "--format", "triples", "-K", "3", "--output", "x.txt"]) == 2
    assert "need the dense matrix" in capsys.readouterr().err


# ---------------------------------------------------------------------------- ids, not positions


def _with_ids(seed=5, n=30, d=6):
    """A dense matrix and the same ratings as triples keyed by non-contiguous integer ids (user
    ``3 i + 10``, item ``7 l + 100``), the ids a MovieLens file has."""
    X = jaxmix.simulate_ratings(n, d, 2, missing=0.4, seed=seed).X
    r, c = np.nonzero(~np.isnan(X))
    assert np.unique(r).size == n and np.unique(c).size == d
    return X, sparse_ratings(3 * r + 10, 7 * c + 100, X[r, c])


def test_sparse_ratings_reindexes_by_default_like_the_loader(tmp_path):
    users, items, stars = [42, 7, 42, 1000], [5, 5, 99, 7], [4.0, 3.0, 2.5, 1.0]
    path = tmp_path / "ratings.csv"
    lines = ["userId,movieId,rating"] + [
        f"{u},{i},{v}" for u, i, v in zip(users, items, stars, strict=True)
    ]
    path.write_text("\n".join(lines) + "\n")
    loaded = jaxmix.load_sparse_ratings(path, dtype=np.float64)
    built = sparse_ratings(users, items, stars)  # no reindex=: the same default as the loader
    assert built.shape == loaded.shape == (3, 3)
    for field in ("rows", "cols", "values", "row_ids", "col_ids"):
        np.testing.assert_array_equal(getattr(built, field), getattr(loaded, field))
    # With a shape the indices are positions and no ids are kept.
    by_position = sparse_ratings([0, 2], [1, 0], [1.0, 2.0], shape=(3, 2))
    assert by_position.row_ids is None and by_position.col_ids is None
    assert by_position.to_dense()[2, 0] == 2.0


def test_index_maps_ids_to_positions_and_names_unknown_ids():
    X, S = _with_ids()
    users, items = np.array([13, 10, 97]), np.array([135, 100, 107])
    rows, cols = S.index(users, items)
    np.testing.assert_array_equal(S.row_ids[rows], users)
    np.testing.assert_array_equal(S.col_ids[cols], items)
    np.testing.assert_array_equal(rows, (users - 10) // 3)
    np.testing.assert_array_equal(S.index(item_ids=[114.0]), [2])  # integral floats are ids too
    with pytest.raises(jaxmix.UnknownIdError, match=r"2 unknown user ids: 11, 12") as info:
        S.index([10, 11, 12], [100, 100, 100])
    assert isinstance(info.value, KeyError) and isinstance(info.value, ValueError)
    with pytest.raises(KeyError, match="unknown item id: 101"):
        S.index(item_ids=[101])
    words = sparse_ratings(["ann", "bob"], ["x", "y"], [1.0, 2.0])
    assert words.row_ids.dtype.kind == "U"
    np.testing.assert_array_equal(words.index(["bob"], ["x"]), ([1], [0]))
    with pytest.raises(ValueError, match="unknown user id: cy"):
        words.index(["cy"], ["x"])
    plain = sparse_ratings([0, 1], [0, 1], [1.0, 2.0], shape=(2, 2))  # no ids: ids = positions
    np.testing.assert_array_equal(plain.index([1], [0]), ([1], [0]))
    with pytest.raises(ValueError, match="unknown user id: 2"):
        plain.index([2], [0])


@pytest.mark.slow
def test_complete_by_ids_equals_by_positions_and_refuses_ambiguous_positions():
    X, S = _with_ids()
    fit = jaxmix.fit_em(S, 2, n_init=2, min_var=0.01)
    mr, mc = np.nonzero(np.isnan(X))
    mr, mc = mr[:8], mc[:8]
    users, items = 3 * mr + 10, 7 * mc + 100
    by_id, sd_id = jaxmix.complete(S, fit, user_ids=users, item_ids=items, return_std=True)
    by_pos, sd_pos = jaxmix.complete(S, fit, rows=mr, cols=mc, positions=True, return_std=True)
    np.testing.assert_array_equal(by_id, by_pos)
    np.testing.assert_array_equal(sd_id, sd_pos)
    full, full_sd = jaxmix.complete(X, fit, return_std=True)  # the dense oracle, by position
    np.testing.assert_allclose(by_id, full[mr, mc], rtol=1e-5)
    np.testing.assert_allclose(sd_id, full_sd[mr, mc], rtol=1e-5)
    # Positions on ids that are not 0..n-1 are refused without positions=True.
    with pytest.raises(ValueError, match=r"user ids \(10 \.\. 97\).*positions=True"):
        jaxmix.complete(S, fit, rows=mr, cols=mc)
    with pytest.raises(ValueError, match="not both"):
        jaxmix.complete(S, fit, rows=mr, cols=mc, user_ids=users, item_ids=items)
    with pytest.raises(TypeError, match="both user_ids and item_ids"):
        jaxmix.complete(S, fit, user_ids=users)
    with pytest.raises(jaxmix.UnknownIdError, match="unknown user id: 11"):
        jaxmix.complete(S, fit, user_ids=[11], item_ids=[100])
    # Where ids and positions coincide (0..n-1) or cannot be mistaken (text), rows= is accepted.
    r, c = np.nonzero(~np.isnan(X))
    same = sparse_ratings(r, c, X[r, c])
    assert same.row_ids is not None and not same.ids.ambiguous()
    np.testing.assert_array_equal(jaxmix.complete(same, fit, rows=mr, cols=mc), by_id)
    words = sparse_ratings(np.char.add("u", r.astype(str)), c, X[r, c])
    assert words.ids.ambiguous() == []
    assert jaxmix.complete(words, fit, rows=[0], cols=[0]).shape == (1,)


def test_complete_of_a_data_frame_is_a_data_frame():
    pd = pytest.importorskip("pandas")
    X = jaxmix.simulate_ratings(12, 4, 2, missing=0.3, seed=2).X
    frame = pd.DataFrame(X, index=[f"user{i}" for i in range(12)], columns=list("abcd"))
    before = frame.copy()
    fit = jaxmix.fit_em(X, 2, min_var=0.01)
    filled, sd = jaxmix.complete(frame, fit, return_std=True)
    assert isinstance(filled, pd.DataFrame) and isinstance(sd, pd.DataFrame)
    assert list(filled.index) == list(frame.index) and list(filled.columns) == list("abcd")
    assert list(sd.index) == list(frame.index) and list(sd.columns) == list("abcd")
    expected, expected_sd = jaxmix.complete(X, fit, return_std=True)
    np.testing.assert_array_equal(filled.to_numpy(), expected)
    np.testing.assert_array_equal(sd.to_numpy(), expected_sd)
    pd.testing.assert_frame_equal(frame, before)  # the input is not modified


def test_with_items_puts_ratings_in_the_columns_of_given_item_ids():
    fit_items = np.array([3, 10, 42, 77])
    # A file of new users that rates items 77 and 10 only (and 5, which the fit does not know):
    # read on its own, item 10 is column 0 and item 77 column 1.
    S = sparse_ratings(["ann", "ann", "bob", "bob"], [77, 10, 10, 5], [4.0, 2.0, 3.0, 1.0])
    assert S.col_ids.tolist() == [5, 10, 77]
    with pytest.raises(jaxmix.UnknownIdError, match="unknown item id: 5"):
        S.with_items(fit_items)
    aligned = S.with_items(fit_items, unknown="drop")
    assert aligned.shape == (2, 4) and aligned.col_ids.tolist() == fit_items.tolist()
    assert aligned.row_ids.tolist() == ["ann", "bob"]
    expected = np.full((2, 4), np.nan)
    expected[0, 3], expected[0, 1], expected[1, 1] = 4.0, 2.0, 3.0
    np.testing.assert_array_equal(aligned.to_dense(), expected)
    assert S.nnz == 4  # S itself is unchanged
    with pytest.raises(ValueError, match="sorted and unique"):
        S.with_items([10, 3])


def test_load_sparse_ratings_without_reindex_keeps_positions(tmp_path):
    """reindex=False reads the ids as positions (shape from the largest), with or without shape."""
    path = tmp_path / "r.csv"
    path.write_text("0,1,4\n2,3,5\n")
    S = jaxmix.load_sparse_ratings(path, reindex=False)
    assert S.shape == (3, 4) and S.row_ids is None and S.col_ids is None
    np.testing.assert_array_equal(S.rows, [0, 2])
    assert jaxmix.load_sparse_ratings(path, reindex=False, shape=(5, 6)).shape == (5, 6)
    assert jaxmix.load_sparse_ratings(path).shape == (2, 2)  # reindexed by default


def _power_law_matrix(rng, n=90, d=24):
    """Rows and columns of very different lengths (Pareto weights), with empty rows, empty
    columns and a few rows observed almost everywhere."""
    X = rng.normal(size=(n, d)) + rng.normal(size=(n, 1)) + rng.normal(size=(1, d))
    prob = np.clip(0.08 * rng.pareto(1.0, n)[:, None] * rng.pareto(1.0, d)[None, :], 0.0, 0.95)
    observed = rng.random((n, d)) < prob
    observed[:4] = False  # empty rows
    observed[:, :2] = False  # empty columns
    observed[4:7, 2:] = True  # long rows
    return np.where(observed, X, np.nan)


@pytest.mark.parametrize("rank, row_offset, dtype", [(2, False, np.float64), (8, True, np.float32)])
def test_factor_gram_rows_equal_the_tables_and_the_dense_layout(
    rng, monkeypatch, rank, row_offset, dtype
):
    from jaxmix.models.families import get_family
    from jaxmix.models.families.factor import FactorFamily

    X = _power_law_matrix(rng)
    n, d = X.shape
    family = get_family("factor", rank=rank, row_offset=row_offset)
    K = 3
    cov = family._split(rng.uniform(0.5, 2.0, (K, d)), seed=1)
    cov = cov._replace(loadings=rng.normal(size=cov.loadings.shape))  # not the small start
    params = jaxmix.MixtureParams(rng.normal(size=(K, d)), cov, np.array([0.5, 0.3, 0.2]))
    params = jax.tree.map(lambda a: jax.numpy.asarray(a, dtype), params)
    std = Standardizer.identity(d)

    def e_step(data):
        return jax.jit(lambda p, a: a.e_step_stats(p, family, with_aux=True))(params, data)

    ref = e_step(as_data(X, method="dense").device(std, dtype).local())
    layout = as_data(sparse_ratings(X))
    # chunks of 16 entries: many chunks and rows per chunk, padded entries, rows and chunks
    data = layout.device(std, dtype, chunk_size=16, dense_row_density=None, pad=True).local()
    assert data.val.size > layout.nnz and int((layout.row_counts() == 0).sum()) >= 4
    assert data.val.shape[1] > 4  # several chunks

    def triples():
        out = e_step(data)
        return layout.rows_from_slots(out.resp), out

    resp_gram, gram = triples()
    monkeypatch.setattr(FactorFamily, "row_gram", lambda self, params: None)  # the tables' path
    resp_tables, tables = triples()

    tol = dict(rtol=2e-4, atol=2e-4) if dtype == np.float32 else dict(rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(resp_gram, resp_tables, **tol)
    np.testing.assert_allclose(resp_gram, np.asarray(ref.resp), **tol)
    ll = float(ref.log_likelihood)
    for out in (gram, tables):
        np.testing.assert_allclose(float(out.log_likelihood), ll, rtol=tol["rtol"])
    for name, a in gram.stats._asdict().items():
        np.testing.assert_allclose(np.asarray(a), np.asarray(getattr(tables.stats, name)), **tol)
        np.testing.assert_allclose(np.asarray(a), np.asarray(getattr(ref.stats, name)), **tol)
    # the rows' factor posteriors (aux) too, empty rows included
    for a, b in zip(gram.aux, ref.aux, strict=True):
        np.testing.assert_allclose(layout.rows_from_slots(a, axis=0), np.asarray(b), **tol)


# ---------------------------------------------------------------- compiled CPU kernels


@pytest.mark.parametrize("rank, row_offset, dtype", [(2, False, np.float64), (8, True, np.float32)])
def test_native_kernels_equal_the_scan(rng, rank, row_offset, dtype):
    """The triples layout's compiled kernels (jaxmix.data.native) give the scan's E-step:
    responsibilities, log-likelihood, statistics and the rows' factor posteriors, on a matrix
    with empty rows and columns, dense rows, padded chunks and a spherical family's fallback."""
    pytest.importorskip("numba")
    from jaxmix.models.families import get_family

    X = _power_law_matrix(rng)
    n, d = X.shape
    family = get_family("factor", rank=rank, row_offset=row_offset)
    K = 3
    cov = family._split(rng.uniform(0.5, 2.0, (K, d)), seed=1)
    cov = cov._replace(loadings=rng.normal(size=cov.loadings.shape))
    params = jaxmix.MixtureParams(rng.normal(size=(K, d)), cov, np.array([0.5, 0.3, 0.2]))
    params = jax.tree.map(lambda a: jax.numpy.asarray(a, dtype), params)
    std = Standardizer.identity(d)
    layout = as_data(sparse_ratings(X))
    kw = dict(chunk_size=16, dense_row_density=0.5, pad=True)
    scan = layout.device(std, dtype, native=False, **kw)
    native = layout.device(std, dtype, native=True, **kw)
    assert scan.native is None and native.native is not None
    assert native.dense is not None and native.col.shape[1] > 4  # dense rows and many chunks

    def e_step(fam, p, data, **opts):
        return jax.jit(lambda p, a: a.local().e_step_stats(p, fam, **opts))(p, data)

    tol = dict(rtol=2e-4, atol=2e-4) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-10)
    for opts in ({"with_aux": True}, {"with_stats": False, "with_aux": True}):
        a, b = e_step(family, params, scan, **opts), e_step(family, params, native, **opts)
        rows = layout.rows_from_slots  # the real rows (both blocks have the same slots)
        np.testing.assert_allclose(rows(b.resp), rows(a.resp), **tol)
        np.testing.assert_allclose(rows(b.row_ll[:, None]), rows(a.row_ll[:, None]), **tol)
        np.testing.assert_allclose(
            float(b.log_likelihood), float(a.log_likelihood), rtol=tol["rtol"]
        )
        for x, y in zip(jax.tree.leaves(a.stats), jax.tree.leaves(b.stats), strict=True):
            np.testing.assert_allclose(np.asarray(y), np.asarray(x), **tol)
        for x, y in zip(a.aux, b.aux, strict=True):
            np.testing.assert_allclose(rows(y, axis=0), rows(x, axis=0), **tol)
    # a family without a Gram form keeps the scan on a block with kernels
    diag = get_family("diag")
    dp = jaxmix.MixtureParams(
        params.mu, diag.cov_type(jax.numpy.ones((K, d), dtype)), params.weights
    )
    a, b = e_step(diag, dp, scan), e_step(diag, dp, native)
    np.testing.assert_array_equal(np.asarray(b.resp), np.asarray(a.resp))


def test_fit_em_with_native_kernels_equals_the_scan(monkeypatch):
    """fit_em, with restarts (the kernels called once per restart under vmap), completion and
    responsibilities on a block with the kernels: the scan's results up to rounding."""
    pytest.importorskip("numba")
    from jaxmix.data import native

    S = jaxmix.simulate_sparse_ratings(300, 40, 3000, K=3, seed=0).S
    kw = dict(covariance="factor", rank=2, n_init=2, seed=1, max_iter=30)
    monkeypatch.setattr(native, "NATIVE_MIN_ENTRIES", 1 << 40)
    a = jaxmix.fit_em(S, 3, **kw)
    S2 = sparse_ratings(S.rows, S.cols, S.values, shape=S.shape)  # its own layout cache
    monkeypatch.setattr(native, "NATIVE_MIN_ENTRIES", 0)
    calls = []
    row_gram = native.NativeTriples.row_gram
    monkeypatch.setattr(
        native.NativeTriples, "row_gram", lambda self, *a: calls.append(1) or row_gram(self, *a)
    )
    b = jaxmix.fit_em(S2, 3, **kw)
    assert len(calls) > 2  # the kernels ran: the E-steps of both restarts
    np.testing.assert_allclose(b.log_likelihood, a.log_likelihood, rtol=1e-9)
    np.testing.assert_allclose(b.restart_log_likelihoods, a.restart_log_likelihoods, rtol=1e-9)
    np.testing.assert_array_equal(b.restart_n_iter, a.restart_n_iter)
    for p, q in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params), strict=True):
        np.testing.assert_allclose(q, p, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(
        jaxmix.complete(S2, b, return_std=True), jaxmix.complete(S, a, return_std=True), rtol=1e-7
    )


def test_native_kernels_refuse_a_mesh():
    S = jaxmix.simulate_sparse_ratings(50, 10, 200, K=2, seed=0).S
    layout = as_data(S)
    std = Standardizer.fit(layout.summary())
    mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]), ("rows",))
    with pytest.raises(ValueError, match="native=True.*mesh"):
        layout.device(std, native=True, mesh=mesh)
    assert layout.device(std, mesh=mesh).native is None

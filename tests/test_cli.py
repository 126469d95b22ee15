"""Tests of the command line (the package ``jaxmix.cli``), run in-process through ``main``."""

from __future__ import annotations

import os
import subprocess
import sys

import jax
import numpy as np
import pytest

import jaxmix
from jaxmix.cli import main

TINY = ["--users", "60", "--items", "20", "-K", "2", "--restarts", "2"]


def _ratings_file(path, n=40, d=8, missing=0.4, seed=3):
    """A small ratings file in the course format (0 = missing); returns the matrix written."""
    X = jaxmix.simulate_ratings(n, d, 2, missing=missing, seed=seed).X
    jaxmix.save_ratings(path, X)
    return X


def _assert_one_line_error(code, capsys):
    out, err = capsys.readouterr()
    assert code == 2
    assert "Traceback" not in out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("jaxmix: error: ")
    return lines[0]


def test_demo_prints_report_and_saves_plot(tmp_path, capsys):
    plot = tmp_path / "demo.png"
    assert main(["demo", *TINY, "--plot", str(plot)]) == 0
    out, err = capsys.readouterr()
    for phase in ("simulating", "fitting", "completing"):
        assert phase in out
    for part in ("restart", "log-likelihood", "iterations", "BIC", "AIC", "fit time", "JIT"):
        assert part in out
    for method in ("mixture K=2", "user mean", "item mean", "global mean", "bias (user+item)"):
        assert method in out
    assert "held-out" in out and "missing vs truth" in out
    assert out.count("* best") == 1
    assert "EM K=2" in err  # the tqdm progress bar
    assert "Traceback" not in err
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_demo_quiet_without_holdout_or_plot(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["demo", *TINY, "--quiet", "--no-plot", "--holdout", "0", "--init", "random_rows"]
    assert main(args) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert "fitting" not in out and "picture" not in out
    assert "held-out" not in out and "missing vs truth" in out
    assert "random_rows" in out
    assert list(tmp_path.iterdir()) == []


def test_x64_flag_computes_in_float64_and_restores_the_setting(tmp_path, capsys):
    before = jax.config.read("jax_enable_x64")
    assert main(["demo", *TINY, "--quiet", "--no-plot", "--x64"]) == 0
    assert "float64" in capsys.readouterr().out
    assert jax.config.read("jax_enable_x64") == before


def test_fit_writes_completed_matrix_and_std(tmp_path, capsys):
    data = tmp_path / "ratings.txt"
    X = _ratings_file(data)
    completed, std = tmp_path / "completed.txt", tmp_path / "std.txt"
    args = ["fit", str(data), "-K", "2", "--restarts", "2", "--output", str(completed)]
    args += ["--output-std", str(std), "--plot", str(tmp_path / "fit.svg")]
    assert main(args) == 0
    out, _ = capsys.readouterr()
    assert "loading" in out and "held-out" in out and "mixture K=2" in out
    filled = np.loadtxt(completed)
    sd = np.loadtxt(std)
    observed = ~np.isnan(X)
    assert filled.shape == sd.shape == X.shape
    np.testing.assert_array_equal(filled[observed], X[observed])  # held-out entries included
    assert np.isfinite(filled).all() and (filled != 0).all()
    assert (sd[observed] == 0).all() and (sd[~observed] > 0).all()
    assert (tmp_path / "fit.svg").stat().st_size > 0


def test_fit_with_other_missing_marker_and_no_holdout(tmp_path, capsys):
    data = tmp_path / "ratings.txt"
    X = jaxmix.simulate_ratings(30, 6, 2, missing=0.3, seed=5).X
    jaxmix.save_ratings(data, X, missing=-1)
    completed = tmp_path / "out.txt"
    args = ["fit", str(data), "-K", "2", "--holdout", "0", "--missing-value", "-1", "-q"]
    assert main([*args, "--output", str(completed), "--tol", "1e-4", "--min-var", "0.1"]) == 0
    out, err = capsys.readouterr()
    assert "held-out" not in out and "RMSE" not in out and err == ""
    filled = np.loadtxt(completed)
    assert np.isfinite(filled).all() and (filled > 0).all()
    np.testing.assert_array_equal(filled[~np.isnan(X)], X[~np.isnan(X)])


@pytest.mark.parametrize(
    ("content", "k", "expected"),
    [
        (None, "2", "No such file"),
        ("", "2", "no data"),
        ("1 2 3\n4 5\n", "1", "ragged"),
        ("1,2,3\n4,5,6\n", "1", "not a number"),
        ("0 0\n0 0\n", "1", "missing"),
        ("1 2 0\n0 2 3\n", "5", "exceeds the number of rows"),
    ],
    ids=["missing-file", "empty", "ragged", "commas", "all-missing", "K-too-large"],
)
def test_fit_input_errors_are_one_line(tmp_path, capsys, content, k, expected):
    path = tmp_path / "data.txt"
    if content is not None:
        path.write_text(content)
    line = _assert_one_line_error(main(["fit", str(path), "-K", k, "-q"]), capsys)
    assert expected in line


def test_unwritable_output_fails_before_fitting(tmp_path, capsys):
    data = tmp_path / "ratings.txt"
    _ratings_file(data)
    args = ["fit", str(data), "-K", "2", "--output", str(tmp_path / "no" / "out.txt")]
    assert "does not exist" in _assert_one_line_error(main(args), capsys)
    assert "overwrite" in _assert_one_line_error(main([*args[:4], "--output", str(data)]), capsys)
    bad_plot = [*args[:4], "--plot", str(tmp_path / "fit.nope")]
    assert "picture format" in _assert_one_line_error(main(bad_plot), capsys)


def test_saved_fit_completes_like_fit_output(tmp_path, capsys):
    data = tmp_path / "ratings.txt"
    X = _ratings_file(data)
    model = tmp_path / "model.npz"
    fit_out, fit_std = tmp_path / "fit_completed.txt", tmp_path / "fit_std.txt"
    args = ["fit", str(data), "-K", "2", "--restarts", "2", "-q", "--save-fit", str(model)]
    assert main([*args, "--output", str(fit_out), "--output-std", str(fit_std)]) == 0
    assert f"fit saved to {model}" in capsys.readouterr().out
    result = jaxmix.load(model)
    assert isinstance(result, jaxmix.EMResult) and result.mu.shape == (2, X.shape[1])

    out, std = tmp_path / "completed.txt", tmp_path / "std.txt"
    args = ["complete", str(data), "--fit", str(model), "--output", str(out)]
    assert main([*args, "--output-std", str(std)]) == 0
    printed, err = capsys.readouterr()
    assert "completing 40 rows with K=2" in printed and err == ""
    assert out.read_bytes() == fit_out.read_bytes()
    assert std.read_bytes() == fit_std.read_bytes()

    # New rows with the same columns, another missing marker, only --output-std.
    new = tmp_path / "new.txt"
    jaxmix.save_ratings(new, X[:5], missing=-1)
    args = ["complete", str(new), "--fit", str(model), "--missing-value", "-1", "-q"]
    assert main([*args, "--output-std", str(std)]) == 0
    assert np.loadtxt(std).shape == (5, X.shape[1])


def test_complete_errors_are_one_line(tmp_path, capsys):
    data = tmp_path / "ratings.txt"
    X = _ratings_file(data)
    model = tmp_path / "model.npz"
    jaxmix.save(jaxmix.fit_em(X, 2), model)
    out = str(tmp_path / "out.txt")

    def error(*args):
        return _assert_one_line_error(main(["complete", *args]), capsys)

    narrow = tmp_path / "narrow.txt"
    jaxmix.save_ratings(narrow, X[:, :-1])
    line = error(str(narrow), "--fit", str(model), "--output", out)
    assert "has 7 columns but the fit" in line and "has 8" in line
    assert "No such file" in error(str(data), "--fit", str(tmp_path / "nope.npz"), "--output", out)
    line = error(str(data), "--fit", str(data), "--output", out)
    assert str(data) in line and "not an .npz" in line
    prior_only = tmp_path / "prior.npz"
    jaxmix.save(jaxmix.Prior(), prior_only)
    assert "not a fitted mixture" in error(str(data), "--fit", str(prior_only), "--output", out)
    assert "nothing to write" in error(str(data), "--fit", str(model))
    assert "overwrite" in error(str(data), "--fit", str(model), "--output", str(model))
    assert "does not exist" in error(str(data), "--fit", str(model), "--output", "/no/such/o.txt")
    assert not os.path.exists(out)


def test_save_fit_to_missing_folder_fails_before_fitting(tmp_path, capsys):
    data = tmp_path / "ratings.txt"
    _ratings_file(data)
    args = ["fit", str(data), "-K", "2", "--save-fit", str(tmp_path / "no" / "model.npz")]
    line = _assert_one_line_error(main(args), capsys)
    assert "--save-fit" in line and "does not exist" in line


def test_demo_impossible_k_is_one_line(capsys):
    line = _assert_one_line_error(main(["demo", "--users", "3", "-K", "5", "-q"]), capsys)
    assert "K" in line


def test_fit_with_shared_covariance(tmp_path, capsys):
    data = tmp_path / "ratings.txt"
    X = _ratings_file(data)
    model, completed = tmp_path / "model.npz", tmp_path / "completed.txt"
    args = ["fit", str(data), "-K", "2", "--restarts", "2", "--covariance", "shared", "-q"]
    assert main([*args, "--save-fit", str(model), "--output", str(completed)]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert "K=2, shared covariance" in out and "mixture K=2" in out
    result = jaxmix.load(model)
    assert result.covariance == "shared" and np.shape(result.var) == ()
    assert result.mu.shape == (2, X.shape[1])
    filled = np.loadtxt(completed)
    np.testing.assert_array_equal(filled[~np.isnan(X)], X[~np.isnan(X)])
    assert np.isfinite(filled).all()
    # The saved shared-covariance fit completes the matrix exactly as fit did.
    again = tmp_path / "again.txt"
    assert main(["complete", str(data), "--fit", str(model), "--output", str(again), "-q"]) == 0
    assert again.read_bytes() == completed.read_bytes()


def _report_lines(out, *starts):
    return [line for line in out.splitlines() if line.startswith(starts)]


def test_fit_triples_takes_the_same_path_as_the_matrix(tmp_path, capsys):
    """The same ratings as a matrix file and as a triples file: the same hold-out, the same fit,
    the same scores; only the data lines differ (rows and columns against users and items)."""
    matrix = tmp_path / "ratings.txt"
    X = _ratings_file(matrix)
    observed = ~np.isnan(X)
    assert observed.any(axis=0).all() and observed.any(axis=1).all()  # same shape as triples
    rows, cols = np.nonzero(observed)
    triples = tmp_path / "ratings.csv"
    lines = ["userId,movieId,rating,timestamp"]
    lines += [f"{r + 1},{c + 1},{X[r, c]:g},0" for r, c in zip(rows, cols, strict=True)]
    triples.write_text("\n".join(lines) + "\n")

    common = ["-K", "2", "--restarts", "2", "--covariance", "diag", "-q"]
    fits = {}
    reports = {}
    for name, path, fmt in (("matrix", matrix, "matrix"), ("triples", triples, "triples")):
        fits[name] = tmp_path / f"{name}.npz"
        argv = ["fit", str(path), "--format", fmt, *common, "--save-fit", str(fits[name])]
        assert main(argv) == 0
        reports[name], err = capsys.readouterr()
        assert err == ""
    n, d = X.shape
    nnz = int(observed.sum())
    n_test = round(0.1 * nnz)
    assert f"{n} rows x {d} columns" in reports["matrix"]
    assert f"{n_test} of {nnz} observed entries (10%)" in reports["matrix"]
    assert f"{n} users x {d} items, {nnz} ratings" in reports["triples"]
    assert f"{n_test} of {nnz} ratings (10%)" in reports["triples"]
    shared = ("restart", "  ", "log-likelihood", "BIC", "AIC", "RMSE", "mixture", "user", "item")
    shared += ("global", "bias", "model")
    assert _report_lines(reports["matrix"], *shared) == _report_lines(reports["triples"], *shared)
    dense_fit, sparse_fit = jaxmix.load(fits["matrix"]), jaxmix.load(fits["triples"])
    assert dense_fit.covariance == sparse_fit.covariance == "diag"
    np.testing.assert_allclose(sparse_fit.mu, dense_fit.mu, rtol=1e-6)
    np.testing.assert_allclose(sparse_fit.var, dense_fit.var, rtol=1e-6)
    np.testing.assert_allclose(sparse_fit.weights, dense_fit.weights, rtol=1e-6)

    # What needs the dense matrix is refused before the file is read.
    out = tmp_path / "out.txt"
    for option in ("--output", "--output-std", "--plot"):
        argv = ["fit", str(triples), "--format", "triples", "-K", "2", option, str(out)]
        assert "need the dense matrix" in _assert_one_line_error(main(argv), capsys)
    assert not out.exists()


def test_fit_with_factor_covariance_saves_its_loadings(tmp_path, capsys):
    data = tmp_path / "ratings.txt"
    X = _ratings_file(data)
    model, completed = tmp_path / "model.npz", tmp_path / "completed.txt"
    args = ["fit", str(data), "-K", "2", "--covariance", "factor", "--rank", "2", "-q"]
    args += ["--restarts", "2", "--max-iter", "30", "--save-fit", str(model)]
    assert main([*args, "--output", str(completed)]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert "K=2, factor covariance (rank 2, row offset)" in out and "mixture K=2" in out
    result = jaxmix.load(model)
    assert result.covariance == "factor"
    assert result.params.cov.loadings.shape == (2, X.shape[1], 2)
    filled = np.loadtxt(completed)
    np.testing.assert_array_equal(filled[~np.isnan(X)], X[~np.isnan(X)])
    assert np.isfinite(filled).all()


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (["--covariance", "diag", "--rank", "2"], "--rank (the number of factors) applies to"),
        (["--rank", "2"], "--covariance factor only; got --covariance spherical"),
        (["--covariance", "factor", "--rank", "0"], "--rank: must be at least 1"),
        (["--covariance", "factor", "--ranks", "1", "2"], "--ranks needs --select"),
        (["--select", "--ranks", "2"], "--ranks (the number of factors) applies to"),
        (["--covariance", "factor", "--select", "--ranks", "2", "2"], "distinct"),
        (["--covariance", "factor", "--select", "--rank", "1", "--ranks", "2"], "not both"),
        (["-K", "2", "3"], "several K need --select"),
        (["--select", "--init", "random_rows"], "drop --init and --tol"),
    ],
    ids=["diag", "spherical", "zero", "ranks-alone", "ranks-spherical", "repeated", "both", "ks",
         "init"],
)  # fmt: skip
def test_contradictory_model_options_fail_before_reading(tmp_path, capsys, options, expected):
    # The file does not exist: the option is refused before it is looked for.
    ks = [] if "-K" in options else ["-K", "2"]
    argv = ["fit", str(tmp_path / "absent.txt"), *ks, *options]
    line = _assert_one_line_error(main(argv), capsys)
    assert expected in line and "No such file" not in line


def test_demo_refuses_rank_without_the_factor_family(capsys):
    line = _assert_one_line_error(main(["demo", *TINY, "--rank", "2", "--no-plot"]), capsys)
    assert "--rank" in line and "factor" in line


def _select_table(out):
    start = out.index("selection on the training entries")
    return out[start:].split("\n\n", 1)[0].splitlines()


def test_fit_select_picks_k_and_uses_the_winner(tmp_path, capsys):
    data = tmp_path / "ratings.txt"
    X = _ratings_file(data)
    model, completed = tmp_path / "model.npz", tmp_path / "completed.txt"
    args = ["fit", str(data), "-K", "1", "2", "--select", "--restarts", "2", "--max-iter", "50"]
    assert main([*args, "--save-fit", str(model), "--output", str(completed)]) == 0
    out, _ = capsys.readouterr()
    assert "selecting K in {1, 2}" in out
    table = _select_table(out)
    assert "lpd/entry" in table[2] and len(table) == 6  # title, split, header, 2 rows, choice
    (best,) = [row for row in table if row.endswith("<- best")]
    K = int(best.split()[0])
    assert table[-1] == f"chosen: K={K}, refit on every training entry"
    assert f"model     K={K}, spherical covariance" in out and f"mixture K={K}" in out
    assert "selection of 2 candidates and refit" in out
    result = jaxmix.load(model)
    assert result.mu.shape == (K, X.shape[1])
    filled = np.loadtxt(completed)
    np.testing.assert_array_equal(filled[~np.isnan(X)], X[~np.isnan(X)])
    # The saved winner completes the matrix exactly as fit did.
    again = tmp_path / "again.txt"
    assert main(["complete", str(data), "--fit", str(model), "--output", str(again), "-q"]) == 0
    assert again.read_bytes() == completed.read_bytes()


def test_fit_select_on_triples(tmp_path, capsys):
    X = jaxmix.simulate_ratings(40, 8, 2, missing=0.4, seed=3).X
    rows, cols = np.nonzero(~np.isnan(X))
    triples = tmp_path / "u.data"
    lines = [f"{r + 1}\t{c + 1}\t{X[r, c]:g}\t0" for r, c in zip(rows, cols, strict=True)]
    triples.write_text("\n".join(lines) + "\n")
    model = tmp_path / "model.npz"
    args = ["fit", str(triples), "--format", "triples", "-K", "1", "2", "--select", "-q"]
    assert main([*args, "--covariance", "diag", "--restarts", "2", "--save-fit", str(model)]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert "40 users x 8 items" in out
    table = _select_table(out)
    assert [row.split()[:2] for row in table[3:5]] == [["1", "0"], ["2", "0"]]
    (best,) = [row for row in table if row.endswith("<- best")]
    K = int(best.split()[0])
    assert table[-1] == f"chosen: K={K}, refit on every training entry"
    assert _report_lines(out, "mixture") == [_report_lines(out, f"mixture K={K} ")[0]]
    assert jaxmix.load(model).mu.shape == (K, X.shape[1])


def test_fit_select_factor_ranks(tmp_path, capsys):
    data = tmp_path / "ratings.txt"
    X = _ratings_file(data)
    model = tmp_path / "model.npz"
    args = ["fit", str(data), "-K", "2", "--select", "--covariance", "factor", "--ranks", "1", "2"]
    args += ["--restarts", "2", "--max-iter", "30", "--holdout", "0", "-q"]
    assert main([*args, "--save-fit", str(model)]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    table = _select_table(out)
    assert [row.split()[:2] for row in table[3:5]] == [["2", "1"], ["2", "2"]]
    (best,) = [row for row in table if row.endswith("<- best")]
    rank = int(best.split()[1])
    assert table[-1] == f"chosen: K=2, rank {rank}, refit on every training entry"
    assert f"factor covariance (rank {rank}, row offset)" in out
    assert not _report_lines(out, "held out", "RMSE ")  # --holdout 0: nothing scored
    assert jaxmix.load(model).params.cov.loadings.shape == (2, X.shape[1], rank)


@pytest.mark.parametrize(
    "args",
    [
        ["demo", "--holdout", "1.5"],
        ["demo", "--covariance", "full"],
        ["fit", "ratings.txt", "-K", "2", "--covariance", "Diag"],
        ["demo", "--restarts", "0"],
        ["demo", "--covariance", "factor", "--rank", "-1"],
        ["fit", "ratings.txt", "-K", "2", "--covariance", "factor", "--ranks", "x"],
        ["demo", "--init", "nope"],
        ["fit"],
        ["complete"],
        ["complete", "ratings.txt"],
        [],
    ],
)
def test_usage_errors_exit_2(args, capsys):
    assert main(args) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_help_and_version_exit_0(capsys):
    assert main(["--version"]) == 0
    assert jaxmix.__version__ in capsys.readouterr().out
    assert main(["fit", "--help"]) == 0
    help_text = capsys.readouterr().out
    assert "--output-std" in help_text
    assert "--covariance {" + ",".join(jaxmix.FAMILIES) + "}" in help_text
    assert "factor" in help_text
    for option in ("--rank Q", "--ranks Q [Q ...]", "--select", "-K K [K ...]"):
        assert option in help_text
    assert main(["complete", "--help"]) == 0
    assert "--fit" in capsys.readouterr().out


def test_python_dash_m_help():
    proc = subprocess.run(
        [sys.executable, "-m", "jaxmix", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "demo" in proc.stdout and "fit" in proc.stdout and "complete" in proc.stdout


# --------------------------------------------------------------------------- ids and triples


def _triples_file(path, X, header=True):
    """The observed entries of ``X`` as a ratings.csv keyed by non-contiguous ids (user
    ``3 i + 10``, item ``7 l + 100``)."""
    rows, cols = np.nonzero(~np.isnan(X))
    lines = ["userId,movieId,rating,timestamp"] if header else []
    lines += [f"{3 * r + 10},{7 * c + 100},{X[r, c]:g},0" for r, c in zip(rows, cols, strict=True)]
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.slow
def test_complete_triples_predicts_pairs_by_id_end_to_end(tmp_path, capsys):
    X = _ratings_file(tmp_path / "unused.txt")
    data, pairs = tmp_path / "ratings.csv", tmp_path / "pairs.csv"
    _triples_file(data, X)
    mr, mc = np.nonzero(np.isnan(X))
    mr, mc = mr[:6], mc[:6]
    r0, c0 = np.argwhere(~np.isnan(X))[0]  # a rated pair: written as rated
    users = [*(3 * mr + 10), 3 * r0 + 10]
    items = [*(7 * mc + 100), 7 * c0 + 100]
    pairs.write_text(
        "userId,movieId\n" + "".join(f"{u},{i}\n" for u, i in zip(users, items, strict=True))
    )
    model, out = tmp_path / "fit.npz", tmp_path / "predictions.csv"
    argv = ["fit", str(data), "--format", "triples", "-K", "2", "--restarts", "2", "-q"]
    assert main([*argv, "--holdout", "0", "--save-fit", str(model)]) == 0
    assert "with the user and item ids" in capsys.readouterr().out
    ids = jaxmix.load_ids(model)
    np.testing.assert_array_equal(ids.col_ids, 7 * np.arange(X.shape[1]) + 100)
    argv = ["complete", str(data), "--format", "triples", "--fit", str(model)]
    assert main([*argv, "--pairs", str(pairs), "--output", str(out), "-q"]) == 0
    assert f"predictions of {len(users)} pairs written" in capsys.readouterr().out
    lines = out.read_text().splitlines()
    assert lines[0] == "user,item,mean,sd,lower,upper"
    table = np.array([[float(v) for v in line.split(",")] for line in lines[1:]])
    np.testing.assert_array_equal(table[:, 0], users)
    np.testing.assert_array_equal(table[:, 1], items)
    S = jaxmix.load_sparse_ratings(data)
    mean, sd = jaxmix.complete(
        S, jaxmix.load(model), user_ids=users, item_ids=items, return_std=True
    )
    np.testing.assert_allclose(table[:, 2], mean, rtol=1e-5)
    np.testing.assert_allclose(table[:, 3], sd, rtol=1e-5, atol=1e-6)
    assert np.all((table[:-1, 4] < table[:-1, 2]) & (table[:-1, 2] < table[:-1, 5]))
    assert table[-1, 2] == table[-1, 4] == table[-1, 5] == X[r0, c0] and table[-1, 3] == 0
    # New ratings without the first item: read alone, its items sit in other columns; they are
    # put back in the fit's columns by id.
    part = tmp_path / "part.csv"
    kept = [line for line in data.read_text().splitlines() if ",100," not in line]
    part.write_text("\n".join(kept) + "\n")
    assert main([*argv[:1], str(part), *argv[2:], "--pairs", str(pairs), "--output", str(out)]) == 0
    capsys.readouterr()
    S_part = jaxmix.load_sparse_ratings(part)
    assert S_part.col_ids[0] == 107  # column 0 is another item when read alone
    expected = jaxmix.complete(
        S_part.with_items(ids.col_ids), jaxmix.load(model), user_ids=users, item_ids=items
    )
    got = np.array([float(line.split(",")[2]) for line in out.read_text().splitlines()[1:]])
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    # An unknown id is named; a fit without ids is refused.
    pairs.write_text("userId,movieId\n11,100\n")
    line = _assert_one_line_error(
        main([*argv, "--pairs", str(pairs), "--output", str(out)]), capsys
    )
    assert "unknown user id: 11" in line and str(pairs) in line
    plain = tmp_path / "plain.npz"
    jaxmix.save(jaxmix.load(model), plain)
    argv[argv.index(str(model))] = str(plain)
    line = _assert_one_line_error(
        main([*argv, "--pairs", str(pairs), "--output", str(out)]), capsys
    )
    assert "holds no item ids" in line


def test_likely_input_mistakes_are_named(tmp_path, capsys):
    dense = tmp_path / "dense.txt"
    dense.write_text("5 0 3\n4 2 0\n1 5 2\n")  # a 3-column matrix, 0 = missing
    line = _assert_one_line_error(
        main(["fit", str(dense), "--format", "triples", "-K", "1", "-q"]), capsys
    )
    assert "is it a dense matrix" in line and "drop --format triples" in line
    repeated = tmp_path / "repeated.txt"
    repeated.write_text("5 1 3\n5 1 4\n1 5 2\n")
    line = _assert_one_line_error(
        main(["fit", str(repeated), "--format", "triples", "-K", "1", "-q"]), capsys
    )
    assert "more than once" in line and "drop --format triples" in line
    csv_file = tmp_path / "ratings.csv"
    _triples_file(csv_file, _ratings_file(tmp_path / "m.txt"))
    line = _assert_one_line_error(main(["fit", str(csv_file), "-K", "2", "-q"]), capsys)
    assert "header" in line and "--format triples" in line
    na = tmp_path / "na.txt"
    na.write_text("5 NA 3 1\n4 2 NA 2\n1 5 2 NA\n2 2 2 2\n")
    line = _assert_one_line_error(main(["fit", str(na), "-K", "1", "-q"]), capsys)
    assert "pass --missing-value NA" in line
    out = tmp_path / "out.txt"
    argv = ["fit", str(na), "-K", "1", "-q", "--missing-value", "NA", "--holdout", "0"]
    assert main([*argv, "--output", str(out)]) == 0
    filled = np.loadtxt(out)
    np.testing.assert_array_equal(filled[[0, 1, 2], [1, 2, 3]] != 0, True)
    assert filled[3].tolist() == [2, 2, 2, 2] and filled[0, 0] == 5
    capsys.readouterr()


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["fit", "r.txt", "-K", "0"], "K (number of components) must be at least 1; got 0"),
        (["demo", "-K", "0"], "K (number of components) must be at least 1; got 0"),
        (["fit", "r.txt", "-K", "2", "--bogus"], "--bogus (see 'jaxmix fit --help')"),
        (["complete", "r.txt", "--fit", "f.npz", "--nope"], "(see 'jaxmix complete --help')"),
        (["fit", "r.txt", "-K", "2", "--prior", "flat"], "--prior: invalid choice"),
    ],
)
def test_parser_refuses_before_any_work(argv, expected, capsys):
    assert expected in _assert_one_line_error(main(argv), capsys)


@pytest.mark.slow
def test_prior_option_fits_map_and_the_verdict_is_printed(tmp_path, capsys):
    data = tmp_path / "ratings.txt"
    _ratings_file(data)
    model = tmp_path / "fit.npz"
    argv = ["fit", str(data), "-K", "2", "--restarts", "2", "-q", "--prior", "default"]
    assert main([*argv, "--save-fit", str(model)]) == 0
    out, _ = capsys.readouterr()
    assert "MAP (default prior)" in out
    assert jaxmix.load(model).prior is not None
    assert sum(line.startswith("verdict: the mixture") for line in out.splitlines()) == 1


def test_verdict_names_the_best_baseline_and_what_to_try():
    from jaxmix.cli.report import verdict_lines

    scores = {"held-out": {"mixture K=3": 0.95, "user mean": 1.1, "bias (user+item)": 0.9}}
    lines = verdict_lines(scores, ["--covariance factor --rank 2", "--prior default"])
    assert lines[0].startswith("verdict: the mixture loses to the bias (user+item) baseline")
    assert "0.9500 against 0.9000" in lines[0]
    assert lines[1:] == ["to try:", "  --covariance factor --rank 2", "  --prior default"]
    scores["held-out"]["mixture K=3"] = 0.85
    (line,) = verdict_lines(scores, ["unused"])
    assert line.startswith("verdict: the mixture beats every baseline") and "0.8500" in line
    assert verdict_lines({"missing vs truth": scores["held-out"]}) == []


def _survey(n=240, seed=0):
    """Three planted groups in columns of very different units (age, income, three Likert
    items), 20 % missing."""
    rng = np.random.default_rng(seed)
    z = rng.integers(0, 3, n)
    centres = np.array([[25, 30e3, 1, 2, 1], [45, 60e3, 3, 4, 3], [65, 90e3, 5, 1, 5]], float)
    X = centres[z] + rng.normal(0.0, 1.0, (n, 5)) * np.array([4, 6e3, 0.5, 0.5, 0.5])
    X[rng.random(X.shape) < 0.2] = np.nan
    return X


def test_fit_standardize_fits_standardised_columns_and_reports_in_data_units(tmp_path, capsys):
    X = _survey()
    data, completed, sds = tmp_path / "survey.txt", tmp_path / "out.txt", tmp_path / "sd.txt"
    jaxmix.save_ratings(data, X, missing=-1)
    X = np.where(np.isnan(X), np.nan, np.loadtxt(data))  # the values as written
    args = ["fit", str(data), "-K", "3", "--missing-value", "-1", "--holdout", "0", "-q"]
    assert main([*args, "--standardize", "--output", str(completed), "--output-std", str(sds)]) == 0
    out, _ = capsys.readouterr()
    assert "standardised columns" in out
    # by hand: every column centred and scaled by its observed entries, the same fit, mapped back
    centre, scale = np.nanmean(X, axis=0), np.nanstd(X, axis=0)
    fit = jaxmix.fit_em((X - centre) / scale, 3, n_init=5, seed=0)
    z, z_sd = jaxmix.complete((X - centre) / scale, fit, return_std=True)
    obs = ~np.isnan(X)
    np.testing.assert_allclose(np.loadtxt(completed)[~obs], (centre + scale * z)[~obs], rtol=1e-5)
    np.testing.assert_allclose(np.loadtxt(sds)[~obs], (scale * z_sd)[~obs], rtol=1e-4)
    np.testing.assert_allclose(np.loadtxt(completed)[obs], X[obs])
    # the log-likelihood of the data: the standardised one plus the Jacobian of the map
    ll = fit.log_likelihood - np.sum(obs.sum(axis=0) * np.log(scale))
    line = next(s for s in out.splitlines() if s.startswith("log-likelihood"))
    assert float(line.split()[1].replace(",", "")) == pytest.approx(ll, abs=0.02)


def test_fit_standardize_keeps_the_clusters_that_the_widest_column_hides(tmp_path, capsys):
    data = tmp_path / "survey.txt"
    jaxmix.save_ratings(data, _survey(seed=1), missing=-1)
    rmse = {}
    for option in ([], ["--standardize"]):
        args = ["fit", str(data), "-K", "3", "--missing-value", "-1", "-q", *option]
        if option:
            assert main(args) == 0
        else:
            with pytest.warns(jaxmix.ColumnScaleWarning, match="widest columns decide"):
                assert main(args) == 0
        out, _ = capsys.readouterr()
        line = next(s for s in out.splitlines() if s.startswith("mixture K=3"))
        rmse[bool(option)] = float(line.split()[-1])
    assert rmse[True] < 0.5 * rmse[False]  # income alone decides the unscaled spherical fit


@pytest.mark.parametrize(
    ("extra", "expected"),
    [(["--save-fit", "fit.npz"], "--save-fit"), (["--covariance", "factor"], "factor family")],
)
def test_fit_standardize_refuses_what_it_cannot_keep(tmp_path, capsys, extra, expected):
    data = tmp_path / "ratings.txt"
    _ratings_file(data)
    args = ["fit", str(data), "-K", "2", "--standardize", *extra]
    if "--save-fit" in extra:
        args[-1] = str(tmp_path / "fit.npz")
    line = _assert_one_line_error(main(args), capsys)
    assert expected in line
    assert not (tmp_path / "fit.npz").exists()


def test_fit_split_merge(tmp_path, capsys):
    data = tmp_path / "ratings.txt"
    X = _ratings_file(data)
    model = tmp_path / "model.npz"
    args = ["fit", str(data), "-K", "3", "--restarts", "1", "--holdout", "0", "-q"]
    assert main([*args, "--split-merge", "2", "--save-fit", str(model)]) == 0
    capsys.readouterr()
    saved = jaxmix.load(model)
    # the same fit as fit_em's with the command's defaults, split-and-merge included
    again = jaxmix.fit_em(X, 3, n_init=1, seed=0, split_merge=2)
    np.testing.assert_array_equal(saved.split_merge_objectives, again.split_merge_objectives)
    assert saved.objective == again.objective
    # with --select the candidates with K >= 3 get the rounds, the winner's refit too
    assert main([*args, "--select", "--split-merge", "2", "--save-fit", str(model)]) == 0
    capsys.readouterr()
    assert jaxmix.load(model).split_merge_objectives is not None
    for extra, needle in (
        (["-K", "2"], "K >= 3"),
        (["-K", "1", "2", "--select"], "K >= 3"),
    ):
        bad = ["fit", str(data), *extra, "--split-merge", "1", "-q"]
        assert needle in _assert_one_line_error(main(bad), capsys)

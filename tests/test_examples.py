"""Smoke tests of the example scripts and the speed benchmark, with tiny settings.

Each script's ``main`` runs in-process on small inputs and writes into ``tmp_path``. The toy
example runs anywhere (it falls back to simulated data); the Netflix example and the benchmark
need the course data named by ``JAXMIX_REFERENCE_DATA`` and skip without it.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load(relpath: str) -> ModuleType:
    """Import a script that is not part of a package by its path."""
    name = "_jaxmix_script_" + Path(relpath).stem
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / relpath)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _assert_png(path: Path) -> None:
    assert path.is_file()
    assert path.stat().st_size > 1000
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def toy() -> ModuleType:
    return _load("examples/toy_em_vs_kmeans.py")


@pytest.fixture(scope="module")
def netflix() -> ModuleType:
    return _load("examples/netflix_completion.py")


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return _load("benchmarks/em_speed.py")


def test_toy_example_on_simulated_data(toy, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("JAXMIX_REFERENCE_DATA", raising=False)
    out = tmp_path / "toy.png"
    toy.main(toy.parse_args(["--ks", "1", "3", "--restarts", "2", "--out", str(out)]))
    _assert_png(out)
    text = capsys.readouterr().out
    assert "simulated" in text
    assert "best BIC" in text


def test_toy_example_on_reference_data(toy, ref_dir, tmp_path, capsys):
    out = tmp_path / "sub" / "toy.png"
    toy.main(toy.parse_args(["--data", str(ref_dir), "--ks", "2", "--out", str(out)]))
    _assert_png(out)
    assert "toy_data.txt" in capsys.readouterr().out


def test_toy_example_rejects_a_missing_file(toy, tmp_path):
    with pytest.raises(SystemExit, match="no such file"):
        toy.load_toy(tmp_path / "absent.txt")


def test_netflix_example_on_a_sub_block(netflix, ref_dir, tmp_path):
    out = tmp_path / "netflix.png"
    args = ["--data", str(ref_dir), "--rows", "200", "--cols", "100", "--ks", "1", "2"]
    result = netflix.main(netflix.parse_args([*args, "--restarts", "1", "--out", str(out)]))
    _assert_png(out)
    models, baselines = result["models"], result["baselines"]
    assert [m["K"] for m in models] == [1, 2]
    for m in models:
        assert np.isfinite([m["ll"], m["whole"], m["missing"], m["holdout"]]).all()
    # One component predicts every missing rating by its column's observed mean.
    assert models[0]["missing"] == pytest.approx(baselines["item"]["missing"], rel=1e-6)
    assert models[0]["holdout"] == pytest.approx(baselines["item"]["holdout"], rel=1e-6)


def test_netflix_example_without_data_says_what_to_do(netflix, tmp_path):
    with pytest.raises(SystemExit, match="JAXMIX_REFERENCE_DATA"):
        netflix.load(tmp_path, None, None)
    with pytest.raises(SystemExit, match="--data"):
        netflix.load(None, None, None)


def test_benchmark_agrees_with_numpy(bench, ref_dir, capsys):
    args = ["--data", str(ref_dir), "--rows", "200", "--cols", "100", "--K", "3"]
    summary = bench.main(bench.parse_args([*args, "--restarts", "2", "--repeats", "1"]))
    assert summary["agree"], summary
    assert summary["max_rel_ll_diff"] <= 1e-6
    assert summary["useful_iters"] <= summary["executed_iters"]
    assert summary["jax_sequential"] is not None
    text = capsys.readouterr().out
    assert "numpy BLAS:" in text and "speed-up NumPy / jaxmix" in text


def test_benchmark_numpy_forms_agree(bench, rng):
    X = rng.integers(1, 6, size=(40, 15)).astype(float)
    X[rng.random(X.shape) < 0.3] = np.nan
    data = bench.numpy_data(X, np.dtype(np.float64))
    mu = rng.normal(3.0, 1.0, size=(4, 15))
    np.testing.assert_allclose(
        bench.sq_dist_matmul(data, mu), bench.sq_dist_broadcast(data, mu), rtol=1e-10, atol=1e-9
    )


def test_penguins_example_clusters_every_row(tmp_path, capsys):
    pytest.importorskip("palmerpenguins")
    pytest.importorskip("sklearn")
    penguins = _load("examples/penguins.py")
    out = tmp_path / "penguins.png"
    args = ["--hide", "0.2", "--restarts", "1", "--out", str(out)]
    result = penguins.main(penguins.parse_args(args))
    _assert_png(out)
    # jaxmix assigns every row, scikit-learn only the complete ones (fewer with 20 % hidden).
    assert result["labels"].shape == (result["n_rows"],) == (344,)
    assert result["n_complete"] < 0.8 * result["n_rows"]
    # both find the species far above chance (ARI about 0)
    for key in ("ari_jaxmix", "ari_jaxmix_complete", "ari_sklearn"):
        assert 0.2 < result[key] <= 1.0, (key, result[key])
    assert "sklearn GaussianMixture" in capsys.readouterr().out

"""float32 (JAX's default) against float64.

The test session enables x64 (``conftest.py``), so the float32 fits run in a child interpreter
that never turns it on: jaxmix then computes in JAX's default float32. The parent (float64) fits
the same data with the same settings and compares. The child gets its data from the parent via an
``.npz`` file, so both sides see bit-identical inputs.

Both sides run on JAX's default backend: on a machine with a GPU this is the check that float32
on the GPU agrees with float64 there (every product at ``Precision.HIGHEST``, see
``test_precision.py``; without it TensorFloat-32 products would break these tolerances).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

import jaxmix

CHILD = r"""
import json, sys
import numpy as np
import jax
import jax.numpy as jnp
assert not jax.config.jax_enable_x64, "the child must run without x64"
import jaxmix
from jaxmix.data import float_dtype
assert float_dtype() == np.float32 and jnp.zeros(1).dtype == jnp.float32

spec = json.loads(sys.argv[1])
out = {}
if spec["mode"] == "sim":
    data = np.load(spec["data"])
    for cfg in spec["configs"]:
        X = data[cfg["name"]]
        res = jaxmix.fit_em(X, cfg["K"], n_init=cfg["n_init"], init=cfg["init"], seed=0)
        filled = jaxmix.complete(X, res)
        p = cfg["name"] + "/"
        if cfg["kmeans"]:
            km = jaxmix.kmeans(X, cfg["K"], n_init=cfg["n_init"], seed=0)
            out[p + "km_cost"] = km.cost
        out[p + "ll"] = res.log_likelihood
        out[p + "lls"] = res.restart_log_likelihoods
        out[p + "best"] = res.best_restart
        out[p + "n_iter"] = res.restart_n_iter
        out[p + "mu"], out[p + "var"], out[p + "w"] = res.mu, res.var, res.weights
        out[p + "resp"] = res.resp
        out[p + "history"] = res.history
        out[p + "filled"] = filled
else:
    X = jaxmix.load_ratings(spec["dir"] + "/netflix_incomplete.txt")
    gold = np.loadtxt(spec["dir"] + "/netflix_complete.txt")
    res = jaxmix.fit_em(X, 12, n_init=5, seed=0, init="random_rows")
    filled = jaxmix.complete(X, res)
    out.update(
        ll=res.log_likelihood, lls=res.restart_log_likelihoods, best=res.best_restart,
        n_iter=res.restart_n_iter, mu=res.mu, var=res.var, w=res.weights,
        rmse=jaxmix.rmse(gold, filled), history=res.history,
        rmse_missing=jaxmix.rmse(gold, filled, mask=np.isnan(X) & (gold != 0)),
    )
np.savez(spec["out"], **{k: np.asarray(v) for k, v in out.items()})
"""


def run_float32(spec: dict, tmp_path) -> dict:
    """Run the child without x64 and return what it saved."""
    env = dict(os.environ)
    for var in ("JAX_ENABLE_X64", "JAX_DEFAULT_DTYPE_BITS"):
        env.pop(var, None)
    spec = {**spec, "out": str(tmp_path / "float32_out.npz")}
    proc = subprocess.run(
        [sys.executable, "-W", "error", "-c", CHILD, json.dumps(spec)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    with np.load(spec["out"]) as f:
        return {k: f[k] for k in f.files}


def _mixture(n, d, K, seed, missing, sd=1.0, sep=4.0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, sep, size=(K, d))
    X = centres[rng.integers(K, size=n)] + sd * rng.standard_normal((n, d))
    X[rng.random((n, d)) < missing] = np.nan
    return X


def _sim_data():
    ratings = jaxmix.simulate_ratings(300, 40, 3, missing=0.3, noise=0.5, seed=0).X
    return {
        # name: (X, K, n_init, init)
        "ratings-rr": (ratings, 3, 3, "random_rows"),
        "ratings-kpp": (ratings, 3, 3, "kmeans++"),
        "offset-1e4": (_mixture(200, 8, 2, 1, 0.2) + 1e4, 2, 2, "kmeans++"),
        "scaled-1e30": (_mixture(200, 8, 2, 2, 0.2) * 1e30, 2, 2, "random_rows"),
        "complete": (_mixture(200, 8, 2, 3, 0.0), 2, 2, "random_rows"),
        "sparse": (_mixture(300, 40, 3, 4, 0.7, sep=3.0), 3, 3, "kmeans++"),
    }


KMEANS = ("ratings-rr", "scaled-1e30")  # K-means too (kept to two to save compile time)


def test_float32_matches_float64_on_simulated_data(tmp_path):
    data = _sim_data()
    np.savez(tmp_path / "data.npz", **{name: v[0] for name, v in data.items()})
    configs = [
        {"name": name, "K": K, "n_init": n_init, "init": init, "kmeans": name in KMEANS}
        for name, (_, K, n_init, init) in data.items()
    ]
    f32 = run_float32(
        {"mode": "sim", "data": str(tmp_path / "data.npz"), "configs": configs}, tmp_path
    )
    for name, (X, K, n_init, init) in data.items():
        p = name + "/"
        res = jaxmix.fit_em(X, K, n_init=n_init, init=init, seed=0)
        scale = np.nanstd(X)  # parameters compared relative to the data's spread
        for key in ("mu", "var", "w", "resp", "history", "filled", "lls"):
            assert np.all(np.isfinite(f32[p + key])), (name, key)
        rel_ll = abs(float(f32[p + "ll"]) - res.log_likelihood) / abs(res.log_likelihood)
        print(f"{name}: rel LL diff {rel_ll:.2e}")
        assert rel_ll < 1e-4, name
        np.testing.assert_allclose(f32[p + "lls"], res.restart_log_likelihoods, rtol=1e-4)
        # Restarts that reach the same optimum (possibly with the labels permuted) tie to within
        # rounding; the winner is only well defined when the float64 LLs are clearly apart.
        lls = np.sort(res.restart_log_likelihoods)
        if len(lls) == 1 or lls[-1] - lls[-2] > 1e-5 * abs(lls[-1]):
            assert int(f32[p + "best"]) == res.best_restart, name
        _, perm = linear_sum_assignment(
            ((res.mu[:, None, :] - f32[p + "mu"][None, :, :]) ** 2).sum(axis=2)
        )
        mu32, var32, w32 = f32[p + "mu"][perm], f32[p + "var"][perm], f32[p + "w"][perm]
        np.testing.assert_allclose(mu32, res.mu, rtol=0, atol=1e-2 * scale, err_msg=name)
        np.testing.assert_allclose(var32, res.var, rtol=1e-2, err_msg=name)
        np.testing.assert_allclose(w32, res.weights, rtol=0, atol=1e-2, err_msg=name)
        np.testing.assert_allclose(f32[p + "resp"][:, perm], res.resp, rtol=0, atol=1e-2)
        np.testing.assert_allclose(f32[p + "resp"].sum(axis=1), 1.0, atol=1e-5)
        filled = jaxmix.complete(X, res)
        np.testing.assert_allclose(f32[p + "filled"], filled, rtol=0, atol=1e-2 * scale)
        observed = ~np.isnan(X)
        # observed entries are copied through from the float64 input, not rounded to float32
        np.testing.assert_array_equal(f32[p + "filled"][observed], X[observed])
        if name in KMEANS:
            km = jaxmix.kmeans(X, K, n_init=n_init, seed=0)
            assert float(f32[p + "km_cost"]) == pytest.approx(km.cost, rel=1e-4), name


def test_float32_netflix(ref_dir, tmp_path):
    f32 = run_float32({"mode": "netflix", "dir": str(ref_dir)}, tmp_path)
    X = jaxmix.load_ratings(ref_dir / "netflix_incomplete.txt")
    gold = np.loadtxt(ref_dir / "netflix_complete.txt")
    res = jaxmix.fit_em(X, 12, n_init=5, seed=0, init="random_rows")
    filled = jaxmix.complete(X, res)
    rmse64 = jaxmix.rmse(gold, filled)
    rmse64_missing = jaxmix.rmse(gold, filled, mask=np.isnan(X) & (gold != 0))
    for key in ("mu", "var", "w", "lls", "history"):
        assert np.all(np.isfinite(f32[key])), key

    ll32 = float(f32["ll"])
    rel_ll = abs(ll32 - res.log_likelihood) / abs(res.log_likelihood)
    rel_lls = np.abs(f32["lls"] - res.restart_log_likelihoods) / np.abs(res.restart_log_likelihoods)
    mu_diff = float(np.max(np.abs(f32["mu"] - res.mu)))
    var_rel = float(np.max(np.abs(f32["var"] - res.var) / res.var))
    w_diff = float(np.max(np.abs(f32["w"] - res.weights)))
    rmse_diff = abs(float(f32["rmse"]) - rmse64)
    rmse_missing_diff = abs(float(f32["rmse_missing"]) - rmse64_missing)
    print(
        "\nNetflix K=12, 5 restarts, random_rows, float32 vs float64:\n"
        f"  LL32 = {ll32:.4f}, LL64 = {res.log_likelihood:.4f}, |dLL|/|LL64| = {rel_ll:.2e}\n"
        f"  restart LLs: max rel diff {rel_lls.max():.2e}; best restart {int(f32['best'])} vs "
        f"{res.best_restart}; iterations {f32['n_iter'].tolist()} vs "
        f"{res.restart_n_iter.tolist()}\n"
        f"  max |mu32 - mu64| = {mu_diff:.2e}, max rel var diff = {var_rel:.2e}, "
        f"max |w32 - w64| = {w_diff:.2e}\n"
        f"  whole-matrix RMSE {float(f32['rmse']):.10f} vs {rmse64:.10f} (diff {rmse_diff:.2e}); "
        f"missing-entry RMSE diff {rmse_missing_diff:.2e}"
    )
    assert int(f32["best"]) == res.best_restart
    # float32 eps is 1.2e-7 and the stopping rule's tolerance 1e-6: an extra or missing iteration
    # moves the LL by at most ~1e-6 relative, so 1e-5 leaves a factor of ten.
    assert rel_ll < 1e-5
    assert rel_lls.max() < 1e-5
    assert mu_diff < 1e-2  # ratings are 1..5 stars
    assert var_rel < 1e-3
    assert w_diff < 1e-3
    assert rmse_diff < 1e-4
    assert rmse_missing_diff < 1e-3

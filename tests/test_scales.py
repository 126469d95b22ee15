"""Data not on a 1-5 scale: the scale-aware variance floor, the warnings, extreme scales.

* The default floor (``min_var=None``, :func:`jaxmix.data.default_min_var`) is the course's 0.25
  on data spread like ratings and scales with the data below that; an explicit ``min_var`` keeps
  its meaning.
* On data in ``[0, 1]`` the default recovers three planted clusters that the course's floor
  merges (held-out RMSE).
* The warnings (:class:`jaxmix.DataWarning` subclasses) fire on the cases they name and not on
  ordinary fits (the suite runs with warnings as errors).
* ``X * 1e-150`` and ``X * 1e150`` fit in float32 (a child interpreter without x64), and a floor
  that float32 cannot hold is a ``ValueError`` naming the range.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

import jaxmix
from jaxmix import MixtureParams
from jaxmix.data import Standardizer, as_data, default_min_var


def _unit_clusters(n=300, d=8, seed=1, observed=0.7):
    """Three planted clusters in [0, 1] (sd 0.08), with 30 % of the entries missing."""
    rng = np.random.default_rng(seed)
    z = rng.integers(0, 3, n)
    centres = rng.uniform(0.15, 0.85, (3, d))
    X = np.clip(centres[z] + 0.08 * rng.normal(size=(n, d)), 0.0, 1.0)
    keep = rng.random((n, d)) < observed
    return X, np.where(keep, X, np.nan), keep


def _heldout_rmse(X, X_train, keep, res):
    filled = jaxmix.complete(X_train, res)
    return float(np.sqrt(np.mean((filled - X)[~keep] ** 2)))


# ---------------------------------------------------------------- the default floor


def test_default_floor_scales_with_the_data_and_is_the_course_floor_on_ratings():
    _, X, _ = _unit_clusters(n=60)
    scale = Standardizer.fit(as_data(X).summary()).scale
    assert scale < 1.0
    assert default_min_var(as_data(X).summary()) == 0.25 * scale**2
    # X * 2^j has 4^j times the floor of X while its spread stays below that of ratings ...
    for j in (-10, -1, 1):
        assert default_min_var(as_data(X * 2.0**j).summary()) == 0.25 * scale**2 * 4.0**j
    # ... and the course's 0.25 on ratings (simulated and the course's own) and wider data.
    ratings = jaxmix.simulate_ratings(80, 10, 3, seed=0).X
    assert default_min_var(as_data(ratings).summary()) == 0.25
    assert default_min_var(as_data(X * 1e4).summary()) == 0.25
    # in the units EM computes in it is 0.25 below that spread, never above
    for data in (X, X * 1e-3, ratings, X * 1e4):
        summary = as_data(data).summary()
        internal = default_min_var(summary) / Standardizer.fit(summary).scale ** 2
        assert internal <= 0.25 and (internal == 0.25 or default_min_var(summary) == 0.25)


def test_default_floor_is_the_course_floor_on_the_course_data(ref_dir):
    X = jaxmix.load_ratings(ref_dir / "netflix_incomplete.txt")
    assert default_min_var(as_data(X).summary()) == 0.25


def test_explicit_min_var_keeps_its_meaning_and_none_is_recorded_resolved():
    ratings = jaxmix.simulate_ratings(80, 10, 3, seed=0).X
    explicit = jaxmix.fit_em(ratings, 3, n_init=2, min_var=0.25)
    default = jaxmix.fit_em(ratings, 3, n_init=2)
    assert explicit.min_var == default.min_var == 0.25
    np.testing.assert_array_equal(explicit.mu, default.mu)  # same floor, same fit
    _, X, _ = _unit_clusters(n=60)
    res = jaxmix.fit_em(X, 2, min_var=0.01)
    assert res.min_var == 0.01 and np.all(res.var >= 0.01)


def test_default_floor_separates_clusters_in_the_unit_interval():
    X, X_train, keep = _unit_clusters()
    with pytest.warns(jaxmix.VarianceFloorWarning, match=r"floor min_var=0.25, which is \d+"):
        course = jaxmix.fit_em(X_train, 3, n_init=3, min_var=0.25)
    assert np.allclose(course.var, 0.25)  # the course's floor decides every variance
    default = jaxmix.fit_em(X_train, 3, n_init=3)  # no warning: its floor is below the spread
    assert default.min_var < as_data(X_train).summary().pooled_variance / 2
    tiny = jaxmix.fit_em(X_train, 3, n_init=3, min_var=1e-4)
    r_course, r_default, r_tiny = (
        _heldout_rmse(X, X_train, keep, r) for r in (course, default, tiny)
    )
    assert r_default < 0.6 * r_course
    assert r_default <= 1.1 * r_tiny
    # three components of about a third each, not two merged
    assert np.all(default.weights > 0.2)


# ---------------------------------------------------------------- warnings


def test_no_warning_on_an_ordinary_fit():
    ratings = jaxmix.simulate_ratings(80, 10, 3, seed=0).X
    _, X, _ = _unit_clusters(n=120)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        jaxmix.fit_em(ratings, 3, n_init=2)
        jaxmix.fit_em(X, 3, n_init=2, min_var=1e-4)
        jaxmix.fit_em(X, 3, n_init=2, covariance="diag", min_var=1e-4)


def test_empty_component_warns():
    X = np.random.default_rng(0).normal(size=(40, 2))
    start = MixtureParams(np.array([[0.0, 0.0], [1e3, 1e3]]), np.ones(2), np.array([0.5, 0.5]))
    with pytest.warns(jaxmix.EmptyComponentWarning, match=r"1 of 2 components are empty.*\[1\]"):
        res = jaxmix.fit_em(X, 2, init=start, min_var=0.01)
    assert res.weights[1] * 40 < 1e-6


def test_column_scales_warn_under_one_variance_per_column_only():
    rng = np.random.default_rng(3)
    n = 90
    group = rng.integers(0, 2, n)
    survey = np.column_stack(
        [
            30 + 15 * group + rng.normal(0, 5, n),  # age
            40_000 + 30_000 * rng.random(n),  # income in dollars
            np.clip(np.round(2 + 2 * group + rng.normal(0, 0.7, n)), 1, 5),  # Likert item
        ]
    )
    survey[rng.random(survey.shape) < 0.1] = np.nan
    with pytest.warns(jaxmix.ColumnScaleWarning, match=r"'spherical' family.*covariance='diag'"):
        jaxmix.fit_em(survey, 2, min_var=1.0)
    with pytest.warns(jaxmix.ColumnScaleWarning, match=r"'shared' family"):
        jaxmix.fit_em(survey, 2, covariance="shared", min_var=1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        jaxmix.fit_em(survey, 2, covariance="diag", min_var=1.0)
        jaxmix.fit_em(survey, 2, covariance="factor", rank=1, min_var=1.0)
    # the triples layout sees the same column spreads
    dense_sd = as_data(survey).summary().column_sd()
    triples_sd = as_data(jaxmix.sparse_ratings(survey)).summary().column_sd()
    np.testing.assert_allclose(triples_sd, dense_sd, rtol=1e-12)
    assert np.nanmax(dense_sd) / np.nanmin(dense_sd) > 1e3


def test_load_ratings_warns_when_zeros_look_like_values(tmp_path):
    path = tmp_path / "props.txt"
    X = np.array([[0.0, 0.5, 0.25], [0.75, 0.0, 0.5], [0.0, 0.2, 0.0], [0.1, 0.9, 0.3]])
    np.savetxt(path, X)
    with pytest.warns(jaxmix.ZeroAsMissingWarning, match=r"columns? .*missing=None"):
        loaded = jaxmix.load_ratings(path)
    assert np.isnan(loaded[0, 0])  # still read as asked
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(jaxmix.load_ratings(path, missing=None), X)
        ratings = tmp_path / "ratings.txt"
        np.savetxt(ratings, np.array([[0, 5, 3], [4, 0, 1], [0, 2, 0]]), fmt="%d")
        assert np.isnan(jaxmix.load_ratings(ratings)).sum() == 4


# ---------------------------------------------------------------- extreme scales, float32

CHILD = r"""
import json, sys
import numpy as np
import jax
assert not jax.config.jax_enable_x64
import jaxmix
spec = json.loads(sys.argv[1])
X = np.load(spec["data"])
out = {}
for s in (1.0, 2.0**-500, 2.0**500, 1e-150, 1e150):
    res = jaxmix.fit_em(X * s, 2, n_init=2, seed=0)
    out[repr(s)] = [res.mu.tolist(), res.var.tolist(), res.min_var, res.log_likelihood,
                    np.argmax(res.resp, axis=1).tolist()]
try:
    jaxmix.fit_em(X * 1e-150, 2, min_var=0.25)
    out["refused"] = None
except ValueError as err:
    out["refused"] = str(err)
print(json.dumps(out))
"""


@pytest.mark.slow  # a child interpreter without x64: 8-14 s on 2 busy cores
def test_extreme_scales_fit_the_same_in_float32(tmp_path):
    """In float32, X * 2^-500 gives exactly the scaled fit (the default floor scales with it),
    and X * 2^500, X * 1e-150, X * 1e150 fit to the same clusters."""
    rng = np.random.default_rng(5)
    X = np.vstack([rng.normal(0, 0.2, (20, 3)), rng.normal(1, 0.2, (20, 3))])  # spread < ratings'
    X[rng.random(X.shape) < 0.2] = np.nan
    np.save(tmp_path / "X.npy", X)
    env = {k: v for k, v in os.environ.items() if k != "JAX_ENABLE_X64"}
    spec = json.dumps({"data": str(tmp_path / "X.npy")})
    proc = subprocess.run(
        [sys.executable, "-W", "error", "-c", CHILD, spec],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    mu1, var1, floor1, ll1, labels1 = out["1.0"]
    assert floor1 < 0.25  # the scale-aware floor
    n_obs = int((~np.isnan(X)).sum())
    s = 2.0**-500  # the floor scales down with the data: exactly the scaled fit
    mu, var, floor, ll, labels = out[repr(s)]
    assert floor == floor1 * s * s
    np.testing.assert_allclose(np.array(mu) / s, mu1, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(np.array(var) / s**2, var1, rtol=1e-5)
    assert ll == pytest.approx(ll1 - n_obs * np.log(s), rel=1e-6)
    assert labels == labels1
    # upwards the floor stays the course's 0.25 (negligible there): same clusters
    assert out[repr(2.0**500)][2] == out["1e+150"][2] == 0.25
    for s in (2.0**500, 1e-150, 1e150):
        mu, var, floor, ll, labels = out[repr(s)]
        assert np.all(np.isfinite(mu)) and np.all(np.isfinite(var)) and np.isfinite(ll)
        assert labels == labels1
        np.testing.assert_allclose(np.array(mu) / s, mu1, atol=0.01)  # clusters 1 apart
    # a floor float32 cannot hold in the data's units is refused, naming the range
    assert out["refused"] is not None
    assert "min_var=0.25" in out["refused"] and "float32" in out["refused"]
    assert "representable" in out["refused"]

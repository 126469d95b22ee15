"""Golden tests: every number published for the course exercise, in float64.

The published values are in ``shared/REFERENCE.md`` (and the small case's intermediate results in
``test_solutions.txt``, parsed here so no number is copied by hand from that file).
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from helpers import dense_arrays, jax_params

import jaxmix
from jaxmix.data import as_data
from jaxmix.inference.em import e_step, m_step, suff_stats
from jaxmix.inference.init import random_rows

pytestmark = pytest.mark.reference

SEEDS = 5  # the reference keeps the best of seeds 0..4

# shared/REFERENCE.md, "Published numbers (float64)"
TOY_KMEANS_COST = {1: 5462.2974523, 2: 1684.9079503, 3: 1329.5948672, 4: 1035.4998265}
TOY_EM_LL = {1: -1307.2234318, 2: -1175.7146294, 3: -1138.8908997, 4: -1138.6011757}
TOY_K3_FIRST_ESTEP_LL = -1388.0818
TOY_BEST_BIC = (3, -1169.2589347)
SMALL_FIRST_ESTEP_LL = -152.16319226209848
SMALL_RUN_LL = -84.98451993042474
SMALL_RMSE = 0.3152301205749675
NETFLIX_K1_LL = -1521060.9539852
NETFLIX_K12_LL = -1390234.4223
NETFLIX_K12_BEST_SEED = 1
NETFLIX_K12_RMSE = 0.4804908505
NETFLIX_K12_MISSING_RMSE = 0.96395  # gold zeros excluded
NETFLIX_K12_MISSING_RMSE_WITH_ZEROS = 1.00641
NETFLIX_USER_MEAN_RMSE = 0.81958


def _decimals(published: float) -> float:
    """Half a unit in the last printed place of a published number (its own precision)."""
    text = repr(published)
    places = len(text.split(".")[1]) if "." in text else 0
    return 0.5 * 10.0**-places


def _parse_solutions(text: str) -> dict[str, np.ndarray | float]:
    """Parse the reference's printout of the small case into named arrays."""
    sections = {
        "init": text.split("After first E-step")[0],
        "estep": text.split("After first E-step")[1].split("After first M-step")[0],
        "mstep": text.split("After first M-step")[1].split("After a run")[0],
        "run": text.split("After a run")[1],
    }

    def block(section: str, label: str, stop: str) -> np.ndarray:
        body = section.split(label, 1)[1].split(stop, 1)[0]
        return np.array([float(v) for v in re.findall(r"-?\d+\.?\d*(?:e[-+]\d+)?", body)])

    out: dict[str, np.ndarray | float] = {}
    out["init_mu"] = block(sections["init"], "Mu:", "Var:").reshape(4, 5)
    out["init_var"] = block(sections["init"], "Var:", "P:")
    out["estep_post"] = block(sections["estep"], "post:", "LL:").reshape(20, 4)
    out["mstep_mu"] = block(sections["mstep"], "Mu:", "Var:").reshape(4, 5)
    out["mstep_var"] = block(sections["mstep"], "Var:", "P:")
    out["mstep_w"] = block(sections["mstep"], "P:", "\n\n")
    out["run_mu"] = block(sections["run"], "Mu:", "Var:").reshape(4, 5)
    out["run_var"] = block(sections["run"], "Var:", "P:")
    out["run_w"] = block(sections["run"], "P:", "post:")
    out["run_post"] = block(sections["run"], "post:", "LL:").reshape(20, 4)
    out["X_pred"] = block(sections["run"], "X_pred:", "RMSE:").reshape(20, 5)
    return out


@pytest.fixture(scope="module")
def small(ref_dir):
    X = jaxmix.load_ratings(ref_dir / "test_incomplete.txt")
    gold = np.loadtxt(ref_dir / "test_complete.txt")
    sol = _parse_solutions((ref_dir / "test_solutions.txt").read_text())
    return X, gold, sol


@pytest.fixture(scope="module")
def toy(ref_dir):
    return np.loadtxt(ref_dir / "toy_data.txt")


@pytest.fixture(scope="module")
def netflix(ref_dir):
    X = jaxmix.load_ratings(ref_dir / "netflix_incomplete.txt")
    gold = np.loadtxt(ref_dir / "netflix_complete.txt")
    return X, gold


# ---------------------------------------------------------------- small case (20 x 5, K = 4)


def test_small_initialisation_matches_reference(small):
    X, _, sol = small
    mu, var, weights = random_rows(as_data(X), 4, seed=0)
    np.testing.assert_array_equal(mu, sol["init_mu"])
    np.testing.assert_allclose(var, sol["init_var"], rtol=0, atol=1e-12)
    np.testing.assert_array_equal(weights, np.full(4, 0.25))


def test_small_first_e_and_m_step(small):
    X, _, sol = small
    p0 = jax_params(jaxmix.MixtureParams(*random_rows(as_data(X), 4, seed=0)))
    data = dense_arrays(X)
    out = e_step(p0, data)
    assert float(out.log_likelihood) == pytest.approx(SMALL_FIRST_ESTEP_LL, rel=1e-12)
    np.testing.assert_allclose(out.resp, sol["estep_post"], atol=1e-8)  # printed to 8 places
    p1 = m_step(suff_stats(out.resp, data, "spherical"), p0, 0.25)
    np.testing.assert_allclose(p1.mu, sol["mstep_mu"], atol=1e-8)
    np.testing.assert_allclose(p1.var, sol["mstep_var"], atol=1e-8)
    np.testing.assert_allclose(p1.weights, sol["mstep_w"], atol=1e-8)


def test_small_full_run_completion_and_rmse(small):
    X, gold, sol = small
    res = jaxmix.fit_em(X, 4, init="random_rows", seed=0)
    assert res.converged
    assert res.log_likelihood == pytest.approx(SMALL_RUN_LL, rel=1e-8)
    assert res.history[0] == pytest.approx(SMALL_FIRST_ESTEP_LL, rel=1e-12)
    np.testing.assert_allclose(res.mu, sol["run_mu"], atol=1e-8)
    np.testing.assert_allclose(res.var, sol["run_var"], atol=1e-8)
    np.testing.assert_allclose(res.weights, sol["run_w"], atol=1e-8)
    np.testing.assert_allclose(res.resp, sol["run_post"], atol=1e-8)
    X_pred = jaxmix.complete(X, res)
    np.testing.assert_allclose(X_pred, sol["X_pred"], atol=1e-8)
    assert jaxmix.rmse(gold, X_pred) == pytest.approx(SMALL_RMSE, rel=1e-8)


# ---------------------------------------------------------------- toy data (250 x 2, complete)


@pytest.mark.parametrize("K", [1, 2, 3, 4])
def test_toy_kmeans_cost(toy, K):
    res = jaxmix.kmeans(toy, K, n_init=SEEDS, seed=0)
    assert res.cost == pytest.approx(TOY_KMEANS_COST[K], abs=_decimals(TOY_KMEANS_COST[K]))
    assert res.restart_costs.min() == res.cost
    np.testing.assert_allclose(res.weights.sum(), 1.0)


@pytest.mark.parametrize("K", [1, 2, 3, 4])
def test_toy_em_log_likelihood(toy, K):
    res = jaxmix.fit_em(toy, K, n_init=SEEDS, seed=0, init="random_rows")
    assert res.log_likelihood == pytest.approx(TOY_EM_LL[K], abs=_decimals(TOY_EM_LL[K]))
    assert res.log_likelihood == res.restart_log_likelihoods.max()


def test_toy_first_e_step_and_best_bic(toy):
    single = jaxmix.fit_em(toy, 3, seed=0, init="random_rows")
    assert single.history[0] == pytest.approx(
        TOY_K3_FIRST_ESTEP_LL, abs=_decimals(TOY_K3_FIRST_ESTEP_LL)
    )
    scores = {
        K: jaxmix.bic(toy, jaxmix.fit_em(toy, K, n_init=SEEDS, seed=0, init="random_rows"))
        for K in (1, 2, 3, 4)
    }
    best_K = max(scores, key=scores.get)
    assert best_K == TOY_BEST_BIC[0]
    assert scores[best_K] == pytest.approx(TOY_BEST_BIC[1], abs=_decimals(TOY_BEST_BIC[1]))


# ---------------------------------------------------------------- Netflix subset (1200 x 1200)


def test_netflix_k1(netflix):
    X, _ = netflix
    res = jaxmix.fit_em(X, 1, n_init=SEEDS, seed=0, init="random_rows")
    np.testing.assert_allclose(res.restart_log_likelihoods, NETFLIX_K1_LL, rtol=1e-8)


def test_netflix_k12_log_likelihood_completion_and_rmse(netflix):
    X, gold = netflix
    res = jaxmix.fit_em(X, 12, n_init=SEEDS, seed=0, init="random_rows")
    assert res.best_restart == NETFLIX_K12_BEST_SEED
    assert res.log_likelihood == pytest.approx(NETFLIX_K12_LL, rel=1e-8)
    X_pred = jaxmix.complete(X, res)
    observed = ~np.isnan(X)
    np.testing.assert_array_equal(X_pred[observed], X[observed])
    assert jaxmix.rmse(gold, X_pred) == pytest.approx(NETFLIX_K12_RMSE, rel=1e-8)
    missing = ~observed
    scored = missing & (gold != 0)
    assert jaxmix.rmse(gold, X_pred, mask=scored) == pytest.approx(
        NETFLIX_K12_MISSING_RMSE, abs=5e-6
    )
    assert jaxmix.rmse(gold, X_pred, mask=missing) == pytest.approx(
        NETFLIX_K12_MISSING_RMSE_WITH_ZEROS, abs=5e-6
    )
    user_mean = jaxmix.mean_baseline(X, "user")
    assert jaxmix.rmse(gold, user_mean, mask=scored) == pytest.approx(
        NETFLIX_USER_MEAN_RMSE, abs=5e-6
    )

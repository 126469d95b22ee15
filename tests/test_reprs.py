"""Every result's repr is a short summary naming its key numbers; the arrays stay one attribute
away, and ``_replace`` and persistence are untouched by it."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest

import jaxmix
from jaxmix.evaluation.selection import KSelection
from jaxmix.posterior.diagnostics import DiagnosticsReport, VariableDiagnostics

#: The most characters a summary may take (a full repr of an EM result on this data is 20 000).
SHORT = 1000


def _check(result, *numbers):
    text = repr(result)
    assert len(text) < SHORT, text
    assert text.startswith(type(result).__name__ + "("), text
    for field in result._fields:  # every field is named, so the arrays are easy to find
        assert field in text, (field, text)
    for number in numbers:
        assert number in text, (number, text)
    return text


@pytest.fixture(scope="module")
def X():
    return jaxmix.simulate_ratings(60, 8, 2, missing=0.3, seed=3).X


@pytest.fixture(scope="module")
def em(X):
    return jaxmix.fit_em(X, 2, n_init=3, seed=0, covariance="diag")


@pytest.fixture(scope="module")
def mcmc(X, em):
    """A tiny NUTS run, with its progress lines (stderr is not a terminal here)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        res = jaxmix.fit_mcmc(
            X, 2, init=em, covariance="diag", num_chains=1, num_warmup=30, num_samples=30,
            progress=True,
        )  # fmt: skip
    return res, err.getvalue()


def test_em_result(X, em):
    full = len(str(tuple(em)))  # what the NamedTuple's repr would show
    assert full > 5 * SHORT
    text = _check(
        em,
        "EMResult(covariance='diag', K=2, n=60, d=8",
        f"objective={em.objective:.6g}",
        f"log_likelihood={em.log_likelihood:.6g}",
        f"converged={em.converged}",
        f"n_iter={em.n_iter}",
        f"best_restart={em.best_restart} of 3",
        "resp (60, 2)",
        f"history ({em.n_iter},)",
    )
    assert "maximum likelihood" in text
    assert "MAP" in repr(em._replace(prior=jaxmix.Prior()))


def test_the_arrays_are_one_attribute_away_and_replace_and_save_still_work(em, tmp_path):
    assert em.resp.shape == (60, 2) and em.mu.shape == (2, 8)
    changed = em._replace(n_iter=7)
    assert "n_iter=7\n" in repr(changed) and changed.history is em.history
    jaxmix.save(em, tmp_path / "fit.npz")
    back = jaxmix.load(tmp_path / "fit.npz")
    assert repr(back) == repr(em)
    np.testing.assert_array_equal(back.resp, em.resp)


def test_a_partial_result_still_has_a_repr():
    text = repr(jaxmix.EMResult(*([None] * 11)))
    assert text.startswith("EMResult(") and "resp" in text and len(text) < SHORT


def test_kmeans_result(X):
    km = jaxmix.kmeans(X, 2, n_init=2, seed=0)
    _check(km, "K=2, n=60, d=8", f"cost={km.cost:.6g}", f"n_iter={km.n_iter}", "labels (60,)")


def test_mcmc_result_and_its_predictive_summary_and_diagnostics(X, mcmc):
    mcmc, err = mcmc
    # fit_mcmc(progress=True): whole lines, the last one at the last iteration
    assert "\r" not in err and err.splitlines()[-1].startswith("NUTS K=2 x1: 60/60 it")
    _check(
        mcmc,
        "K=2, d=8, 1 chain(s) x 30 draws after 30 warm-up",
        f"divergences={int(mcmc.diverging.sum())}",
        f"n_relabelled={mcmc.n_relabelled} of 30",
    )
    table = jaxmix.predictive_summary(mcmc, X, hdi_prob=0.9)
    _check(table, f"{table.n_entries} entries", f"average sd={np.mean(table.sd):.4g}")
    with pytest.warns(jaxmix.DiagnosticsWarning):  # 30 draws: the ESS check fails
        report = jaxmix.diagnose(mcmc, verbose=False)
    text = _check(report, "ok=False", f"max_r_hat={report.max_r_hat:.4g}")
    assert f"problem: {report.problems[0]}" in text


def test_selection_results(X):
    sel = jaxmix.select_k(X, [1, 2], criterion="heldout", n_init=1, seed=0)
    j = sel.best_index
    _check(sel, f"best: K={sel.best_k}", f"rmse={sel.rmse[j]:.6g}", f"n_test={sel.n_test}")
    # the LOO selection runs NUTS per K: its summary is checked on a table of its shape
    ks = KSelection(
        ks=np.array([1, 2, 3]),
        bic=np.array([-10.0, -8.0, -9.0]),
        elpd_loo=np.zeros(3),
        elpd_loo_se=np.ones(3),
        p_loo=np.ones(3),
        max_pareto_k=np.array([0.2, 0.9, 0.4]),
        n_bad_pareto_k=np.zeros(3, int),
        best_k_bic=2,
        best_k_loo=1,
        best_k_loo_max=3,
        comparison=None,
        em_fits=(),
        mcmc_fits=(),
    )
    _check(ks, "ks=1,2,3", "best_k_bic=2", "best_k_loo=1", "best_k_loo_max=3", "0.9")


@pytest.mark.slow
def test_em_svi_comparison_and_svi_result(X):
    cmp = jaxmix.compare_em_svi(X, 2, num_steps=20, polish_steps=20, max_iter=50)
    _check(cmp, f"agree={cmp.agree}", f"rel_gap={cmp.rel_gap:.3g}", f"em: {cmp.em_iter} iter")
    svi = cmp.svi
    _check(
        svi,
        "guide='map', covariance='spherical', K=2, n=60, d=8",
        f"objective={svi.objective:.6g}",
        f"num_steps={svi.num_steps}",
        f"polish_iter={svi.polish_iter}",
    )


def test_diagnostics_report_lists_at_most_three_problems():
    report = DiagnosticsReport(
        ok=False,
        max_r_hat=1.2,
        min_ess_bulk=5.0,
        min_ess_tail=4.0,
        num_divergent=3,
        n_relabelled=0,
        num_chains=2,
        num_draws=10,
        ess_threshold=200.0,
        r_hat_threshold=1.01,
        variables=(VariableDiagnostics("mu", 1.2, 5.0, 4.0),) * 3,
        problems=tuple(f"problem number {i}" for i in range(5)),
    )
    text = _check(report, "ok=False", "max_r_hat=1.2", "num_divergent=3")
    assert "problem number 2" in text and "problem number 3" not in text
    assert "2 more problem(s)" in text

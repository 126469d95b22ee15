"""Choosing K by BIC and PSIS-LOO (select_k), and the posterior-diagnostics example script.

Oracles: the course's published BIC on the toy data (best K = 3, BIC = -1169.2589347); data
simulated with a known number of components.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

import jaxmix
from jaxmix.posterior.diagnostics import import_arviz

import_arviz()  # ArviZ's once-a-day import notice is filtered there (the example imports arviz)

ROOT = Path(__file__).resolve().parents[1]
TOY_BEST_BIC = -1169.2589347


def test_toy_data_best_k_is_three_by_bic_and_loo(ref_dir):
    X = jaxmix.load_ratings(ref_dir / "toy_data.txt", missing=None)
    sel = jaxmix.select_k(X, [1, 2, 3, 4], verbose=True)
    assert sel.ks.tolist() == [1, 2, 3, 4]
    assert sel.best_k_bic == 3
    assert sel.bic[2] == pytest.approx(TOY_BEST_BIC, rel=1e-6)  # EM's stopping tolerance
    assert sel.best_k_loo == 3
    assert sorted(sel.comparison.index) == ["K=1", "K=2", "K=3", "K=4"]
    assert sel.comparison.loc["K=1", "rank"] == 3  # one component is clearly worst
    assert np.all(np.isfinite(sel.elpd_loo)) and np.all(sel.elpd_loo_se > 0)
    assert np.all(sel.n_bad_pareto_k == 0)
    assert len(sel.mcmc_fits) == 4 and len(sel.em_fits) == 4
    assert [f.n_components for f in sel.mcmc_fits] == [1, 2, 3, 4]
    assert "<- BIC" in sel.format()


# K = 4 overfits three clusters: a few rows can get a high Pareto k with 300 draws. select_k
# reports that once, as our own DiagnosticsWarning (tested with 5 draws in test_inputs.py).
@pytest.mark.filterwarnings("ignore:PSIS-LOO:jaxmix.DiagnosticsWarning")
def test_known_number_of_components_is_recovered():
    sim = jaxmix.simulate_ratings(150, 8, 3, missing=0.3, stars=None, seed=3)
    sel = jaxmix.select_k(sim.X, [2, 3, 4], seed=1)
    assert sel.best_k_bic == 3
    assert sel.best_k_loo == 3
    # more components never predict a new row much better than the true number
    assert sel.elpd_loo[2] - sel.elpd_loo[1] < 2 * sel.elpd_loo_se[1]


def test_select_k_rejects_bad_ks():
    X = np.random.default_rng(0).normal(size=(10, 2))
    with pytest.raises(ValueError, match="distinct"):
        jaxmix.select_k(X, [2, 2])
    with pytest.raises(ValueError, match="distinct"):
        jaxmix.select_k(X, [])
    with pytest.raises(ValueError, match="exceeds"):
        jaxmix.select_k(X, [11])


# --------------------------------------------------------------------------------------------
# examples/posterior_diagnostics.py


def _load(relpath: str) -> ModuleType:
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
    assert path.is_file() and path.stat().st_size > 1000
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# Third-party deprecations inside ArviZ's plotting with matplotlib 3.11 and pandas 3.1 (not ours),
# and our own DiagnosticsWarning: tiny runs fail the ESS and Pareto-k checks on purpose.
@pytest.mark.filterwarnings(
    "ignore:Passing a dict or None as alias_mapping to normalize_kwargs:DeprecationWarning"
)
@pytest.mark.filterwarnings(
    "ignore:The inplace keyword in DataFrame.sort_values:DeprecationWarning"
)
@pytest.mark.filterwarnings("ignore::jaxmix.DiagnosticsWarning")
def test_posterior_diagnostics_example_runs_with_tiny_settings(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("JAXMIX_REFERENCE_DATA", raising=False)  # the simulated toy stand-in
    script = _load("examples/posterior_diagnostics.py")
    # Small, and shaped like the fits above (250 x 2 toy stand-in, 150 x 8 ratings, one chain of
    # 300 + 300): the compiled samplers are reused, so the script costs its sampling and plots.
    args = script.parse_args(
        [
            *("--ks", "2", "3", "--chains", "1", "--warmup", "300", "--samples", "300"),
            *("--users", "150", "--items", "8", "--out-dir", str(tmp_path / "figs")),
        ]
    )
    out = script.main(args)
    for part in ("toy", "ratings"):
        for path in out[part]["paths"]:
            _assert_png(path)
    assert {p.name for p in out["toy"]["paths"]} == {
        "toy_trace.png",
        "toy_forest.png",
        "toy_compare.png",
    }
    assert out["toy"]["selection"].ks.tolist() == [2, 3]
    assert out["ratings"]["table"].n_entries > 0
    assert set(out["ratings"]["coverage"]) == {"mcmc", "em_plug_in"}
    text = capsys.readouterr().out
    assert "simulated" in text and "r_hat" in text and "elpd_loo" in text
    assert "predictive summary of held-out ratings" in text

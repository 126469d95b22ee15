"""Predictive summaries of missing entries: agreement with complete(), intervals, calibration.

Oracles: jaxmix.complete's closed-form predictive moments; Normal quantiles (SciPy) for rows whose
component is certain; the truth of simulated data for the coverage of the intervals.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from scipy import stats

import jaxmix

HDI = 0.9


CALIBRATION_SEEDS = (1, 2, 3)


def _simulate(seed: int):
    """Data from the model with a known truth: every missing entry is held out (``X_full``)."""
    return jaxmix.simulate_ratings(300, 20, 3, missing=0.4, noise=0.6, stars=None, seed=seed)


@pytest.fixture(scope="module")
def calibration_data():
    sim = _simulate(CALIBRATION_SEEDS[0])
    assert np.isnan(sim.X).sum() >= 2000  # binomial sd of a 90 % coverage <= 0.7 %
    return sim


@pytest.fixture(scope="module")
def em_fit(calibration_data):
    return jaxmix.fit_em(calibration_data.X, 3, prior=jaxmix.Prior(), n_init=5, min_var=0.0)


def _mcmc(X, em):
    start = time.perf_counter()
    res = jaxmix.fit_mcmc(X, 3, num_chains=1, num_warmup=300, num_samples=300, init=em)
    return res, time.perf_counter() - start


@pytest.fixture(scope="module")
def mcmc_fit(calibration_data, em_fit):
    return _mcmc(calibration_data.X, em_fit)


def test_em_mean_and_sd_are_those_of_complete(calibration_data, em_fit):
    X = calibration_data.X
    table = jaxmix.predictive_summary(em_fit, X, HDI, num_samples=500, seed=1)
    filled, sd = jaxmix.complete(X, em_fit, return_std=True)
    rows, cols = np.nonzero(np.isnan(X))
    np.testing.assert_array_equal(table.row, rows)
    np.testing.assert_array_equal(table.column, cols)
    np.testing.assert_allclose(table.mean, filled[rows, cols], rtol=1e-12)
    np.testing.assert_allclose(table.sd, sd[rows, cols], rtol=1e-12)
    assert np.all(table.lower < table.mean) and np.all(table.mean < table.upper)
    # the interval of a near-Normal predictive is about mean +- 1.645 sd
    width = (table.upper - table.lower) / (2 * stats.norm.ppf(0.95) * table.sd)
    assert np.median(width) == pytest.approx(1.0, abs=0.05)


def test_plug_in_interval_matches_normal_quantiles_when_the_component_is_certain():
    rng = np.random.default_rng(3)
    mu = np.array([[0.0, 0.0, 0.0], [20.0, 20.0, 20.0]])
    X = mu[rng.integers(2, size=200)] + rng.normal(size=(200, 3))
    X[rng.random(X.shape) < 0.2] = np.nan
    X[:, 0][np.all(np.isnan(X[:, 1:]), axis=1)] = 1.0  # every row keeps an observed entry
    params = jaxmix.MixtureParams(mu, np.array([1.0, 2.25]), np.array([0.5, 0.5]))
    table = jaxmix.predictive_summary(params, X, 0.8, num_samples=20000, seed=0)
    z = stats.norm.ppf(0.9)
    np.testing.assert_allclose(table.sd, np.where(table.mean > 10, 1.5, 1.0), rtol=1e-9)
    # a sampled HDI's width is accurate; its centre wanders more (the width is flat near the
    # optimum), so the centre gets a looser tolerance
    rel = (table.upper - table.lower) / (2 * z * table.sd) - 1.0
    assert np.max(np.abs(rel)) < 0.04 and np.median(np.abs(rel)) < 0.01
    centre = ((table.upper + table.lower) / 2 - table.mean) / table.sd
    assert np.max(np.abs(centre)) < 0.15


@pytest.mark.slow
def test_shared_family_plug_in_is_that_of_complete(calibration_data):
    """The shared family (one variance): the plug-in mean and sd are complete()'s."""
    X = calibration_data.X[:80]
    em = jaxmix.fit_em(X, 3, covariance="shared", prior=jaxmix.Prior(), n_init=2, min_var=0.0)
    assert np.shape(em.var) == ()
    table = jaxmix.predictive_summary(em, X, HDI, num_samples=200, seed=1)
    filled, sd = jaxmix.complete(X, em, return_std=True)
    rows, cols = np.nonzero(np.isnan(X))
    np.testing.assert_array_equal(table.row, rows)
    np.testing.assert_allclose(table.mean, filled[rows, cols], rtol=1e-12)
    np.testing.assert_allclose(table.sd, sd[rows, cols], rtol=1e-12)
    assert np.all(table.sd >= np.sqrt(em.var) * (1 - 1e-12))  # at least the shared variance
    assert np.all(table.lower < table.mean) and np.all(table.mean < table.upper)


def test_chosen_entries_and_table_helpers(calibration_data, em_fit):
    X = calibration_data.X
    rows, cols = np.nonzero(np.isnan(X))
    pick = (rows[[5, 0, 17]], cols[[5, 0, 17]])
    table = jaxmix.predictive_summary(em_fit, X, entries=pick, num_samples=200)
    assert table.n_entries == 3
    np.testing.assert_array_equal(table.row, pick[0])
    np.testing.assert_array_equal(table.column, pick[1])
    records = table.to_records()
    assert records.dtype.names == ("row", "column", "mean", "sd", "lower", "upper")
    np.testing.assert_array_equal(records["mean"], table.mean)
    frame = table.to_pandas()
    assert list(frame.columns) == list(records.dtype.names) and len(frame) == 3
    assert table.format(max_rows=2).count("\n") == 3  # header, two rows, the "..." line
    truth = calibration_data.X_full
    inside = (truth[pick] >= table.lower) & (truth[pick] <= table.upper)
    assert table.coverage(truth) == pytest.approx(inside.mean())


def test_predictive_summary_rejects_bad_requests(calibration_data, em_fit):
    X = calibration_data.X
    observed = np.argwhere(~np.isnan(X))[0]
    with pytest.raises(ValueError, match="is observed"):
        jaxmix.predictive_summary(em_fit, X, entries=([observed[0]], [observed[1]]))
    with pytest.raises(ValueError, match="out of range"):
        jaxmix.predictive_summary(em_fit, X, entries=([400], [0]))
    with pytest.raises(TypeError, match="pair"):
        jaxmix.predictive_summary(em_fit, X, entries=[1, 2, 3])
    with pytest.raises(ValueError, match="hdi_prob"):
        jaxmix.predictive_summary(em_fit, X, 1.0)
    with pytest.raises(ValueError, match="num_samples"):
        jaxmix.predictive_summary(em_fit, X, num_samples=5)
    with pytest.raises(ValueError, match="columns"):
        jaxmix.predictive_summary(em_fit, X[:, :10])


def test_posterior_predictive_agrees_with_the_summary(calibration_data, mcmc_fit):
    """The Rao-Blackwellised mean and the mean of the predictive draws of to_inference_data."""
    X = calibration_data.X
    res, _ = mcmc_fit
    table = jaxmix.predictive_summary(res, X, HDI, num_samples=res.num_samples, seed=4)
    idata = jaxmix.to_inference_data(res, X, seed=5)
    draws = idata.posterior_predictive["x_missing"].values.reshape(-1, table.n_entries)
    np.testing.assert_array_equal(idata.posterior_predictive["row"].values, table.row)
    z = (draws.mean(0) - table.mean) / (table.sd / np.sqrt(draws.shape[0]))
    assert np.mean(np.abs(z) < 3.5) > 0.99
    assert np.median(draws.std(0) / table.sd) == pytest.approx(1.0, abs=0.05)


def test_interval_coverage_on_data_from_the_model(calibration_data, em_fit, mcmc_fit):
    """90 % intervals cover 90 % +- 3 % of the held-out entries (MCMC); EM plug-in and mean-field
    coverages are measured and reported.

    Three simulated data sets (same shapes: the compiled sampler is reused), every missing entry
    held out: about 7000 entries pooled (binomial sd 0.4 %). One data set alone also carries the
    noise of its own realisation (at the true parameters, coverage on one set varies by about
    +- 1.5 % between seeds).
    """
    counts = {}
    timings = []
    for seed in CALIBRATION_SEEDS:
        if seed == CALIBRATION_SEEDS[0]:
            sim, em, (res, seconds) = calibration_data, em_fit, mcmc_fit
        else:
            sim = _simulate(seed)
            em = jaxmix.fit_em(sim.X, 3, prior=jaxmix.Prior(), n_init=5, min_var=0.0)
            res, seconds = _mcmc(sim.X, em)
        start = time.perf_counter()
        tables = {"mcmc": jaxmix.predictive_summary(res, sim.X, HDI, seed=seed)}
        timings.append((seconds, time.perf_counter() - start))
        tables["em_plug_in"] = jaxmix.predictive_summary(em, sim.X, HDI, seed=seed)
        tables["at_truth"] = jaxmix.predictive_summary(sim.params, sim.X, HDI, seed=seed)
        if hasattr(jaxmix, "fit_svi"):
            svi = jaxmix.fit_svi(
                sim.X, 3, guide="meanfield", prior=jaxmix.Prior(), num_steps=1500, seed=seed
            )
            tables["meanfield_svi"] = jaxmix.predictive_summary(svi, sim.X, HDI, seed=seed)
        for name, table in tables.items():
            inside = table.coverage(sim.X_full) * table.n_entries
            hit, total = counts.get(name, (0.0, 0))
            counts[name] = (hit + inside, total + table.n_entries)
        if seed == CALIBRATION_SEEDS[0]:
            assert tables["mcmc"].sd.mean() >= tables["em_plug_in"].sd.mean()  # wider on average
            print(
                f"\nseed {seed} alone: "
                + ", ".join(f"{k} {v.coverage(sim.X_full):.4f}" for k, v in tables.items())
            )
    coverage = {name: hit / total for name, (hit, total) in counts.items()}
    n_entries = counts["mcmc"][1]
    print(
        f"90% HDI coverage of {n_entries} held-out entries ({len(CALIBRATION_SEEDS)} data sets): "
        + ", ".join(f"{k} {v:.4f}" for k, v in coverage.items())
        + "\nNUTS 1 chain x (300 + 300), n=300, d=20, K=3, per data set (first includes "
        "compilation): "
        + ", ".join(f"fit {a:.1f} s + predictive_summary {b:.1f} s" for a, b in timings)
    )
    assert n_entries >= 6000
    assert abs(coverage["mcmc"] - HDI) <= 0.03
    assert abs(coverage["at_truth"] - HDI) <= 0.02  # the oracle itself
    # the plug-in ignores the parameters' uncertainty: it may under-cover, not by much here
    assert 0.85 <= coverage["em_plug_in"] <= 0.93
    if "meanfield_svi" in coverage:
        assert 0.85 <= coverage["meanfield_svi"] <= 0.95


@pytest.mark.slow
def test_gibbs_interval_coverage_on_data_from_the_model(calibration_data, em_fit):
    """The same calibration with the Gibbs kernel's draws (one chain of 300 after 300 warm-up
    from the same MAP-EM start): 90 % intervals cover 90 % +- 3 % of the ~7000 held-out entries
    of the three data sets."""
    hit, total = 0.0, 0
    for seed in CALIBRATION_SEEDS:
        if seed == CALIBRATION_SEEDS[0]:
            sim, em = calibration_data, em_fit
        else:
            sim = _simulate(seed)
            em = jaxmix.fit_em(sim.X, 3, prior=jaxmix.Prior(), n_init=5, min_var=0.0)
        res = jaxmix.fit_mcmc(
            sim.X, 3, kernel="gibbs", num_chains=1, num_warmup=300, num_samples=300, init=em
        )
        table = jaxmix.predictive_summary(res, sim.X, HDI, num_samples=300, seed=seed)
        hit += table.coverage(sim.X_full) * table.n_entries
        total += table.n_entries
    print(f"\nGibbs: 90% HDI coverage of {total} held-out entries: {hit / total:.4f}")
    assert total >= 6000
    assert abs(hit / total - HDI) <= 0.03


def test_map_svi_result_uses_the_plug_in_predictive(calibration_data):
    if not hasattr(jaxmix, "SVIResult"):
        pytest.skip("jaxmix.SVIResult is not available")
    X = calibration_data.X
    em = jaxmix.fit_em(X[:60], 2, n_init=2)
    fake = jaxmix.SVIResult(
        params=em.params,
        objective=0.0,
        log_likelihood=0.0,
        history=np.zeros(1),
        num_steps=0,
        resp=em.resp,
        guide="map",
    )
    a = jaxmix.predictive_summary(fake, X[:60], num_samples=100, seed=2)
    b = jaxmix.predictive_summary(em._replace(estimation_cov=None), X[:60], num_samples=100, seed=2)
    for name in a._fields:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


def test_estimation_uncertainty_makes_sparse_columns_calibrated():
    # 200 columns with about 15 observed entries each: the plug-in interval ignores that the
    # means and variances were fit to those few entries and under-covers; with the fit's
    # estimation uncertainty the 90 % intervals cover about 90 % of the hidden truth
    rng = np.random.default_rng(3)
    n, d = 100, 200
    truth = rng.normal(3.0, 1.0, d) + rng.normal(0.0, rng.uniform(0.5, 1.5, d), (n, d))
    X = np.where(rng.random((n, d)) < 0.15, truth, np.nan)
    fit = jaxmix.fit_em(X, 1, covariance="diag", min_var=1e-3)
    miss = np.isnan(X)
    covered = {}
    for label, result in [("plug-in", fit._replace(estimation_cov=None)), ("fit", fit)]:
        mean, sd = jaxmix.complete(X, result, return_std=True)
        z = (truth[miss] - mean[miss]) / sd[miss]
        covered[label] = np.mean(np.abs(z) < 1.6448536)
    assert covered["plug-in"] < 0.875
    assert 0.88 < covered["fit"] < 0.92


@pytest.mark.slow
def test_summary_of_sparse_ratings_carries_ids_and_matches_the_dense_path():
    """A SparseRatings (non-contiguous ids) is summarised on its triples: the same table as the
    dense matrix, with the user and item ids as columns."""
    pd = pytest.importorskip("pandas")
    sim = jaxmix.simulate_ratings(40, 6, 2, missing=0.4, noise=0.6, stars=None, seed=4)
    X = sim.X
    r, c = np.nonzero(~np.isnan(X))
    S = jaxmix.sparse_ratings(2 * r + 100, 3 * c + 7, X[r, c])
    em = jaxmix.fit_em(S, 2, min_var=0.01)
    mr, mc = np.nonzero(np.isnan(X))
    dense = jaxmix.predictive_summary(em, X, HDI, num_samples=200)
    by_id = jaxmix.predictive_summary(
        em, S, HDI, num_samples=200, user_ids=2 * mr + 100, item_ids=3 * mc + 7
    )
    every = jaxmix.predictive_summary(em, S, HDI, num_samples=200)  # every missing entry
    for table in (by_id, every):
        np.testing.assert_array_equal(table.row, dense.row)
        np.testing.assert_array_equal(table.column, dense.column)
        np.testing.assert_allclose(table.mean, dense.mean, rtol=1e-5)
        np.testing.assert_allclose(table.sd, dense.sd, rtol=1e-5)
        np.testing.assert_array_equal(table.user_id, 2 * mr + 100)
        np.testing.assert_array_equal(table.item_id, 3 * mc + 7)
        assert np.all((table.lower <= table.mean) & (table.mean <= table.upper))
    assert dense.user_id is None and dense.item_id is None
    frame = by_id.to_pandas()
    assert list(frame.columns)[:2] == ["user_id", "item_id"]
    assert list(frame.columns)[2:] == ["row", "column", "mean", "sd", "lower", "upper"]
    assert isinstance(frame, pd.DataFrame) and len(frame) == mr.size
    assert by_id.to_records()["user_id"].tolist() == (2 * mr + 100).tolist()
    assert by_id.format(max_rows=1).split()[:2] == ["user", "item"]
    with pytest.raises(ValueError, match="positions=True"):
        jaxmix.predictive_summary(em, S, entries=(mr, mc))
    rated = rf"entry \(user {2 * r[0] + 100}, item {3 * c[0] + 7}\) is observed"
    with pytest.raises(ValueError, match=rated):
        jaxmix.predictive_summary(em, S, user_ids=[2 * r[0] + 100], item_ids=[3 * c[0] + 7])


@pytest.mark.filterwarnings(
    "ignore:Passing a dict or None as alias_mapping to normalize_kwargs:DeprecationWarning"
)
def test_plot_ppc_compares_the_observed_entries_with_their_replicates(calibration_data, mcmc_fit):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from jaxmix.posterior.diagnostics import import_arviz

    az = import_arviz()
    X = calibration_data.X
    res, _ = mcmc_fit
    idata = jaxmix.to_inference_data(res, X, seed=5)
    pp = idata.posterior_predictive
    rows, cols = np.nonzero(~np.isnan(X))
    assert pp["x"].dims == ("chain", "draw", "observed_entry")
    np.testing.assert_array_equal(pp["observed_row"].values, rows)
    np.testing.assert_array_equal(pp["observed_column"].values, cols)
    # the replicates are the model's: per entry, centred on the observed value's row-wise
    # prediction, so pooled over the entries their mean and spread are the data's
    rep = pp["x"].values.reshape(-1, rows.size)
    observed = X[rows, cols]
    assert rep.mean() == pytest.approx(observed.mean(), abs=3 * observed.std() / np.sqrt(rows.size))
    assert rep.std() == pytest.approx(observed.std(), rel=0.05)
    entry_mean = rep.mean(axis=0)  # each replicate follows its own entry, not the global mean
    assert np.corrcoef(entry_mean, observed)[0, 1] > 0.5
    ax = az.plot_ppc(idata, num_pp_samples=20, random_seed=0)
    lines = np.ravel(ax)[0].get_lines()
    assert len(lines) >= 20 + 2  # the replicates, the observed entries and the predictive mean
    plt.close("all")

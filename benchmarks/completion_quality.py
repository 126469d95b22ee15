"""Benchmark: how well jaxmix completes held-out ratings, against strong peers.

Protocol (the project's): hide 10 % of the **observed** entries (``jaxmix.holdout_split``:
``numpy.random.default_rng(seed)`` over the row-major flat indices of the observed entries), fit
on the rest, report on the hidden ones the RMSE of the predictive mean, the share inside the 90 %
predictive interval (jaxmix's ``predictive_summary`` highest-density interval; the peers give no
interval) and the fit time. Every choice (K, rank) is made on the training entries only
(``select_k(..., criterion="heldout")`` splits the *training* entries again).

Data sets:

* ``course-123``, ``course-456``: the course's 1200 x 1200 Netflix subset (77 % observed),
  hold-out seeds 123 and 456 (needs ``--data`` or ``JAXMIX_REFERENCE_DATA``);
* ``course-sparse``: the same matrix keeping 5 % of each row's observed entries (seed 0; about 46
  ratings per user, many movies rated a handful of times), hold-out seed 123;
* ``simulated``: ``simulate_sparse_ratings`` (power-law users and items, 2 % observed), hold-out
  seed 123.

Methods: jaxmix's user+item bias baseline (``mean_baseline(X, "bias")``); MAP-EM for each
covariance family with K chosen on held-out training entries (the factor family also its rank),
and "jaxmix selected", the family whose choice has the best held-out log predictive density (its
time is that of every family's selection);
and the peers, run in a separate virtual environment (``--peers-python``, never a dependency of
jaxmix) with their documented defaults: Surprise's ``SVD``, ``BaselineOnly`` and ``KNNBaseline``,
fancyimpute's ``SoftImpute`` and scikit-learn's ``KNNImputer``. Set the peers up with::

    python -m venv peers && peers/bin/pip install scikit-surprise scikit-learn cvxpy six
    peers/bin/pip install --no-deps fancyimpute knnimpute

Usage::

    python benchmarks/completion_quality.py --peers-python peers/bin/python
    python benchmarks/completion_quality.py --datasets simulated --quick   # a quick check
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

DATA_ENV = "JAXMIX_REFERENCE_DATA"
DATASETS = ("course-123", "course-456", "course-sparse", "simulated")
Z90 = 1.6448536269514722
PEERS = (
    "Surprise SVD",
    "Surprise BaselineOnly",
    "Surprise KNNBaseline",
    "SoftImpute",
    "KNNImputer",
)


# ----------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------


def sparsify(X: np.ndarray, keep: float, seed: int) -> np.ndarray:
    """Keep ``keep`` of each row's observed entries (at least one), chosen at random."""
    rng = np.random.default_rng(seed)
    out = np.full_like(X, np.nan)
    for u in range(X.shape[0]):
        cols = np.flatnonzero(~np.isnan(X[u]))
        if cols.size:
            m = max(1, int(round(keep * cols.size)))
            pick = rng.choice(cols, size=m, replace=False)
            out[u, pick] = X[u, pick]
    return out


def load_dataset(name: str, data_dir: Path | None, quick: bool) -> tuple[np.ndarray, int]:
    """The data set's matrix (``NaN`` = missing) and its hold-out seed."""
    import jaxmix

    if name == "simulated":
        n_users, n_items = (1500, 500) if quick else (6000, 2000)
        sim = jaxmix.simulate_sparse_ratings(
            n_users, n_items, nnz=int(0.02 * n_users * n_items), K=4, seed=0
        )
        return sim.S.to_dense(), 123
    if data_dir is None:
        raise SystemExit(f"{name} needs the course data: pass --data or set {DATA_ENV}")
    X = jaxmix.load_ratings(data_dir / "netflix_incomplete.txt", missing=0)
    if quick:
        X = X[:300, :300]
    if name == "course-sparse":
        return sparsify(X, 0.05, seed=0), 123
    return X, int(name.split("-")[1])


# ----------------------------------------------------------------------------------------------
# jaxmix
# ----------------------------------------------------------------------------------------------


def score(truth: np.ndarray, mean: np.ndarray, lower=None, upper=None) -> dict[str, float]:
    out = {"rmse": float(np.sqrt(np.mean((mean - truth) ** 2)))}
    if lower is not None:
        out["coverage90"] = float(np.mean((truth >= lower) & (truth <= upper)))
    return out


def run_jaxmix(X: np.ndarray, seed: int, args: argparse.Namespace) -> list[dict[str, Any]]:
    import jaxmix

    Xtr, test = jaxmix.holdout_split(X, 0.1, seed=seed)
    rows, cols = np.nonzero(test)
    truth = X[rows, cols]
    results = []

    t = time.perf_counter()
    pred = jaxmix.mean_baseline(Xtr, "bias")[rows, cols]
    results.append({"method": "jaxmix bias baseline", "time": time.perf_counter() - t})
    results[-1].update(score(truth, pred))

    prior = jaxmix.Prior()
    dense_obs = np.mean(~np.isnan(Xtr)) > 0.3
    configs = [
        ("spherical", args.ks, None),
        ("diag", args.ks, None),
        ("shared", args.ks, None),
        ("factor", args.factor_ks, args.ranks if dense_obs else args.sparse_ranks),
    ]
    # the factor family's loading scale chosen on held-out training entries too, when several
    # multiples of the training entries' spread are given (one: Prior()'s default, sqrt(v) / 3)
    spread = float(np.sqrt(np.nanmean((Xtr - np.nanmean(Xtr, axis=0)) ** 2)))
    scales = args.loading_scales
    for family, ks, ranks in configs:
        if family not in args.families:
            continue
        candidates = prior
        if family == "factor" and len(scales) > 1:
            candidates = [jaxmix.Prior(loading_sd=c * spread) for c in scales]
        t = time.perf_counter()
        sel = jaxmix.select_k(
            Xtr, ks, covariance=family, ranks=ranks, criterion="heldout", prior=candidates,
            n_init=args.n_init, min_var=args.min_var, seed=0, max_iter=args.max_iter,
        )  # fmt: skip
        elapsed = time.perf_counter() - t
        table = jaxmix.predictive_summary(
            sel.best, Xtr, 0.9, entries=(rows, cols), num_samples=args.num_samples
        )
        label = f"jaxmix {family}, K={sel.best_k}" + (
            f", rank={sel.best_rank}" if family == "factor" else ""
        )
        if candidates is not prior:
            label += f", loading_sd={scales[int(sel.prior_index[sel.best_index])]:g} sqrt(v)"
        entry = {
            "method": label,
            "time": elapsed,
            "selection": sel.format(),
            "lpd": float(sel.lpd[sel.best_index]),
        }
        entry.update(score(truth, table.mean, table.lower, table.upper))
        results.append(entry)
        if args.verbose:
            print(sel.format(), flush=True)
    # The held-out selection over every family: the family whose winner has the highest
    # held-out log predictive density on the training split (no test entry is looked at).
    fitted = [r for r in results if "lpd" in r]
    if fitted:
        best = max(fitted, key=lambda r: r["lpd"])
        chosen = dict(best, method="jaxmix selected: " + best["method"].removeprefix("jaxmix "))
        chosen["time"] = sum(r["time"] for r in fitted)
        results.insert(1, chosen)
    return results


# ----------------------------------------------------------------------------------------------
# Peers (run inside the peers' virtual environment)
# ----------------------------------------------------------------------------------------------


def peer_worker(path: str, out: str) -> None:
    """Fit every peer on the training entries in ``path`` (an .npz) and write their RMSEs."""
    import warnings

    warnings.filterwarnings("ignore")
    data = np.load(path)
    X, rows, cols, truth = data["X"], data["rows"], data["cols"], data["truth"]
    lo, hi = float(np.nanmin(X)), float(np.nanmax(X))
    results = []

    def record(name, fn):
        t = time.perf_counter()
        try:
            pred = np.asarray(fn(), np.float64)
            entry = {"method": name, "time": time.perf_counter() - t}
            entry.update(score(truth, pred))
        except Exception as err:  # a peer that fails is reported, not fatal
            entry = {"method": name, "error": f"{type(err).__name__}: {err}"}
        results.append(entry)
        print(json.dumps(entry), flush=True)

    from surprise import SVD, BaselineOnly, Dataset, KNNBaseline, Reader

    u, i = np.nonzero(~np.isnan(X))
    import pandas as pd

    frame = pd.DataFrame({"u": u, "i": i, "r": X[u, i]})
    trainset = Dataset.load_from_df(frame, Reader(rating_scale=(lo, hi))).build_full_trainset()

    def surprise(algo):
        def fit():
            algo.fit(trainset)
            return [algo.predict(int(a), int(b)).est for a, b in zip(rows, cols, strict=True)]

        return fit

    record("Surprise SVD", surprise(SVD(random_state=0)))
    record("Surprise BaselineOnly", surprise(BaselineOnly(verbose=False)))
    record("Surprise KNNBaseline", surprise(KNNBaseline(verbose=False)))

    def soft_impute():
        from fancyimpute import SoftImpute

        filled = SoftImpute(verbose=False).fit_transform(X)
        return filled[rows, cols]

    def knn_imputer():
        from sklearn.impute import KNNImputer

        keep = ~np.all(np.isnan(X), axis=0)  # KNNImputer drops empty columns
        filled = np.full(X.shape, np.nanmean(X))
        filled[:, keep] = KNNImputer().fit_transform(X[:, keep])
        return filled[rows, cols]

    record("SoftImpute", soft_impute)
    record("KNNImputer", knn_imputer)
    with open(out, "w") as fh:
        json.dump(results, fh)


def run_peers(X: np.ndarray, seed: int, python: str) -> list[dict[str, Any]]:
    import jaxmix

    Xtr, test = jaxmix.holdout_split(X, 0.1, seed=seed)
    rows, cols = np.nonzero(test)
    with tempfile.TemporaryDirectory() as tmp:
        path, out = os.path.join(tmp, "data.npz"), os.path.join(tmp, "out.json")
        np.savez(path, X=Xtr, rows=rows, cols=cols, truth=X[rows, cols])
        subprocess.run([python, __file__, "--peer-worker", path, out], check=True)
        with open(out) as fh:
            return json.load(fh)


# ----------------------------------------------------------------------------------------------
# Main
# ----------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=os.environ.get(DATA_ENV))
    p.add_argument("--datasets", nargs="+", choices=DATASETS, default=list(DATASETS))
    p.add_argument("--peers-python", help="python of the peers' virtual environment")
    p.add_argument("--families", nargs="+", default=["spherical", "diag", "shared", "factor"])
    p.add_argument("--ks", type=int, nargs="+", default=[1, 4, 12])
    p.add_argument("--factor-ks", type=int, nargs="+", default=[1, 2])
    p.add_argument("--ranks", type=int, nargs="+", default=[8, 24])
    p.add_argument("--sparse-ranks", type=int, nargs="+", default=[0, 1, 2, 4])
    p.add_argument(
        "--loading-scales",
        type=float,
        nargs="+",
        default=[1 / 3],
        help="factor family: loading prior scales to choose among on held-out training entries, "
        "as multiples of the training entries' sd around their column means (default: 1/3, "
        "Prior()'s own)",
    )
    p.add_argument("--n-init", type=int, default=1)
    p.add_argument("--min-var", type=float, default=0.01)
    p.add_argument("--max-iter", type=int, default=300)
    p.add_argument("--num-samples", type=int, default=400)
    p.add_argument("--quick", action="store_true", help="small data and grids (a smoke test)")
    p.add_argument("--json", type=Path, help="write every result here")
    p.add_argument("--verbose", action="store_true", help="print the selection tables")
    args = p.parse_args(argv)
    if args.quick:
        args.ks, args.factor_ks, args.ranks, args.sparse_ranks = [1, 2], [1], [2], [2]
    if args.data is not None:
        args.data = Path(args.data)
    return args


def main(argv: list[str] | None = None) -> None:
    if argv is None and len(sys.argv) == 4 and sys.argv[1] == "--peer-worker":
        peer_worker(sys.argv[2], sys.argv[3])
        return
    args = parse_args(argv)
    everything = {}
    for name in args.datasets:
        X, seed = load_dataset(name, args.data, args.quick)
        observed = np.mean(~np.isnan(X))
        print(f"\n== {name}: {X.shape[0]} x {X.shape[1]}, {observed:.1%} observed, "
              f"hold-out seed {seed}", flush=True)  # fmt: skip
        results = run_jaxmix(X, seed, args)
        if args.peers_python:
            results += run_peers(X, seed, args.peers_python)
        bias = next(r["rmse"] for r in results if r["method"] == "jaxmix bias baseline")
        print(f"{'method':<36} {'RMSE':>7} {'vs bias':>8} {'cover90':>8} {'fit s':>8}")
        for r in results:
            if "error" in r:
                print(f"{r['method']:<36} failed: {r['error']}")
                continue
            cover = f"{r['coverage90']:8.3f}" if "coverage90" in r else f"{'-':>8}"
            print(
                f"{r['method']:<36} {r['rmse']:7.4f} {r['rmse'] / bias - 1:+8.1%} {cover} "
                f"{r['time']:8.1f}"
            )
        everything[name] = results
    if args.json:
        args.json.write_text(json.dumps(everything, indent=1))


if __name__ == "__main__":
    main()

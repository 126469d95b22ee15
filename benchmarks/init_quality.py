"""Benchmark: how often the default start reaches the global optimum, against scikit-learn.

Over a grid of simulated mixtures (``--K``, ``--n``, ``--missing``; ``d = --d`` columns,
``--datasets`` draws each), well separated: centre coordinates ``N(0, sep^2)``, per-cluster noise
sd in ``[0.5, 1.5]``, weights from ``Dirichlet(5)``. For every ``n_init`` in ``--n-init``:

* **complete data**: ``jaxmix.fit_em(X, K, n_init=...)`` (spherical, the default start, floor
  ``--min-var``, ``tol=1e-6``) against scikit-learn's ``GaussianMixture`` (``covariance_type=
  "spherical"``, ``n_init`` the same, ``tol=1e-6``, ``reg_covar=--min-var``, its default
  k-means start). A fit *hits* when its log-likelihood per row is within ``--within`` (1e-3) of
  the dataset's optimum, the best fit of either tool at any ``n_init``; the summary gives the
  share of hits of each, both median wall times, and the share of jaxmix fits within
  ``--within`` of scikit-learn's at the same ``n_init`` or better (``at_sklearn``).
* **missing data** (scikit-learn does not take ``NaN``): jaxmix against the best of
  ``--ref-restarts`` (20) jaxmix restarts (and of the other fits), which stands in for the
  optimum.

Every fit is timed wall clock, compilation included for jaxmix's first fit of a shape (run with
``--warm`` to time a second fit of the same shape instead). scikit-learn is used here only; the
package never imports it.

Usage (``PYTHONPATH=.`` in a checkout, so that its ``jaxmix`` is the one measured)::

    python benchmarks/init_quality.py                              # the full grid (slow)
    python benchmarks/init_quality.py --K 8 --n 100000 --missing 0 --datasets 3
    python benchmarks/init_quality.py --K 2 --n 300 --d 4 --datasets 1 --n-init 1  # tiny
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from typing import Any

import numpy as np


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--K", nargs="+", type=int, default=[4, 8, 16], help="components")
    parser.add_argument("--n", nargs="+", type=int, default=[10_000, 100_000], help="rows")
    parser.add_argument("--d", type=int, default=20, help="columns (20)")
    parser.add_argument(
        "--missing", nargs="+", type=float, default=[0.0, 0.3], help="share of entries missing"
    )
    parser.add_argument("--n-init", nargs="+", type=int, default=[1, 3], help="restarts")
    parser.add_argument("--datasets", type=int, default=3, help="simulated draws per cell (3)")
    parser.add_argument("--sep", type=float, default=2.0, help="sd of the centre coordinates")
    parser.add_argument("--min-var", type=float, default=1e-3, help="variance floor (1e-3)")
    parser.add_argument("--within", type=float, default=1e-3, help="hit: LL/row within this")
    parser.add_argument("--ref-restarts", type=int, default=20, help="missing-data reference")
    parser.add_argument("--init", default="kmeans++", help="jaxmix start (kmeans++)")
    parser.add_argument("--warm", action="store_true", help="time a second fit of each shape")
    parser.add_argument("--x64", action="store_true", help="jaxmix in float64 (default float32)")
    parser.add_argument("--json", help="write the rows to this file")
    return parser.parse_args(argv)


def simulate(n: int, d: int, K: int, missing: float, sep: float, seed: int) -> np.ndarray:
    """A well-separated spherical mixture with a share ``missing`` of entries set to NaN."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, sep, size=(K, d))
    sd = rng.uniform(0.5, 1.5, size=K)
    labels = rng.choice(K, size=n, p=rng.dirichlet(np.full(K, 5.0)))
    X = centres[labels] + sd[labels, None] * rng.standard_normal((n, d))
    X[rng.random((n, d)) < missing] = np.nan
    return X


def timed(fn: Any, warm: bool) -> tuple[Any, float]:
    """``fn()`` and its wall time (of a second call with ``warm``)."""
    if warm:
        fn()
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def jaxmix_fit(X: np.ndarray, K: int, n_init: int, seed: int, args: argparse.Namespace) -> Any:
    """jaxmix's fit with the benchmark's options."""
    import jaxmix

    return jaxmix.fit_em(
        X,
        K,
        n_init=n_init,
        seed=seed,
        init=args.init,
        covariance="spherical",  # scikit-learn's covariance_type below
        tol=1e-6,
        min_var=args.min_var,
    )


def sklearn_ll(X: np.ndarray, K: int, n_init: int, seed: int, args: argparse.Namespace) -> float:
    """scikit-learn's log-likelihood per row."""
    from sklearn.mixture import GaussianMixture

    gm = GaussianMixture(
        K,
        covariance_type="spherical",
        n_init=n_init,
        tol=1e-6,
        max_iter=1000,
        reg_covar=args.min_var,
        random_state=seed,
    ).fit(X)
    return float(gm.score(X))


def run_cell(K: int, n: int, missing: float, args: argparse.Namespace) -> list[dict]:
    """Every dataset and ``n_init`` of one grid cell."""
    rows = []
    for ds in range(args.datasets):
        X = simulate(n, args.d, K, missing, args.sep, seed=1000 * K + ds)
        lls = []
        if missing > 0:
            lls.append(jaxmix_fit(X, K, args.ref_restarts, 10_000, args).log_likelihood / n)
        cell = []
        for n_init in args.n_init:
            res, t_jax = timed(
                lambda X=X, n_init=n_init, ds=ds: jaxmix_fit(X, K, n_init, ds, args), args.warm
            )
            row = dict(K=K, n=n, missing=missing, dataset=ds, n_init=n_init)
            row.update(ll_jaxmix=res.log_likelihood / n, time_jaxmix=t_jax)
            lls.append(row["ll_jaxmix"])
            if missing == 0:
                ll_sk, t_sk = timed(
                    lambda X=X, n_init=n_init, ds=ds: sklearn_ll(X, K, n_init, ds, args), args.warm
                )
                row.update(ll_sklearn=ll_sk, time_sklearn=t_sk)
                lls.append(ll_sk)
            cell.append(row)
        # the optimum: the best fit of this dataset by either tool at any n_init (and, with
        # missing entries, the best of ref_restarts jaxmix restarts)
        best = max(lls)
        for row in cell:
            row["best"] = best
            row["hit_jaxmix"] = bool(row["ll_jaxmix"] >= best - args.within)
            if missing == 0:
                row["hit_sklearn"] = bool(row["ll_sklearn"] >= best - args.within)
                # the measure: at least as good as scikit-learn at the same n_init
                row["at_sklearn"] = bool(row["ll_jaxmix"] >= row["ll_sklearn"] - args.within)
            print(json.dumps(row), flush=True)
        rows += cell
    return rows


def summary(rows: list[dict], args: argparse.Namespace) -> list[str]:
    """One line per (missing, n_init): hit shares and median times."""
    lines = []
    keys = sorted({(r["missing"], r["n_init"]) for r in rows})
    for missing, n_init in keys:
        sel = [r for r in rows if r["missing"] == missing and r["n_init"] == n_init]
        hit = np.mean([r["hit_jaxmix"] for r in sel])
        line = (
            f"missing={missing:.0%} n_init={n_init}: jaxmix hits {hit:.0%} of {len(sel)} "
            f"(median {np.median([r['time_jaxmix'] for r in sel]):.2f} s)"
        )
        if missing == 0:
            hit_sk = np.mean([r["hit_sklearn"] for r in sel])
            t_sk = np.median([r["time_sklearn"] for r in sel])
            at_sk = np.mean([r["at_sklearn"] for r in sel])
            line += f", scikit-learn hits {hit_sk:.0%} (median {t_sk:.2f} s); "
            line += f"jaxmix within {args.within:g} of scikit-learn or above: {at_sk:.0%}"
        else:
            line += f" of the best of {args.ref_restarts} jaxmix restarts"
        lines.append(line)
    return lines


def main(args: argparse.Namespace) -> list[dict]:
    """Run the grid; print every fit as JSON and a summary."""
    import jaxmix

    if args.x64:
        import jax

        jax.config.update("jax_enable_x64", True)
    # the package measured (a checkout needs PYTHONPATH=. to be measured rather than an install)
    print(f"jaxmix {jaxmix.__version__} from {jaxmix.__file__}", flush=True)
    rows = []
    for missing in args.missing:
        for K in args.K:
            for n in args.n:
                rows += run_cell(K, n, missing, args)
    for line in summary(rows, args):
        print(line)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return rows


if __name__ == "__main__":
    main(parse_args())

"""Benchmark: dense EM against sparse EM by density, and the crossover used by ``method="auto"``.

At the course size (1200 x 1200 users x movies, K = 12, float32) the script keeps a random share
``rho`` of the observed entries of the course's Netflix matrix (or of a simulated 1200 x 1200
matrix when the course data are not available) for each density in ``--densities``, starts all
paths from the same ``random_rows`` parameters and times ``--iters`` EM iterations (stopping rule
disabled) of:

* ``dense``: the dense path (matrix products over all ``n d`` entries): cost independent of
  ``rho``;
* ``triples``: the sparse path with every row going through the triples (gather / segment sum /
  scatter per observed entry): cost proportional to ``rho``;
* ``sparse``: the sparse path as ``fit_em`` runs it (rows with at least 25 % observed entries go
  through matrix products, the rest through the triples).

Each path is compiled ahead of time; the time is the best of ``--repeats`` runs (wall clock; the
CPU time is printed too, as the machine may be shared). The *crossover density* is where the
``triples`` time meets the ``dense`` time (log-linear interpolation between the two measured
densities around it): below it the sparse path is faster. ``jaxmix.fit_em(method="auto")`` uses it
(``SPARSE_CROSSOVER_DENSITY`` in :mod:`jaxmix.data`).

Usage::

    python benchmarks/dense_vs_sparse.py --data /path/to/course     # or JAXMIX_REFERENCE_DATA
    python benchmarks/dense_vs_sparse.py --rows 120 --cols 80 --densities 0.05 0.5 --iters 3
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

DENSITIES = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4, 1.0)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data",
        type=Path,
        default=os.environ.get("JAXMIX_REFERENCE_DATA"),
        help="folder with netflix_incomplete.txt (default $JAXMIX_REFERENCE_DATA; else simulated)",
    )
    parser.add_argument("--rows", type=int, default=1200, help="rows (1200)")
    parser.add_argument("--cols", type=int, default=1200, help="columns (1200)")
    parser.add_argument("--K", type=int, default=12, help="components (12)")
    parser.add_argument(
        "--densities",
        nargs="+",
        type=float,
        default=list(DENSITIES),
        help="share of the matrix's observed entries kept (1.0 = all of them)",
    )
    parser.add_argument("--iters", type=int, default=20, help="timed EM iterations (20)")
    parser.add_argument("--repeats", type=int, default=5, help="best of (5)")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    return parser.parse_args(argv)


def load_matrix(args: argparse.Namespace) -> tuple[np.ndarray, str]:
    """The course matrix (leading block) or a simulated one of the same size."""
    import jaxmix

    path = Path(args.data) / "netflix_incomplete.txt" if args.data else None
    if path is not None and path.is_file():
        X = jaxmix.load_ratings(path)[: args.rows, : args.cols]
        return X, f"course Netflix subset {X.shape}"
    sim = jaxmix.simulate_ratings(args.rows, args.cols, 12, missing=0.23, seed=0)
    return sim.X, f"simulated {sim.X.shape}"


def thin(X: np.ndarray, keep: float, seed: int = 0) -> np.ndarray:
    """Keep a random share ``keep`` of the observed entries (at least one per row)."""
    if keep >= 1.0:
        return X
    rng = np.random.default_rng(seed)
    observed = ~np.isnan(X)
    drop = observed & (rng.random(X.shape) >= keep)
    first = np.argmax(observed, axis=1)
    drop[np.arange(X.shape[0]), first] = False
    out = X.copy()
    out[drop] = np.nan
    return out


def _time(fn: Any, args: tuple, repeats: int) -> tuple[float, float, int]:
    import jax

    best, best_cpu, it = np.inf, np.inf, 1
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        out = fn(*args)
        jax.block_until_ready(out)
        it = int(np.asarray(out.n_iter)[0])
        best = min(best, (time.perf_counter() - t) / it)
        best_cpu = min(best_cpu, (time.process_time() - c) / it)
    return best, best_cpu, it


def time_paths(X: np.ndarray, K: int, iters: int, repeats: int) -> dict[str, Any]:
    """Seconds per EM iteration of the three paths on ``X`` (float32)."""
    import jax.numpy as jnp

    from jaxmix.data import Standardizer, as_data
    from jaxmix.data.triples import DENSE_ROW_DENSITY
    from jaxmix.inference.em import EMConstants, run_restarts
    from jaxmix.inference.init import init_params
    from jaxmix.models.families import SPHERICAL
    from jaxmix.models.mixture import as_device, to_internal

    f32 = np.float32
    dense_layout = as_data(X, method="dense")
    std = Standardizer.fit(dense_layout.summary())
    start = init_params("random_rows", dense_layout, K, n_init=1, seed=0)
    params = as_device(to_internal(start, std), f32)
    consts = EMConstants(
        tol=jnp.asarray(-1.0, f32),  # the stopping rule never fires
        min_var=jnp.asarray(0.25 / std.scale**2, f32),
        ll_shift=jnp.asarray(std.log_likelihood_shift(dense_layout.nnz), f32),
        prior=None,
        prior_shift=jnp.asarray(0.0, f32),
    )
    nnz = dense_layout.nnz
    out: dict[str, Any] = {"density": nnz / X.size, "nnz": nnz}
    kw = {"family": SPHERICAL, "max_iter": iters}

    data = dense_layout.device(std, f32)
    args = (params, data, consts)
    fn = run_restarts.lower(*args, **kw).compile()
    out["dense"], out["dense_cpu"], _ = _time(fn, args, repeats)

    triples = as_data(X, method="sparse")
    for name, threshold in (("triples", None), ("sparse", DENSE_ROW_DENSITY)):
        data = triples.device(std, f32, dense_row_density=threshold)
        args = (params, data, consts)
        fn = run_restarts.lower(*args, **kw).compile()
        out[name], out[f"{name}_cpu"], _ = _time(fn, args, repeats)
    return out


def crossover(rows: list[dict[str, Any]], key: str = "triples") -> float | None:
    """Density where ``key`` time equals the dense time (log-linear interpolation)."""
    pts = sorted((r["density"], np.log(r[key] / r["dense"])) for r in rows)
    for (d0, g0), (d1, g1) in zip(pts, pts[1:], strict=False):
        if g0 <= 0.0 < g1:
            t = -g0 / (g1 - g0)
            return float(np.exp(np.log(d0) + t * (np.log(d1) - np.log(d0))))
    if pts and pts[0][1] > 0:
        return 0.0  # slower even at the lowest density measured
    return None  # faster at every density measured


def main(args: argparse.Namespace) -> dict[str, Any]:
    """Time the three paths at every density and print the table and the crossover."""
    X, source = load_matrix(args)
    print(f"{source}, K = {args.K}, float32, {args.iters} iterations, best of {args.repeats}")
    print(
        f"{'density':>8} {'nnz':>9} {'dense ms':>9} {'triples ms':>10} {'sparse ms':>9} "
        f"{'triples/dense':>13} {'sparse/dense':>12}   (cpu ms: dense triples sparse)"
    )
    rows = []
    for keep in sorted(args.densities):
        r = time_paths(thin(X, keep), args.K, args.iters, args.repeats)
        rows.append(r)
        print(
            f"{r['density']:>8.4f} {r['nnz']:>9} {r['dense'] * 1e3:>9.2f} "
            f"{r['triples'] * 1e3:>10.2f} {r['sparse'] * 1e3:>9.2f} "
            f"{r['triples'] / r['dense']:>13.2f} {r['sparse'] / r['dense']:>12.2f}   "
            f"({r['dense_cpu'] * 1e3:.2f} {r['triples_cpu'] * 1e3:.2f} "
            f"{r['sparse_cpu'] * 1e3:.2f})",
            flush=True,
        )
    cross = crossover(rows)
    cross_hybrid = crossover(rows, "sparse")
    print(f"crossover density (triples = dense): {cross}")
    print(f"crossover density (sparse path as fit_em runs it = dense): {cross_hybrid}")
    result = {"source": source, "K": args.K, "rows": rows, "crossover": cross}
    result["crossover_sparse_path"] = cross_hybrid
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main(parse_args())

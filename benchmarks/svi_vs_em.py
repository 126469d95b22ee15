"""Benchmark: how long SVI-MAP takes to reach EM's objective on the Netflix course data.

Both optimisers maximise the same objective (log-likelihood + log-prior of
:func:`jaxmix.mixture_model`) from the same start: the reference initialisation ``random_rows``
with seed 1 (the course's best seed) by default, K = 12, float64. EM (:func:`jaxmix.fit_em`, its
default ``tol=1e-6``) runs to convergence; its objective at its final parameters is the target.
SVI-MAP (:func:`jaxmix.fit_svi`, ``guide="map"``: ``--steps`` Adam steps, then up to ``--polish``
L-BFGS iterations, ``optax.lbfgs`` with its zoom line search, on the same ``TraceEnum_ELBO`` loss)
records its objective at every step (the point-mass loss is exactly minus the objective), and the
script reports the first step at which it comes within ``--rtol`` (1e-4) relative of the target,
and the time until then: the compiled run's time apportioned by loss evaluations (every Adam step
and every line-search trial evaluates the loss and its gradient once; they cost the same). With the
default 400 Adam steps the target is reached during the Adam phase (step 145); ``--steps 50
--polish 1000`` leaves the work to L-BFGS (which reached the target after 557 evaluations). If
SVI never gets there, the script says how close it came and in how long. Compile times are
measured apart (EM: its first call minus the median of the repeats; SVI: ahead-of-time
compilation) and left out of the ratio.

The problem. By default both use the default :class:`jaxmix.Prior` (MAP) and no variance floor
(EM's ``min_var=0``), so they solve exactly the same problem. The reference's maximum-likelihood
fit is not comparable: its answer is pinned at EM's floor ``min_var=0.25`` (7 of 12 variances
sit at it), which SVI does not have, and without the floor the likelihood is unbounded on these
integer ratings (EM collapses 6 variances to 0; an unfloored gradient method climbs the same
spikes). ``--prior none --min-var 0.25`` runs that comparison anyway, for the record.

Usage::

    python benchmarks/svi_vs_em.py --data /path/to/course         # or set JAXMIX_REFERENCE_DATA
    python benchmarks/svi_vs_em.py --rows 300 --cols 100 --K 4     # a quick check
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

DATA_ENV = "JAXMIX_REFERENCE_DATA"
DATA_FILE = "netflix_incomplete.txt"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line.

    Args:
        argv: Arguments (default ``sys.argv[1:]``).

    Returns:
        The parsed options.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data",
        type=Path,
        default=os.environ.get(DATA_ENV),
        help=f"folder holding {DATA_FILE} (default: ${DATA_ENV})",
    )
    parser.add_argument("--K", type=int, default=12, help="number of components (default 12)")
    parser.add_argument(
        "--init", choices=("random_rows", "kmeans++"), default="random_rows", help="start method"
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the start (default 1)")
    parser.add_argument(
        "--prior", choices=("default", "none"), default="default", help="MAP or maximum likelihood"
    )
    parser.add_argument("--min-var", type=float, default=0.0, help="EM's variance floor (0)")
    parser.add_argument("--tol", type=float, default=1e-6, help="EM's tolerance (1e-6)")
    parser.add_argument("--steps", type=int, default=400, help="SVI Adam steps (400)")
    parser.add_argument("--lr", type=float, default=0.05, help="Adam step size (0.05)")
    parser.add_argument("--polish", type=int, default=200, help="max L-BFGS iterations (200)")
    parser.add_argument("--rtol", type=float, default=1e-4, help="target relative gap (1e-4)")
    parser.add_argument("--repeats", type=int, default=5, help="timed EM repeats (5)")
    parser.add_argument("--rows", type=int, default=None, help="use only the first ROWS rows")
    parser.add_argument("--cols", type=int, default=None, help="use only the first COLS columns")
    parser.add_argument("--float32", action="store_true", help="compute in float32 (default 64)")
    return parser.parse_args(argv)


def load_data(data: Path | None, rows: int | None, cols: int | None) -> np.ndarray:
    """The Netflix matrix (``NaN`` = missing), optionally a leading sub-block without empty rows.

    Raises:
        SystemExit: The data folder or file is missing.
    """
    import jaxmix

    path = Path(data) / DATA_FILE if data else None
    if path is None or not path.is_file():
        raise SystemExit(
            f"svi_vs_em: cannot find {DATA_FILE}; pass --data DIR or set {DATA_ENV} to the folder "
            "holding the course data"
        )
    X = jaxmix.load_ratings(path)[:rows, :cols]
    return X[~np.isnan(X).all(axis=1)]


def first_within(objectives: np.ndarray, target: float, rtol: float) -> int | None:
    """Index of the first objective within ``rtol`` relative of ``target`` (or above it)."""
    hit = np.flatnonzero((target - objectives) <= rtol * abs(target))
    return int(hit[0]) if hit.size else None


def main(args: argparse.Namespace) -> dict[str, Any]:
    """Run EM and SVI-MAP from the same start and print the times.

    Args:
        args: Options from :func:`parse_args`.

    Returns:
        The measured numbers (seconds), including ``svi_time_to_target`` (``None`` when SVI did
        not get within ``rtol``) and ``ratio`` (that time over EM's run time).
    """
    import jax

    jax.config.update("jax_enable_x64", not args.float32)
    import jaxmix
    from jaxmix.data import as_data
    from jaxmix.inference.init import init_params

    X = load_data(args.data, args.rows, args.cols)
    observed = ~np.isnan(X)
    n, d = X.shape
    K = args.K
    prior = jaxmix.Prior().resolve(X) if args.prior == "default" else None
    start = init_params(args.init, as_data(X), K, n_init=1, seed=args.seed, min_var=args.min_var)
    start = jax.tree.map(lambda a: a[0], start)
    print(
        f"jax {jax.__version__} on {jax.devices()[0].platform} ({os.cpu_count()} CPUs), "
        f"{'float32' if args.float32 else 'float64'}"
    )
    print(
        f"data: {n} x {d}, {1 - observed.mean():.1%} missing; K={K}, start {args.init} seed "
        f"{args.seed}, prior: {args.prior}, EM min_var={args.min_var}, tol={args.tol}"
    )

    def run_em() -> Any:
        return jaxmix.fit_em(X, K, init=start, prior=prior, min_var=args.min_var, tol=args.tol)

    begin = time.perf_counter()
    run_em()
    em_first = time.perf_counter() - begin
    times = []
    for _ in range(args.repeats):
        begin = time.perf_counter()
        em = run_em()
        times.append(time.perf_counter() - begin)
    em_time = statistics.median(times)
    target = jaxmix.log_objective(X, em.params, prior=prior)
    em_hit = first_within(em.history, em.history[-1], args.rtol)
    em_time_own = em_time * (em_hit + 1) / em.n_iter

    svi = jaxmix.fit_svi(
        X,
        K,
        init=start,
        prior=prior,
        num_steps=args.steps,
        learning_rate=args.lr,
        polish_steps=args.polish,
    )
    objectives = svi.history
    per_eval = svi.run_time / svi.n_evals
    hit = first_within(objectives, target, args.rtol)
    best = int(np.argmax(objectives))
    closest = (target - objectives[best]) / abs(target)
    svi_time = None if hit is None else per_eval * svi.history_evals[hit]

    print(f"\nEM: {em.n_iter} iterations, converged={em.converged}")
    print(
        f"  first call (compile + run) {em_first:.3f} s; run, median of {args.repeats}: "
        f"{em_time:.4f} s ({1e3 * em_time / em.n_iter:.2f} ms/iteration)"
    )
    print(f"  objective at its final parameters: {target:.6f}")
    print(
        f"  EM itself came within {args.rtol:g} of its final value at iteration {em_hit + 1} "
        f"(~{em_time_own:.4f} s)"
    )
    low = int(np.sum(em.var <= max(args.min_var, 0.0) * (1 + 1e-9) + 1e-2))
    print(f"  variances: min {em.var.min():.4g}, {low} of {em.var.size} at the floor or below 0.01")
    print(
        f"\nSVI-MAP: {svi.num_steps} Adam steps (lr {args.lr}) + {svi.polish_iter} L-BFGS "
        f"iterations, {svi.n_evals} loss+gradient evaluations, converged={svi.converged}"
    )
    print(
        f"  compile {svi.compile_time:.2f} s; run {svi.run_time:.2f} s "
        f"({1e3 * per_eval:.1f} ms per evaluation, {per_eval / (em_time / em.n_iter):.1f} EM "
        f"iterations' worth)"
    )
    print(
        f"  final objective {svi.objective:.6f}; relative gap to EM (EM - SVI) / |EM| = "
        f"{(target - svi.objective) / abs(target):+.3e}"
    )
    if hit is None:
        print(
            f"  never within {args.rtol:g} of EM's objective: closest {closest:+.3e} "
            f"at history entry {best} after {per_eval * svi.history_evals[best]:.2f} s"
        )
    else:
        phase = "Adam" if hit < svi.num_steps else "L-BFGS"
        where = hit + 1 if hit < svi.num_steps else hit - svi.num_steps + 1
        print(
            f"  within {args.rtol:g} of EM's objective after {phase} step {where} "
            f"(evaluation {svi.history_evals[hit]}): {svi_time:.2f} s"
        )
        print(
            f"\ntime to EM's objective, SVI-MAP / EM (compile excluded): {svi_time:.2f} s / "
            f"{em_time:.4f} s = {svi_time / em_time:.0f}x"
        )
    return {
        "n": n,
        "d": d,
        "K": K,
        "em_time": em_time,
        "em_first": em_first,
        "em_iter": em.n_iter,
        "em_objective": target,
        "em_time_own_rtol": em_time_own,
        "svi_compile": svi.compile_time,
        "svi_run": svi.run_time,
        "svi_evals": svi.n_evals,
        "svi_objective": svi.objective,
        "svi_hit": hit,
        "svi_time_to_target": svi_time,
        "closest_gap": closest,
        "ratio": None if svi_time is None else svi_time / em_time,
    }


if __name__ == "__main__":
    sys.exit(0 if main(parse_args())["svi_time_to_target"] is not None else 1)

"""Benchmark: blocked Gibbs against NUTS, effective samples per second of the mixture's posterior.

Both kernels of :func:`jaxmix.fit_mcmc` sample the same posterior (the default
:class:`jaxmix.Prior`) from the same start: one MAP-EM fit per data set (``fit_em(...,
prior=Prior(), min_var=0)``, timed apart and passed as ``init``), so both relabel their draws
to the same reference. For every data set and kernel the script reports

* the wall time of ``fit_mcmc`` (``first``: compilation included; ``again``: a second call with
  another seed, which reuses the compiled program, when ``--repeats`` is 2 or more);
* ArviZ's bulk ESS (``az.ess``) of the relabelled draws of the means, the variances and the
  weights (the smallest and the median over their coordinates), and ESS per second: the
  smallest ESS of the group over the sampling time (``again`` where measured, else ``first``);
* the largest ``r_hat`` (``az.rhat``, rank-normalised split R-hat) of each group, and the share
  of its coordinates above 1.01;
* every chain's mean potential energy (negative log density) over its draws, and the standard
  deviation within a chain: chains whose means differ by many standard deviations sample
  different modes.

With ``--seeds N`` every data set is run from ``N`` starts (EM and the sampler seeded
``--seed + 100 i``; ``--em-restarts`` restarts of EM each), and a last line per data set and
kernel lists the largest ``r_hat`` at every start and counts those within 1.01, and another the
lowest chain's mean potential energy at every start: one seed's ``r_hat`` says little where the
posterior has several modes, and starts that settle at levels far apart found different ones.

Data sets (``--datasets``):

* ``toy``: the course's ``toy_data.txt`` (250 x 2, complete), K = 3;
* ``sim``: :func:`jaxmix.simulate_ratings` 300 x 12, K = 4, 30 % missing, continuous values;
* ``course``: the course subset ``netflix_incomplete.txt`` (1200 x 1200, 23 % missing),
  K = 12. NUTS there takes hours (every leapfrog step is a gradient of the enumerated likelihood
  of 1.4 million entries, hundreds per draw): ``--skip-nuts-course`` leaves it out, and the
  output says so.

The course data are read from ``--data`` or ``$JAXMIX_REFERENCE_DATA``; without them only ``sim``
runs. jaxmix computes in float32 unless ``--x64``.

Usage::

    python benchmarks/mcmc_speed.py --skip-nuts-course                # every data set
    python benchmarks/mcmc_speed.py --datasets sim --samples 200 --warmup 100   # a quick check
    python benchmarks/mcmc_speed.py --datasets course --kernels gibbs --seeds 5 --repeats 1
    python benchmarks/mcmc_speed.py --datasets course --kernels gibbs --seeds 5 --repeats 1 \
        --em-restarts 10 --split-merge 30     # the start refined by split-and-merge moves
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

DATA_ENV = "JAXMIX_REFERENCE_DATA"
TOY_FILE = "toy_data.txt"
COURSE_FILE = "netflix_incomplete.txt"
DATASETS = ("toy", "sim", "course")
GROUPS = ("mu", "var", "weights")
#: The r_hat threshold: the share of coordinates above it is reported.
R_HAT = 1.01


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
        help=f"folder holding {TOY_FILE} and {COURSE_FILE} (default: ${DATA_ENV})",
    )
    parser.add_argument("--datasets", nargs="+", choices=DATASETS, default=list(DATASETS))
    parser.add_argument(
        "--kernels", nargs="+", choices=("gibbs", "nuts"), default=["gibbs", "nuts"]
    )
    parser.add_argument("--skip-nuts-course", action="store_true", help="no NUTS on the course")
    parser.add_argument("--chains", type=int, default=2, help="chains per fit (2)")
    parser.add_argument("--warmup", type=int, default=500, help="warm-up iterations (500)")
    parser.add_argument("--samples", type=int, default=1000, help="kept draws per chain (1000)")
    parser.add_argument(
        "--chain-method", choices=("sequential", "vectorized"), default="sequential"
    )
    parser.add_argument("--repeats", type=int, default=2, help="calls per fit, timed (2)")
    parser.add_argument("--seed", type=int, default=0, help="seed of EM and the first call (0)")
    parser.add_argument(
        "--seeds",
        type=int,
        default=1,
        help="starts per data set (1): EM and the sampler with seeds --seed + 100 i, i < SEEDS; "
        "a last line per data set and kernel counts the starts whose r_hat is within 1.01",
    )
    parser.add_argument("--em-restarts", type=int, default=1, help="EM restarts of a start (1)")
    parser.add_argument(
        "--split-merge",
        type=int,
        default=0,
        help="rounds of split-and-merge moves on the EM start (0; fit_em's split_merge)",
    )
    parser.add_argument("--x64", action="store_true", help="compute in float64")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows as JSON")
    return parser.parse_args(argv)


def load_datasets(args: argparse.Namespace) -> list[tuple[str, np.ndarray, int]]:
    """The data sets to run: ``(name, X, K)``; those needing the course data are skipped (with a
    message) when it is not there."""
    import jaxmix

    out = []
    folder = Path(args.data) if args.data else None
    for name in args.datasets:
        if name == "sim":
            sim = jaxmix.simulate_ratings(300, 12, 4, missing=0.3, stars=None, seed=args.seed)
            out.append(("sim 300x12", sim.X, 4))
            continue
        file = TOY_FILE if name == "toy" else COURSE_FILE
        path = folder / file if folder else None
        if path is None or not path.is_file():
            print(f"skipping {name}: {file} not found (pass --data DIR or set {DATA_ENV})")
            continue
        if name == "toy":
            out.append(("toy", np.loadtxt(path, ndmin=2), 3))
        else:
            out.append(("course", jaxmix.load_ratings(path), 12))
    return out


def summarise(res: Any, seconds: float) -> dict[str, Any]:
    """ESS (bulk) and r_hat of every group of the relabelled draws."""
    import arviz as az

    draws = {name: np.asarray(getattr(res.draws, name)) for name in GROUPS}
    ds = az.convert_to_dataset(draws)
    ess = az.ess(ds, method="bulk")
    rhat = az.rhat(ds)
    row = {}
    for name in GROUPS:
        e = np.ravel(ess[name].values)
        r = np.ravel(rhat[name].values)
        row[name] = {
            "ess_min": float(np.nanmin(e)),
            "ess_median": float(np.nanmedian(e)),
            "ess_per_s": float(np.nanmin(e) / seconds),
            "r_hat_max": float(np.nanmax(r)),
            "r_hat_over": float(np.mean(r > R_HAT)),
        }
    return row


def run_one(
    X: np.ndarray, K: int, kernel: str, em: Any, args: argparse.Namespace, seed: int
) -> dict:
    """``fit_mcmc`` with ``kernel`` from ``em``, ``--repeats`` times; the summary of the last."""
    import jaxmix

    times = []
    res = None
    for r in range(max(args.repeats, 1)):
        start = time.perf_counter()
        res = jaxmix.fit_mcmc(
            X,
            K,
            kernel=kernel,
            init=em,
            num_chains=args.chains,
            num_warmup=args.warmup,
            num_samples=args.samples,
            chain_method=args.chain_method,
            seed=seed + r,
        )
        times.append(time.perf_counter() - start)
    seconds = times[-1]
    row = {"first_s": times[0], "again_s": times[1] if len(times) > 1 else None}
    row.update(summarise(res, seconds))
    row["n_relabelled"] = int(res.n_relabelled)
    row["divergences"] = int(np.sum(res.diverging))
    energy = np.asarray(res.potential_energy, np.float64)
    row["energy_means"] = [float(e) for e in energy.mean(axis=1)]
    row["energy_sd"] = float(np.mean(energy.std(axis=1)))
    return row


def print_row(name: str, kernel: str, row: dict) -> None:
    again = "-" if row["again_s"] is None else f"{row['again_s']:.1f}"
    groups = "  ".join(
        f"{g}: ESS {row[g]['ess_min']:.0f}/{row[g]['ess_median']:.0f} "
        f"({row[g]['ess_per_s']:.1f}/s) r_hat {row[g]['r_hat_max']:.3f} "
        f"({row[g]['r_hat_over']:.0%} > {R_HAT})"
        for g in GROUPS
    )
    levels = "/".join(f"{e:.1f}" for e in row["energy_means"])
    print(
        f"{name:<11} {kernel:<5} first {row['first_s']:7.1f} s  again {again:>7} s  {groups}  "
        f"relabelled {row['n_relabelled']}  divergences {row['divergences']}  "
        f"potential energy per chain {levels} (sd within a chain {row['energy_sd']:.1f})",
        flush=True,
    )


def print_robustness(name: str, rows: list[dict]) -> None:
    """Per kernel: the largest r_hat over the groups at every start, and how many are within
    :data:`R_HAT`."""
    for kernel in sorted({r["kernel"] for r in rows}):
        worst = [max(r[g]["r_hat_max"] for g in GROUPS) for r in rows if r["kernel"] == kernel]
        within = sum(w <= R_HAT for w in worst)
        print(
            f"{name:<11} {kernel:<5} r_hat (largest over {', '.join(GROUPS)}) per start: "
            f"{', '.join(f'{w:.3f}' for w in worst)}; within {R_HAT} at {within} of {len(worst)}",
            flush=True,
        )
        # where the chains settle: starts whose lowest levels differ by many within-chain sds
        # sampled different modes
        lowest = [min(r["energy_means"]) for r in rows if r["kernel"] == kernel]
        sd = max(r["energy_sd"] for r in rows if r["kernel"] == kernel)
        print(
            f"{name:<11} {kernel:<5} lowest chain's mean potential energy per start: "
            f"{', '.join(f'{e:.1f}' for e in lowest)}; spread {max(lowest) - min(lowest):.1f} "
            f"(sd within a chain at most {sd:.1f})",
            flush=True,
        )


def run_start(name: str, X: np.ndarray, K: int, seed: int, args: argparse.Namespace) -> list:
    """One MAP-EM start (``seed``, ``--em-restarts``) and every kernel from it: their rows."""
    import jaxmix

    n, d = X.shape
    start = time.perf_counter()
    em = jaxmix.fit_em(
        X,
        K,
        prior=jaxmix.Prior(),
        min_var=0.0,
        seed=seed,
        n_init=args.em_restarts,
        split_merge=args.split_merge if K >= 3 else 0,
    )
    em_s = time.perf_counter() - start
    kept = 0 if em.split_merge_objectives is None else len(em.split_merge_objectives)
    print(
        f"{name}: {n} x {d}, {int(np.isnan(X).sum())} missing, K = {K}; MAP-EM start "
        f"(seed {seed}, {args.em_restarts} restart(s), {kept} split-merge round(s) kept) "
        f"{em_s:.1f} s, objective {float(em.objective):.1f}",
        flush=True,
    )
    rows = []
    for kernel in args.kernels:
        if kernel == "nuts" and name == "course" and args.skip_nuts_course:
            print(f"{name:<11} nuts  skipped (--skip-nuts-course)", flush=True)
            continue
        row = run_one(X, K, kernel, em, args, seed)
        row.update(dataset=name, kernel=kernel, n=n, d=d, K=K, em_s=em_s, seed=seed)
        print_row(name, kernel, row)
        rows.append(row)
    return rows


def main(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Run the benchmark and print one line per data set and kernel.

    Returns:
        The rows (also written to ``--json``).
    """
    import jax

    if args.x64:
        jax.config.update("jax_enable_x64", True)
    import jaxmix

    print(
        f"jaxmix {jaxmix.__version__}, {'float64' if args.x64 else 'float32'}, "
        f"{args.chains} chains ({args.chain_method}) x ({args.warmup} warm-up + {args.samples} "
        f"draws), {os.cpu_count()} CPUs; ESS min/median (min ESS per second of the timed call)"
    )
    rows = []
    for name, X, K in load_datasets(args):
        for i in range(max(args.seeds, 1)):
            rows += run_start(name, X, K, args.seed + 100 * i, args)
        if args.seeds > 1:
            print_robustness(name, [r for r in rows if r["dataset"] == name])
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=1))
    return rows


if __name__ == "__main__":
    main(parse_args())

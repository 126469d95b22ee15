"""Benchmark: many small fits of different shapes (a cross-validation or bootstrap loop).

A loop that fits ``jaxmix.fit_em`` to many small dense matrices, each with its own number of
rows, used to compile every program anew for every new shape (2.4-5 s a fit, almost all of it
compilation, and 7-17 MB more peak memory per shape). ``fit_em`` pads the rows to a few size
classes (:func:`jaxmix.data.size_class`) with rows that carry no weight, so fits of new shapes
reuse the compiled programs: one EM program per size class and ``K`` and, on small matrices,
one k-means++ seeding program for ``K`` up to 8.

The loop: fit ``i = 0 .. --fits - 1`` has ``--rows + --step * i`` rows (200, 207, ..., 613 by
default), ``--cols`` columns and ``K = 1 + i % --max-K`` components, drawn from a planted
mixture with ``--missing`` of the entries missing (``jaxmix.simulate_ratings``; every matrix is
drawn before the clock starts). It reports the loop's wall and CPU time (the CPU time is robust
to other load on the machine), the median time of a fit, the peak resident memory before and
after the loop (``resource.getrusage``; the growth is what the loop added, after one warm-up fit
of another shape that pays JAX's one-time set-up), the programs traced
(:func:`jaxmix.testing.count_traces`) and, for comparison, ``--same`` fits of one shape (the
first one, ``K = --same-K``). Each measurement runs in a fresh process
(``--repeats`` times; the medians are reported).

Usage::

    python benchmarks/many_shapes.py                       # 60 shapes, 200 fits of one shape
    python benchmarks/many_shapes.py --fits 12 --same 20   # a quick run
    python benchmarks/many_shapes.py --compilation-cache /tmp/jaxmix-cache   # across processes
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--fits", type=int, default=60, help="fits of different shapes (60)")
    p.add_argument("--rows", type=int, default=200, help="rows of the first matrix (200)")
    p.add_argument("--step", type=int, default=7, help="rows added per fit (7)")
    p.add_argument("--cols", type=int, default=10, help="columns (10)")
    p.add_argument("--max-K", type=int, default=5, help="K cycles through 1 .. max-K (5)")
    p.add_argument("--missing", type=float, default=0.2, help="share of missing entries (0.2)")
    p.add_argument("--same", type=int, default=200, help="fits of one shape, for comparison (200)")
    p.add_argument("--same-K", type=int, default=3, help="K of the fits of one shape (3)")
    p.add_argument("--repeats", type=int, default=1, help="fresh processes per measurement (1)")
    p.add_argument(
        "--compilation-cache",
        type=str,
        default=None,
        help="a directory for JAX's persistent compilation cache (jaxmix.enable_compilation_cache)",
    )
    p.add_argument("--json", type=Path, default=None, help="write the results here")
    p.add_argument("--child", type=str, default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def _peak_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_child(spec: dict[str, Any]) -> dict[str, Any]:
    """One measurement in this (fresh) process: the loop of ``spec["mode"]``."""
    import numpy as np

    import jaxmix

    if spec.get("cache"):
        enable = getattr(jaxmix, "enable_compilation_cache", None)
        if enable is not None:
            enable(spec["cache"])
    if spec["mode"] == "shapes":
        shapes = [
            (spec["rows"] + spec["step"] * i, 1 + i % spec["max_K"]) for i in range(spec["fits"])
        ]
    else:
        shapes = [(spec["rows"], spec["same_K"])] * spec["same"]
    mats = {}
    for i, (n, _) in enumerate(shapes):
        if n not in mats:
            sim = jaxmix.simulate_ratings(
                n, spec["cols"], K=3, missing=spec["missing"], stars=None, seed=i
            )
            mats[n] = sim.X
    from jaxmix._tracing import snapshot

    # JAX's and XLA's one-time set-up (the backend, the compiler) is not the loop's: a fit with
    # one more column (programs of another shape) first
    warm = jaxmix.simulate_ratings(50, spec["cols"] + 1, K=2, stars=None, seed=99).X
    jaxmix.fit_em(warm, 2)
    before_traces = snapshot()
    rss_before = _peak_mb()
    times, lls = [], []
    t0, cpu0 = time.perf_counter(), time.process_time()
    for n, K in shapes:
        t = time.perf_counter()
        res = jaxmix.fit_em(mats[n], K)
        times.append(time.perf_counter() - t)
        lls.append(res.log_likelihood)
    total, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    after = snapshot()
    traced = {k: v - before_traces.get(k, 0) for k, v in after.items()}
    return {
        "mode": spec["mode"],
        "fits": len(shapes),
        "total_s": total,
        "cpu_s": cpu,
        "load_average": os.getloadavg()[0],
        "median_fit_s": statistics.median(times),
        "first_fit_s": times[0],
        "rss_before_mb": rss_before,
        "peak_rss_mb": _peak_mb(),
        "peak_growth_mb": _peak_mb() - rss_before,
        "traced": {k: v for k, v in traced.items() if v},
        "finite": bool(np.all(np.isfinite(lls))),
    }


def _spawn(spec: dict[str, Any]) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(args: argparse.Namespace) -> dict[str, Any]:
    """Run both loops ``--repeats`` times, each in a fresh process, and print the medians."""
    if args.child is not None:
        print(json.dumps(run_child(json.loads(args.child))))
        return {}
    base = {
        "fits": args.fits,
        "rows": args.rows,
        "step": args.step,
        "cols": args.cols,
        "max_K": args.max_K,
        "missing": args.missing,
        "same": args.same,
        "same_K": args.same_K,
        "cache": args.compilation_cache,
    }
    out: dict[str, Any] = {"config": base}
    for mode in ("shapes", "same"):
        if mode == "same" and args.same <= 0:
            continue
        runs = [_spawn({**base, "mode": mode}) for _ in range(args.repeats)]
        out[mode] = runs
        med = {
            key: statistics.median(r[key] for r in runs)
            for key in (
                "total_s",
                "cpu_s",
                "median_fit_s",
                "first_fit_s",
                "peak_growth_mb",
                "peak_rss_mb",
                "load_average",
            )
        }
        out[f"{mode}_median"] = med
        n_last = args.rows + args.step * (args.fits - 1)
        what = (
            f"{args.fits} fits, {args.rows}..{n_last} rows"
            if mode == "shapes"
            else f"{args.same} fits of {args.rows} rows, K = {args.same_K}"
        )
        ks = f", K = 1..{args.max_K}" if mode == "shapes" else ""
        each = ", ".join(f"{r['total_s']:.2f}" for r in runs)
        print(
            f"{what} x {args.cols} cols{ks}: total {med['total_s']:.2f} s "
            f"(runs {each}; CPU {med['cpu_s']:.2f} s, load {med['load_average']:.1f}), median fit "
            f"{med['median_fit_s'] * 1e3:.1f} ms, first fit {med['first_fit_s']:.2f} s, peak "
            f"memory growth {med['peak_growth_mb']:.0f} MB (peak {med['peak_rss_mb']:.0f} MB); "
            f"traced {runs[-1]['traced']}",
            flush=True,
        )
    if args.json is not None:
        args.json.write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main(parse_args())

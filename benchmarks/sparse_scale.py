"""Benchmark: sparse EM at MovieLens-10M, MovieLens-25M and Netflix-Prize sizes.

For every size and K the script draws a synthetic ratings matrix with
:func:`jaxmix.simulate_sparse_ratings` (power-law users and items, ratings from a planted
mixture; no download, never an ``n x d`` array), builds the chunked layout of
:mod:`jaxmix.data.triples`, compiles EM's batched loop ahead of time and times ``--iters``
EM iterations (the stopping rule disabled, so every run does exactly that many). Each (size, K)
runs in its own subprocess, so the peak resident memory it reports (``resource.getrusage``) is
that of one fit: the triples, their chunked copy on the device, the ``(n + d) K`` state and
JAX itself.

It prints, per run: the time per EM iteration, the CPU time per iteration (robust to other load
on the machine; with ``--devices`` it adds up the devices' threads), the time per iteration per
million ratings, the peak RSS, the times to generate, lay out and compile, and the one-minute load
average; then a least-squares line of the time per iteration against nnz (and against K), with
the ratio of the per-rating costs (linear scaling means a flat ``s/it/Mnnz`` column).
``--full-fit`` also runs ``jaxmix.fit_em`` end to end (k-means++ start, tolerance 1e-6, at most
``--max-iter`` iterations) and reports its wall time.

``--reuse`` times what ``jaxmix.fit_em`` spends outside its iterations, on a first call, on a
second call with the same matrix and arguments, and on a third with another seed (each
``--reuse-iters`` iterations, K-means++ start): the layout, the summary, the seeding's copy of the
triples and its result are kept with the matrix (:data:`jaxmix.data.layout_cache`), so the second
call skips the host work, the transfers and the seeding, the third the host work and the
transfers. Per call it reports the time before the loop starts (the time to the first
iteration, without compiling the loop), the loop (compilation on the first call, then the
iterations: the time per iteration is the second call's loop over its iterations), the time
after it, and the total outside the loop.

Sizes (``--sizes``; or ``USERSxITEMSxNNZ``)::

    tiny     2,000 x 300, 20,000 ratings (for CI)
    ml10m    71,567 x 10,681, 10,000,054
    ml25m    162,541 x 62,423, 25,000,095
    netflix  480,189 x 17,770, 100,480,507

Usage::

    python benchmarks/sparse_scale.py --sizes ml10m ml25m netflix --K 12 --iters 10
    python benchmarks/sparse_scale.py --sizes ml10m --K 4 8 12 24 --iters 5
    python benchmarks/sparse_scale.py --sizes netflix --K 12 --full-fit --max-iter 100
    python benchmarks/sparse_scale.py --sizes netflix --devices 2   # rows split over 2 CPU devices
    python benchmarks/sparse_scale.py --sizes tiny --K 2 --iters 2   # the CI smoke run
    python benchmarks/sparse_scale.py --sizes ml10m --K 12 --iters 0 --reuse   # second calls

Each (size, K) times ``--repeats`` calls of the compiled loop and reports the fastest (the
machine is shared; the spread is in ``runs_s`` of ``--json``). Computation is float32 (JAX's
default); ``--x64`` switches to float64.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

SIZES = {
    "tiny": (2_000, 300, 20_000),
    "ml10m": (71_567, 10_681, 10_000_054),
    "ml25m": (162_541, 62_423, 25_000_095),
    "netflix": (480_189, 17_770, 100_480_507),
}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes", nargs="+", default=["tiny"], help=f"{', '.join(SIZES)} or UxIxNNZ (tiny)"
    )
    parser.add_argument("--K", nargs="+", type=int, default=[12], help="components (12)")
    parser.add_argument(
        "--iters", type=int, default=5, help="timed EM iterations (5; 0 with --full-fit: only that)"
    )
    parser.add_argument("--devices", type=int, default=1, help="CPU devices to split rows over")
    parser.add_argument("--chunk-size", type=int, default=None, help="entries per chunk")
    parser.add_argument(
        "--native",
        nargs="+",
        choices=("auto", "on", "off"),
        default=["auto"],
        help="the triples layout's compiled CPU kernels (jaxmix.data.native): by size (auto), "
        "always (on) or never (off); several values run each",
    )
    parser.add_argument("--full-fit", action="store_true", help="also time fit_em end to end")
    parser.add_argument(
        "--reuse", action="store_true", help="time fit_em outside its iterations, call after call"
    )
    parser.add_argument("--reuse-iters", type=int, default=5, help="iterations of --reuse (5)")
    parser.add_argument("--max-iter", type=int, default=100, help="iteration cap of --full-fit")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per run (1800)")
    parser.add_argument("--x64", action="store_true", help="float64 instead of float32")
    parser.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="timed calls of the compiled loop; the fastest counts",
    )
    parser.add_argument(
        "--covariance", default="spherical", help="covariance family (spherical; see FAMILIES)"
    )
    parser.add_argument(
        "--rank", type=int, default=None, help="factors of --covariance factor (default 1)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument("--child", type=str, default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _size(name: str) -> tuple[int, int, int]:
    if name in SIZES:
        return SIZES[name]
    try:
        n, d, nnz = (int(float(v)) for v in name.lower().split("x"))
    except ValueError:
        raise SystemExit(f"sparse_scale: unknown size {name!r}") from None
    return n, d, nnz


# ---------------------------------------------------------------------------- one run


def run_one(spec: dict[str, Any]) -> dict[str, Any]:
    """Generate, lay out, compile and time one (size, K); runs inside the child process."""
    import resource

    import jax

    if spec["x64"]:
        jax.config.update("jax_enable_x64", True)
    import jaxmix
    from jaxmix.data import native

    n, d, nnz, K = spec["n"], spec["d"], spec["nnz"], spec["K"]
    out: dict[str, Any] = {"n": n, "d": d, "nnz": nnz, "K": K, "devices": spec["devices"]}
    # every layout the run builds (fit_em's too) decides by this threshold
    setting = spec.get("native", "auto")
    if setting != "auto":
        native.NATIVE_MIN_ENTRIES = 0 if setting == "on" else 1 << 62
    # whether the kernels ran at all (fit_em's layout is built inside it): count the row sums
    kernel_calls = [0]
    row_gram = native.NativeTriples.row_gram

    def counted(self, *args):
        kernel_calls[0] += 1
        return row_gram(self, *args)

    native.NativeTriples.row_gram = counted
    t = time.perf_counter()
    # The same matrix for every fitted K: 12 planted components.
    S = jaxmix.simulate_sparse_ratings(n, d, nnz, K=min(12, n), seed=spec["seed"]).S
    out["generate_s"] = time.perf_counter() - t
    out["nnz"] = S.nnz

    mesh = None
    if spec["devices"] > 1:
        mesh = jax.make_mesh((spec["devices"],), ("rows",))
    if spec["iters"] > 0:
        _time_iterations(S, spec, out, mesh)
    if spec.get("reuse"):
        _time_calls(S, spec, out, mesh)
    if spec["full_fit"]:
        calls_before = kernel_calls[0]
        t = time.perf_counter()
        res = jaxmix.fit_em(
            S,
            K,
            max_iter=spec["max_iter"],
            chunk_size=spec["chunk_size"],
            mesh=mesh,
            covariance=spec["covariance"],
            rank=spec.get("rank"),
        )
        out["full_fit_s"] = time.perf_counter() - t
        out["full_fit_iters"] = res.n_iter
        out["full_fit_converged"] = res.converged
        out["full_fit_log_likelihood"] = res.log_likelihood
        out.setdefault("native", kernel_calls[0] > calls_before)
    out["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9
    return out


def _time_iterations(S: Any, spec: dict[str, Any], out: dict[str, Any], mesh: Any) -> None:
    """Lay out ``S``, compile EM's batched loop and time ``spec["iters"]`` iterations."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from jaxmix.data import Standardizer, as_data, float_dtype
    from jaxmix.inference.em import EMConstants, run_restarts
    from jaxmix.inference.init import init_params
    from jaxmix.models.families import get_family
    from jaxmix.models.mixture import as_device, to_internal

    K = spec["K"]
    family = get_family(spec.get("covariance", "spherical"), rank=spec.get("rank"))
    t = time.perf_counter()
    layout = as_data(S)
    std = Standardizer.fit(layout.summary())
    dtype = float_dtype()
    # the layout fit_em builds (padded to size classes), kept with S for fit_em to reuse
    data = layout.device(std, dtype, chunk_size=spec["chunk_size"], mesh=mesh, pad=True)
    chunking = layout.chunking
    out["chunk_size"], out["rows_per_chunk"] = chunking.chunk_size, data.rows_per_chunk
    out["native"] = data.native is not None
    out["dense_rows"] = int((chunking.dense_rows >= 0).sum())
    out["layout_s"] = time.perf_counter() - t

    start = init_params("random_rows", layout, K, n_init=1, seed=spec["seed"], covariance=family)
    consts = EMConstants(
        tol=jnp.asarray(-1.0, dtype),  # tol < 0: the stopping rule never fires
        min_var=jnp.asarray(0.25 / std.scale**2, dtype),
        ll_shift=jnp.asarray(std.log_likelihood_shift(S.nnz), dtype),
        prior=None,
        prior_shift=jnp.asarray(0.0, dtype),
    )
    args = (as_device(to_internal(start, std), dtype), data, consts)
    kw = {"family": family, "max_iter": spec["iters"]}
    t = time.perf_counter()
    compiled = run_restarts.lower(*args, **kw).compile()
    out["compile_s"] = time.perf_counter() - t
    runs = []
    for _ in range(spec.get("repeats", 1)):
        t, cpu = time.perf_counter(), time.process_time()
        final = compiled(*args)
        jax.block_until_ready(final)
        runs.append((time.perf_counter() - t, time.process_time() - cpu))
    run, cpu = min(runs)
    out["runs_s"] = [r for r, _ in runs]
    it = int(np.asarray(final.n_iter)[0])
    out["iters"] = it
    out["s_per_iter"] = run / it
    out["cpu_s_per_iter"] = cpu / it
    out["load_average"] = os.getloadavg()[0]
    out["s_per_iter_per_M_nnz"] = run / it / (S.nnz / 1e6)
    hist = np.asarray(final.history)[0, :it]
    out["log_likelihood"] = float(hist[-1])
    out["monotone"] = bool(np.all(np.diff(hist) >= -1e-5 * np.abs(hist[1:])))


def _time_calls(S: Any, spec: dict[str, Any], out: dict[str, Any], mesh: Any) -> None:
    """``fit_em`` three times on ``S`` (seeds 0, 0, 1): the time before, in and after its loop."""
    import jax

    import jaxmix
    from jaxmix.data import layout_cache
    from jaxmix.inference import em

    layout_cache.clear()  # a true first call: nothing kept from the timings above
    loop = em.run_restarts
    marks: dict[str, float] = {}

    def timed(*args: Any, **kw: Any) -> Any:  # fit_em's call of the compiled loop
        marks["enter"] = time.perf_counter()
        final = loop(*args, **kw)
        jax.block_until_ready(final)
        marks["leave"] = time.perf_counter()
        return final

    em.run_restarts = timed
    calls = []
    try:
        for seed in (0, 0, 1):
            t, cpu = time.perf_counter(), time.process_time()
            res = jaxmix.fit_em(
                S,
                spec["K"],
                seed=seed,
                tol=0.0,
                max_iter=spec["reuse_iters"],
                chunk_size=spec["chunk_size"],
                mesh=mesh,
                covariance=spec["covariance"],
                rank=spec.get("rank"),
            )
            end = time.perf_counter()
            calls.append(
                {
                    "seed": seed,
                    "total_s": end - t,
                    "cpu_s": time.process_time() - cpu,
                    "before_loop_s": marks["enter"] - t,
                    "loop_s": marks["leave"] - marks["enter"],
                    "after_loop_s": end - marks["leave"],
                    "outside_s": (end - t) - (marks["leave"] - marks["enter"]),
                    "n_iter": res.n_iter,
                }
            )
    finally:
        em.run_restarts = loop
    out["calls"] = calls
    out["reuse_s_per_iter"] = calls[1]["loop_s"] / calls[1]["n_iter"]


def _spawn(spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    env = dict(os.environ)
    if spec["devices"] > 1:
        flag = f"--xla_force_host_platform_device_count={spec['devices']}"
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " " + flag).strip()
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {**spec, "error": f"timed out after {timeout:.0f} s"}
    if proc.returncode != 0:
        return {**spec, "error": proc.stderr.strip().splitlines()[-1:] or ["failed"]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------- report


def _fit_line(x: list[float], y: list[float]) -> tuple[float, float]:
    import numpy as np

    slope, intercept = np.polyfit(np.asarray(x, float), np.asarray(y, float), 1)
    return float(slope), float(intercept)


def report(results: list[dict[str, Any]]) -> list[str]:
    """The results table and the scaling fits, as lines."""
    lines = [
        f"{'users':>8} {'items':>7} {'nnz':>11} {'K':>3} {'dev':>3} {'kernels':>7} {'s/iter':>8} "
        f"{'cpu s/it':>8} {'s/it/Mnnz':>9} {'RSS GB':>7} {'gen s':>6} {'layout s':>8} "
        f"{'compile s':>9} {'full fit':>14} {'load':>5}"
    ]
    for r in results:
        if "s_per_iter" not in r and "error" not in r:  # --iters 0: the full fit only
            r = {**r, "s_per_iter": float("nan"), "cpu_s_per_iter": float("nan")}
            r.update(s_per_iter_per_M_nnz=float("nan"), layout_s=float("nan"))
            r.update(compile_s=float("nan"), load_average=os.getloadavg()[0])
        if "error" in r:
            lines.append(f"{r['n']:>8} {r['d']:>7} {r['nnz']:>11} {r['K']:>3}  ERROR {r['error']}")
            continue
        full = ""
        if "full_fit_s" in r:
            full = f"{r['full_fit_s']:.0f}s/{r['full_fit_iters']}it"
        lines.append(
            f"{r['n']:>8} {r['d']:>7} {r['nnz']:>11} {r['K']:>3} {r['devices']:>3} "
            f"{'numba' if r.get('native') else 'scan':>7} {r['s_per_iter']:>8.3f} "
            f"{r['cpu_s_per_iter']:>8.3f} "
            f"{r['s_per_iter_per_M_nnz']:>9.4f} {r['peak_rss_gb']:>7.2f} "
            f"{r['generate_s']:>6.1f} {r['layout_s']:>8.1f} {r['compile_s']:>9.1f} {full:>14} "
            f"{r['load_average']:>5.1f}"
        )
    ok = [r for r in results if "error" not in r and "s_per_iter" in r]
    for key, label in (("nnz", "nnz"), ("K", "K")):
        groups: dict[Any, list[dict[str, Any]]] = {}
        for r in ok:
            setting = (r["devices"], bool(r.get("native")))
            other = (r["K"], *setting) if key == "nnz" else (r["nnz"], *setting)
            groups.setdefault(other, []).append(r)
        for other, rs in groups.items():
            if len({r[key] for r in rs}) < 2:
                continue
            xs = [r[key] for r in rs]
            unit = 1e6 if key == "nnz" else 1
            for what in ("s_per_iter", "cpu_s_per_iter"):
                ys = [r[what] for r in rs]
                slope, intercept = _fit_line(xs, ys)
                pred = [slope * x + intercept for x in xs]
                worst = max(abs(p - y) / y for p, y in zip(pred, ys, strict=True))
                lines.append(
                    f"{'wall' if what == 's_per_iter' else 'cpu'} time per iteration vs {label} "
                    f"(at {other}): {slope * unit:.4g} s per "
                    f"{'M ratings' if key == 'nnz' else 'component'} + {intercept:.3g} s; "
                    f"largest deviation from the line {worst:.0%}"
                )
    return lines


def reuse_report(r: dict[str, Any]) -> list[str]:
    """The ``--reuse`` lines of one run: fit_em's time outside its loop, call after call."""
    lines = []
    for i, c in enumerate(r.get("calls", [])):
        what = ("first call", "second call, same arguments", "third call, another seed")[i]
        lines.append(
            f"  fit_em {what}: total {c['total_s']:.2f} s (CPU {c['cpu_s']:.2f} s), before the "
            f"loop {c['before_loop_s']:.2f} s, loop {c['loop_s']:.2f} s for {c['n_iter']} "
            f"iterations{' (with its compilation)' if i == 0 else ''}, after it "
            f"{c['after_loop_s']:.2f} s: outside the iterations {c['outside_s']:.2f} s"
        )
    if "reuse_s_per_iter" in r:
        lines.append(f"  time per iteration (second call): {r['reuse_s_per_iter']:.3f} s")
    return lines


def main(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Run every (size, K) in a subprocess and print the report."""
    if args.child is not None:
        print(json.dumps(run_one(json.loads(args.child))))
        return []
    results = []
    runs = [(name, K, nat) for name in args.sizes for K in args.K for nat in args.native]
    for name, K, nat in runs:
        n, d, nnz = _size(name)
        spec = {
            "n": n,
            "d": d,
            "nnz": nnz,
            "K": K,
            "iters": args.iters,
            "devices": args.devices,
            "chunk_size": args.chunk_size,
            "full_fit": args.full_fit,
            "max_iter": args.max_iter,
            "x64": args.x64,
            "seed": args.seed,
            "repeats": args.repeats,
            "covariance": args.covariance,
            "rank": args.rank,
            "reuse": args.reuse,
            "reuse_iters": args.reuse_iters,
            "native": nat,
        }
        result = _spawn(spec, args.timeout)
        results.append(result)
        print(report([result])[-1], flush=True)
        for line in reuse_report(result):
            print(line, flush=True)
    print()
    print("\n".join(report(results)))
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main(parse_args())

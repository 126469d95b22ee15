"""Benchmark: jaxmix.fit_em against a vectorised NumPy EM on the Netflix course data.

Both sides run exactly the same algorithm (the reference EM of ``shared/REFERENCE.md``): the
``random_rows`` initialisation for seeds ``0 .. R-1``, E-step, M-step (a mean coordinate moves only
where ``sum_u p(k|u) [l observed] >= 1``, variances floored at 0.25, weights ``n_k / n``) and the
stopping rule ``LL_new - LL_old <= 1e-6 |LL_new|``. jaxmix runs the R restarts batched in one
compiled call; the NumPy version runs them one after another in a Python loop, as a NumPy user
would, with the E- and M-steps written as matrix products (the same ``8 n d K`` flops per
iteration as jaxmix); ``--numpy-form broadcast`` swaps in a direct ``(n, K, d)`` broadcast E-step
for comparison with the way such code is often first written.

The script checks that both give the same final log-likelihood for every restart (relative
``1e-6`` in float64) and the same iteration counts, then prints the timings: jaxmix's first call
(compile + run), the median of the repeated calls, NumPy's median, their ratio, the time per
iteration and the achieved GFLOP/s against the floor of ``8 n d K`` flops per iteration. The
batched call steps only the restarts still running, gathered into a batch of a power-of-two size
(``jaxmix.inference.em.loop_restarts``), so both the *useful* flops (sum of the restarts'
iterations) and the *executed* flops (the batch sizes summed over the iterations,
``jaxmix.inference.em.executed_iterations``; ``R x`` the longest restart without the
compaction) are reported.

Usage::

    python benchmarks/em_speed.py --data /path/to/course            # or set JAXMIX_REFERENCE_DATA
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/em_speed.py
    python benchmarks/em_speed.py --rows 200 --cols 100 --repeats 1  # a quick check

OpenBLAS reads ``OPENBLAS_CORETYPE`` and ``OPENBLAS_L2_SIZE`` when NumPy is imported; the script
prints which kernels NumPy ended up with, so runs with and without them can be told apart.
"""

from __future__ import annotations

import argparse
import ctypes
import glob
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

DATA_ENV = "JAXMIX_REFERENCE_DATA"
DATA_FILE = "netflix_incomplete.txt"
TOL = 1e-6
MIN_VAR = 0.25
MAX_ITER = 1000
WEIGHT_EPS = 1e-16


# ----------------------------------------------------------------------------------------------
# Command line and data
# ----------------------------------------------------------------------------------------------


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
        "--restarts", type=int, default=5, help="restarts, seeds 0..R-1 (default 5)"
    )
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats per side (default 5)")
    parser.add_argument("--rows", type=int, default=None, help="use only the first ROWS rows")
    parser.add_argument("--cols", type=int, default=None, help="use only the first COLS columns")
    parser.add_argument(
        "--float32", action="store_true", help="compute in float32 (default float64)"
    )
    parser.add_argument(
        "--numpy-form",
        choices=("matmul", "broadcast"),
        default="matmul",
        help="NumPy E-step: expanded matrix products (default) or a direct (n, K, d) broadcast",
    )
    parser.add_argument(
        "--blas-threads",
        type=int,
        default=None,
        help="threads for NumPy's OpenBLAS (default: its own choice, usually all cores)",
    )
    parser.add_argument(
        "--no-sequential",
        action="store_true",
        help="skip timing jaxmix with the restarts run one at a time",
    )
    return parser.parse_args(argv)


def load_data(data: Path | None, rows: int | None, cols: int | None) -> np.ndarray:
    """Read the Netflix matrix (``NaN`` = missing), optionally a leading sub-block.

    Rows of the sub-block with no observed entry are dropped.

    Args:
        data: Folder holding ``netflix_incomplete.txt``.
        rows: Keep the first ``rows`` rows (all if ``None``).
        cols: Keep the first ``cols`` columns (all if ``None``).

    Returns:
        The float64 matrix.

    Raises:
        SystemExit: The data folder or file is missing.
    """
    import jaxmix

    path = Path(data) / DATA_FILE if data else None
    if path is None or not path.is_file():
        raise SystemExit(
            f"em_speed: cannot find {DATA_FILE}; pass --data DIR or set {DATA_ENV} to the folder "
            "holding the course data"
        )
    X = jaxmix.load_ratings(path)[:rows, :cols]
    keep = ~np.isnan(X).all(axis=1)
    return X[keep]


# ----------------------------------------------------------------------------------------------
# The reference algorithm in vectorised NumPy
# ----------------------------------------------------------------------------------------------


class NumpyData(NamedTuple):
    """The matrix as the NumPy EM uses it.

    Attributes:
        x0: Values with missing entries as 0, ``(n, d)``.
        mask: 1.0 where observed, ``(n, d)``.
        sq_norm: ``|x_{u,C_u}|^2`` per row, ``(n,)``.
        n_obs: ``|C_u|`` per row, ``(n,)``.
    """

    x0: np.ndarray
    mask: np.ndarray
    sq_norm: np.ndarray
    n_obs: np.ndarray


class NumpyFit(NamedTuple):
    """Outcome of one NumPy EM run: final log-likelihood, iterations and parameters."""

    log_likelihood: float
    n_iter: int
    mu: np.ndarray
    var: np.ndarray
    weights: np.ndarray


def numpy_data(X: np.ndarray, dtype: np.dtype) -> NumpyData:
    """Precompute the zero-filled matrix, the mask and the per-row constants."""
    observed = ~np.isnan(X)
    x0 = np.where(observed, X, 0.0).astype(dtype)
    mask = observed.astype(dtype)
    return NumpyData(x0, mask, np.einsum("ij,ij->i", x0, x0), mask.sum(axis=1))


def numpy_init(data: NumpyData, K: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The reference initialisation: K random rows as means, pooled variances, uniform weights."""
    n = data.x0.shape[0]
    idx = np.random.RandomState(seed).choice(n, K, replace=False)
    mu = data.x0[idx].copy()
    var = np.array([np.mean((data.x0 - m) ** 2) for m in mu], dtype=data.x0.dtype)
    return mu, var, np.full(K, 1.0 / K, dtype=data.x0.dtype)


def sq_dist_matmul(data: NumpyData, mu: np.ndarray) -> np.ndarray:
    """Squared distances over observed entries, ``|x|^2 - 2 x.mu + M.mu^2``, shape ``(n, K)``."""
    sq = data.sq_norm[:, None] - 2.0 * (data.x0 @ mu.T) + data.mask @ (mu * mu).T
    return np.maximum(sq, 0.0, out=sq)


def sq_dist_broadcast(data: NumpyData, mu: np.ndarray) -> np.ndarray:
    """The same distances by direct broadcasting over an ``(n, K, d)`` array."""
    diff = (data.x0[:, None, :] - mu[None, :, :]) * data.mask[:, None, :]
    return np.einsum("ukl,ukl->uk", diff, diff)


def numpy_e_step(
    data: NumpyData,
    mu: np.ndarray,
    var: np.ndarray,
    weights: np.ndarray,
    sq_dist: Callable[[NumpyData, np.ndarray], np.ndarray],
) -> tuple[np.ndarray, float]:
    """Responsibilities ``(n, K)`` and the log-likelihood (a stable row-wise logsumexp)."""
    log_joint = (
        np.log(weights + WEIGHT_EPS)
        - 0.5 * data.n_obs[:, None] * np.log(2.0 * np.pi * var)
        - sq_dist(data, mu) / (2.0 * var)
    )
    top = log_joint.max(axis=1, keepdims=True)
    row_ll = top + np.log(np.exp(log_joint - top).sum(axis=1, keepdims=True))
    return np.exp(log_joint - row_ll), float(row_ll.sum())


def numpy_m_step(
    data: NumpyData, resp: np.ndarray, mu: np.ndarray, var: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The reference M-step from expected sufficient statistics (two matrix products)."""
    n_k = resp.sum(axis=0)
    obs_k = resp.T @ data.mask
    sum_k = resp.T @ data.x0
    update = obs_k >= 1.0
    mu = np.where(update, sum_k / np.where(update, obs_k, 1.0), mu)
    resid = resp.T @ data.sq_norm - 2.0 * (mu * sum_k).sum(axis=1) + (mu * mu * obs_k).sum(axis=1)
    n_obs_k = resp.T @ data.n_obs
    has = n_obs_k > 0
    var = np.where(has, np.maximum(resid, 0.0) / np.where(has, n_obs_k, 1.0), var)
    return mu, np.maximum(var, MIN_VAR), n_k / data.x0.shape[0]


def numpy_fit_one(data: NumpyData, K: int, seed: int, form: str = "matmul") -> NumpyFit:
    """One EM run from the seed's initialisation until the stopping rule fires.

    Args:
        data: Output of :func:`numpy_data`.
        K: Number of components.
        seed: Seed of the ``random_rows`` initialisation.
        form: ``"matmul"`` or ``"broadcast"`` squared distances in the E-step.

    Returns:
        The final log-likelihood (of the last E-step), iteration count and parameters.
    """
    sq_dist = sq_dist_matmul if form == "matmul" else sq_dist_broadcast
    mu, var, weights = numpy_init(data, K, seed)
    old = -np.inf
    for it in range(1, MAX_ITER + 1):
        resp, ll = numpy_e_step(data, mu, var, weights, sq_dist)
        mu, var, weights = numpy_m_step(data, resp, mu, var)
        if it > 1 and ll - old <= TOL * abs(ll):
            break
        old = ll
    return NumpyFit(ll, it, mu, var, weights)


def numpy_fit(X: np.ndarray, K: int, restarts: int, dtype: np.dtype, form: str) -> list[NumpyFit]:
    """All restarts one after another (seeds ``0 .. restarts-1``), data preparation included."""
    data = numpy_data(X, dtype)
    return [numpy_fit_one(data, K, seed, form) for seed in range(restarts)]


# ----------------------------------------------------------------------------------------------
# Environment report
# ----------------------------------------------------------------------------------------------


def _openblas_via_ctypes() -> str | None:
    """Ask NumPy's bundled OpenBLAS for its runtime core type (when threadpoolctl is absent)."""
    found = {}
    for key, names, restype in (
        ("corename", ("scipy_openblas_get_corename64_", "openblas_get_corename"), ctypes.c_char_p),
        ("config", ("scipy_openblas_get_config64_", "openblas_get_config"), ctypes.c_char_p),
        (
            "threads",
            ("scipy_openblas_get_num_threads64_", "openblas_get_num_threads"),
            ctypes.c_int,
        ),
    ):
        fn = _openblas_function(names)
        if fn is not None:
            fn.restype = restype
            value = fn()
            found[key] = value.decode() if isinstance(value, bytes) else value
    if "corename" not in found:
        return None
    return (
        f"OpenBLAS coretype={found['corename']} threads={found.get('threads', '?')} "
        f"({str(found.get('config', '')).strip()})"
    )


def blas_info() -> str:
    """One line naming NumPy's BLAS and the kernels (core type) it runs."""
    try:
        from threadpoolctl import threadpool_info

        blas = [i for i in threadpool_info() if i.get("user_api") == "blas"]
        if blas:
            return "; ".join(
                f"{i.get('internal_api')} {i.get('version')} coretype={i.get('architecture')} "
                f"threads={i.get('num_threads')}"
                for i in blas
            )
    except ImportError:
        pass
    line = _openblas_via_ctypes()
    if line:
        return line + " [via ctypes]"
    try:
        cfg = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return (
            f"{cfg.get('name')} {cfg.get('version')} (build: {cfg.get('openblas configuration')})"
        )
    except Exception:
        return "unknown"


def print_environment(float32: bool) -> None:
    """Print the versions, devices, BLAS and the environment variables that change timings."""
    import jax

    print(
        f"jax {jax.__version__} on {jax.devices()[0].platform} ({os.cpu_count()} CPUs), "
        f"numpy {np.__version__}, dtype {'float32' if float32 else 'float64'}"
    )
    print(f"numpy BLAS: {blas_info()}")
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS", "XLA_FLAGS"):
        print(f"  {var}={os.environ.get(var, '(unset)')}")


def _openblas_function(names: Sequence[str]) -> Any:
    """The first of ``names`` exported by NumPy's bundled OpenBLAS, or ``None``."""
    for lib_path in glob.glob(os.path.join(os.path.dirname(np.__file__) + ".libs", "*openblas*")):
        try:
            lib = ctypes.CDLL(lib_path)
        except OSError:
            continue
        for name in names:
            fn = getattr(lib, name, None)
            if fn is not None:
                return fn
    return None


def set_blas_threads(n: int) -> bool:
    """Set the number of OpenBLAS threads NumPy uses (threadpoolctl, else OpenBLAS directly)."""
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=n, user_api="blas")
        return True
    except ImportError:
        pass
    fn = _openblas_function(
        (
            "scipy_openblas_set_num_threads64_",
            "openblas_set_num_threads64_",
            "openblas_set_num_threads",
        )
    )
    if fn is None:
        return False
    fn(ctypes.c_int(n))
    return True


class CpuMeter:
    """CPU seconds used by *other* processes while a block runs (Linux ``/proc/stat``).

    On a shared machine, other processes' load skews timings; OpenBLAS's spinning threads suffer
    far more from it than XLA's thread pool, which inflates the ratio. Elsewhere it reports nothing.
    """

    def __init__(self) -> None:
        self.start: tuple[float, float, float] | None = None
        self.others = self.wall = float("nan")

    @staticmethod
    def _snapshot() -> tuple[float, float, float] | None:
        try:
            with open("/proc/stat") as fh:
                ticks = [int(v) for v in fh.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        hz = os.sysconf("SC_CLK_TCK")
        busy = (sum(ticks) - ticks[3] - ticks[4]) / hz  # all but idle and iowait
        return busy, time.process_time(), time.perf_counter()

    def __enter__(self) -> CpuMeter:
        self.start = self._snapshot()
        return self

    def __exit__(self, *exc: object) -> None:
        end = self._snapshot()
        if self.start is not None and end is not None:
            busy, mine, wall = (e - s for e, s in zip(end, self.start, strict=True))
            self.others, self.wall = max(busy - mine, 0.0), wall

    def line(self) -> str:
        """A one-line report, with a warning when others used more than a tenth of a core."""
        if not np.isfinite(self.wall):
            return "load from other processes: unknown (no /proc/stat)"
        cores = self.others / self.wall
        warn = " -- WARNING: the machine was busy, timings are unreliable" if cores > 0.1 else ""
        return (
            f"load from other processes during the timed runs: {self.others:.1f} CPU s over "
            f"{self.wall:.1f} s ({cores:.2f} cores){warn}"
        )


# ----------------------------------------------------------------------------------------------
# Timing
# ----------------------------------------------------------------------------------------------


def time_calls(fn: Callable[[], Any], repeats: int) -> tuple[list[float], Any]:
    """Wall-clock seconds of ``repeats`` calls of ``fn`` and the last call's value."""
    times, value = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - start)
    return times, value


def check_agreement(
    jax_lls: np.ndarray,
    jax_iters: np.ndarray,
    np_fits: list[NumpyFit],
    rtol: float,
    need_same_iters: bool = True,
) -> tuple[bool, float, bool]:
    """Compare the restarts' final log-likelihoods and iteration counts.

    Args:
        jax_lls: jaxmix's final log-likelihood per restart.
        jax_iters: jaxmix's iteration count per restart.
        np_fits: The NumPy runs, one per restart.
        rtol: Largest relative log-likelihood difference accepted.
        need_same_iters: Whether equal iteration counts are required too (in float32 the
            stopping rule sits near rounding level, so counts may differ by one or two).

    Returns:
        ``(agree, max_rel_diff, same_iters)``.
    """
    np_lls = np.array([f.log_likelihood for f in np_fits])
    np_iters = np.array([f.n_iter for f in np_fits])
    rel = float(np.max(np.abs(jax_lls - np_lls) / np.abs(np_lls)))
    same_iters = bool(np.array_equal(jax_iters, np_iters))
    return rel <= rtol and (same_iters or not need_same_iters), rel, same_iters


def gflops(n_iter: int, n: int, d: int, K: int, seconds: float) -> float:
    """GFLOP/s of ``n_iter`` iterations at the floor of ``8 n d K`` flops each."""
    return 8.0 * n * d * K * n_iter / seconds / 1e9


def time_interleaved(
    fit_jax: Callable[[], Any], fit_numpy: Callable[[], list[NumpyFit]], repeats: int
) -> dict[str, Any]:
    """Time jaxmix's first call, then alternate jaxmix and NumPy ``repeats`` times.

    Alternating means a burst of load from other processes hits both sides alike.

    Returns:
        ``jax_first``, ``jax_times``, ``numpy_times`` and the last results ``res``, ``np_fits``.
    """
    first, res = time_calls(fit_jax, 1)
    jax_times: list[float] = []
    np_times: list[float] = []
    np_fits: list[NumpyFit] = []
    for _ in range(repeats):
        t, res = time_calls(fit_jax, 1)
        jax_times += t
        t, np_fits = time_calls(fit_numpy, 1)
        np_times += t
    return {
        "jax_first": first[0],
        "jax_times": jax_times,
        "numpy_times": np_times,
        "res": res,
        "np_fits": np_fits,
    }


def main(args: argparse.Namespace) -> dict[str, Any]:
    """Run the benchmark and print a summary.

    Args:
        args: Options from :func:`parse_args`.

    Returns:
        The measured numbers (times in seconds), including ``agree``.
    """
    import jax

    jax.config.update("jax_enable_x64", not args.float32)  # before any JAX computation
    import jaxmix
    from jaxmix.inference.em import executed_iterations

    dtype = np.dtype(np.float32 if args.float32 else np.float64)
    if args.blas_threads is not None and not set_blas_threads(args.blas_threads):
        print("could not set the OpenBLAS thread count (no threadpoolctl, no OpenBLAS symbol)")
    X = load_data(args.data, args.rows, args.cols)
    n, d = X.shape
    K, R = args.K, args.restarts
    print_environment(args.float32)
    print(
        f"data: {n} x {d}, {np.isnan(X).mean():.1%} missing; K={K}, {R} restarts, "
        f"init=random_rows, tol={TOL}, min_var={MIN_VAR}"
    )

    def fit_jax(n_init: int = R, seed: int = 0) -> Any:
        return jaxmix.fit_em(
            X, K, n_init=n_init, seed=seed, init="random_rows", tol=TOL, min_var=MIN_VAR
        )

    meter = CpuMeter()
    with meter:
        timing = time_interleaved(
            fit_jax, lambda: numpy_fit(X, K, R, dtype, args.numpy_form), args.repeats
        )
        res, np_fits = timing.pop("res"), timing.pop("np_fits")
        iters = np.asarray(res.restart_n_iter)
        rtol = 1e-4 if args.float32 else 1e-6
        agree, rel, same_iters = check_agreement(
            res.restart_log_likelihoods, iters, np_fits, rtol, need_same_iters=not args.float32
        )

        seq_times: list[float] = []
        if not args.no_sequential:

            def fit_seq() -> list[Any]:
                return [fit_jax(1, s) for s in range(R)]

            time_calls(fit_seq, 1)  # compile the single-restart shape
            seq_times = time_calls(fit_seq, args.repeats)[0]
    init_data = numpy_data(X, dtype)
    init_time = statistics.median(
        time_calls(lambda: [numpy_init(init_data, K, s) for s in range(R)], 3)[0]
    )
    t_jax, t_np = statistics.median(timing["jax_times"]), statistics.median(timing["numpy_times"])
    summary = {
        "n": n,
        "d": d,
        "K": K,
        "restarts": R,
        **timing,
        "jax_median": t_jax,
        "numpy_median": t_np,
        "ratio": t_np / t_jax,
        "jax_sequential": statistics.median(seq_times) if seq_times else None,
        "jax_sequential_times": seq_times,
        "init_time": init_time,
        "iters": iters.tolist(),
        "useful_iters": int(iters.sum()),
        "executed_iters": executed_iterations(iters),
        "uncompacted_iters": R * int(iters.max()),
        "max_rel_ll_diff": rel,
        "same_iters": same_iters,
        "agree": agree,
        "best_ll": res.log_likelihood,
        "numpy_iters": [f.n_iter for f in np_fits],
        "rtol": rtol,
        "others_cpu_s": meter.others,
        "load_line": meter.line(),
    }
    print_summary(summary, np.array([f.log_likelihood for f in np_fits]), res)
    return summary


def print_summary(s: dict[str, Any], np_lls: np.ndarray, res: Any) -> None:
    """Print the agreement check and the timing table."""
    n, d, K = s["n"], s["d"], s["K"]
    print("\nper restart (seed): final log-likelihood jaxmix / NumPy, iterations jaxmix / NumPy")
    for seed, (lj, ln, ij, inp) in enumerate(
        zip(res.restart_log_likelihoods, np_lls, s["iters"], s["numpy_iters"], strict=True)
    ):
        print(f"  seed {seed}: {lj:.10f} / {ln:.10f}, {ij} / {inp}")
    print(
        f"agreement: max relative LL difference {s['max_rel_ll_diff']:.2e} (allowed "
        f"{s['rtol']:.0e}), iteration counts {'equal' if s['same_iters'] else 'differ'} -> "
        f"{'OK' if s['agree'] else 'MISMATCH'}"
    )
    flop_iter = 8.0 * n * d * K
    print(
        f"\nflop floor: 8 n d K = {flop_iter / 1e6:.1f} MFLOP per iteration; iterations useful "
        f"{s['useful_iters']} (sum over restarts), executed {s['executed_iters']} (batched and "
        f"compacted; {s['uncompacted_iters']} = {s['restarts']} x longest without compaction)"
    )
    t_jax, t_np = s["jax_median"], s["numpy_median"]
    rows = [
        ("jaxmix batched (one call)", s["jax_times"], s["executed_iters"], s["useful_iters"]),
        ("NumPy, restarts in a loop", s["numpy_times"], s["useful_iters"], s["useful_iters"]),
    ]
    if s["jax_sequential_times"]:
        seq = (s["jax_sequential_times"], s["useful_iters"], s["useful_iters"])
        rows.append(("jaxmix, one restart per call", *seq))
    print(
        f"{'':30s} {'median s':>9s} {'best s':>8s} {'ms/iter':>8s} {'GFLOP/s':>8s} "
        f"{'GFLOP/s':>8s}\n{'':30s} {'':>9s} {'':>8s} {'(median)':>8s} {'executed':>8s} "
        f"{'useful':>8s}"
    )
    print(f"{'jaxmix first call (compile+run)':30s} {s['jax_first']:9.4f}")
    for name, times, ex, us in rows:
        t = statistics.median(times)
        print(
            f"{name:30s} {t:9.4f} {min(times):8.4f} {1e3 * t / ex:8.3f} "
            f"{gflops(ex, n, d, K, t):8.1f} {gflops(us, n, d, K, t):8.1f}"
        )
    print(s["load_line"])
    print(
        f"compile (first call - median): {s['jax_first'] - t_jax:.3f} s; host-side random_rows "
        f"init of all restarts (NumPy, inside both timings): {s['init_time']:.3f} s"
    )
    print(
        f"\nspeed-up NumPy / jaxmix (batched): {s['ratio']:.2f}x (target >= 8x: "
        f"{'met' if s['ratio'] >= 8 else 'NOT met'})"
    )
    print(
        f"speed-up with NumPy's init taken out of NumPy's time: "
        f"{(t_np - s['init_time']) / t_jax:.2f}x"
    )
    if s["jax_sequential"] is not None:
        print(f"jaxmix batched vs one restart at a time: {s['jax_sequential'] / t_jax:.2f}x faster")


if __name__ == "__main__":
    sys.exit(0 if main(parse_args())["agree"] else 1)

"""Benchmark: one dense EM iteration of the factor family against its flop floor.

An iteration of the factor family on a dense ``n x d`` matrix needs, per component, the rows'
``p x p`` sums ``sum_l Lambda_l Lambda_l' / psi_l`` over their observed entries and the columns'
sums of the rows' ``E[z z']``: two products of the ``(n, d)`` mask with ``(d, p^2 / 2)`` tables,
about ``4 n d K q^2`` flops for ``q`` factors (the floor of the issue). The script times EM's
compiled loop (a fixed number of iterations, no stopping rule) and, in the same run, a float32
matrix product of the same size (the machine's achieved GEMM rate), and reports

    ratio = time per iteration / (4 n d K q^2 / GEMM rate)

(target: within 3x). Sizes default to the course subset's shape with simulated values.

Usage::

    python benchmarks/factor_speed.py                   # n = d = 1200, K = 4, q = 8
    python benchmarks/factor_speed.py --K 1 --rank 24 --n 2000 --d 1000
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=1200)
    p.add_argument("--d", type=int, default=1200)
    p.add_argument("--K", type=int, default=4)
    p.add_argument("--rank", type=int, default=8)
    p.add_argument("--missing", type=float, default=0.23)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)

    import jax
    import jax.numpy as jnp

    import jaxmix
    from jaxmix.data import Standardizer, as_data, float_dtype
    from jaxmix.inference.em import EMConstants, run_restarts
    from jaxmix.inference.init import init_params
    from jaxmix.models.families import get_family
    from jaxmix.models.mixture import as_device, to_internal

    n, d, K, q = args.n, args.d, args.K, args.rank
    X = jaxmix.simulate_ratings(n, d, K=max(K, 2), missing=args.missing, seed=0).X
    family = get_family("factor", rank=q)
    layout = as_data(X, method="dense")
    std = Standardizer.fit(layout.summary())
    dtype = float_dtype()
    data = layout.device(std, dtype)
    start = init_params("kmeans++", layout, K, n_init=1, seed=0, covariance=family)
    consts = EMConstants(
        tol=jnp.asarray(-1.0, dtype),
        min_var=jnp.asarray(0.01 / std.scale**2, dtype),
        ll_shift=jnp.asarray(0.0, dtype),
        prior=None,
        prior_shift=jnp.asarray(0.0, dtype),
    )
    fit_args = (as_device(to_internal(start, std), dtype), data, consts)
    compiled = run_restarts.lower(*fit_args, family=family, max_iter=args.iters).compile()
    em_times = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        out = compiled(*fit_args)
        jax.block_until_ready(out)
        em_times.append((time.perf_counter() - t) / int(np.asarray(out.n_iter)[0]))

    # The machine's GEMM rate at the size of the iteration's products.
    P = (q + 1) * (q + 2) // 2
    a = jnp.asarray(np.random.default_rng(0).random((n, d)), dtype)
    b = jnp.asarray(np.random.default_rng(1).random((d, K * P)), dtype)
    gemm = jax.jit(lambda x, y: x @ y)
    jax.block_until_ready(gemm(a, b))
    gemm_times = []
    for _ in range(max(args.repeats, 5)):
        t = time.perf_counter()
        jax.block_until_ready(gemm(a, b))
        gemm_times.append(time.perf_counter() - t)
    rate = 2.0 * n * d * K * P / min(gemm_times)

    floor_flops = 4.0 * n * d * K * q * q
    per_iter = min(em_times)
    floor_s = floor_flops / rate
    print(f"n={n} d={d} K={K} q={q} ({dtype.__name__ if hasattr(dtype, '__name__') else dtype})")
    print(f"EM iteration: {per_iter * 1e3:.1f} ms (median {statistics.median(em_times) * 1e3:.1f})")
    print(f"GEMM rate at this size: {rate / 1e9:.1f} GFLOP/s")
    print(f"flop floor 4 n d K q^2 = {floor_flops / 1e9:.2f} GFLOP -> {floor_s * 1e3:.1f} ms")
    print(f"ratio to the floor: {per_iter / floor_s:.2f}x (target <= 3x)")


if __name__ == "__main__":
    main()

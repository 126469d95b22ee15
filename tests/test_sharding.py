"""Data-parallel sparse EM over several devices equals the single-device fit.

``XLA_FLAGS=--xla_force_host_platform_device_count=4`` must be set before JAX starts, so the
comparisons run in a subprocess with four CPU devices (float64 there too). The rows are split
over the devices with ``jax.shard_map`` and the sufficient statistics summed with ``psum``; the
only difference from one device is the order of floating-point sums, so the log-likelihoods,
parameters and responsibilities agree to 1e-10 relative in float64 (1e-6 relative in the
log-likelihood and 1e-4 absolute in the means and responsibilities after five float32
iterations), and the iteration counts are equal.

Across hosts: two processes with two CPU devices each, joined by ``jax.distributed`` (gloo
collectives on CPU), run one fit over the four devices and both get the single-device result.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import jax
    jax.config.update("jax_enable_x64", True)
    import numpy as np
    import jaxmix
    from jaxmix.data import Standardizer, as_data

    assert len(jax.devices()) == 4, jax.devices()
    rng = np.random.default_rng(0)
    n, d, K = 230, 17, 3
    centres = rng.normal(0.0, 3.0, (K, d))
    X = 3.0 + centres[rng.integers(K, size=n)] + rng.normal(size=(n, d))
    X[rng.random((n, d)) < rng.uniform(0.1, 0.95, (n, 1))] = np.nan
    X[[5, 77]] = np.nan          # empty rows
    X[:, 3] = np.nan             # an empty column
    S = jaxmix.sparse_ratings(X)
    mesh4 = jax.make_mesh((4,), ("rows",))

    def same(a, b, rtol):
        # restart by restart; the winners' results when the same restart wins (two restarts
        # that reach one optimum tie, and which one wins is then a matter of rounding)
        assert np.array_equal(a.restart_n_iter, b.restart_n_iter)
        np.testing.assert_allclose(a.restart_objectives, b.restart_objectives, rtol=rtol)
        for p, q in zip(jax.tree.leaves(a.restart_params), jax.tree.leaves(b.restart_params)):
            np.testing.assert_allclose(p, q, rtol=rtol, atol=rtol)
        if a.best_restart != b.best_restart:
            objectives = a.restart_objectives
            assert abs(objectives[a.best_restart] - objectives[b.best_restart]) <= rtol * abs(
                objectives[a.best_restart]
            ), (a.best_restart, b.best_restart)
            return
        assert a.n_iter == b.n_iter, (a.n_iter, b.n_iter)
        np.testing.assert_allclose(a.history, b.history, rtol=rtol)
        for p, q in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params)):
            np.testing.assert_allclose(p, q, rtol=rtol, atol=rtol)
        np.testing.assert_allclose(a.resp, b.resp, rtol=rtol, atol=rtol)

    # the data really are split: one shard of the chunks per device
    layout = as_data(S)
    std = Standardizer.fit(layout.summary())
    placed = layout.device(std, np.float64, chunk_size=64, mesh=mesh4, dense_row_density=0.5)
    assert len(placed.col.addressable_shards) == 4
    assert {s.device for s in placed.val.addressable_shards} == set(jax.devices())
    assert placed.dense is not None and placed.dense.x.shape[0] == 4
    active = layout.chunking.active_rows
    assert (active >= 0).sum(axis=1).min() > 0   # every device has chunked rows

    configs = [
        dict(covariance="spherical", n_init=3, dense_row_density=None),
        dict(covariance="diag", prior=jaxmix.Prior(), n_init=2, dense_row_density=None),
        dict(covariance="spherical", prior=jaxmix.Prior(), n_init=2, dense_row_density=0.5),
        dict(covariance="diag", init="random_rows", n_init=2),
    ]
    for cfg in configs:
        one = jaxmix.fit_em(S, K, method="sparse", chunk_size=64, min_var=0.05, **cfg)
        four = jaxmix.fit_em(S, K, chunk_size=64, min_var=0.05, mesh=mesh4, **cfg)
        same(one, four, 1e-10)
    # three devices (uneven blocks), a plain list of devices, and fit_em's dispatch
    one = jaxmix.fit_em(S, K, n_init=2, chunk_size=50)
    same(one, jaxmix.fit_em(S, K, n_init=2, chunk_size=50, mesh=jax.devices()[:3]), 1e-10)
    same(one, jaxmix.fit_em(X, K, n_init=2, chunk_size=50, mesh=mesh4), 1e-10)
    dense = jaxmix.fit_em(X, K, n_init=2, method="dense")
    same(dense, jaxmix.fit_em(S, K, n_init=2, mesh=mesh4), 1e-9)

    # float32, five iterations: the same to float32 rounding (EM amplifies rounding
    # differences over many iterations, so longer runs drift apart in ill-determined means)
    jax.config.update("jax_enable_x64", False)
    sim = jaxmix.simulate_sparse_ratings(3000, 400, 60_000, K=4, seed=2)
    kw = dict(max_iter=5, tol=0.0, init="random_rows", chunk_size=4096)
    a = jaxmix.fit_em(sim.S, 4, **kw)
    b = jaxmix.fit_em(sim.S, 4, mesh=mesh4, **kw)
    assert a.n_iter == b.n_iter == 5
    assert abs(a.log_likelihood - b.log_likelihood) <= 1e-6 * abs(a.log_likelihood)
    np.testing.assert_allclose(a.mu, b.mu, atol=1e-4)
    np.testing.assert_allclose(a.resp, b.resp, atol=1e-4)
    # the factor family's batched LAPACK solves hang when every thread of XLA's CPU pool runs
    # a device's program: refused with a clear error (the pool's size made 4 here, whatever
    # the machine), not a hang
    import jaxmix.data.triples as triples
    triples._cpu_threads = lambda: 4
    try:
        jaxmix.fit_em(S, K, covariance="factor", rank=1, chunk_size=50, mesh=mesh4)
    except ValueError as err:
        assert "would hang" in str(err) and "4 CPU devices" in str(err), err
    else:
        raise AssertionError("the factor family over 4 CPU devices of 4 threads was accepted")
    print("SHARDING-OK")
    """
)


def test_four_devices_equal_one():
    env = dict(os.environ)
    env["XLA_FLAGS"] = (
        env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
    ).strip()
    env["JAX_PLATFORMS"] = "cpu"
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=600, env=env
    )
    assert out.returncode == 0, out.stderr[-4000:]
    assert "SHARDING-OK" in out.stdout


WORKER = textwrap.dedent(
    """
    import sys
    import jax
    pid, port, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_num_cpu_devices", 2)
    jax.distributed.initialize(
        coordinator_address=f"127.0.0.1:{port}", num_processes=2, process_id=pid
    )
    import numpy as np
    import jaxmix

    assert jax.process_count() == 2 and len(jax.devices()) == 4
    rng = np.random.default_rng(0)
    n, d, K = 230, 17, 3
    centres = rng.normal(0.0, 3.0, (K, d))
    X = 3.0 + centres[rng.integers(K, size=n)] + rng.normal(size=(n, d))
    X[rng.random((n, d)) < rng.uniform(0.1, 0.95, (n, 1))] = np.nan
    X[[5, 77]] = np.nan
    S = jaxmix.sparse_ratings(X)   # every process holds the whole matrix
    mesh = jax.make_mesh((4,), ("rows",))   # the 4 devices of the 2 processes
    res = jaxmix.fit_em(S, K, n_init=2, chunk_size=50, mesh=mesh)
    local = jaxmix.fit_em(S, K, n_init=2, chunk_size=50)   # this process's first device alone
    np.savez(out, mu=res.mu, resp=res.resp, ll=res.log_likelihood, n_iter=res.n_iter,
             mu1=local.mu, resp1=local.resp, ll1=local.log_likelihood, n_iter1=local.n_iter)
    """
)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_two_processes_with_jax_distributed_equal_one(tmp_path):
    """Two processes (two CPU devices each) joined by ``jax.distributed`` run one fit over four
    devices; every process gets the whole result, equal to a single-device fit."""
    import numpy as np

    env = dict(os.environ)
    env["JAX_PLATFORMS"] = "cpu"
    env.pop("XLA_FLAGS", None)
    port = _free_port()
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(pid), str(port), str(tmp_path / f"p{pid}.npz")],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for pid in (0, 1)
    ]
    for p in procs:
        try:
            _, err = p.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
        assert p.returncode == 0, err[-4000:]
    a, b = (np.load(tmp_path / f"p{pid}.npz") for pid in (0, 1))
    assert int(a["n_iter"]) == int(a["n_iter1"]) == int(b["n_iter"])
    np.testing.assert_allclose(a["ll"], a["ll1"], rtol=1e-10)
    for key in ("mu", "resp"):
        np.testing.assert_allclose(a[key], a[key + "1"], rtol=1e-10, atol=1e-10)
        np.testing.assert_array_equal(a[key], b[key])

"""Every matrix product jaxmix compiles runs at ``Precision.HIGHEST``.

On GPUs with TensorFloat-32 (and TPUs) a matrix product at JAX's default precision rounds its
float32 inputs to about 10 bits of mantissa, which would make float32 fits disagree with float64
far beyond rounding. The library therefore asks for ``Precision.HIGHEST`` in every product. This
test checks that on the CPU, where the precision changes nothing numerically but is still
written into the lowered program: it records the arguments of every compiled program of jaxmix
while the public functions run (each family, both layouts, EM, the seeding, completion,
predictive summaries, Gibbs, NUTS, SVI, relabelling), lowers each program again and reads the
precision of every ``dot_general`` in its StableHLO text.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import jaxmix
from jaxmix.inference import em, gibbs, init, kmeans, mcmc, svi
from jaxmix.models import mixture
from jaxmix.posterior import completion, draws

# (module, name) of every module-level jitted program of the package.
PROGRAMS = [
    (em, "run_restarts"),
    (em, "_final_stats"),
    (em, "_objective_jit"),
    (init, "_seed_batched"),
    (kmeans, "_kmeans_batched"),
    (mixture, "_chunk_costs"),
    (mixture, "_responsibilities"),
    (completion, "_e_step"),
    (draws, "posterior_pass"),
    (gibbs, "sample_chains"),
    (mcmc, "sample_chains"),
    (svi, "_run_jit"),
]

_DOT = re.compile(r"stablehlo\.dot_general[^\n]*")
_LOC = re.compile(r"loc\((#loc\d+)\)\s*$")
_PRECISION = re.compile(r"precision = \[(\w+), (\w+)\]")


class _Recorder:
    """Stands in for a jitted function: records each call's arguments, then runs the original."""

    def __init__(self, fn):
        self.fn = fn
        self.calls = []

    def __call__(self, *args, **kwargs):
        self.calls.append((args, kwargs))
        return self.fn(*args, **kwargs)

    def lower(self, *args, **kwargs):
        self.calls.append((args, kwargs))
        return self.fn.lower(*args, **kwargs)


def _where(line: str, text: str) -> str:
    """The source location of a lowered operation (the program's text with debug info)."""
    found = _LOC.search(line)
    if found is None:
        return line[:160]
    label = found.group(1)
    for _ in range(8):  # follow aliases to a file:line entry
        entry = re.search(rf"^{label} = loc\((.*)\)$", text, re.M)
        if entry is None:
            return label
        body = entry.group(1)
        frame = re.search(r'"([^"]+\.py)":(\d+)', body)
        if frame:
            return f"{frame.group(1).split('jaxmix/')[-1]}:{frame.group(2)}"
        nested = re.search(r"(#loc\d+)", body)
        if nested is None:
            return body[:160]
        label = nested.group(1)
    return label


def _dots_below_highest(text: str) -> list[str]:
    bad = []
    for line in _DOT.findall(text):
        found = _PRECISION.search(line)
        if found is None or found.groups() != ("HIGHEST", "HIGHEST"):
            bad.append(_where(line, text))
    return bad


def test_dot_reader_tells_default_from_highest():
    # The check itself: a product at the default precision is caught, one at HIGHEST is not.
    import jax
    import jax.numpy as jnp
    from jax import lax

    a = jnp.ones((3, 3))
    loose = jax.jit(lambda a: a @ a).lower(a).as_text()
    tight = jax.jit(lambda a: jnp.dot(a, a, precision=lax.Precision.HIGHEST)).lower(a).as_text()
    assert len(_dots_below_highest(loose)) == 1
    assert _dots_below_highest(tight) == []


@pytest.mark.slow
def test_every_compiled_product_is_highest(monkeypatch):
    recorders = {}
    for module, name in PROGRAMS:
        rec = _Recorder(getattr(module, name))
        monkeypatch.setattr(module, name, rec)
        recorders[f"{module.__name__}.{name}"] = rec

    rng = np.random.default_rng(3)
    n, d = 40, 5
    X = rng.normal(size=(n, d)) + np.repeat([[0.0], [3.0]], n // 2, axis=0)
    X[rng.random((n, d)) < 0.2] = np.nan
    X[:, 0] = np.where(np.isnan(X[:, 0]), 0.5, X[:, 0])  # no empty row
    S = jaxmix.sparse_ratings(X)

    # One program of each kind is enough: the precision is set where a program is traced.
    for data, cov, extra in ((X, "factor", {"rank": 2}), (S, "diag", {})):
        fit = jaxmix.fit_em(data, 2, covariance=cov, n_init=2, seed=0, **extra)
        jaxmix.complete(data, fit, return_std=True)
        jaxmix.log_objective(data, fit.params)
    jaxmix.kmeans(X, 2, n_init=2, seed=0)
    short = {"num_chains": 1, "num_warmup": 5, "num_samples": 5, "seed": 0, "n_init": 1}
    gibbs_fit = jaxmix.fit_mcmc(X, 2, covariance="diag", kernel="gibbs", **short)
    jaxmix.predictive_summary(gibbs_fit, X, num_samples=10)
    jaxmix.fit_mcmc(X, 2, covariance="spherical", max_tree_depth=2, **short)
    jaxmix.fit_svi(X, 2, covariance="diag", num_steps=5, polish_steps=0, seed=0)

    unused = [name for name, rec in recorders.items() if not rec.calls]
    assert not unused, f"the test did not reach {unused}; extend it or drop the entry"
    problems = {}
    for name, rec in recorders.items():
        seen = set()
        for args, kwargs in rec.calls:
            text = rec.fn.lower(*args, **kwargs).as_text(debug_info=True)
            if text in seen:
                continue
            seen.add(text)
            bad = _dots_below_highest(text)
            if bad:
                problems.setdefault(name, []).extend(bad)
    assert not problems, {name: sorted(set(where)) for name, where in problems.items()}

"""Test configuration: float64 for the session, the reference data folder, fixed seeds.

Tests that compare against the published numbers need float64; jaxmix itself never changes
JAX's settings, so the test session enables x64 here. Tests that exercise float32 pass explicit
dtypes to the kernels or run in a subprocess.

Under ``pytest -n N`` (pytest-xdist) the workers share one persistent compilation cache, made
for the run and removed after it: a program one worker compiled (the EM loop, the seeding, an
E-step of a given size class) is read back by the other instead of compiled again. A plain
``pytest`` run keeps its programs in memory and uses no cache.

The suite compiles thousands of small programs and runs most of them once, so compilation is
most of its time: the tests ask XLA's CPU backend for its cheapest code generation
(:data:`TEST_XLA_FLAGS`, added to ``XLA_FLAGS`` before JAX starts; about a quarter less time on
the files measured). Results agree with the default code to rounding, not bit for bit (the
backend fuses fewer multiply-adds: EM fits of three families in float64 differed by at most
4.5e-13); every bit-exact comparison of the suite compares two runs of the same session.
``JAXMIX_TEST_FULL_OPT=1`` runs the tests with XLA's default optimisation, as users and the
benchmarks get it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

#: Compiler options of the test session (module docstring).
TEST_XLA_FLAGS = ("--xla_backend_optimization_level=0", "--xla_llvm_disable_expensive_passes=true")

if os.environ.get("JAXMIX_TEST_FULL_OPT", "") in ("", "0"):
    _flags = os.environ.get("XLA_FLAGS", "").split()
    _names = {flag.split("=")[0] for flag in _flags}
    _flags += [flag for flag in TEST_XLA_FLAGS if flag.split("=")[0] not in _names]
    os.environ["XLA_FLAGS"] = " ".join(_flags)

import jax  # noqa: E402  (after XLA_FLAGS: the backend reads them when it starts)
import numpy as np  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_enable_x64", True)

_CACHE_ENV = "JAXMIX_TEST_COMPILATION_CACHE"


def pytest_configure(config) -> None:
    if hasattr(config, "workerinput"):  # an xdist worker: use the run's cache
        path = os.environ.get(_CACHE_ENV)
        if path:
            import jaxmix

            jaxmix.enable_compilation_cache(path)
    elif config.getoption("numprocesses", None):  # the xdist controller: make it
        config._jaxmix_cache = tempfile.mkdtemp(prefix="jaxmix-test-xla-")
        os.environ[_CACHE_ENV] = config._jaxmix_cache


def pytest_unconfigure(config) -> None:
    path = getattr(config, "_jaxmix_cache", None)
    if path:
        shutil.rmtree(path, ignore_errors=True)
        os.environ.pop(_CACHE_ENV, None)


def reference_dir() -> Path | None:
    """The course data folder named by ``JAXMIX_REFERENCE_DATA``, if it exists."""
    path = os.environ.get("JAXMIX_REFERENCE_DATA")
    if path and Path(path).is_dir():
        return Path(path)
    return None


@pytest.fixture(scope="session")
def ref_dir() -> Path:
    """The reference data folder; skips the test when it is not available."""
    path = reference_dir()
    if path is None:
        pytest.skip("JAXMIX_REFERENCE_DATA does not name the course data folder")
    return path


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20261128)

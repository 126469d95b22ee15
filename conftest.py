"""Root pytest configuration, shared by the tests, the doctests and the README.

Every test module compiles its own XLA programs; JAX keeps them all for the life of the process.
Dropping them after each module bounds the memory of the long single-process test run.
"""

from __future__ import annotations

import jax
import pytest


@pytest.fixture(autouse=True, scope="module")
def _drop_compiled_programs():
    yield
    jax.clear_caches()

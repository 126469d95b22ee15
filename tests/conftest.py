"""Test configuration: float64 for the session, the reference data folder, fixed seeds.

Tests that compare against the published numbers need float64; jaxmix itself never changes
JAX's settings, so the test session enables x64 here. Tests that exercise float32 pass explicit
dtypes to the kernels or run in a subprocess.
"""

from __future__ import annotations

import os
from pathlib import Path

import jax
import numpy as np
import pytest

jax.config.update("jax_enable_x64", True)


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

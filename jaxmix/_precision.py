"""Matrix products at full float precision in every program jaxmix compiles.

On GPUs with TensorFloat-32 (and on TPUs) a matrix product at JAX's default precision rounds
float32 inputs to about 10 bits of mantissa, so a float32 fit would drift from float64 far
beyond rounding and the variances of a mixture could lose every digit. Each jitted program of
the package is traced under :func:`highest`, which asks for ``Precision.HIGHEST`` in every
product made while it is traced: jaxmix's own products and those of the libraries it calls
(NumPyro's mass matrix, funsor's enumeration). This is a scoped setting of the trace, not a
change to JAX's global configuration: a user's own code keeps JAX's default.
``tests/test_precision.py`` reads every product's precision in the lowered programs.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax

__all__ = ["highest"]


def highest(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn``, traced with every matrix product at ``Precision.HIGHEST``; goes under ``jax.jit``."""

    @functools.wraps(fn)
    def traced(*args: Any, **kwargs: Any) -> Any:
        with jax.default_matmul_precision("highest"):
            return fn(*args, **kwargs)

    return traced

"""Small helpers shared by the test modules (public jaxmix names only)."""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxmix.data import Standardizer, as_data
from jaxmix.models.families import as_params


def dense_arrays(X: Any, mask: Any = None) -> Any:
    """``X`` (``NaN`` = missing) as the dense layout's device arrays, in data units."""
    layout = as_data(X, mask, method="dense", allow_all_missing=True)
    return layout.device(Standardizer.identity(layout.shape[1])).local()


def jax_params(params: Any, dtype: Any = jnp.float64) -> Any:
    """Any parameters (typed, legacy ``MixtureParams(mu, var, weights)``, a result) as typed
    parameters of JAX arrays."""
    return jax.tree.map(lambda a: jnp.asarray(np.asarray(a, np.float64), dtype), as_params(params))


def numpy_params(params: Any) -> Any:
    """Any parameters as typed parameters of float64 NumPy arrays."""
    return jax.tree.map(lambda a: np.asarray(a, np.float64), as_params(params))


def compiled(fn: Any, static_argnums: Any = ()) -> Any:
    """``fn`` as the package's programs run it: under ``jax.jit``, traced with every matrix
    product at ``Precision.HIGHEST`` (as ``jaxmix._precision.highest`` does). One program is
    compiled per input shape; called eagerly instead, each of its operations is compiled on its
    own for every new shape (about 2 s per E-step of a new shape on a CPU)."""

    @functools.wraps(fn)
    def traced(*args: Any) -> Any:
        with jax.default_matmul_precision("highest"):
            return fn(*args)

    return jax.jit(traced, static_argnums=static_argnums)

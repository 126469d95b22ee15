"""Small helpers shared by the test modules (public jaxmix names only)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxmix._precision import highest
from jaxmix.data import Standardizer, as_data
from jaxmix.inference import em
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


# The E-step, the statistics and the M-step as fit_em runs them: under jax.jit, traced with the
# package's own precision scope (jaxmix._precision.highest). One program per input shape; called
# eagerly, each of their operations is compiled on its own for every new shape (about 2 s per
# E-step of a new shape on a CPU).
e_step = jax.jit(highest(em.e_step))
m_step = jax.jit(highest(em.m_step))
suff_stats = jax.jit(highest(em.suff_stats), static_argnums=2)

"""Input checking and the internal representation of a partially observed matrix.

Every public entry point goes through :func:`validate_matrix`, which copies the input (the
caller's array is never modified), checks it and returns a float64 host array with ``NaN`` at
the missing entries together with a boolean mask (``True`` = observed).

The compiled kernels work on a :class:`MaskedData` built from a *standardised* copy of the data
(columns centred, one power-of-two scale for the whole matrix). The mixture likelihood is
equivariant under that map, so fitting in standardised units and mapping the parameters back is
exact up to rounding; it keeps float32 accurate and lets values near 1e150 or 1e-150 through
without overflow or underflow.
"""

from __future__ import annotations

import numbers
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from jaxmix.types import MixtureParams

__all__ = [
    "MaskedData",
    "Standardizer",
    "check_n_components",
    "check_nonneg_float",
    "check_positive_int",
    "float_dtype",
    "masked_data",
    "validate_matrix",
]


def float_dtype() -> np.dtype:
    """The floating dtype JAX computes in now: float64 with ``jax_enable_x64``, else float32."""
    return np.dtype(jax.dtypes.canonicalize_dtype(jnp.float64))


def _as_array(X: Any, name: str) -> np.ndarray:
    if hasattr(X, "to_numpy") and not isinstance(X, np.ndarray):  # pandas objects
        X = X.to_numpy()
    try:
        arr = np.asarray(X)
    except (ValueError, TypeError) as err:  # ragged nested lists and the like
        raise ValueError(f"{name} could not be read as a rectangular array: {err}") from None
    return arr


def validate_matrix(
    X: Any, mask: Any = None, *, name: str = "X", allow_all_missing: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Check a partially observed matrix and return a float64 copy with its mask.

    Args:
        X: Array-like of shape ``(n, d)``; ``NaN`` marks a missing entry. Integer, float16 and
            other real dtypes are accepted, as are pandas DataFrames.
        mask: Optional boolean array of shape ``(n, d)``; ``True`` marks an observed entry and
            overrides the ``NaN`` convention (values at unobserved entries are ignored).
        name: Name of the argument, used in error messages.
        allow_all_missing: Accept a matrix with no observed entry (for completion only).

    Returns:
        ``(values, observed)``: a new float64 array with ``NaN`` at every unobserved entry and a new
        boolean mask.

    Raises:
        TypeError: ``X`` is not numeric, or ``mask`` is not boolean.
        ValueError: ``X`` is not 2-D or is empty; ``mask`` has the wrong shape; an observed entry
            is infinite or ``NaN``; every entry is missing.
    """
    arr = _as_array(X, name)
    if arr.dtype.kind == "b" or arr.dtype.kind not in "iuf":
        raise TypeError(
            f"{name} must be an array of real numbers; got dtype {arr.dtype}"
            + (" (convert strings or objects to floats first)" if arr.dtype.kind in "OUS" else "")
        )
    if arr.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D array of shape (n_rows, n_cols); got {arr.ndim}-D with shape "
            f"{arr.shape}"
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(
            f"{name} is empty (shape {arr.shape}); it needs at least one row and column"
        )
    values = arr.astype(np.float64, copy=True)
    if mask is None:
        observed = ~np.isnan(values)
    else:
        m = _as_array(mask, "mask")
        if m.dtype != np.bool_:
            raise TypeError(f"mask must be a boolean array (True = observed); got dtype {m.dtype}")
        if m.shape != values.shape:
            raise ValueError(f"mask has shape {m.shape} but {name} has shape {values.shape}")
        observed = m.copy()
        bad = observed & np.isnan(values)
        if bad.any():
            i, j = np.argwhere(bad)[0]
            raise ValueError(
                f"{name} is NaN at {int(bad.sum())} entries that mask marks observed "
                f"(first at row {i}, column {j})"
            )
    bad = observed & ~np.isfinite(values)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise ValueError(
            f"{name} has {int(bad.sum())} infinite values (first at row {i}, column {j}); "
            "mark unknown entries as NaN (or False in mask) instead"
        )
    if not allow_all_missing and not observed.any():
        raise ValueError(f"every entry of {name} is missing; there is nothing to fit")
    values[~observed] = np.nan
    return values, observed


def check_n_components(K: Any, n_rows: int) -> int:
    """Validate the number of components against the number of rows."""
    if isinstance(K, bool) or not isinstance(K, numbers.Integral):
        raise TypeError(f"K (number of components) must be an integer; got {K!r}")
    K = int(K)
    if K < 1:
        raise ValueError(f"K (number of components) must be at least 1; got {K}")
    if K > n_rows:
        raise ValueError(f"K (number of components) = {K} exceeds the number of rows, {n_rows}")
    return K


def check_positive_int(value: Any, name: str) -> int:
    """Validate a strictly positive integer option."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer; got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be at least 1; got {value}")
    return int(value)


def check_nonneg_float(value: Any, name: str) -> float:
    """Validate a finite, non-negative real option."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number; got {value!r}")
    value = float(value)
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be finite and non-negative; got {value}")
    return value


class MaskedData(NamedTuple):
    """A partially observed matrix in the form the kernels use.

    Attributes:
        x: Values with missing entries set to zero, shape ``(n, d)``.
        mask: 1.0 where observed, 0.0 where missing, shape ``(n, d)``.
        n_obs: Number of observed entries of each row, ``|C_u|``, shape ``(n,)``.
        sq_norm: Squared norm of each row's observed values, shape ``(n,)``.
    """

    x: Array
    mask: Array
    n_obs: Array
    sq_norm: Array


def masked_data(values: np.ndarray, observed: np.ndarray, dtype: Any = None) -> MaskedData:
    """Build :class:`MaskedData` from a validated ``(values, observed)`` pair (no rescaling)."""
    dtype = float_dtype() if dtype is None else dtype
    x = np.where(observed, values, 0.0)
    return MaskedData(
        x=jnp.asarray(x, dtype=dtype),
        mask=jnp.asarray(observed, dtype=dtype),
        n_obs=jnp.asarray(observed.sum(axis=1), dtype=dtype),
        sq_norm=jnp.asarray((x * x).sum(axis=1), dtype=dtype),
    )


class Standardizer(NamedTuple):
    """The affine map ``z = (x - offset) / scale`` used inside the kernels.

    ``scale`` is a power of two, so scaling is exact in floating point.

    Attributes:
        offset: Column centres (mean of each column's observed entries), shape ``(d,)``.
        scale: One positive scale for the whole matrix.
    """

    offset: np.ndarray
    scale: float

    @classmethod
    def fit(cls, values: np.ndarray, observed: np.ndarray) -> Standardizer:
        """Centre each column on its observed mean and scale by a power of two near the spread."""
        counts = observed.sum(axis=0)
        sums = np.where(observed, values, 0.0).sum(axis=0)
        offset = np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0)
        resid = np.where(observed, values - offset, 0.0)
        spread = np.sqrt((resid**2).sum() / max(observed.sum(), 1))
        if not np.isfinite(spread) or spread == 0.0:
            spread = float(np.max(np.abs(offset))) or 1.0
        scale = float(2.0 ** np.round(np.log2(spread)))
        return cls(offset=offset, scale=scale)

    def data(self, values: np.ndarray, observed: np.ndarray, dtype: Any = None) -> MaskedData:
        """The standardised :class:`MaskedData` of a validated matrix."""
        return masked_data((values - self.offset) / self.scale, observed, dtype)

    def to_internal(self, params: MixtureParams) -> MixtureParams:
        """Map parameters in data units (NumPy, any batch shape) to standardised units."""
        mu = (np.asarray(params.mu, np.float64) - self.offset) / self.scale
        var = np.asarray(params.var, np.float64) / self.scale**2
        return MixtureParams(mu, var, np.asarray(params.weights, np.float64))

    def to_data(self, params: MixtureParams) -> MixtureParams:
        """Map standardised parameters back to data units as float64 NumPy arrays."""
        mu = np.asarray(params.mu, np.float64) * self.scale + self.offset
        var = np.asarray(params.var, np.float64) * self.scale**2
        return MixtureParams(mu, var, np.asarray(params.weights, np.float64))

    def log_likelihood_shift(self, observed: np.ndarray) -> float:
        """Add this to a standardised log-likelihood to get it in data units."""
        return -float(observed.sum()) * float(np.log(self.scale))

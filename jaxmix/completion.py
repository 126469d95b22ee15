"""Filling the missing entries of a matrix from a fitted mixture."""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np

from jaxmix._data import Standardizer, validate_matrix
from jaxmix.inference.em import e_step
from jaxmix.types import MixtureParams

__all__ = ["complete", "responsibilities"]


def _params_of(result: Any) -> MixtureParams:
    params = result if isinstance(result, MixtureParams) else getattr(result, "params", None)
    if not isinstance(params, MixtureParams):
        raise TypeError(
            f"result must be a fitted result (e.g. from fit_em) or MixtureParams; got "
            f"{type(result).__name__}"
        )
    return MixtureParams(*(np.asarray(p, np.float64) for p in params))


def _posterior(values: np.ndarray, observed: np.ndarray, params: MixtureParams):
    d = values.shape[1]
    if params.mu.ndim != 2 or params.mu.shape[1] != d:
        raise ValueError(f"the fitted means have shape {params.mu.shape} but X has {d} columns")
    K = params.mu.shape[0]
    if params.var.shape not in ((K,), (K, d)):
        raise ValueError(
            f"the fitted variances have shape {params.var.shape}; expected ({K},) (spherical) or "
            f"({K}, {d}) (diag)"
        )
    std = Standardizer.fit(values, observed) if observed.any() else Standardizer(np.zeros(d), 1.0)
    internal = std.to_internal(params)
    data = std.data(values, observed)
    dtype = data.x.dtype
    resp, _ = e_step(MixtureParams(*(jnp.asarray(p, dtype) for p in internal)), data)
    return np.asarray(resp, np.float64)


def responsibilities(X: Any, result: Any, *, mask: Any = None) -> np.ndarray:
    """Posterior component probabilities ``p(k | row)`` of the rows of ``X``.

    Args:
        X: Array-like ``(n, d)`` with ``NaN`` at missing entries (need not be the fit data).
        result: A fitted result or :class:`~jaxmix.MixtureParams`.
        mask: Optional boolean ``(n, d)``, ``True`` = observed.

    Returns:
        Array of shape ``(n, K)`` whose rows sum to one.
    """
    values, observed = validate_matrix(X, mask, allow_all_missing=True)
    return _posterior(values, observed, _params_of(result))


def complete(
    X: Any, result: Any, *, mask: Any = None, return_std: bool = False
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Fill the missing entries of ``X`` with their conditional mean under a fitted mixture.

    .. math::

        \\hat x_{ul} = \\sum_k p(k \\mid x_{u,C_u})\\, \\mu_{kl}, \\qquad
        \\mathrm{sd}_{ul}^2 = \\sum_k p(k \\mid x_{u,C_u}) (\\mathrm{var}_{kl} + \\mu_{kl}^2)
            - \\hat x_{ul}^2

    with ``var_kl = var_k`` for a spherical mixture.

    Observed entries are copied through unchanged (their standard deviation is 0). The
    responsibilities come from an E-step of the given parameters on ``X``.

    Args:
        X: Array-like ``(n, d)``; ``NaN`` marks the entries to fill. It is not modified.
        result: A fitted result (from :func:`jaxmix.fit_em`, :func:`jaxmix.kmeans`, ...) or
            :class:`~jaxmix.MixtureParams`.
        mask: Optional boolean ``(n, d)``, ``True`` = observed (unobserved entries are filled).
        return_std: Also return the predictive standard deviation of every entry.

    Returns:
        The completed ``(n, d)`` float64 array, and with ``return_std`` a second ``(n, d)`` array of
        predictive standard deviations (0 at observed entries).

    Example:
        >>> import numpy as np, jaxmix
        >>> X = np.array([[1.0, 2.0], [1.0, np.nan], [5.0, 6.0], [np.nan, 6.0]])
        >>> filled = jaxmix.complete(X, jaxmix.fit_em(X, 2, min_var=0.01))
        >>> bool(np.isnan(filled).any())
        False
    """
    values, observed = validate_matrix(X, mask, allow_all_missing=True)
    params = _params_of(result)
    resp = _posterior(values, observed, params)
    mean = resp @ params.mu
    filled = np.where(observed, values, mean)
    if not return_std:
        return filled
    # Centre the means per column before squaring to avoid cancellation.
    centre = params.mu.mean(axis=0)
    dev = params.mu - centre
    second = resp @ (dev * dev) - (mean - centre) ** 2
    mix_var = resp @ params.var  # (n,) spherical, (n, d) diag
    var = np.maximum(second, 0.0) + (mix_var if mix_var.ndim == 2 else mix_var[:, None])
    return filled, np.where(observed, 0.0, np.sqrt(var))

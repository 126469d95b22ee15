"""Covariance families of the mixture, one module each, and their registry.

========== =================================== ============== ===============================
name       component covariance                ``cov.var``    free covariance parameters
========== =================================== ============== ===============================
spherical  ``var_k I``                         ``(K,)``       ``K``
diag       ``diag(var_k1, ..., var_kd)``        ``(K, d)``     ``K d``
shared     ``var I`` (every component)          ``()``         ``1``
========== =================================== ============== ===============================

:data:`FAMILIES` maps each name to its :class:`~jaxmix.models.families.base.Family`; the rest
of jaxmix asks the family of a set of parameters (:func:`family_of`, by the type of
``MixtureParams.cov``) or of a ``covariance=`` argument (:func:`get_family`) and calls its
methods. A new family is a new module here (its parameter NamedTuple and a ``Family`` subclass)
added to :data:`FAMILIES`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from jaxmix.models.families.base import WEIGHT_EPS, Family
from jaxmix.models.families.diag import DIAG, DiagCov
from jaxmix.models.families.shared import SHARED, SharedCov
from jaxmix.models.families.spherical import SPHERICAL, SphericalCov
from jaxmix.params import MixtureParams

__all__ = [
    "COVARIANCES",
    "DIAG",
    "FAMILIES",
    "SHARED",
    "SPHERICAL",
    "WEIGHT_EPS",
    "DiagCov",
    "Family",
    "SharedCov",
    "SphericalCov",
    "as_params",
    "family_of",
    "get_family",
]

#: Every covariance family by name.
FAMILIES: dict[str, Family] = {f.name: f for f in (SPHERICAL, DIAG, SHARED)}
#: Their names.
COVARIANCES = tuple(FAMILIES)

_BY_TYPE = {f.cov_type: f for f in FAMILIES.values()}


def get_family(covariance: Any) -> Family:
    """The family named ``covariance`` (a family object is returned as it is).

    Raises:
        ValueError: No family has that name.
    """
    if isinstance(covariance, Family):
        return covariance
    try:
        return FAMILIES[covariance]
    except (KeyError, TypeError):
        raise ValueError(f"covariance must be one of {COVARIANCES}; got {covariance!r}") from None


def family_of(params: MixtureParams) -> Family:
    """The family of ``params`` (the type of ``params.cov``).

    A plain array ``cov`` is read as jaxmix 0.1 did: spherical when it has one axis fewer than
    ``mu``, diagonal when as many (see :func:`as_params`).
    """
    family = _BY_TYPE.get(type(params.cov))
    if family is not None:
        return family
    if isinstance(params.cov, tuple):
        raise TypeError(f"unknown covariance parameters {type(params.cov).__name__}")
    return SPHERICAL if np.ndim(params.cov) == np.ndim(params.mu) - 1 else DIAG


def _legacy(params: MixtureParams) -> MixtureParams:
    """``MixtureParams(mu, var, weights)`` with a plain array ``var``, typed."""
    if type(params.cov) in _BY_TYPE:
        return params
    var = np.asarray(params.cov, np.float64)
    mu_ndim = np.ndim(params.mu)
    if var.ndim == mu_ndim - 1:
        return params._replace(cov=SphericalCov(var))
    if var.ndim == mu_ndim:
        return params._replace(cov=DiagCov(var))
    raise ValueError(
        f"var must have shape (K,) (spherical) or (K, d) (diag) with mu of shape (K, d); got "
        f"var {var.shape} and mu {np.shape(params.mu)}"
    )


def as_params(obj: Any, *, what: str = "result", forms: bool = False) -> MixtureParams:
    """Parameters from anything that carries them: :class:`~jaxmix.MixtureParams` (with a typed
    ``cov``, or a plain ``var`` array of the spherical or diagonal family) or a fitted result
    (its ``params``); with ``forms=True`` (starting points) also a mapping with ``mu``, ``var``
    and ``weights`` or a ``(mu, var, weights)`` tuple. Arrays are left as they are (no copy, no
    check).

    Raises:
        TypeError: ``obj`` carries no parameters (the message names it as ``what``).
        ValueError: A mapping lacks a key.
    """
    params = obj if isinstance(obj, MixtureParams) else getattr(obj, "params", None)
    if not isinstance(params, MixtureParams):
        if forms and isinstance(obj, Mapping):
            try:
                params = MixtureParams(obj["mu"], obj["var"], obj["weights"])
            except KeyError as err:
                raise ValueError(f"{what} mapping lacks the key {err.args[0]!r}") from None
        elif forms and isinstance(obj, tuple) and len(obj) == 3:
            params = MixtureParams(*obj)
        else:
            raise TypeError(
                f"{what} must be a fitted result (e.g. from fit_em) or MixtureParams; got "
                f"{type(obj).__name__}"
            )
    return _legacy(params)

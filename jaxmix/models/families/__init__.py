"""Covariance families of the mixture, one module each, and their registry.

========== ======================================= ================ ==========================
name       component covariance                    parameters       free covariance parameters
========== ======================================= ================ ==========================
spherical  ``var_k I``                             ``var (K,)``     ``K``
diag       ``diag(var_k1, ..., var_kd)``            ``var (K, d)``   ``K d``
shared     ``var I`` (every component)              ``var ()``       ``1``
factor     ``W_k W_k' + tau_k^2 1 1' + diag(var_k)`` ``var (K, d)``,  ``K d + K (d q - q(q-1)/2)``
           (``rank=q`` factors, ``row_offset``)     ``loadings``     ``+ K`` (with the offset)
                                                   ``(K, d, q)``,
                                                   ``offset (K, 1)``
========== ======================================= ================ ==========================

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

from jaxmix.models.families.base import WEIGHT_EPS, Estimation, Family
from jaxmix.models.families.diag import DIAG, DiagCov
from jaxmix.models.families.factor import FACTOR, FactorCov, FactorFamily
from jaxmix.models.families.shared import SHARED, SharedCov
from jaxmix.models.families.spherical import SPHERICAL, SphericalCov
from jaxmix.params import MixtureParams

__all__ = [
    "COVARIANCES",
    "DIAG",
    "FACTOR",
    "FAMILIES",
    "SHARED",
    "SPHERICAL",
    "WEIGHT_EPS",
    "DiagCov",
    "Estimation",
    "FactorCov",
    "FactorFamily",
    "Family",
    "SharedCov",
    "SphericalCov",
    "as_params",
    "family_of",
    "get_family",
]

#: Every covariance family by name.
FAMILIES: dict[str, Family] = {f.name: f for f in (SPHERICAL, DIAG, SHARED, FACTOR)}
#: Their names.
COVARIANCES = tuple(FAMILIES)

_BY_TYPE = {f.cov_type: f for f in FAMILIES.values()}


def get_family(covariance: Any, **options: Any) -> Family:
    """The family named ``covariance`` (a family object is returned as it is), configured with
    ``options`` (``rank=`` and ``row_offset=`` for ``"factor"``; ``None`` values are ignored).

    Raises:
        ValueError: No family has that name.
        TypeError: An option the family does not take.
    """
    options = {k: v for k, v in options.items() if v is not None}
    if isinstance(covariance, Family):
        return covariance.configure(**options) if options else covariance
    try:
        family = FAMILIES[covariance]
    except (KeyError, TypeError):
        raise ValueError(f"covariance must be one of {COVARIANCES}; got {covariance!r}") from None
    return family.configure(**options) if options else family


def family_of(params: MixtureParams) -> Family:
    """The family of ``params`` (the type of ``params.cov``; a family with options, such as the
    factor family's rank, is read off the parameters' shapes).

    A plain array ``cov`` is read as jaxmix 0.1 did: spherical when it has one axis fewer than
    ``mu``, diagonal when as many (see :func:`as_params`).
    """
    family = _BY_TYPE.get(type(params.cov))
    if family is not None:
        return family.for_cov(params.cov)
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

"""The parameters of a mixture: means, a covariance family's parameters, weights.

Shapes use ``K`` components and ``d`` columns; a leading batch axis (restarts, posterior draws)
is allowed on every array.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

__all__ = ["MixtureParams"]


class MixtureParams(NamedTuple):
    """Parameters of a Gaussian mixture over ``d`` columns.

    Attributes:
        mu: Component means, ``(K, d)``.
        cov: The covariance parameters, a NamedTuple of the covariance family
            (:data:`jaxmix.models.families.FAMILIES`): ``SphericalCov(var (K,))``,
            ``DiagCov(var (K, d))``, ``SharedCov(var ())``. The family is the type of ``cov``.
        weights: Mixing weights, ``(K,)``, summing to one.

    ``MixtureParams(mu, var, weights)`` with a plain array ``var`` is accepted by every public
    function as the spherical (``var`` of shape ``(K,)``) or diagonal (``(K, d)``) family, the two
    families of jaxmix 0.1.

    Example:
        >>> import numpy as np, jaxmix
        >>> from jaxmix.models.families import DiagCov
        >>> p = jaxmix.MixtureParams(np.zeros((2, 3)), DiagCov(np.ones((2, 3))), np.full(2, 0.5))
        >>> p.covariance, p.var.shape, p.n_components
        ('diag', (2, 3), 2)
    """

    mu: Any
    cov: Any
    weights: Any

    @property
    def var(self) -> Any:
        """The family's variance parameters (``cov.var``; a plain array ``cov`` itself)."""
        if isinstance(self.cov, tuple) and hasattr(self.cov, "_fields"):
            return self.cov.var
        return self.cov

    @property
    def covariance(self) -> str:
        """The name of the covariance family (``"spherical"``, ``"diag"``, ``"shared"``, ...)."""
        family = getattr(type(self.cov), "family", None)
        if family is not None:
            return family
        var = np.asarray(self.cov)
        return "spherical" if var.ndim == np.ndim(self.mu) - 1 else "diag"

    @property
    def n_components(self) -> int:
        """Number of components ``K``."""
        return int(np.shape(self.weights)[-1])

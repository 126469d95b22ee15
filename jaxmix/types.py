"""Typed containers shared by the inference algorithms.

Shapes use ``n`` rows (users), ``d`` columns (items) and ``K`` components.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import numpy as np
from jax import Array

if TYPE_CHECKING:
    from jaxmix.priors import Prior

__all__ = ["MixtureParams", "EMResult", "KMeansResult"]


class MixtureParams(NamedTuple):
    """Parameters of a Gaussian mixture with spherical or diagonal covariances.

    Attributes:
        mu: Component means, shape ``(K, d)``.
        var: Component variances: shape ``(K,)`` for the spherical family (``var_k I``), ``(K, d)``
            for the diagonal family (``diag(var_k1, ..., var_kd)``). The family is read off the
            shape.
        weights: Mixing weights, shape ``(K,)``, summing to one.

    A leading batch axis (one entry per restart) is allowed everywhere:
    ``mu`` of shape ``(R, K, d)`` and so on.
    """

    mu: Array | np.ndarray
    var: Array | np.ndarray
    weights: Array | np.ndarray


class EMResult(NamedTuple):
    """Result of :func:`jaxmix.fit_em`. All arrays are host (NumPy) arrays.

    Attributes:
        params: The winning restart's parameters after its last M-step.
        log_likelihood: Observed-data log-likelihood of the winning restart, from its last
            E-step (the reference convention: evaluated at the parameters *before* the last
            M-step; the two differ by less than ``tol * |log_likelihood|`` once converged).
        objective: The quantity EM maximised, log-likelihood + log-prior in data units, from the
            same last E-step (same parameters as ``log_likelihood``; see
            :func:`jaxmix.log_objective`); equal to ``log_likelihood`` without a prior.
        restart_log_likelihoods: Final log-likelihood of every restart, shape ``(R,)``.
        best_restart: Index of the winning restart (restart ``r`` used seed ``seed + r``): the
            highest final objective.
        n_iter: E/M iterations run by the winner.
        converged: Whether the winner met the tolerance before ``max_iter``.
        history: Objective after each E-step of the winner, shape ``(n_iter,)`` (the
            log-likelihood without a prior); it never decreases, up to rounding.
        resp: Responsibilities ``p(k | row)`` of the winner for the rows it was fit on, from its
            last E-step, shape ``(n, K)``.
        restart_n_iter: Iterations run by every restart, shape ``(R,)``.
        restart_converged: Convergence flag of every restart, shape ``(R,)``.
        covariance: The covariance family, ``"spherical"`` (``var`` ``(K,)``) or ``"diag"``
            (``var`` ``(K, d)``).
        min_var: The variance floor used.
        prior: The resolved :class:`~jaxmix.Prior` (data units) that was used, or ``None``
            (maximum likelihood). Pass it to :func:`jaxmix.mixture_model` or
            :func:`jaxmix.log_objective` to use exactly the same numbers.
        restart_objectives: Final objective of every restart, shape ``(R,)``.
    """

    params: MixtureParams
    log_likelihood: float
    objective: float
    restart_log_likelihoods: np.ndarray
    best_restart: int
    n_iter: int
    converged: bool
    history: np.ndarray
    resp: np.ndarray
    restart_n_iter: np.ndarray
    restart_converged: np.ndarray
    covariance: str = "spherical"
    min_var: float = 0.25
    prior: Prior | None = None
    restart_objectives: np.ndarray | None = None

    @property
    def mu(self) -> np.ndarray:
        """Component means, ``(K, d)``."""
        return self.params.mu

    @property
    def var(self) -> np.ndarray:
        """Component variances, ``(K,)`` (spherical) or ``(K, d)`` (diag)."""
        return self.params.var

    @property
    def weights(self) -> np.ndarray:
        """Mixing weights, ``(K,)``."""
        return self.params.weights

    @property
    def n_components(self) -> int:
        """Number of components ``K``."""
        return int(np.shape(self.params.weights)[-1])


class KMeansResult(NamedTuple):
    """Result of :func:`jaxmix.kmeans`. All arrays are host (NumPy) arrays.

    Attributes:
        params: The winning restart's clustering retrofitted as a mixture: means, per-component
            variance ``sse_k / (d n_k)`` and weights ``n_k / n``.
        cost: Total squared distance of the rows to their assigned means (lowest over restarts).
        labels: Assignment of every row to a component, shape ``(n,)``.
        restart_costs: Final cost of every restart, shape ``(R,)``.
        best_restart: Index of the winning restart.
        n_iter: Iterations run by the winner.
        converged: Whether the winner met the tolerance before ``max_iter``.
    """

    params: MixtureParams
    cost: float
    labels: np.ndarray
    restart_costs: np.ndarray
    best_restart: int
    n_iter: int
    converged: bool

    @property
    def mu(self) -> np.ndarray:
        """Cluster means, ``(K, d)``."""
        return self.params.mu

    @property
    def var(self) -> np.ndarray:
        """Retrofitted per-cluster variances, ``(K,)``."""
        return self.params.var

    @property
    def weights(self) -> np.ndarray:
        """Cluster shares, ``(K,)``."""
        return self.params.weights

    @property
    def n_components(self) -> int:
        """Number of clusters ``K``."""
        return int(np.shape(self.params.weights)[-1])

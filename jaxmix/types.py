"""Typed containers shared by the inference algorithms.

Shapes use ``n`` rows (users), ``d`` columns (items) and ``K`` components.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import numpy as np
from jax import Array

if TYPE_CHECKING:
    from jaxmix.priors import Prior

__all__ = ["MixtureParams", "EMResult", "KMeansResult", "SVIResult", "MCMCResult"]


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


class SVIResult(NamedTuple):
    """Result of :func:`jaxmix.fit_svi`. All arrays are host (NumPy) arrays, all in data units.

    It has the parameter interface of :class:`EMResult` (``params``, ``mu``, ``var``,
    ``weights``, ``objective``, ``log_likelihood``, ``resp``, ``covariance``, ``prior``), so
    :func:`jaxmix.complete`, :func:`jaxmix.log_objective` and :func:`jaxmix.bic` accept it. It holds
    only arrays, scalars, strings and NamedTuples of arrays (no guide or optimiser objects): a
    generic saver can store it, and :meth:`sample_posterior` rebuilds the variational posterior
    from the stored numbers.

    Attributes:
        params: The point estimate, :class:`MixtureParams` (``mu`` ``(K, d)``, ``var`` ``(K,)`` or
            ``(K, d)``, ``weights`` ``(K,)``). ``"map"``: the optimised point mass (the MAP
            estimate, or the maximum-likelihood estimate without a prior). ``"meanfield"``: the
            variational locations mapped to the constrained space (the median of ``q`` in every
            coordinate).
        objective: Log-likelihood + log-prior at ``params`` in data units, computed with
            :func:`jaxmix.log_objective` (the log-likelihood alone when ``prior`` is ``None``).
        log_likelihood: Observed-data log-likelihood at ``params``.
        loss_history: Loss of every optimisation step in data units, shape
            ``(num_steps + polish_iter,)``: first the ``num_steps`` SVI (Adam) steps, each the loss
            at the parameters *before* that step, then the loss after every L-BFGS iteration of
            the polish phase (``"map"`` only). For ``"map"`` the loss is exactly ``-objective``
            (``TraceEnum_ELBO`` with a point-mass guide has no Monte Carlo noise); for
            ``"meanfield"`` it is a one-sample (``num_particles``) estimate of ``-ELBO``.
        num_steps: SVI (Adam) steps run.
        resp: Responsibilities ``p(k | row)`` at ``params`` for the rows it was fit on,
            ``(n, K)``.
        guide: ``"map"`` (``AutoDelta``) or ``"meanfield"`` (``AutoNormal``).
        covariance: ``"spherical"`` or ``"diag"``.
        prior: The resolved :class:`~jaxmix.Prior` (data units) that was used, or ``None``
            (maximum likelihood, ``"map"`` only).
        polish_iter: L-BFGS iterations of the polish phase (0 for ``"meanfield"``).
        converged: ``"map"``: whether the L-BFGS phase stopped on its tolerance (rather than on
            its iteration cap or a failed line search). ``"meanfield"``: always ``False`` (a
            stochastic fit has no convergence test).
        n_evals: Loss-and-gradient evaluations in all (``num_steps``, plus one to start the
            polish and those of its line searches), the unit of work of the run: each costs about
            the same, so ``run_time * history_evals / n_evals`` times the history.
        history_evals: Evaluations done by the end of each ``loss_history`` entry, ``(len,)``
            (``1, 2, ..., num_steps`` for the SVI steps).
        compile_time: Seconds spent tracing and compiling (0 when a compiled program was reused).
        run_time: Seconds spent running the compiled optimisation.
        variational_loc: ``"meanfield"`` only (else ``None``): the guide's locations in the
            unconstrained space, data units, as :class:`MixtureParams` of arrays: ``mu`` ``(K, d)``
            (identity), ``var`` ``(K,)`` / ``(K, d)`` (``log var``), ``weights`` ``(K - 1,)``
            (stick-breaking coordinates, NumPyro's ``biject_to(simplex)``).
        variational_scale: ``"meanfield"`` only: the matching standard deviations (same shapes).
        snapshot_steps: With ``record_every > 0``: the step after which each snapshot was taken,
            ``(T,)`` (step 0 is the start); else ``None``.
        snapshots: With ``record_every > 0``: the point estimate after those steps,
            :class:`MixtureParams` with a leading axis ``T``; else ``None``.
    """

    params: MixtureParams
    objective: float
    log_likelihood: float
    loss_history: np.ndarray
    num_steps: int
    resp: np.ndarray
    guide: str = "map"
    covariance: str = "spherical"
    prior: Prior | None = None
    polish_iter: int = 0
    converged: bool = False
    n_evals: int = 0
    history_evals: np.ndarray | None = None
    compile_time: float = 0.0
    run_time: float = 0.0
    variational_loc: MixtureParams | None = None
    variational_scale: MixtureParams | None = None
    snapshot_steps: np.ndarray | None = None
    snapshots: MixtureParams | None = None

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

    def sample_posterior(self, num_samples: int, seed: int = 0) -> dict[str, np.ndarray]:
        """Draw parameters from the mean-field variational posterior ``q`` (``"meanfield"`` only).

        Every unconstrained coordinate is drawn from ``Normal(variational_loc,
        variational_scale)`` and mapped to the parameter's support with NumPyro's
        ``biject_to`` (identity for ``mu``, ``exp`` for ``var``, stick-breaking for ``weights``).

        Args:
            num_samples: Number of draws ``S``.
            seed: Seed of the draws.

        Returns:
            A dict of float64 arrays: ``"mu"`` ``(S, K, d)``, ``"var"`` ``(S, K)`` or
            ``(S, K, d)``, ``"weights"`` ``(S, K)`` (on the simplex).

        Raises:
            ValueError: The result is not a ``"meanfield"`` fit, or ``num_samples < 1``.
        """
        from jaxmix.inference.svi import sample_variational

        return sample_variational(self, num_samples, seed)


class MCMCResult(NamedTuple):
    """Result of :func:`jaxmix.fit_mcmc`. All arrays are host (NumPy) arrays, in data units.

    Shapes use ``C`` chains and ``S`` draws per chain. The draws are *relabelled*: draw
    ``(c, s)``'s component ``k`` is the sampler's component ``permutation[c, s, k]``, matched to
    component ``k`` of ``reference`` (see :func:`jaxmix.relabel`). The result holds only arrays,
    scalars, strings and NamedTuples, so a generic saver can store it.

    Attributes:
        params: The point estimate: the posterior mean of the relabelled draws,
            :class:`MixtureParams` (``mu`` ``(K, d)``, ``var`` ``(K,)`` or ``(K, d)``, ``weights``
            ``(K,)``); :func:`jaxmix.complete` and :func:`jaxmix.responsibilities` use it.
        mu: Draws of the means, ``(C, S, K, d)``.
        var: Draws of the variances, ``(C, S, K)`` (spherical) or ``(C, S, K, d)`` (diag).
        weights: Draws of the weights, ``(C, S, K)``.
        diverging: Whether the draw's trajectory diverged, ``(C, S)`` bool.
        accept_prob: Mean acceptance probability of the draw's trajectory, ``(C, S)``.
        num_steps: Leapfrog steps of the draw's trajectory, ``(C, S)``.
        tree_depth: ``floor(log2(num_steps)) + 1``, the number of tree doublings NUTS did,
            ``(C, S)`` (exact for a full tree, NumPyro does not report it directly).
        potential_energy: Potential energy (negative log density) of the draw in the sampler's
            standardised unconstrained parametrisation, ``(C, S)``.
        step_size: Adapted step size of every chain, ``(C,)``.
        permutation: The relabelling of every draw, ``(C, S, K)`` integers.
        n_relabelled: Number of draws whose permutation is not the identity.
        reference: The solution the draws were matched to and the chains started from (EM's MAP
            by default), :class:`MixtureParams`.
        prior: The resolved :class:`~jaxmix.Prior` (data units).
        covariance: ``"spherical"`` or ``"diag"``.
        num_warmup: Warm-up iterations per chain.
        init: ``"map_em"`` (started from MAP-EM run by :func:`jaxmix.fit_mcmc`) or ``"given"``.
        jitter: The start jitter of chains ``1..C-1``.
        seed: The seed.
    """

    params: MixtureParams
    mu: np.ndarray
    var: np.ndarray
    weights: np.ndarray
    diverging: np.ndarray
    accept_prob: np.ndarray
    num_steps: np.ndarray
    tree_depth: np.ndarray
    potential_energy: np.ndarray
    step_size: np.ndarray
    permutation: np.ndarray
    n_relabelled: int
    reference: MixtureParams
    prior: Prior
    covariance: str = "spherical"
    num_warmup: int = 0
    init: str = "map_em"
    jitter: float = 0.0
    seed: int = 0

    @property
    def n_components(self) -> int:
        """Number of components ``K``."""
        return int(np.shape(self.weights)[-1])

    @property
    def num_chains(self) -> int:
        """Number of chains ``C``."""
        return int(np.shape(self.weights)[0])

    @property
    def num_samples(self) -> int:
        """Draws per chain ``S``."""
        return int(np.shape(self.weights)[1])

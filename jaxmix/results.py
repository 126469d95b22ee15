"""The results of jaxmix's fits: one convention for all.

Every result holds host (NumPy) arrays in data units and has

* ``params``: a :class:`~jaxmix.MixtureParams`, the point estimate (``mu``, ``var``, ``weights``
  and ``n_components`` read through to it, and ``cov`` is the family's parameters);
* ``covariance``: the name of the covariance family; ``prior``: the resolved
  :class:`~jaxmix.Prior` or ``None`` (maximum likelihood);
* ``n_iter``: the iterations of the algorithm; ``history``, where there is one, *rises* (an
  objective or an ELBO, never a loss).

Results hold only arrays, scalars, strings and NamedTuples, so :func:`jaxmix.save` stores any of
them. Shapes use ``n`` rows (users), ``d`` columns (items) and ``K`` components.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from jaxmix._summary import num, summary_repr
from jaxmix._validate import check_positive_int, check_seed
from jaxmix.models.prior import Prior
from jaxmix.models.variational import sample_unconstrained
from jaxmix.params import MixtureParams

__all__ = ["EMResult", "KMeansResult", "MCMCResult", "SVIResult"]


def _mu(self: Any) -> np.ndarray:
    """Component means, ``(K, d)``."""
    return self.params.mu


def _cov(self: Any) -> Any:
    """The covariance family's parameters (e.g. ``SphericalCov(var)``)."""
    return self.params.cov


def _var(self: Any) -> np.ndarray:
    """Component variances: ``(K,)`` spherical, ``(K, d)`` diag, ``()`` shared."""
    return self.params.var


def _weights(self: Any) -> np.ndarray:
    """Mixing weights, ``(K,)``."""
    return self.params.weights


def _n_components(self: Any) -> int:
    """Number of components ``K``."""
    return int(np.shape(self.params.weights)[-1])


def _estimate(prior: Any) -> str:
    return "maximum likelihood" if prior is None else "MAP (prior)"


def _size(self: Any, rows: Any) -> str:
    """``K=.., n=.., d=..`` of a result: ``n`` from a per-row array, ``d`` from the means."""
    return f"K={self.n_components}, n={np.shape(rows)[0]}, d={np.shape(self.params.mu)[-1]}"


def _restarts(best: Any, finals: Any, what: str) -> str:
    """The repr line of the restarts: the best one and the span of their final ``what``."""
    finals = np.asarray(finals)
    return (
        f"best_restart={int(best)} of {finals.size} restart(s) "
        f"(final {what} {num(finals.min())} .. {num(finals.max())})"
    )


def _point(cls: type) -> type:
    """Add the read-through properties ``mu``, ``cov``, ``var``, ``weights`` and
    ``n_components`` of ``params`` to a result class."""
    for name, fget in (
        ("mu", _mu),
        ("cov", _cov),
        ("var", _var),
        ("weights", _weights),
        ("n_components", _n_components),
    ):
        setattr(cls, name, property(fget))
    return cls


@_point
class EMResult(NamedTuple):
    """Result of :func:`jaxmix.fit_em`.

    Attributes:
        params: The winning restart's parameters after its last M-step (after split-and-merge:
            see ``split_merge_objectives``).
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
            log-likelihood without a prior); it never decreases, up to rounding (with
            ``split_merge``: within each run; every kept round starts again from its candidate,
            below the objective the round ends above).
        resp: Responsibilities ``p(k | row)`` of the winner for the rows it was fit on, from its
            last E-step, shape ``(n, K)``.
        restart_n_iter: Iterations run by every restart, shape ``(R,)``.
        restart_converged: Convergence flag of every restart, shape ``(R,)``.
        covariance: The covariance family (``"spherical"``, ``"diag"``, ``"shared"``,
            ``"factor"``).
        min_var: The variance floor used.
        prior: The resolved :class:`~jaxmix.Prior` (data units) that was used, or ``None``
            (maximum likelihood). Pass it to :func:`jaxmix.mixture_model` or
            :func:`jaxmix.log_objective` to use exactly the same numbers.
        restart_objectives: Final objective of every restart, shape ``(R,)``.
        restart_params: Every restart's parameters after its last M-step, with a leading axis
            ``R`` (``params`` is entry ``best_restart``).
        estimation_cov: How uncertain the winner's per-column coefficients are, in data units
            (the family's ``estimation_cov`` from an E-step at ``params``: ``(K, d)`` variances of
            the means, ``(K, d, q + 1, q + 1)`` covariances of ``[loadings, mean]`` for the
            factor family), or ``None``. :func:`jaxmix.complete` and
            :func:`jaxmix.predictive_summary` add it to the plug-in predictive variance.
        split_merge_objectives: With ``fit_em(..., split_merge=N)``: the objective after every
            kept split-and-merge round, ``(rounds,)`` (empty when none raised it); ``params``,
            ``log_likelihood``, ``objective``, ``resp``, ``converged`` are then the last kept
            round's, ``history`` and ``n_iter`` run on from restart ``best_restart`` through
            every kept round, and the ``restart_*`` fields stay the restarts'. ``None``: no
            split-and-merge was asked for.
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
    restart_params: MixtureParams | None = None
    estimation_cov: Any = None
    split_merge_objectives: np.ndarray | None = None

    def __repr__(self) -> str:
        def lines() -> list[str]:
            objectives = (
                self.restart_log_likelihoods
                if self.restart_objectives is None
                else self.restart_objectives
            )
            out = [
                f"covariance={self.covariance!r}, {_size(self, self.resp)}, "
                f"{_estimate(self.prior)}",
                f"objective={num(self.objective)}, log_likelihood={num(self.log_likelihood)}, "
                f"converged={bool(self.converged)}, n_iter={int(self.n_iter)}",
                _restarts(self.best_restart, objectives, "objectives"),
            ]
            if self.split_merge_objectives is not None:
                kept = np.asarray(self.split_merge_objectives)
                out.append(
                    f"split_merge: {kept.size} round(s) kept"
                    + (f", last objective {num(kept[-1])}" if kept.size else "")
                )
            return out

        return summary_repr(self, lines)


@_point
class KMeansResult(NamedTuple):
    """Result of :func:`jaxmix.kmeans`.

    Attributes:
        params: The winning restart's clustering retrofitted as a spherical mixture: means,
            per-component variance ``sse_k / (d n_k)`` and weights ``n_k / n``.
        cost: Total squared distance of the rows to their assigned means (lowest over restarts).
        labels: Assignment of every row to a component, shape ``(n,)``.
        restart_costs: Final cost of every restart, shape ``(R,)``.
        best_restart: Index of the winning restart.
        n_iter: Iterations run by the winner.
        converged: Whether the winner met the tolerance before ``max_iter``.
        covariance: ``"spherical"`` (the family of the retrofitted mixture).
        prior: ``None`` (K-means has none).
    """

    params: MixtureParams
    cost: float
    labels: np.ndarray
    restart_costs: np.ndarray
    best_restart: int
    n_iter: int
    converged: bool
    covariance: str = "spherical"
    prior: Prior | None = None

    def __repr__(self) -> str:
        def lines() -> list[str]:
            return [
                _size(self, self.labels),
                f"cost={num(self.cost)}, converged={bool(self.converged)}, "
                f"n_iter={int(self.n_iter)}",
                _restarts(self.best_restart, self.restart_costs, "costs"),
            ]

        return summary_repr(self, lines)


@_point
class SVIResult(NamedTuple):
    """Result of :func:`jaxmix.fit_svi`.

    It has the parameter interface of :class:`EMResult` (``params``, ``mu``, ``var``,
    ``weights``, ``objective``, ``log_likelihood``, ``resp``, ``covariance``, ``prior``), so
    :func:`jaxmix.complete`, :func:`jaxmix.log_objective` and :func:`jaxmix.bic` accept it;
    :meth:`sample_posterior` rebuilds the variational posterior from the stored numbers.

    Attributes:
        params: The point estimate, :class:`~jaxmix.MixtureParams`. ``"map"``: the optimised
            point mass (the MAP estimate, or the maximum-likelihood estimate without a prior).
            ``"meanfield"``: the variational locations mapped to the constrained space (the
            median of ``q`` in every coordinate).
        objective: Log-likelihood + log-prior at ``params`` in data units, computed with
            :func:`jaxmix.log_objective` (the log-likelihood alone when ``prior`` is ``None``).
        log_likelihood: Observed-data log-likelihood at ``params``.
        history: Minus the loss of every optimisation step in data units (it rises), shape
            ``(num_steps + polish_iter,)``: first the ``num_steps`` SVI (Adam) steps, each at the
            parameters *before* that step, then after every L-BFGS iteration of the polish phase
            (``"map"`` only). For ``"map"`` it is exactly the objective (``TraceEnum_ELBO`` with
            a point-mass guide has no Monte Carlo noise); for ``"meanfield"`` a one-sample
            (``num_particles``) estimate of the ELBO.
        num_steps: SVI (Adam) steps run.
        resp: Responsibilities ``p(k | row)`` at ``params`` for the rows it was fit on,
            ``(n, K)``.
        guide: ``"map"`` (``AutoDelta``) or ``"meanfield"`` (``AutoNormal``).
        covariance: The covariance family.
        prior: The resolved :class:`~jaxmix.Prior` (data units) that was used, or ``None``
            (maximum likelihood, ``"map"`` only).
        polish_iter: L-BFGS iterations of the polish phase (0 for ``"meanfield"``).
        converged: ``"map"``: whether the L-BFGS phase stopped on its tolerance (rather than on
            its iteration cap or a failed line search). ``"meanfield"``: always ``False`` (a
            stochastic fit has no convergence test).
        n_evals: Loss-and-gradient evaluations in all (``num_steps``, plus one to start the
            polish and those of its line searches), the unit of work of the run: each costs about
            the same, so ``run_time * history_evals / n_evals`` times the history.
        history_evals: Evaluations done by the end of each ``history`` entry, ``(len,)``
            (``1, 2, ..., num_steps`` for the SVI steps).
        compile_time: Seconds spent tracing and compiling (0 when a compiled program was reused).
        run_time: Seconds spent running the compiled optimisation.
        variational_loc: ``"meanfield"`` only (else ``None``): the guide's locations in the
            unconstrained space, data units, as :class:`~jaxmix.MixtureParams` of arrays: ``mu``
            ``(K, d)`` (identity), the covariance family's sites (``log var``), ``weights``
            ``(K - 1,)`` (stick-breaking coordinates, NumPyro's ``biject_to(simplex)``).
        variational_scale: ``"meanfield"`` only: the matching standard deviations (same shapes).
        snapshot_steps: With ``record_every > 0``: the step after which each snapshot was taken,
            ``(T,)`` (step 0 is the start); else ``None``.
        snapshots: With ``record_every > 0``: the point estimate after those steps,
            :class:`~jaxmix.MixtureParams` with a leading axis ``T``; else ``None``.
    """

    params: MixtureParams
    objective: float
    log_likelihood: float
    history: np.ndarray
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

    def __repr__(self) -> str:
        def lines() -> list[str]:
            return [
                f"guide={self.guide!r}, covariance={self.covariance!r}, "
                f"{_size(self, self.resp)}, {_estimate(self.prior)}",
                f"objective={num(self.objective)}, log_likelihood={num(self.log_likelihood)}, "
                f"converged={bool(self.converged)}",
                f"num_steps={int(self.num_steps)}, polish_iter={int(self.polish_iter)}, "
                f"n_evals={int(self.n_evals)}, run_time={num(self.run_time, 3)} s, "
                f"compile_time={num(self.compile_time, 3)} s",
            ]

        return summary_repr(self, lines)

    @property
    def n_iter(self) -> int:
        """Optimiser iterations: the Adam steps and the L-BFGS iterations."""
        return int(self.num_steps) + int(self.polish_iter)

    @property
    def loss_history(self) -> np.ndarray:
        """The loss of every step (``-history``), as jaxmix 0.1 reported it."""
        return -np.asarray(self.history)

    def sample_posterior(self, num_samples: int, seed: int = 0) -> MixtureParams:
        """Draw parameters from the mean-field variational posterior ``q`` (``"meanfield"``).

        Every unconstrained coordinate is drawn from ``Normal(variational_loc,
        variational_scale)`` and mapped to its site's support with NumPyro's ``biject_to``
        (identity for ``mu``, ``exp`` for a variance, stick-breaking for ``weights``).

        Args:
            num_samples: Number of draws ``S``.
            seed: Seed of the draws.

        Returns:
            :class:`~jaxmix.MixtureParams` of float64 arrays with a leading axis ``S``.

        Raises:
            ValueError: The result is not a ``"meanfield"`` fit, or ``num_samples < 1``.
        """
        if self.guide != "meanfield" or self.variational_loc is None:
            raise ValueError(
                "sample_posterior needs a mean-field fit (fit_svi(..., guide='meanfield')); this "
                f"result is guide={self.guide!r}, a point estimate"
            )
        num_samples = check_positive_int(num_samples, "num_samples")
        return sample_unconstrained(
            self.variational_loc, self.variational_scale, num_samples, check_seed(seed)
        )


@_point
class MCMCResult(NamedTuple):
    """Result of :func:`jaxmix.fit_mcmc`.

    Shapes use ``C`` chains and ``S`` draws per chain. The draws are *relabelled*: draw
    ``(c, s)``'s component ``k`` is the sampler's component ``permutation[c, s, k]``, matched to
    component ``k`` of ``reference`` (see :func:`jaxmix.relabel`).

    Attributes:
        params: The point estimate: the posterior mean of the relabelled draws,
            :class:`~jaxmix.MixtureParams` (``mu``, ``var``, ``weights`` read through to it).
        draws: The relabelled draws, :class:`~jaxmix.MixtureParams` with leading axes
            ``(C, S)``: ``mu`` ``(C, S, K, d)``, the family's parameters, ``weights``
            ``(C, S, K)``.
        diverging: Whether the draw's trajectory diverged, ``(C, S)`` bool (Gibbs: all False).
        accept_prob: Mean acceptance probability of the draw's trajectory, ``(C, S)`` (Gibbs:
            1, every draw is accepted).
        n_leapfrog: Leapfrog steps of the draw's trajectory, ``(C, S)`` (Gibbs: 0).
        tree_depth: ``floor(log2(n_leapfrog)) + 1``, the number of tree doublings NUTS did,
            ``(C, S)`` (exact for a full tree, NumPyro does not report it directly; Gibbs: 0).
        potential_energy: Potential energy (negative log density) of the draw in the sampler's
            standardised unconstrained parametrisation, ``(C, S)`` (both kernels).
        step_size: Adapted step size of every chain, ``(C,)`` (Gibbs: ``NaN``).
        permutation: The relabelling of every draw, ``(C, S, K)`` integers.
        n_relabelled: Number of draws whose permutation is not the identity.
        reference: The solution the draws were matched to and the chains started from (EM's MAP
            by default), :class:`~jaxmix.MixtureParams`.
        prior: The resolved :class:`~jaxmix.Prior` (data units).
        covariance: The covariance family.
        num_warmup: Warm-up iterations per chain.
        init: ``"map_em"`` (started from MAP-EM run by :func:`jaxmix.fit_mcmc`) or ``"given"``.
        jitter: The start jitter of chains ``1..C-1``.
        seed: The seed.
        kernel: The sampler: ``"nuts"`` or ``"gibbs"`` (:func:`jaxmix.fit_mcmc`).
    """

    params: MixtureParams
    draws: MixtureParams
    diverging: np.ndarray
    accept_prob: np.ndarray
    n_leapfrog: np.ndarray
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
    kernel: str = "nuts"

    def __repr__(self) -> str:
        def lines() -> list[str]:
            C, S = np.shape(self.diverging)[:2]
            d = np.shape(self.params.mu)[-1]
            steps = np.asarray(self.step_size, np.float64)
            if self.kernel == "gibbs":
                sampler = "blocked Gibbs: no divergences, every draw accepted"
            else:
                sampler = (
                    f"divergences={int(np.sum(self.diverging))}, "
                    f"mean accept_prob={num(np.mean(self.accept_prob), 3)}, "
                    f"step_size {num(steps.min(), 3)} .. {num(steps.max(), 3)}, "
                    f"mean n_leapfrog={num(np.mean(self.n_leapfrog), 3)}"
                )
            return [
                f"kernel={self.kernel!r}, covariance={self.covariance!r}, K={self.n_components}, "
                f"d={d}, {C} chain(s) x {S} draws after {int(self.num_warmup)} warm-up, "
                f"init={self.init!r}",
                sampler,
                f"n_relabelled={int(self.n_relabelled)} of {C * S} draws; "
                "params = posterior mean, draws = the relabelled draws",
            ]

        return summary_repr(self, lines)

    @property
    def num_chains(self) -> int:
        """Number of chains ``C``."""
        return int(np.shape(self.draws.weights)[0])

    @property
    def num_samples(self) -> int:
        """Draws per chain ``S``."""
        return int(np.shape(self.draws.weights)[1])

    @property
    def n_iter(self) -> int:
        """Iterations per chain: warm-up and kept draws."""
        return int(self.num_warmup) + self.num_samples

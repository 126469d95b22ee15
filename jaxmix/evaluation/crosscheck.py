"""Cross-checking the two optimisers of one model: EM against SVI-MAP on the user's data.

EM (:func:`jaxmix.fit_em`, closed-form M-steps) and SVI with a point-mass guide
(:func:`jaxmix.fit_svi` with ``guide="map"``, gradient steps on NumPyro's ``TraceEnum_ELBO``)
maximise the same objective, log-likelihood + log-prior of :func:`jaxmix.mixture_model`. Started
from the same point they usually reach the same optimum: :func:`compare_em_svi` runs both and
reports how close they came, after matching the components (the labels of a mixture are
arbitrary). With ``svi_start="em"`` SVI starts instead at EM's converged parameters: a local check
that EM's answer is an optimum for SVI's optimiser too.
"""

from __future__ import annotations

import time
from typing import Any, NamedTuple

import jax
import numpy as np

from jaxmix._summary import num, summary_repr
from jaxmix._validate import (
    check_choice,
    check_n_components,
    check_nonneg_float,
    check_positive_int,
    check_seed,
)
from jaxmix.data import Standardizer, as_data, float_dtype
from jaxmix.inference.em import fit_em, log_objective
from jaxmix.inference.init import init_params
from jaxmix.inference.svi import fit_svi
from jaxmix.models.families import get_family
from jaxmix.models.mixture import match_components, permute_components
from jaxmix.models.prior import Prior, resolve_prior
from jaxmix.params import MixtureParams
from jaxmix.results import EMResult, SVIResult

__all__ = ["SVI_STARTS", "EMSVIComparison", "compare_em_svi"]

SVI_STARTS = ("same", "em")


class EMSVIComparison(NamedTuple):
    """Report of :func:`compare_em_svi`: EM and SVI-MAP from the same start (or SVI from EM's).

    Attributes:
        em_objective: EM's objective (log-likelihood + log-prior, data units) at its final
            parameters (after the last M-step).
        svi_objective: SVI-MAP's objective at its parameters.
        rel_gap: ``(em_objective - svi_objective) / |em_objective|``: positive when EM reached the
            higher value.
        max_abs_dmu: ``max |mu_em - mu_svi|`` over matched components and columns (data units).
        max_rel_dvar: ``max |var_em - var_svi| / var_em`` over matched components (and columns).
        max_abs_dweights: ``max |w_em - w_svi|`` over matched components.
        permutation: ``(K,)``: SVI component ``permutation[k]`` matches EM component ``k``.
        em_time: Seconds of EM's run (a second, compiled call).
        em_compile_time: Seconds of EM's first call beyond ``em_time`` (tracing + compiling).
        svi_time: Seconds of SVI-MAP's compiled run.
        svi_compile_time: Seconds of SVI-MAP's tracing + compiling (0 if reused).
        em_iter: EM iterations.
        svi_evals: SVI-MAP's loss-and-gradient evaluations (Adam steps + L-BFGS evaluations).
        em_floor_active: Whether some EM variance sits at one of EM's floors: ``min_var``, or
            the machine epsilon of the computing dtype in EM's standardised units (EM's
            guard against a collapsing variance, active even with ``min_var=0``). SVI has
            neither: the two then solve different problems and SVI may end higher (without a
            prior, unboundedly so).
        rtol: The relative tolerance of :attr:`agree`.
        em: EM's result.
        svi: SVI-MAP's result.
        svi_start: ``"same"`` (SVI started where EM started) or ``"em"`` (SVI started at EM's
            final parameters).
    """

    em_objective: float
    svi_objective: float
    rel_gap: float
    max_abs_dmu: float
    max_rel_dvar: float
    max_abs_dweights: float
    permutation: np.ndarray
    em_time: float
    em_compile_time: float
    svi_time: float
    svi_compile_time: float
    em_iter: int
    svi_evals: int
    em_floor_active: bool
    rtol: float
    em: EMResult
    svi: SVIResult
    svi_start: str = "same"

    def __repr__(self) -> str:
        def lines() -> list[str]:
            return [
                f"svi_start={self.svi_start!r}, agree={self.agree} (rtol {self.rtol:g}), "
                f"em_floor_active={bool(self.em_floor_active)}",
                f"em_objective={num(self.em_objective, 10)}, "
                f"svi_objective={num(self.svi_objective, 10)}, rel_gap={num(self.rel_gap, 3)}",
                f"max_abs_dmu={num(self.max_abs_dmu, 3)}, "
                f"max_rel_dvar={num(self.max_rel_dvar, 3)}, "
                f"max_abs_dweights={num(self.max_abs_dweights, 3)}",
                f"em: {int(self.em_iter)} iterations in {num(self.em_time, 3)} s; svi: "
                f"{int(self.svi_evals)} evaluations in {num(self.svi_time, 3)} s",
            ]

        return summary_repr(self, lines)

    @property
    def agree(self) -> bool:
        """Whether the two objectives agree within ``rtol`` relative (either one higher)."""
        return bool(abs(self.rel_gap) <= self.rtol)

    def summary(self) -> str:
        """A readable table of both fits and their distance."""
        K = self.permutation.shape[0]
        prior = "none (maximum likelihood)" if self.em.prior is None else "resolved Prior"
        svi = self.svi
        steps = f"{svi.num_steps} Adam + {svi.polish_iter} L-BFGS"
        rows = [
            ("objective", f"{self.em_objective:.10g}", f"{self.svi_objective:.10g}"),
            ("iterations", f"{self.em_iter}", steps),
            ("run time (s)", f"{self.em_time:.3f}", f"{self.svi_time:.3f}"),
            ("compile time (s)", f"{self.em_compile_time:.3f}", f"{self.svi_compile_time:.3f}"),
        ]
        width = max(len(r[2]) for r in rows) + 2
        start = "the same start" if self.svi_start == "same" else "SVI started at EM's optimum"
        lines = [
            f"EM vs SVI-MAP ({start}): K={K}, covariance={self.em.covariance}, prior: {prior}",
            f"{'':18s}{'EM':>18s}{'SVI-MAP':>{width}s}",
            *(f"{a:18s}{b:>18s}{c:>{width}s}" for a, b, c in rows),
            f"relative gap (EM - SVI) / |EM|: {self.rel_gap:+.3e} "
            f"({'within' if self.agree else 'NOT within'} {self.rtol:g})",
            "matched components (EM k <- SVI j): "
            + ", ".join(f"{k}<-{j}" for k, j in enumerate(self.permutation)),
            f"max |d mu| = {self.max_abs_dmu:.3e}   max |d var| / var = {self.max_rel_dvar:.3e}"
            f"   max |d weights| = {self.max_abs_dweights:.3e}",
        ]
        if self.em_floor_active and self.em.min_var > 0:
            lines.append(
                f"note: EM's variance floor min_var={self.em.min_var:g} is active; SVI has none, "
                "so the two optima differ (rerun with min_var=0 to compare like for like)"
            )
        elif self.em_floor_active:
            lines.append(
                "note: an EM variance collapsed to EM's machine-epsilon floor (a degenerate "
                "component: without a prior the objective is unbounded there); SVI has no floor, "
                "so the two optima differ (use a prior)"
            )
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


def _distances(em: MixtureParams, svi: MixtureParams, perm: np.ndarray) -> tuple[float, ...]:
    """``max |d mu|``, ``max |d var| / var`` and ``max |d weights|`` of SVI's parameters permuted
    onto EM's components (the family permutes its own variances: a shared one stays put)."""
    matched = permute_components(svi, perm)
    var_em = np.asarray(em.var, np.float64)
    return (
        float(np.max(np.abs(em.mu - matched.mu))),
        float(np.max(np.abs(var_em - np.asarray(matched.var, np.float64)) / var_em)),
        float(np.max(np.abs(em.weights - matched.weights))),
    )


def compare_em_svi(
    X: Any,
    K: int,
    *,
    mask: Any = None,
    prior: Prior | None = None,
    covariance: Any = "spherical",
    seed: int = 0,
    init: Any = "kmeans++",
    num_steps: int = 1000,
    learning_rate: float = 0.05,
    polish_steps: int = 500,
    tol: float = 1e-12,
    max_iter: int = 100_000,
    min_var: float = 0.0,
    rtol: float = 1e-4,
    svi_start: str = "same",
) -> EMSVIComparison:
    """Fit the mixture by EM and by SVI-MAP from the same start and compare the two optima.

    Both maximise the same objective, ``log p(X | theta) + log p(theta)`` of
    :func:`jaxmix.mixture_model` (the log-likelihood alone with ``prior=None``): EM by closed-form
    M-steps, SVI by gradient steps on NumPyro's ``TraceEnum_ELBO`` with an ``AutoDelta`` guide
    (Adam, then an L-BFGS polish). The start is computed once (``init``, ``seed``) and handed to
    both as explicit parameters; the prior is resolved once, so both use the same numbers. The
    components are then matched by the Hungarian algorithm on the means
    (:func:`jaxmix.models.mixture.match_components`, the matching MCMC's relabelling uses) and the
    report gives the relative gap of the objectives and the largest differences of the matched
    parameters (the variances permuted by their family: a shared variance is compared as it is).

    What to expect (float64, the defaults). Where both end in the same optimum, the objectives
    agree far inside the acceptance test ``rtol = 1e-4``: to 1e-11 relative or better on the
    course's toy data (K=3) and to 1e-13 on simulated ratings with 30% missing entries, SVI
    slightly *above* EM (EM stops at ``tol``; the L-BFGS polish goes further). The matched
    parameters then agree within

    * ``max |d mu| <= 100 sqrt(tol)`` (data units), ``max |d var| / var <= 100 sqrt(tol)`` and
      ``max |d weights| <= 10 sqrt(tol)``, i.e. 1e-4, 1e-4 and 1e-5 at the default
      ``tol = 1e-12``: the tolerances of the test suite.

    They scale with EM's tolerance because EM's stopping point limits them: the objective is flat
    to second order at the optimum, so an objective gap ``tol |objective|`` leaves the parameters
    ``O(sqrt(tol))`` away (measured on the toy data: ``|d mu|`` 6e-4, 6e-5, 6e-6, 6e-7 at
    ``tol`` 1e-8, 1e-10, 1e-12, 1e-14; SVI's own optimum is tight). The measured constant is 5 to
    30 on the toy data (toy, diag with the default prior: ``|d mu| = 2.7e-5``,
    ``|d var| / var = 1.0e-5``, ``|d weights| = 3.7e-6`` at ``tol = 1e-12``) and below 1 on the
    simulated ratings; the tolerances allow 100 (10 for the weights, which are bounded by one).

    The same start does not guarantee the same optimum: EM's M-step jumps and Adam's small steps
    can fall into different basins of attraction. On 8 simulated 200 x 20 rating matrices
    (``simulate_ratings(n_users=200, n_items=20, K=3, missing=0.3, seed=0..7)``, K=3, the
    k-means++ start of seed 0) x {spherical, diag} x {no prior, default prior} (32 comparisons),
    29 agreed as above; on one matrix (seed 2), in spherical, SVI-MAP ended 1.3e-3 to 1.6e-3
    *higher* than EM (EM stuck in a worse local optimum), and in diag without a prior EM collapsed
    a variance to its machine-epsilon floor (maximum likelihood is unbounded; see below). The
    other way round, on a smaller 150 x 12 matrix (``simulate_ratings`` seed 0, spherical) Adam
    from the k-means++ start ends in an optimum 15% *lower* than EM's, at any step size. On the
    toy data with K=4, diag, no prior, EM approaches a degenerate spike (a component of weight
    0.004 with variance 2e-4). A large ``rel_gap`` or large parameter distances therefore mean
    "different optima", which :meth:`EMSVIComparison.summary` lets you inspect; with EM's variance
    floor active (``em_floor_active``) the two even solve different problems (SVI has no floor),
    hence the default ``min_var=0`` here.

    ``svi_start="em"`` removes the dependence on the start: SVI-MAP then starts at EM's converged
    parameters, and since EM's answer is a local maximum of the same objective, SVI should stay
    there (``rel_gap`` about 0, the distances within the tolerances above). On the 32 simulated
    cases above it did in 31 (``|rel_gap| <= 1.7e-12``, ``max |d mu| <= 1.7e-5``, including the
    two where the same start led to different optima). The exception is the degenerate one: seed
    2, diag, no prior, where EM's component 1 takes the 31 rows whose observed rating in column 0
    is exactly 1 (integer ratings), so that column's maximum-likelihood variance is 0; EM stops
    with it at its floor ``eps`` (``em_floor_active``), a boundary point rather than a maximum,
    and SVI, which has no floor, shrinks it further (to ~1e-291) with the objective growing
    without bound. A prior (``Prior()``) removes the degeneracy.

    Args:
        X: Array-like ``(n, d)``; ``NaN`` marks a missing entry (a
            :class:`~jaxmix.SparseRatings` is made dense, up to
            :data:`jaxmix.data.MAX_DENSE_ENTRIES` entries).
        K: Number of components.
        mask: Optional boolean ``(n, d)``, ``True`` = observed.
        prior: ``None`` (maximum likelihood) or a :class:`~jaxmix.Prior`.
        covariance: The covariance family: ``"spherical"``, ``"diag"``, ``"shared"`` or
            ``"factor"`` (rank 1; pass ``get_family("factor", rank=q)`` for another rank).
        seed: Seed of the starting point (and of SVI's random stream).
        init: ``"kmeans++"``, ``"random_rows"``, explicit parameters or a previous result.
        num_steps: SVI's Adam steps.
        learning_rate: SVI's Adam step size.
        polish_steps: SVI's maximum L-BFGS iterations.
        tol: EM's relative tolerance (tight by default, so that EM's optimum is precise).
        max_iter: EM's iteration cap.
        min_var: EM's variance floor (default 0: SVI has no floor).
        rtol: Relative tolerance of :attr:`EMSVIComparison.agree`.
        svi_start: ``"same"`` (default): SVI starts where EM starts. ``"em"``: SVI starts at EM's
            converged parameters (a local check of EM's optimum; pass a small
            ``learning_rate``, e.g. ``1e-6``, to keep Adam's first steps, which move every
            coordinate by about ``learning_rate`` whatever the gradient, from leaving it, so that
            the L-BFGS polish does the work).

    Returns:
        An :class:`EMSVIComparison` (``print`` it for a table) holding both results.

    Example:
        >>> import numpy as np, jaxmix
        >>> X = np.array([[1.0, 2.0], [1.1, np.nan], [5.0, 6.0], [np.nan, 6.1], [5.2, 5.9],
        ...               [0.9, 2.2]])
        >>> report = jaxmix.compare_em_svi(X, 2, prior=jaxmix.Prior(), num_steps=300)
        >>> report.agree, report.permutation.shape
        (True, (2,))
    """
    layout = as_data(X, mask, "dense", what="compare_em_svi")
    values, observed = layout.values, layout.observed
    K = check_n_components(K, values.shape[0])
    family = get_family(covariance)
    seed = check_seed(seed)
    min_var = check_nonneg_float(min_var, "min_var")
    rtol = check_nonneg_float(rtol, "rtol")
    max_iter = check_positive_int(max_iter, "max_iter")
    check_choice(svi_start, "svi_start", SVI_STARTS)
    summary = layout.summary()
    if prior is not None:
        prior = resolve_prior(prior, summary)
    start = init_params(init, layout, K, n_init=1, seed=seed, min_var=min_var, covariance=family)
    start = jax.tree.map(lambda a: np.asarray(a[0]), start)

    def run_em() -> EMResult:
        return fit_em(
            values,
            K,
            mask=observed,
            init=start,
            tol=tol,
            max_iter=max_iter,
            min_var=min_var,
            prior=prior,
            covariance=family,
        )

    begin = time.perf_counter()
    run_em()
    first = time.perf_counter() - begin
    begin = time.perf_counter()
    em = run_em()
    em_time = time.perf_counter() - begin
    svi = fit_svi(
        values,
        K,
        mask=observed,
        guide="map",
        prior=prior,
        covariance=family,
        num_steps=num_steps,
        seed=seed,
        init=start if svi_start == "same" else em,
        learning_rate=learning_rate,
        polish_steps=polish_steps,
    )

    em_objective = log_objective(values, em.params, mask=observed, prior=prior)
    perm = match_components(em.mu, svi.mu)
    dmu, dvar, dw = _distances(em.params, svi.params, perm)
    # EM floors every variance at min_var and, in its standardised units, at the dtype's epsilon.
    eps_floor = float(np.finfo(float_dtype()).eps) * Standardizer.fit(summary).scale ** 2
    floor = bool(np.any(em.var <= max(min_var, eps_floor) * (1.0 + 1e-9)))
    return EMSVIComparison(
        em_objective=em_objective,
        svi_objective=svi.objective,
        rel_gap=(em_objective - svi.objective) / abs(em_objective),
        max_abs_dmu=dmu,
        max_rel_dvar=dvar,
        max_abs_dweights=dw,
        permutation=perm,
        em_time=em_time,
        em_compile_time=max(first - em_time, 0.0),
        svi_time=svi.run_time,
        svi_compile_time=svi.compile_time,
        em_iter=em.n_iter,
        svi_evals=svi.n_evals,
        em_floor_active=floor,
        rtol=rtol,
        em=em,
        svi=svi,
        svi_start=svi_start,
    )

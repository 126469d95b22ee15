"""Posterior diagnostics: ArviZ InferenceData and a convergence report.

* :func:`to_inference_data` builds an ArviZ ``InferenceData`` with the posterior, the per-row
  marginal log-likelihood (components summed out, observed entries only; what ``az.loo``,
  ``az.waic`` and ``az.compare`` need), the posterior predictive of the missing entries,
  the observed data and the sampler's statistics.
* :func:`diagnose` reports ``r_hat``, bulk and tail ESS, divergences and relabelling counts and
  warns with :class:`DiagnosticsWarning` when they are off.

The draws are relabelled before they get here (:func:`jaxmix.relabel`, done by
:func:`jaxmix.fit_mcmc`); the posterior's dimensions follow the covariance family's shapes
(``var``: ``(component)`` spherical, ``(component, item)`` diag, none for shared).
"""

from __future__ import annotations

import warnings
from typing import Any, NamedTuple

import jax
import numpy as np

from jaxmix._summary import num, summary_repr
from jaxmix._validate import check_seed
from jaxmix.data import as_data
from jaxmix.models.families import family_of
from jaxmix.params import MixtureParams
from jaxmix.posterior.draws import (
    check_draws,
    flatten_draws,
    has_draws,
    posterior_draws,
    run_posterior_pass,
    sample_entries,
    sample_entries_given_rows,
)
from jaxmix.results import MCMCResult

__all__ = [
    "DiagnosticsReport",
    "DiagnosticsWarning",
    "VariableDiagnostics",
    "diagnose",
    "import_arviz",
    "param_dims",
    "to_inference_data",
]

PARAMETERS = ("mu", "var", "weights")


def import_arviz() -> Any:
    """Import ArviZ lazily (it is slow to import), without its once-a-day import-time notice.

    ArviZ 0.23 announces its coming refactor with a ``FutureWarning`` at import, once a day; it
    says nothing about jaxmix's use of the classic API, so that one message is filtered here (and
    only it).
    """
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r"\s*ArviZ is undergoing a major refactor", category=FutureWarning
        )
        import arviz

    return arviz


class DiagnosticsWarning(UserWarning):
    """A posterior diagnostic is off: ``r_hat`` too high, ESS too low, or divergences."""


# --------------------------------------------------------------------------------------------
# InferenceData


#: The family's ``var_shape`` is asked for these sizes of ``K`` and ``d``: two distinct numbers, so
#: every axis of the variances can be named whatever the family (and whatever ``K`` and ``d``).
_PROBE = {2: "component", 3: "item"}


def param_dims(family: Any) -> dict[str, list[str]]:
    """The dimensions (after ``chain`` and ``draw``) of the posterior's variables: ``mu``
    ``(component, item)``, ``weights`` ``(component)`` and ``var`` as the family's shape says
    (``(component)`` spherical, ``(component, item)`` diag, none for shared)."""
    var_dims: list[str] = []
    for i, size in enumerate(family.var_shape(2, 3)):
        name = _PROBE.get(size, f"var_dim_{i}")
        var_dims.append(name if name not in var_dims else f"{name}_{i}")
    return {"mu": ["component", "item"], "var": var_dims, "weights": ["component"]}


def _posterior_group(draws: MixtureParams, attrs: dict[str, Any]) -> Any:
    az = import_arviz()

    K, d = np.shape(draws.mu)[-2:]
    return az.dict_to_dataset(
        {"mu": draws.mu, "var": draws.var, "weights": draws.weights},
        library=None,
        coords={"component": np.arange(K), "item": np.arange(d)},
        dims=param_dims(family_of(draws)),
        attrs=attrs,
    )


def _sample_stats_group(result: MCMCResult) -> Any:
    az = import_arviz()

    C, S = np.shape(result.diverging)
    common = {
        "lp": -np.asarray(result.potential_energy),
        "relabelled": np.any(
            np.asarray(result.permutation) != np.arange(result.n_components), axis=-1
        ),
    }
    if result.kernel == "gibbs":  # no trajectories: nothing of NUTS's to report
        return az.dict_to_dataset(common)
    return az.dict_to_dataset(
        {
            "diverging": np.asarray(result.diverging, bool),
            "acceptance_rate": np.asarray(result.accept_prob),
            "n_steps": np.asarray(result.n_leapfrog),
            "tree_depth": np.asarray(result.tree_depth),
            "step_size": np.broadcast_to(np.asarray(result.step_size)[:, None], (C, S)).copy(),
            **common,
        }
    )


def _attrs(result: Any) -> dict[str, Any]:
    kind = "MCMCResult" if isinstance(result, MCMCResult) else "SVIResult(meanfield)"
    attrs = {"jaxmix_result": kind, "covariance": str(getattr(result, "covariance", ""))}
    if isinstance(result, MCMCResult):
        attrs["n_relabelled"] = int(result.n_relabelled)
    return attrs


def _posterior_idata(result: Any, num_samples: int = 1000, seed: int = 0) -> Any:
    """Posterior (and sample stats) only: what :func:`diagnose` needs, without the data."""
    az = import_arviz()

    draws = posterior_draws(result, num_samples, seed)
    groups = {"posterior": _posterior_group(draws, _attrs(result))}
    if isinstance(result, MCMCResult):
        groups["sample_stats"] = _sample_stats_group(result)
    return az.InferenceData(**groups)


def to_inference_data(
    result: Any,
    X: Any,
    *,
    mask: Any = None,
    num_samples: int = 1000,
    seed: int = 0,
    posterior_predictive: bool = True,
) -> Any:
    """An ArviZ ``InferenceData`` of an MCMC or mean-field SVI result on the data ``X``.

    Groups (``C`` chains, ``S`` draws, ``n`` rows, ``d`` columns, ``M`` missing entries):

    ====================== ========================================================================
    group                  content
    ====================== ========================================================================
    posterior              ``mu`` (component, item), ``var`` by the covariance family: (component)
                           spherical, (component, item) diag, () shared; ``weights``
                           (component); relabelled draws for MCMC
    log_likelihood         ``x`` (row): ``log p(x_{u,C_u} | theta)`` at every draw, the components
                           summed out, observed entries only; ``az.loo`` / ``az.waic`` /
                           ``az.compare`` use it (a row is the unit left out)
    posterior_predictive   ``x_missing`` (missing_entry), with coordinates ``row`` and ``column``
                           on ``missing_entry``: per draw, a component drawn from the row's
                           responsibilities given its observed entries and the draw's
                           parameters, then a Normal value (the predictive of the missing
                           entries given the observed ones); row-major order. ``x``
                           (observed_entry), with coordinates ``observed_row`` and
                           ``observed_column``: a replicate of every observed entry (the same
                           component, then a value from its marginal Normal), what
                           ``az.plot_ppc(idata)`` compares with ``observed_data``'s ``x``
    observed_data          ``x`` (row, item) with ``NaN`` at the missing entries (ArviZ's
                           density plots drop them)
    constant_data          ``observed`` (row, item), the mask
    sample_stats           MCMC only: ``diverging``, ``acceptance_rate``, ``n_steps`` (leapfrog),
                           ``tree_depth``, ``lp`` (minus the potential energy), ``step_size``,
                           ``relabelled``; for ``kernel="gibbs"`` only ``lp`` and
                           ``relabelled``
    ====================== ========================================================================

    A mean-field SVI result gives one chain of ``num_samples`` draws from ``q`` and no
    ``sample_stats``.

    Args:
        result: :class:`~jaxmix.MCMCResult` or a ``"meanfield"`` :class:`~jaxmix.SVIResult`.
        X: The ``(n, d)`` data the result was fit on, ``NaN`` at missing entries.
        mask: Optional boolean ``(n, d)``, ``True`` = observed.
        num_samples: Draws from ``q`` for mean-field SVI results (ignored for MCMC).
        seed: Seed of the predictive draws (and of the draws from ``q``).
        posterior_predictive: Include the ``posterior_predictive`` group (``C * S * n * d``
            numbers in all: every entry, missing or observed, once per draw; turn it off for
            large matrices).

    Returns:
        ``arviz.InferenceData``.

    Example:
        >>> import jaxmix
        >>> X = jaxmix.simulate_ratings(40, 5, 2, stars=None, seed=0).X
        >>> res = jaxmix.fit_mcmc(X, 2, num_warmup=200, num_samples=200)  # doctest: +SKIP
        >>> idata = jaxmix.to_inference_data(res, X)  # doctest: +SKIP
        >>> idata.log_likelihood["x"].shape  # doctest: +SKIP
        (2, 200, 40)
        >>> import arviz as az  # doctest: +SKIP
        >>> az.plot_ppc(idata)  # observed entries against their replicates  # doctest: +SKIP
    """
    az = import_arviz()

    if not has_draws(result):
        raise TypeError(
            "to_inference_data needs posterior draws: an MCMCResult (jaxmix.fit_mcmc) or a "
            "mean-field SVIResult (jaxmix.fit_svi(..., guide='meanfield')); got "
            f"{type(result).__name__}"
        )
    layout = as_data(X, mask, "dense")
    values, observed = layout.values, layout.observed
    seed = check_seed(seed)
    n, d = layout.shape
    draws = posterior_draws(result, num_samples, seed)
    check_draws(draws, d)
    C, S = np.shape(draws.weights)[:2]
    flat = flatten_draws(draws)
    keys = jax.random.split(jax.random.PRNGKey(seed), C * S)
    z, row_log_lik = run_posterior_pass(flat, layout, keys)
    groups = {
        "posterior": _posterior_group(draws, _attrs(result)),
        "log_likelihood": az.dict_to_dataset(
            {"x": row_log_lik.reshape(C, S, n)},
            coords={"row": np.arange(n)},
            dims={"x": ["row"]},
        ),
        "observed_data": az.dict_to_dataset(
            {"x": values},
            coords={"row": np.arange(n), "item": np.arange(d)},
            dims={"x": ["row", "item"]},
            default_dims=[],
        ),
        "constant_data": az.dict_to_dataset(
            {"observed": observed},
            coords={"row": np.arange(n), "item": np.arange(d)},
            dims={"observed": ["row", "item"]},
            default_dims=[],
        ),
    }
    if posterior_predictive:
        groups["posterior_predictive"] = _predictive_group(flat, layout, z, (C, S), seed)
    if isinstance(result, MCMCResult):
        groups["sample_stats"] = _sample_stats_group(result)
    return az.InferenceData(**groups)


def _predictive_group(
    flat: MixtureParams, layout: Any, z: np.ndarray, chains_draws: tuple[int, int], seed: int
) -> Any:
    """The ``posterior_predictive`` group: ``x_missing`` (the missing entries given the observed
    ones) and ``x`` (a replicate of the observed entries), see :func:`to_inference_data`."""
    C, S = chains_draws
    observed = layout.observed
    rng = np.random.default_rng(seed)
    rows, cols = np.nonzero(~observed)
    pieces = []
    if rows.size:  # drawn first: the same numbers as predictive_summary's with the same seed
        if family_of(flat).row_dependent:  # each draw's prediction conditions on the row
            pred = sample_entries_given_rows(flat, layout, rows, cols, rng)[0]
        else:
            pred = sample_entries(flat, np.arange(C * S), z, rows, cols, rng)
        pieces.append(_entry_dataset("x_missing", pred, (C, S), rows, cols, "missing_entry", ""))
    rows, cols = np.nonzero(observed)
    # a replicate of every observed entry: the row's component as drawn by the posterior pass
    # (given its observed entries), then a value from that component's marginal Normal
    rep = sample_entries(flat, np.arange(C * S), z, rows, cols, rng)
    pieces.append(_entry_dataset("x", rep, (C, S), rows, cols, "observed_entry", "observed_"))
    out = pieces[0] if len(pieces) == 1 else pieces[0].merge(pieces[1])
    out.attrs.update(pieces[-1].attrs)
    return out


def _entry_dataset(
    name: str,
    draws: np.ndarray,
    chains_draws: tuple[int, int],
    rows: np.ndarray,
    cols: np.ndarray,
    dim: str,
    prefix: str,
) -> Any:
    """Draws of some entries as an ArviZ dataset: variable ``name`` over ``(chain, draw, dim)``,
    with the entries' positions as the coordinates ``{prefix}row`` and ``{prefix}column``."""
    ds = import_arviz().dict_to_dataset(
        {name: draws.reshape(*chains_draws, rows.size)},
        coords={dim: np.arange(rows.size)},
        dims={name: [dim]},
    )
    return ds.assign_coords(
        {
            f"{prefix}row": (dim, rows.astype(np.int64)),
            f"{prefix}column": (dim, cols.astype(np.int64)),
        }
    )


# --------------------------------------------------------------------------------------------
# Report


class VariableDiagnostics(NamedTuple):
    """Worst-case diagnostics of one posterior variable (over its coordinates).

    Attributes:
        name: Variable name (``"mu"``, ``"var"``, ``"weights"``).
        max_r_hat: Largest rank-normalised split ``r_hat``.
        min_ess_bulk: Smallest bulk effective sample size.
        min_ess_tail: Smallest tail effective sample size.
    """

    name: str
    max_r_hat: float
    min_ess_bulk: float
    min_ess_tail: float


class DiagnosticsReport(NamedTuple):
    """Result of :func:`diagnose`.

    Attributes:
        ok: Whether no check failed.
        max_r_hat: Largest ``r_hat`` over every coordinate of the variables checked.
        min_ess_bulk: Smallest bulk ESS.
        min_ess_tail: Smallest tail ESS.
        num_divergent: Divergent transitions after warm-up (0 when there are no sample stats).
        n_relabelled: Draws whose components were permuted by the relabelling (0 when unknown).
        num_chains: Chains ``C``.
        num_draws: Draws per chain ``S``.
        ess_threshold: The ESS below which a warning is issued (``ess_per_chain * C``).
        r_hat_threshold: The ``r_hat`` above which a warning is issued.
        variables: Per-variable :class:`VariableDiagnostics`.
        problems: One message per failed check (empty when ``ok``).
        chain_lp: Mean log density (``lp``, minus the potential energy) of every chain's draws,
            ``(C,)`` (empty when the sample has no ``lp``, e.g. a mean-field SVI sample).
    """

    ok: bool
    max_r_hat: float
    min_ess_bulk: float
    min_ess_tail: float
    num_divergent: int
    n_relabelled: int
    num_chains: int
    num_draws: int
    ess_threshold: float
    r_hat_threshold: float
    variables: tuple[VariableDiagnostics, ...]
    problems: tuple[str, ...]
    chain_lp: tuple[float, ...] = ()

    def __repr__(self) -> str:
        def lines() -> list[str]:
            out = [
                f"ok={bool(self.ok)}, {self.num_chains} chain(s) x {self.num_draws} draws",
                f"max_r_hat={num(self.max_r_hat, 4)}, min_ess_bulk={num(self.min_ess_bulk, 4)}, "
                f"min_ess_tail={num(self.min_ess_tail, 4)}, num_divergent={self.num_divergent}, "
                f"n_relabelled={self.n_relabelled}",
            ]
            out += [f"problem: {p}" for p in self.problems[:3]]
            if len(self.problems) > 3:
                out.append(f"... {len(self.problems) - 3} more problem(s); .format() shows all")
            return out

        return summary_repr(self, lines)

    def format(self) -> str:
        """The report as plain text."""
        lines = [
            f"posterior diagnostics: {self.num_chains} chain(s) x {self.num_draws} draws",
            f"{'variable':>10} {'max r_hat':>10} {'min ESS bulk':>13} {'min ESS tail':>13}",
        ]
        for v in self.variables:
            lines.append(
                f"{v.name:>10} {v.max_r_hat:10.4f} {v.min_ess_bulk:13.1f} {v.min_ess_tail:13.1f}"
            )
        lines.append(
            f"divergences: {self.num_divergent}; relabelled draws: {self.n_relabelled} of "
            f"{self.num_chains * self.num_draws}"
        )
        lines.append(
            "status: OK"
            if self.ok
            else "status: PROBLEMS\n" + "\n".join(f"  - {p}" for p in self.problems)
        )
        return "\n".join(lines)


#: Standard errors apart that two chains' mean log densities must be for :func:`diagnose` to
#: report them at different levels.
LEVEL_SE = 4.0


def _chain_levels(lp: np.ndarray, az: Any) -> str | None:
    """The problem of chains whose log densities sit at different levels, or ``None``.

    ``lp`` is ``(C, S)``. The highest and the lowest chain mean are compared in units of their
    Monte Carlo standard errors (every chain's ``sd / sqrt(ESS)``, ArviZ's ESS of the mean): more
    than :data:`LEVEL_SE` apart, the chains have not sampled one distribution.
    """
    if lp.shape[0] < 2 or lp.shape[1] < 4 or not np.all(np.isfinite(lp)):
        return None
    means = lp.mean(axis=1)
    ess = np.array([float(az.ess(c[None], method="mean")) for c in lp])
    ess = np.where(np.isfinite(ess), np.maximum(ess, 1.0), 1.0)  # NaN where ArviZ has none
    se = np.std(lp, axis=1, ddof=1) / np.sqrt(ess)
    high, low = int(np.argmax(means)), int(np.argmin(means))
    gap = float(means[high] - means[low])
    scale = float(np.hypot(se[high], se[low]))
    if gap == 0.0 or gap <= LEVEL_SE * scale:
        return None
    apart = f"{gap / scale:.0f} standard errors" if scale > 0 else "constant draws"
    return (
        f"the chains' log densities sit at different levels (chain {high}: mean lp "
        f"{means[high]:.1f}, chain {low}: {means[low]:.1f}, {gap:.3g} apart, {apart}): the "
        "chains sample different regions of the posterior (separate modes, or a chain still "
        "moving), and pooled summaries mix them"
    )


def _worst(ds: Any, name: str, how: str) -> float:
    values = np.asarray(ds[name].values, np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return float("nan")
    return float(values.max() if how == "max" else values.min())


def diagnose(
    result_or_idata: Any,
    *,
    var_names: tuple[str, ...] = PARAMETERS,
    r_hat_threshold: float = 1.01,
    ess_per_chain: float = 100.0,
    verbose: bool = True,
    warn: bool = True,
) -> DiagnosticsReport:
    """Convergence report of a posterior sample; a failed check is told once.

    **One rule: a problem is told once, printed or warned, never both.** With ``verbose=True``
    (the default) the report is printed and its status line lists the failed checks; no warning
    is issued. With ``verbose=False`` nothing is printed and a single
    :class:`DiagnosticsWarning` lists the failed checks (unless ``warn=False``: then only the
    returned report says so, in ``ok`` and ``problems``).

    Checks (thresholds of Vehtari et al. 2021, "Rank-normalization, folding, and localization"):

    * ``r_hat`` (rank-normalised split R-hat, ``az.rhat``) above ``r_hat_threshold`` (1.01) for
      any coordinate. ArviZ needs two chains; with a single chain its two halves are passed as two
      chains (so ``r_hat`` compares the first half of the draws with the second);
    * bulk or tail ESS (``az.ess``) below ``ess_per_chain * num_chains`` (100 per chain);
    * any divergent transition (MCMC);
    * chains whose mean log density (``lp`` in the sample stats) differ by more than
      :data:`LEVEL_SE` Monte Carlo standard errors: the chains sit in different modes (or one is
      still moving), which the message says in those words, naming the chains (``r_hat`` often
      fails too, but says only that some coordinate disagrees).

    The number of relabelled draws is reported, not judged: relabelling is how label switching is
    undone, and the other diagnostics are computed on the relabelled draws. Coordinates whose
    ``r_hat`` or ESS is undefined (``NaN``, e.g. a constant draw) are skipped.

    Args:
        result_or_idata: An :class:`~jaxmix.MCMCResult`, a mean-field
            :class:`~jaxmix.SVIResult` (one chain of draws from ``q``: the numbers describe the
            Monte Carlo sample of ``q``, not a convergence) or an ``arviz.InferenceData`` (e.g.
            from :func:`to_inference_data`).
        var_names: Posterior variables to check.
        r_hat_threshold: Largest acceptable ``r_hat``.
        ess_per_chain: Smallest acceptable ESS per chain.
        verbose: Print the report (the failed checks in its status), and issue no warning.
        warn: Without ``verbose``, issue one :class:`DiagnosticsWarning` listing the failed
            checks (``False``: silent; read the returned report).

    Returns:
        A :class:`DiagnosticsReport`.

    Example:
        >>> import jaxmix
        >>> X = jaxmix.simulate_ratings(40, 5, 2, stars=None, seed=0).X
        >>> res = jaxmix.fit_mcmc(X, 2, num_warmup=200, num_samples=200)  # doctest: +SKIP
        >>> report = jaxmix.diagnose(res)  # printed; no warning  # doctest: +SKIP
        >>> report.ok, report.problems  # doctest: +SKIP
        (True, ())
    """
    az = import_arviz()

    if has_draws(result_or_idata):
        idata = _posterior_idata(result_or_idata)
    elif hasattr(result_or_idata, "posterior"):
        idata = result_or_idata
    else:
        raise TypeError(
            "diagnose needs an MCMCResult, a mean-field SVIResult or an arviz.InferenceData; got "
            f"{type(result_or_idata).__name__}"
        )
    post = idata.posterior
    names = [v for v in var_names if v in post.data_vars]
    if not names:
        raise ValueError(f"none of {var_names} is in the posterior ({list(post.data_vars)})")
    C, S = int(post.sizes["chain"]), int(post.sizes["draw"])
    if C == 1 and S >= 8:  # one chain: its halves as two chains (ArviZ gives NaN otherwise)
        half = S // 2
        halves = post[names].isel(draw=slice(0, 2 * half))
        halves = halves.coarsen(draw=half).construct(draw=("chain_half", "draw_in_half"))
        halves = halves.squeeze("chain", drop=True).rename(
            {"chain_half": "chain", "draw_in_half": "draw"}
        )
        rhat = az.rhat(halves, var_names=names)
    else:
        rhat = az.rhat(post, var_names=names)
    ess_bulk = az.ess(post, var_names=names, method="bulk")
    ess_tail = az.ess(post, var_names=names, method="tail")
    variables = tuple(
        VariableDiagnostics(
            name=v,
            max_r_hat=_worst(rhat, v, "max"),
            min_ess_bulk=_worst(ess_bulk, v, "min"),
            min_ess_tail=_worst(ess_tail, v, "min"),
        )
        for v in names
    )
    stats = getattr(idata, "sample_stats", None) if "sample_stats" in idata.groups() else None
    num_divergent = 0
    n_relabelled = int(post.attrs.get("n_relabelled", 0))
    if stats is not None:
        if "diverging" in stats:
            num_divergent = int(np.asarray(stats["diverging"].values).sum())
        if "relabelled" in stats:
            n_relabelled = int(np.asarray(stats["relabelled"].values).sum())

    def agg(values, how):
        values = [x for x in values if np.isfinite(x)]
        return float(max(values) if how == "max" else min(values)) if values else float("nan")

    max_r_hat = agg([v.max_r_hat for v in variables], "max")
    min_bulk = agg([v.min_ess_bulk for v in variables], "min")
    min_tail = agg([v.min_ess_tail for v in variables], "min")
    ess_threshold = float(ess_per_chain) * C
    problems = []
    for v in variables:
        if v.max_r_hat > r_hat_threshold:
            problems.append(f"{v.name}: r_hat {v.max_r_hat:.3f} > {r_hat_threshold}")
        worst_ess = min(v.min_ess_bulk, v.min_ess_tail)
        if worst_ess < ess_threshold:
            problems.append(
                f"{v.name}: ESS (bulk {v.min_ess_bulk:.0f}, tail {v.min_ess_tail:.0f}) < "
                f"{ess_threshold:.0f} ({ess_per_chain:g} per chain)"
            )
    if num_divergent:
        problems.append(f"{num_divergent} divergent transition(s) after warm-up")
    chain_lp: tuple[float, ...] = ()
    if stats is not None and "lp" in stats:
        lp = np.asarray(stats["lp"].values, np.float64).reshape(C, -1)
        chain_lp = tuple(float(m) for m in lp.mean(axis=1))
        levels = _chain_levels(lp, az)
        if levels is not None:
            problems.append(levels)
    report = DiagnosticsReport(
        ok=not problems,
        max_r_hat=max_r_hat,
        min_ess_bulk=min_bulk,
        min_ess_tail=min_tail,
        num_divergent=num_divergent,
        n_relabelled=n_relabelled,
        num_chains=C,
        num_draws=S,
        ess_threshold=ess_threshold,
        r_hat_threshold=float(r_hat_threshold),
        variables=variables,
        problems=tuple(problems),
        chain_lp=chain_lp,
    )
    if verbose:  # told in the printed status ...
        print(report.format())
    elif warn and problems:  # ... or in one warning, never both
        warnings.warn(
            "posterior diagnostics are off: " + "; ".join(problems),
            DiagnosticsWarning,
            stacklevel=2,
        )
    return report

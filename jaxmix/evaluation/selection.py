"""Choosing the number of components (and the factor family's rank): PSIS-LOO and BIC side by
side, or held-out entries.

``criterion="heldout"`` (:class:`HeldoutSelection`) hides a share of the observed entries,
fits every candidate on the rest and scores the hidden ones by their mean log predictive density
(and RMSE): what a completion is for, and reliable where BIC is not (sparse ratings, where the
parameter count says little about the fit). The winner is refit on every entry. The rest of this
docstring is about ``criterion="loo"``.

Two scores per ``K``, both on the log-likelihood scale (**higher is better**):

* **BIC** of the maximum-likelihood EM fit (:func:`jaxmix.fit_em` without a prior, ``n_init``
  restarts, :func:`jaxmix.bic`): cheap, asymptotic, the reference's criterion.
* **PSIS-LOO** (``az.loo``): the expected log predictive density of a *new row* estimated by
  Pareto-smoothed importance sampling from posterior draws, with the row as the unit left out.
  It needs posterior draws, and the honest route is MCMC: one :func:`jaxmix.fit_mcmc` per ``K``
  (NUTS with the component summed out, started from MAP-EM). Cost: one compilation (seconds) and
  ``num_chains * (num_warmup + num_samples)`` NUTS iterations per ``K``, each a few gradient
  evaluations of the marginal log density (``O(n d K)``): seconds for hundreds of rows, minutes for
  the Netflix matrix. (Per-row log-likelihoods at a single EM point estimate would have no
  posterior variability, and PSIS-LOO would collapse to the training log-likelihood.)

The comparison table is ArviZ's ``az.compare`` on the InferenceData of the MCMC fits. ``best_k_loo``
applies the *one-standard-error rule*: the smallest ``K`` whose ``elpd_loo`` is within one
standard error of the difference (``dse``) of the best model's: once ``K`` reaches the true
number of components, extra components add almost nothing to the predictive density (they are
emptied or split a cluster), and the raw maximum then picks among near ties at random.
``best_k_loo_max`` is that raw maximum.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from jaxmix import _progress
from jaxmix._summary import num, summary_repr
from jaxmix._validate import (
    check_n_components,
    check_nonneg_float,
    check_nonneg_int,
    check_positive_int,
    check_seed,
)
from jaxmix.data import as_data
from jaxmix.evaluation.baselines import holdout_split
from jaxmix.evaluation.metrics import bic as bic_score
from jaxmix.inference.em import fit_em
from jaxmix.inference.mcmc import fit_mcmc
from jaxmix.models.families import get_family
from jaxmix.models.prior import Prior, resolve_prior
from jaxmix.posterior.completion import heldout_scores
from jaxmix.posterior.diagnostics import DiagnosticsWarning, import_arviz, to_inference_data
from jaxmix.results import EMResult, MCMCResult

__all__ = ["CRITERIA", "HeldoutSelection", "KSelection", "select_k"]

#: What :func:`select_k` can choose by.
CRITERIA = ("loo", "heldout")

_Z90 = 1.6448536269514722  # the standard Normal's 95 % quantile


class HeldoutSelection(NamedTuple):
    """Result of :func:`select_k` with ``criterion="heldout"``: one entry per candidate
    (every ``K`` of ``ks`` with every rank of ``ranks`` and every prior of ``prior``, in that
    order).

    Attributes:
        k: Components of every candidate, ``(J,)``.
        rank: Its rank (the factor family's factors; 0 for the other families), ``(J,)``.
        lpd: Mean log predictive density of the held-out entries (higher is better), ``(J,)``.
        rmse: Root mean squared error of the predictive means there, ``(J,)``.
        coverage: Share of the held-out entries inside the central 90 % Normal interval of the
            predictive mean and standard deviation, ``(J,)``.
        best_index: The candidate of highest ``lpd``.
        best_k, best_rank: Its ``K`` and rank.
        best: The winner refit on every observed entry (an :class:`~jaxmix.EMResult` that
            :func:`jaxmix.complete` and :func:`jaxmix.predictive_summary` accept).
        fits: The candidates' fits on the training entries.
        covariance: The covariance family.
        fraction, seed: The hold-out split (:func:`jaxmix.holdout_split`).
        n_test: Number of held-out entries.
        prior_index: Which of ``priors`` every candidate was fit with, ``(J,)``.
        priors: The priors tried (one, unless ``select_k`` was given several); ``None`` is
            maximum likelihood.
    """

    k: np.ndarray
    rank: np.ndarray
    lpd: np.ndarray
    rmse: np.ndarray
    coverage: np.ndarray
    best_index: int
    best_k: int
    best_rank: int
    best: EMResult
    fits: tuple[EMResult, ...]
    covariance: str
    fraction: float
    seed: int
    n_test: int
    prior_index: Any = None
    priors: tuple = ()

    @property
    def best_prior(self) -> Prior | None:
        """The prior the winner was fit with (``None``: maximum likelihood)."""
        if self.prior_index is None:
            return self.best.prior
        return self.priors[int(self.prior_index[self.best_index])]

    def _several_priors(self) -> bool:
        return len(self.priors) > 1

    def __repr__(self) -> str:
        def lines() -> list[str]:
            j = int(self.best_index)
            which = f", prior {int(self.prior_index[j])}" if self._several_priors() else ""
            return [
                f"covariance={self.covariance!r}, {np.size(self.k)} candidate(s), "
                f"n_test={int(self.n_test)} held-out entries ({self.fraction:g}, seed {self.seed})",
                f"best: K={int(self.best_k)}, rank={int(self.best_rank)}{which}: "
                f"lpd={num(self.lpd[j])}/entry, rmse={num(self.rmse[j])}, "
                f"coverage={num(self.coverage[j], 3)}",
                "candidates K="
                + ",".join(str(int(k)) for k in self.k)
                + " rank="
                + ",".join(str(int(q)) for q in self.rank)
                + "; .format() shows the table",
            ]

        return summary_repr(self, lines)

    def format(self) -> str:
        """The candidates' scores as plain text (the winner marked)."""
        lines = [
            f"held-out {self.n_test} entries ({self.fraction:g} of the observed, seed "
            f"{self.seed}); covariance={self.covariance!r}",
            f"{'K':>3} {'rank':>4}{' prior' if self._several_priors() else ''} {'lpd/entry':>10} "
            f"{'RMSE':>8} {'cover90':>8}",
        ]
        for j in range(self.k.size):
            mark = "  <- best" if j == self.best_index else ""
            which = f" {int(self.prior_index[j]):>5d}" if self._several_priors() else ""
            lines.append(
                f"{self.k[j]:>3d} {self.rank[j]:>4d}{which} {self.lpd[j]:10.4f} "
                f"{self.rmse[j]:8.4f} {self.coverage[j]:8.3f}{mark}"
            )
        if self._several_priors():
            lines += [f"prior {i}: {p!r}" for i, p in enumerate(self.priors)]
        return "\n".join(lines)

    def to_pandas(self) -> Any:
        """The table as a ``pandas.DataFrame`` (one row per candidate)."""
        import pandas as pd

        return pd.DataFrame(
            {
                "K": self.k,
                "rank": self.rank,
                **({"prior": self.prior_index} if self._several_priors() else {}),
                "lpd": self.lpd,
                "rmse": self.rmse,
                "coverage90": self.coverage,
            }
        )


class KSelection(NamedTuple):
    """Result of :func:`select_k`: one entry per ``K`` of ``ks`` (in the order given).

    Attributes:
        ks: The numbers of components, ``(J,)``.
        bic: BIC of the maximum-likelihood EM fit (log-likelihood scale, higher is better).
        elpd_loo: PSIS-LOO expected log predictive density (higher is better).
        elpd_loo_se: Its standard error.
        p_loo: Effective number of parameters estimated by LOO.
        max_pareto_k: Largest Pareto ``k`` of the importance weights.
        n_bad_pareto_k: Rows whose Pareto ``k`` exceeds ArviZ's threshold
            ``min(1 - 1 / log10(S), 0.7)`` for ``S`` draws (their LOO estimate is unreliable).
        best_k_bic: ``K`` of highest BIC.
        best_k_loo: ``K`` chosen by LOO with the one-standard-error rule (module docstring).
        best_k_loo_max: ``K`` of highest ``elpd_loo``.
        comparison: ``az.compare``'s table (a ``pandas.DataFrame``; models named ``"K=3"``...).
        em_fits: The maximum-likelihood EM results, one per ``K``.
        mcmc_fits: The MCMC results, one per ``K``.
    """

    ks: np.ndarray
    bic: np.ndarray
    elpd_loo: np.ndarray
    elpd_loo_se: np.ndarray
    p_loo: np.ndarray
    max_pareto_k: np.ndarray
    n_bad_pareto_k: np.ndarray
    best_k_bic: int
    best_k_loo: int
    best_k_loo_max: int
    comparison: Any
    em_fits: tuple[EMResult, ...]
    mcmc_fits: tuple[MCMCResult, ...]

    def __repr__(self) -> str:
        def lines() -> list[str]:
            return [
                "ks=" + ",".join(str(int(k)) for k in self.ks),
                f"best_k_bic={int(self.best_k_bic)}, best_k_loo={int(self.best_k_loo)} "
                f"(one-standard-error rule), best_k_loo_max={int(self.best_k_loo_max)}",
                f"max_pareto_k={num(np.max(self.max_pareto_k), 3)}; .format() shows the table",
            ]

        return summary_repr(self, lines)

    def format(self) -> str:
        """The scores side by side as plain text (best values marked)."""
        lines = [
            f"{'K':>3} {'BIC':>12} {'elpd_loo':>12} {'se':>8} {'p_loo':>8} {'max k':>6}",
        ]
        for j, K in enumerate(self.ks):
            mark = (" <- BIC" if K == self.best_k_bic else "") + (
                " <- LOO" if K == self.best_k_loo else ""
            )
            lines.append(
                f"{K:>3d} {self.bic[j]:12.2f} {self.elpd_loo[j]:12.2f} {self.elpd_loo_se[j]:8.2f} "
                f"{self.p_loo[j]:8.2f} {self.max_pareto_k[j]:6.2f}{mark}"
            )
        return "\n".join(lines)


def _loo(az: Any, idata: Any) -> tuple[Any, list[str]]:
    """``az.loo`` with its Pareto-k warning recorded instead of raised."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loo = az.loo(idata, pointwise=True)
    return loo, [str(w.message) for w in caught]


def _check_ks(ks: Any, n: int) -> list[int]:
    if isinstance(ks, (str, bytes)) or not (
        isinstance(ks, Sequence) or (isinstance(ks, np.ndarray) and ks.ndim == 1)
    ):
        raise TypeError(f"ks must be a sequence of integers; got {ks!r}")
    ks = [check_n_components(K, n) for K in ks]
    if not ks or len(set(ks)) != len(ks):
        raise ValueError(f"ks must be a non-empty sequence of distinct integers; got {ks}")
    return ks


def _check_priors(prior: Any) -> tuple[Prior | None, ...]:
    """``select_k``'s ``prior`` as a tuple of candidates: one :class:`~jaxmix.Prior` (or
    ``None``), or a list of them."""
    if prior is None or isinstance(prior, Prior):
        return (prior,)
    if (
        isinstance(prior, (list, tuple))
        and prior
        and all(p is None or isinstance(p, Prior) for p in prior)
    ):
        if len({repr(p) for p in prior}) != len(prior):
            raise ValueError("the priors to compare must be distinct")
        return tuple(prior)
    raise TypeError(
        "prior must be a jaxmix.Prior, None (maximum likelihood) or, with criterion='heldout', a "
        f"non-empty list of them to compare; got {prior!r}"
    )


def _split_merge_for(split_merge: Any, ks: Sequence[int]) -> dict[int, int]:
    """``select_k``'s ``split_merge`` per candidate ``K``: the rounds for ``K >= 3``, none below
    (one or two components have nothing to re-deal).

    Raises:
        ValueError: A negative number of rounds, or rounds with every ``K`` below 3.
    """
    rounds = check_nonneg_int(split_merge, "split_merge")
    if rounds and max(ks) < 3:
        raise ValueError(f"split_merge needs K >= 3 components; every K of {list(ks)} is below 3")
    return {K: rounds if K >= 3 else 0 for K in ks}


def _select_heldout(
    X: Any,
    ks: Any,
    *,
    mask: Any,
    prior: Any,
    covariance: Any,
    ranks: Any,
    row_offset: Any,
    n_init: int,
    min_var: float | None,
    seed: int,
    fraction: float,
    max_iter: Any,
    verbose: bool,
    progress: bool = False,
    split_merge: Any = 0,
) -> HeldoutSelection:
    layout = as_data(X, mask, method=None)
    ks = _check_ks(ks, layout.shape[0])
    family = get_family(covariance, row_offset=row_offset)
    if "rank" in family.options:
        ranks = (1,) if ranks is None else ranks
        if isinstance(ranks, (str, bytes, int)) or not hasattr(ranks, "__iter__"):
            raise TypeError(f"ranks must be a sequence of integers; got {ranks!r}")
        ranks = [get_family(family, rank=q).rank for q in ranks]
        if not ranks or len(set(ranks)) != len(ranks):
            raise ValueError(
                f"ranks must be a non-empty sequence of distinct integers; got {ranks}"
            )
    elif ranks is not None:
        raise ValueError(f"ranks apply to covariance='factor'; got covariance={family.name!r}")
    else:
        ranks = [None]
    n_init = check_positive_int(n_init, "n_init")
    seed = check_seed(seed)
    if min_var is not None:
        check_nonneg_float(min_var, "min_var")
    priors = _check_priors(prior)
    rounds = _split_merge_for(split_merge, ks)
    options = {"n_init": n_init, "seed": seed, "min_var": min_var}
    if max_iter is not None:
        options["max_iter"] = check_positive_int(max_iter, "max_iter")
    data = layout.S if layout.kind == "triples" else layout.values
    data_mask = None if layout.kind == "triples" else layout.observed
    train, test = holdout_split(data, fraction, seed=seed, mask=data_mask)
    train_mask = None
    if layout.kind == "triples":
        rows, cols, truth = test.rows, test.cols, test.values.astype(np.float64)
    else:
        rows, cols = np.nonzero(test)
        truth = layout.values[rows, cols]
        train_mask = layout.observed & ~test
    grid = [(K, q, i) for K in ks for q in ranks for i in range(len(priors))]
    fits, lpd, err, cover = [], [], [], []
    # one step per candidate and one for the refit; the best held-out lpd so far is shown
    with _progress.progress_bar(
        progress, "select_k heldout", total=len(grid) + 1, unit="fit", label="best lpd"
    ):
        for j, (K, q, i) in enumerate(grid):
            family_q = get_family(family, rank=q)
            fit = fit_em(
                train, K, mask=train_mask, covariance=family_q, prior=priors[i],
                split_merge=rounds[K], **options,
            )  # fmt: skip
            mean, sd, dens = heldout_scores(train, fit, rows, cols, truth, mask=train_mask)
            fits.append(fit)
            lpd.append(float(dens.mean()))
            err.append(float(np.sqrt(np.mean((mean - truth) ** 2))))
            cover.append(float(np.mean(np.abs(truth - mean) <= _Z90 * sd)))
            _progress.advance(j + 1, lpd[-1], key=j)
        best = int(np.argmax(lpd))
        K, q, i = grid[best]
        family_q = get_family(family, rank=q)
        refit = fit_em(
            data, K, mask=data_mask, covariance=family_q, prior=priors[i],
            split_merge=rounds[K], **options,
        )  # fmt: skip
        _progress.advance(len(grid) + 1)
    result = HeldoutSelection(
        k=np.array([g[0] for g in grid]),
        rank=np.array([0 if g[1] is None else g[1] for g in grid]),
        lpd=np.array(lpd),
        rmse=np.array(err),
        coverage=np.array(cover),
        best_index=best,
        best_k=int(K),
        best_rank=0 if q is None else int(q),
        best=refit,
        fits=tuple(fits),
        covariance=family.name,
        fraction=float(fraction),
        seed=seed,
        n_test=int(rows.size),
        prior_index=np.array([g[2] for g in grid]),
        priors=priors,
    )
    if verbose:
        print(result.format())
    return result


def select_k(
    X: Any,
    ks: Sequence[int],
    *,
    mask: Any = None,
    prior: Prior | Sequence[Prior | None] | None = Prior(),  # noqa: B008 (immutable)
    covariance: str = "spherical",
    n_init: int = 5,
    min_var: float | None = None,
    num_chains: int = 1,
    num_warmup: int = 300,
    num_samples: int = 300,
    seed: int = 0,
    verbose: bool = False,
    criterion: str = "loo",
    ranks: Sequence[int] | None = None,
    row_offset: bool | None = None,
    fraction: float = 0.1,
    max_iter: int | None = None,
    progress: bool = False,
    split_merge: int = 0,
) -> KSelection | HeldoutSelection:
    """Fit every ``K`` in ``ks`` and score it by BIC and by PSIS-LOO (``az.compare``), or
    (``criterion="heldout"``) on held-out entries.

    ``criterion="heldout"`` works on a dense matrix or a :class:`~jaxmix.SparseRatings`, for
    every family: it hides ``fraction`` of the observed entries (:func:`jaxmix.holdout_split`
    with ``seed``), fits every ``K`` (and, for ``covariance="factor"``, every rank of
    ``ranks``) by EM on the rest (``prior``, ``n_init``, ``min_var``, ``max_iter``,
    ``split_merge``), scores the hidden entries' mean log predictive density
    (:func:`jaxmix.posterior.completion.entry_log_density`) and RMSE, and refits the best
    candidate on every entry; it returns a :class:`HeldoutSelection` (``.best``, ``.format()``,
    ``.to_pandas()``). The MCMC settings are not used then.

    For each ``K``: a maximum-likelihood EM fit (``n_init`` restarts, floor ``min_var``) gives the
    BIC; a MAP-EM fit with ``prior`` starts :func:`jaxmix.fit_mcmc`, whose draws give the per-row
    log-likelihood for ``az.loo``. See the module docstring for the cost and the decision rule.

    Args:
        X: Array-like ``(n, d)``, ``NaN`` at missing entries.
        ks: Numbers of components to compare (distinct, each ``1 <= K <= n``).
        mask: Optional boolean ``(n, d)``, ``True`` = observed.
        prior: The (proper) prior of the MCMC fits; with ``criterion="heldout"`` the prior of
            every EM fit (``None``: maximum likelihood), or a list of priors to compare: every
            ``K`` and rank is fit with each, and the held-out entries choose the prior's scales
            too (``[jaxmix.Prior(loading_sd=s) for s in (0.1, 0.3, 0.9)]``).
        covariance: The covariance family (``"spherical"``, ``"diag"``, ``"shared"``,
            ``"factor"``), for every fit.
        n_init: EM restarts per ``K``.
        min_var: Variance floor of the maximum-likelihood EM fits (``None``: the scale-aware
            default of :func:`jaxmix.fit_em`, the reference's 0.25 on ratings).
        num_chains, num_warmup, num_samples: MCMC settings per ``K``.
        seed: Seed of every fit (and, for ``"heldout"``, of the split).
        verbose: Print the table.
        criterion: ``"loo"`` (PSIS-LOO and BIC, dense input) or ``"heldout"``.
        ranks: The factor family's ranks to try (``criterion="heldout"`` with
            ``covariance="factor"``; default ``(1,)``).
        row_offset: The factor family's per-row offset (default on).
        fraction: Share of the observed entries held out (``"heldout"``).
        max_iter: EM iterations per fit (``"heldout"``; default :func:`jaxmix.fit_em`'s).
        progress: Show the progress over the candidates (one step per candidate and, for
            ``"heldout"``, one for the refit; the best score so far beside it): a bar on a
            terminal, whole lines in a log (:mod:`jaxmix._progress`).
        split_merge: Rounds of split-and-merge moves after the restarts of every EM fit with
            ``K >= 3`` (:func:`jaxmix.fit_em`'s ``split_merge``; with ``"loo"`` also the MAP-EM
            start of the MCMC fit); candidates with ``K < 3`` are fit without (nothing to
            re-deal). ``0``, the default: none.

    Returns:
        A :class:`KSelection`. When some row's Pareto ``k`` is too high (``az.loo``'s warning,
        recorded) a :class:`~jaxmix.DiagnosticsWarning` says for which ``K``.

    Example:
        >>> import jaxmix
        >>> X = jaxmix.simulate_ratings(60, 4, 2, stars=None, seed=0).X
        >>> sel = jaxmix.select_k(X, [1, 2], num_warmup=100, num_samples=100)  # doctest: +SKIP
        >>> sel.best_k_bic, sel.best_k_loo  # doctest: +SKIP
        (2, 2)
    """
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {CRITERIA}; got {criterion!r}")
    if criterion == "heldout":
        return _select_heldout(
            X, ks, mask=mask, prior=prior, covariance=covariance, ranks=ranks,
            row_offset=row_offset, n_init=n_init, min_var=min_var, seed=seed, fraction=fraction,
            max_iter=max_iter, verbose=verbose, progress=progress, split_merge=split_merge,
        )  # fmt: skip
    if ranks is not None:
        raise ValueError("ranks are compared with criterion='heldout' (criterion='loo' compares K)")
    layout = as_data(X, mask, "dense", what="select_k(criterion='loo')")
    values, observed = layout.values, layout.observed
    ks = _check_ks(ks, layout.shape[0])
    rounds = _split_merge_for(split_merge, ks)
    covariance = get_family(covariance).name
    n_init = check_positive_int(n_init, "n_init")
    seed = check_seed(seed)
    if min_var is not None:
        check_nonneg_float(min_var, "min_var")
    # fit_mcmc's own checks, done before the first (EM) fit rather than after it.
    if prior is not None and not isinstance(prior, Prior):
        raise TypeError(
            "criterion='loo' takes one jaxmix.Prior (a list of priors is compared with "
            f"criterion='heldout'); got {prior!r}"
        )
    if prior is None:
        raise ValueError(
            "fit_mcmc needs a proper prior (with flat priors the mixture's posterior is "
            "improper); use prior=jaxmix.Prior() or your own jaxmix.Prior"
        )
    resolve_prior(prior, layout.summary())
    check_positive_int(num_chains, "num_chains")
    check_positive_int(num_samples, "num_samples")
    check_nonneg_int(num_warmup, "num_warmup")
    az = import_arviz()

    em_fits, mcmc_fits, loos, notes = [], [], [], []
    # one step per K (EM, NUTS and LOO); the best elpd_loo so far is shown
    with _progress.progress_bar(
        progress, "select_k loo", total=len(ks), unit="K", label="best elpd_loo"
    ):
        for j, K in enumerate(ks):
            ml = fit_em(
                values, K, mask=observed, n_init=n_init, seed=seed, min_var=min_var,
                covariance=covariance, split_merge=rounds[K],
            )  # fmt: skip
            mcmc = fit_mcmc(
                values,
                K,
                mask=observed,
                prior=prior,
                covariance=covariance,
                num_chains=num_chains,
                num_warmup=num_warmup,
                num_samples=num_samples,
                seed=seed,
                n_init=n_init,
                split_merge=rounds[K],
            )
            idata = to_inference_data(mcmc, values, mask=observed, posterior_predictive=False)
            loo, caught = _loo(az, idata)
            em_fits.append(ml)
            mcmc_fits.append(mcmc)
            loos.append(loo)
            if any("Pareto" in m for m in caught):
                notes.append(K)
            _progress.advance(j + 1, float(loo.elpd_loo), key=j)
    with warnings.catch_warnings():
        # The Pareto-k warnings were recorded above; az.compare (ArviZ 0.23) also calls pandas'
        # sort_values(inplace=True), deprecated in pandas 3.1: not ours to fix, and only that one.
        warnings.filterwarnings("ignore", message=".*Pareto.*", category=UserWarning)
        warnings.filterwarnings(
            "ignore",
            message="The inplace keyword in DataFrame.sort_values",
            category=DeprecationWarning,
        )
        # az.compare's stacking weights take exp of every row's pointwise elpd: when all of a
        # row's values are very negative (data on a huge scale) they underflow to 0 and log(0)
        # follows. Subtract from each row a constant shared by all the models (the row's largest
        # elpd over the models): the differences between models, hence the stacking weights and
        # dse, are unchanged, and the precomputed elpd_loo, se and p_loo (true, unshifted values)
        # are what the table reports. The LOO results are passed precomputed (no second az.loo).
        pointwise = np.stack([np.asarray(loo.loo_i, np.float64).ravel() for loo in loos])
        row_shift = pointwise.max(axis=0)
        shifted = {}
        for K, loo in zip(ks, loos, strict=True):
            copy = loo.copy()
            copy["loo_i"] = loo.loo_i - row_shift.reshape(np.shape(loo.loo_i))
            shifted[f"K={K}"] = copy
        comparison = az.compare(shifted, ic="loo")

    elpd = np.array([float(loo.elpd_loo) for loo in loos])
    se = np.array([float(loo.se) for loo in loos])
    khat = [np.asarray(loo.pareto_k) for loo in loos]
    bics = np.array([bic_score(values, ml) for ml in em_fits])
    order = np.asarray(ks)
    best_loo_max = int(order[int(np.argmax(elpd))])
    dse = {name: float(comparison.loc[name, "dse"]) for name in comparison.index}
    within = [
        K for j, K in enumerate(ks) if elpd.max() - elpd[j] <= dse[f"K={K}"] or K == best_loo_max
    ]
    result = KSelection(
        ks=order,
        bic=bics,
        elpd_loo=elpd,
        elpd_loo_se=se,
        p_loo=np.array([float(loo.p_loo) for loo in loos]),
        max_pareto_k=np.array([float(k.max()) for k in khat]),
        n_bad_pareto_k=np.array(
            [int((k > float(loo.good_k)).sum()) for k, loo in zip(khat, loos, strict=True)]
        ),
        best_k_bic=int(order[int(np.argmax(bics))]),
        best_k_loo=int(min(within)),
        best_k_loo_max=best_loo_max,
        comparison=comparison,
        em_fits=tuple(em_fits),
        mcmc_fits=tuple(mcmc_fits),
    )
    if verbose:
        print(result.format())
    if notes:
        warnings.warn(
            f"PSIS-LOO: some rows have a high Pareto k for K in {notes}; their elpd_loo "
            "estimates are unreliable (see KSelection.n_bad_pareto_k; more draws help)",
            DiagnosticsWarning,
            stacklevel=2,
        )
    return result

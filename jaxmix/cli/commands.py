"""What the commands do: ``demo``, ``fit`` and ``complete``.

``demo`` and ``fit`` share one path, whatever the input: what was read (a dense matrix with
``NaN`` at the missing entries, or a :class:`~jaxmix.SparseRatings` of observed triples) becomes a
data layout (:func:`jaxmix.as_data`); a share of the observed entries is held out
(:func:`jaxmix.holdout_split`), EM fits the rest (:func:`jaxmix.fit_em`), and the mixture and the
baselines (:data:`BASELINES`) are scored at chosen entries (``complete(..., rows=, cols=)``,
``mean_baseline(..., rows=, cols=)``), which every layout answers without materialising the
matrix. The layout decides what else is possible: the completed matrix, its predictive standard
deviations and the picture need a dense one.

``fit --select`` replaces the single fit by a held-out selection among several ``K`` (and, for
the factor family, several ranks) on the same training entries (:func:`jaxmix.select_k` with
``criterion="heldout"``, maximum likelihood like the plain fit); its winner, refit on every
training entry, then goes down the same path as a plain fit.

Every check of the outputs (folders, overwriting the input, the picture format, what the layout
can write) runs before any data is read.

``complete --format triples`` works by id: ``fit --format triples --save-fit`` keeps the users'
and items' ids in the file (:func:`jaxmix.save` with ``ids=``), the ratings file's items are
matched to the fit's columns by those ids, and the predictions at the ``--pairs`` (user id, item
id) are written with :func:`jaxmix.predictive_summary`'s mean, sd and interval.
"""

from __future__ import annotations

import argparse
import csv
import functools
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from jaxmix._validate import is_number
from jaxmix.cli.plot import check_picture_path, save_plot
from jaxmix.cli.report import fit_report, model_description
from jaxmix.cli.scaling import ColumnScaling, check_scaling_options
from jaxmix.data import (
    DenseLayout,
    SparseRatings,
    TriplesLayout,
    as_data,
    float_dtype,
    load_ratings,
    load_sparse_ratings,
    save_ratings,
)
from jaxmix.data.ratings import IdMaps, load_id_pairs
from jaxmix.evaluation import aic, bic, holdout_split, mean_baseline, rmse, select_k
from jaxmix.inference.em import fit_em
from jaxmix.inference.init import INIT_METHODS
from jaxmix.models.families import FACTOR, family_of
from jaxmix.models.prior import Prior
from jaxmix.params import MixtureParams
from jaxmix.persistence import load, load_ids, save
from jaxmix.posterior import complete, predictive_summary
from jaxmix.simulate import simulate_ratings

__all__ = [
    "BASELINES",
    "DEFAULT_INIT",
    "DEFAULT_TOL",
    "DEMO_PLOT",
    "DENSE_OUTPUTS",
    "FORMATS",
    "INIT_CHOICES",
    "MISSING_TOKENS",
    "PREDICTION_COLUMNS",
    "PRIORS",
    "PROG",
    "Entries",
    "InputFormat",
    "Outcome",
    "Problem",
    "check_model_options",
    "fit_and_score",
    "make_problem",
    "run_complete",
    "run_demo",
    "run_fit",
    "suggestions",
]

PROG = "jaxmix"
DEMO_PLOT = "jaxmix_demo.png"
INIT_CHOICES = INIT_METHODS
#: ``--init`` and ``--tol`` by default: those of :func:`jaxmix.fit_em`, which ``--select`` uses.
DEFAULT_INIT = "kmeans++"
DEFAULT_TOL = 1e-6
#: The baselines of the report, in its order: ``mean_baseline``'s ``by`` and the report's label.
BASELINES = {
    "user": "user mean",
    "item": "item mean",
    "global": "global mean",
    "bias": "bias (user+item)",
}
#: The outputs that need the whole ``(n, d)`` matrix: only a dense layout writes them.
DENSE_OUTPUTS = ("--output", "--output-std", "--plot")
#: The words ``--missing-value`` accepts besides numbers (read as missing where they stand).
MISSING_TOKENS = ("NA", "N/A", "na", "n/a", "NULL", "null", "<NA>", "#N/A", "?", ".", "-")
#: ``--prior`` choices: maximum likelihood, or MAP-EM with :class:`jaxmix.Prior`'s defaults.
PRIORS = {"none": None, "default": Prior()}
#: The header of ``complete --format triples --output``.
PREDICTION_COLUMNS = ("user", "item", "mean", "sd", "lower", "upper")


class InputFormat(NamedTuple):
    """A file format ``jaxmix fit`` reads.

    Attributes:
        read: Reads ``args.path``: a dense array (``NaN`` = missing) or a
            :class:`~jaxmix.SparseRatings`.
        kind: The kind of layout :func:`jaxmix.as_data` makes of what ``read`` returns
            (``DenseLayout.kind`` or ``TriplesLayout.kind``), known before the file is read so
            that impossible outputs are refused first.
    """

    read: Callable[[argparse.Namespace], Any]
    kind: str


def _read_matrix(args: argparse.Namespace) -> np.ndarray:
    """A dense ratings file; a text ``--missing-value`` (``NA``) is read as missing, and a file
    that looks like triples with a header is named as such."""
    path, missing = args.path, args.missing_value
    try:
        return load_ratings(path, missing=missing)
    except ValueError as err:
        if "not a text ratings file" in str(err):
            raise
        hint = _header_hint(path) or _token_hint(path, missing)
        if hint:
            raise ValueError(f"{err}; {hint}") from None
        raise


def _header_hint(path: str) -> str | None:
    """What a dense file that failed to read probably is: triples with a header line."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            first = next((line for line in fh if line.strip()), "")
    except OSError:
        return None
    for sep in (",", "\t", ";", "::"):
        fields = [f.strip().strip('"') for f in first.split(sep)]
        if len(fields) >= 2 and not all(is_number(f) for f in fields):
            return (
                f"its first line {first.strip()[:60]!r} looks like the header of a "
                f"{'comma' if sep == ',' else 'delimiter'}-separated table: for a file of "
                "(user, item, rating) triples give --format triples"
            )
    return None


def _token_hint(path: str, missing: Any) -> str | None:
    """A short word among the numbers (``NA``, ``?``): probably the file's missing marker."""
    if isinstance(missing, str):
        return None
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                for field_text in line.split():
                    if not is_number(field_text):
                        if field_text in MISSING_TOKENS:
                            return (
                                f"if {field_text!r} marks a missing entry, pass --missing-value "
                                f"{field_text}"
                            )
                        return None
    except OSError:
        return None
    return None


def _read_triples(args: argparse.Namespace) -> SparseRatings:
    """A triples file; a dense matrix given as triples by mistake is named as such."""
    try:
        S = load_sparse_ratings(args.path)
    except ValueError as err:
        if "more than once" in str(err):
            raise ValueError(
                f"{err}. Is {args.path} a dense matrix (one row per line) rather than (user, "
                "item, rating) triples? Then drop --format triples"
            ) from None
        raise
    marker = args.missing_value
    if isinstance(marker, float) and np.any(S.values == marker):
        count = int(np.count_nonzero(S.values == marker))
        raise ValueError(
            f"{args.path}: {count} rating(s) in the third column equal the missing-value "
            f"marker {marker:g}: is it a dense matrix (one row per line, {marker:g} = missing) "
            "rather than (user, item, rating) triples? Then drop --format triples; if those "
            "ratings are real, pass --missing-value none"
        )
    return S


#: ``--format`` choices.
FORMATS = {
    "matrix": InputFormat(_read_matrix, DenseLayout.kind),
    "triples": InputFormat(_read_triples, TriplesLayout.kind),
}


class Entries(NamedTuple):
    """A set of scored entries: their rows, columns and true values (``(m,)`` each)."""

    rows: np.ndarray
    cols: np.ndarray
    values: np.ndarray


@dataclass
class Problem:
    """Data to fit, with what the fit is scored against.

    Attributes:
        layout: Every observed entry, in the input's own form (:func:`jaxmix.as_data` with
            ``method=None``): what the completed matrix is written from.
        train: The layout EM sees: ``layout`` with the held-out entries hidden.
        scored: Entries to score per name: ``"held-out"`` (the hidden entries) and
            ``"missing vs truth"`` (the missing entries, where the truth is known: the demo).
        n_test: Number of held-out entries, or ``None`` without a hold-out.
    """

    layout: DenseLayout | TriplesLayout
    train: DenseLayout | TriplesLayout
    scored: dict[str, Entries] = field(default_factory=dict)
    n_test: int | None = None


@dataclass
class Outcome:
    """A fitted problem.

    Attributes:
        result: The EM result (with ``--select``: the winner, refit on every training entry).
        fit_seconds: Wall time of :func:`jaxmix.fit_em` (including JIT compilation); with
            ``--select`` of the whole :func:`jaxmix.select_k`.
        scores: RMSE per scored set, per method (``"mixture K=.."`` and the baselines).
        selection: The :class:`~jaxmix.HeldoutSelection` of ``--select``, else ``None``.
        scaling: With ``--standardize``, the columns' map: ``result`` is a fit of the
            standardised training entries (:mod:`jaxmix.cli.scaling`); else ``None``.
        fit_data: The layout ``result`` was fit to (the training entries, standardised with
            ``scaling``).
        log_jacobian: What a log-likelihood of ``fit_data`` gains in the data's units (0
            without ``scaling``).
    """

    result: Any
    fit_seconds: float
    scores: dict[str, dict[str, float]]
    selection: Any = None
    scaling: ColumnScaling | None = None
    fit_data: Any = None
    log_jacobian: float = 0.0

    @property
    def K(self) -> int:
        """Components of the fit."""
        return int(self.result.params.n_components)

    @property
    def reported(self) -> Any:
        """``result`` with its log-likelihoods in the data's units (itself without scaling)."""
        if self.scaling is None:
            return self.result
        return ColumnScaling.in_data_units(self.result, self.log_jacobian)


# --------------------------------------------------------------------------- commands


def run_demo(args: argparse.Namespace) -> int:
    """``jaxmix demo``: simulate, fit, score, report and plot."""
    check_model_options(args)
    check_scaling_options(args)
    _check_outputs({"--plot": args.plot})
    _phase(args, f"simulating {args.users} users x {args.items} items from K={args.K} components")
    sim = simulate_ratings(args.users, args.items, args.K, missing=args.missing, seed=args.seed)
    problem = make_problem(sim.X, args, truth=sim.X_full)
    outcome = fit_and_score(problem, args)
    source = f"simulated from K={args.K} planted components (seed {args.seed})"
    _print_report(problem, outcome, args, source)
    _save_plot_if_asked(args, outcome, f"jaxmix demo: {args.users} x {args.items}, K={args.K}")
    return 0


def run_fit(args: argparse.Namespace) -> int:
    """``jaxmix fit PATH``: read, fit (or select, ``--select``), score, report, save the fit,
    write the outputs, plot."""
    check_model_options(args)
    check_scaling_options(args)
    fmt = FORMATS[args.format]
    outputs = {
        "--output": args.output,
        "--output-std": args.output_std,
        "--save-fit": args.save_fit,
        "--plot": args.plot,
    }
    _check_layout_outputs(fmt.kind, outputs)
    _check_outputs(outputs, source=args.path)
    _phase(args, f"loading {args.path}")
    problem = make_problem(fmt.read(args), args)
    _check_layout_outputs(problem.layout.kind, outputs)
    outcome = fit_and_score(problem, args)
    _print_report(problem, outcome, args, f"read from {args.path}")
    if args.save_fit:
        ids = problem.layout.S.ids if problem.layout.kind == TriplesLayout.kind else None
        save(outcome.result, args.save_fit, ids=ids)
        kept = " with the user and item ids" if ids is not None else ""
        print(f"fit saved to {args.save_fit}{kept}")
    if args.output or args.output_std:
        held_out = problem.n_test is not None
        _phase(args, "completing from every observed entry" if held_out else "completing")
        _write_outputs(problem.layout, outcome.result, args, outcome.scaling)
    title = f"jaxmix fit {os.path.basename(args.path)}, K={outcome.K}"
    _save_plot_if_asked(args, outcome, title)
    return 0


def run_complete(args: argparse.Namespace) -> int:
    """``jaxmix complete PATH --fit FILE``: load a saved fit and a matrix, write its completion
    (``--format triples``: predictions at the ``--pairs``, by id)."""
    if args.format == "triples":
        return _complete_pairs(args)
    if args.pairs:
        raise ValueError("--pairs (user, item) applies to --format triples")
    if not (args.output or args.output_std):
        raise ValueError("nothing to write: give --output FILE and/or --output-std FILE")
    outputs = {"--output": args.output, "--output-std": args.output_std}
    _check_outputs(outputs, source=args.path)
    _check_outputs(outputs, source=args.fit)
    _phase(args, f"loading the fit {args.fit}")
    result = _load_fit(args.fit)
    params = result if isinstance(result, MixtureParams) else result.params
    _phase(args, f"loading {args.path}")
    X = _read_matrix(args)
    K, d = np.shape(params.mu)
    if X.shape[1] != d:
        raise ValueError(
            f"{args.path} has {X.shape[1]} columns but the fit in {args.fit} has {d}: give the "
            "matrix the model was fit to (same columns, same order)"
        )
    _phase(args, f"completing {X.shape[0]} rows with K={K} components")
    _write_outputs(X, result, args)
    return 0


def _load_fit(path: str) -> Any:
    """A saved fit; refuse a file that holds something else."""
    result = load(path)
    params = result if isinstance(result, MixtureParams) else getattr(result, "params", None)
    if not isinstance(params, MixtureParams) or np.ndim(params.mu) != 2:
        raise ValueError(f"{path} holds a {type(result).__name__}, not a fitted mixture")
    return result


def _complete_pairs(args: argparse.Namespace) -> int:
    """``jaxmix complete PATH --format triples --fit FILE --pairs PAIRS --output FILE``.

    PATH holds the users' ratings as triples (their rows condition the predictions); its items
    are matched to the fit's columns by the item ids saved with the fit, and the pairs name
    users of PATH and items of the fit. Writes one line per pair: ``user, item, mean, sd,
    lower, upper`` (the interval is the ``--hdi-prob`` highest-density interval of
    :func:`jaxmix.predictive_summary`; a pair rated in PATH is written as rated, sd 0).
    """
    if not args.pairs or not args.output:
        raise ValueError(
            "--format triples predicts (user, item) pairs: give --pairs FILE and --output FILE"
        )
    if args.output_std:
        raise ValueError("--output-std is for --format matrix; the sd is a column of --output")
    outputs = {"--output": args.output}
    for source in (args.path, args.fit, args.pairs):
        _check_outputs(outputs, source=source)
    _phase(args, f"loading the fit {args.fit}")
    result = _load_fit(args.fit)
    ids = load_ids(args.fit)
    if ids is None or ids.col_ids is None:
        raise ValueError(
            f"{args.fit} holds no item ids (a fit of a dense matrix, or saved without ids); "
            "fit the triples with 'jaxmix fit PATH --format triples --save-fit FILE' (or "
            "jaxmix.save(fit, FILE, ids=S))"
        )
    _phase(args, f"loading {args.path}")
    S = _aligned_triples(_read_triples(args), ids)
    if S.nnz == 0:
        raise ValueError(
            f"{args.path}: none of its ratings is of an item the fit in {args.fit} knows"
        )
    _phase(args, f"loading the pairs {args.pairs}")
    users, items = load_id_pairs(args.pairs)
    try:
        rows, cols = S.index(users, items)
    except ValueError as err:
        raise ValueError(f"{args.pairs}: {err}") from None
    found, rated = as_data(S).lookup(rows, cols)
    mean, sd = rated.copy(), np.zeros(rows.size)
    lower, upper = rated.copy(), rated.copy()
    todo = np.flatnonzero(~found)
    _phase(args, f"predicting {todo.size} pairs ({int(found.sum())} already rated)")
    if todo.size:
        table = predictive_summary(
            result,
            S,
            args.hdi_prob,
            entries=(rows[todo], cols[todo]),
            positions=True,
            seed=args.seed,
        )
        mean[todo], sd[todo] = table.mean, table.sd
        lower[todo], upper[todo] = table.lower, table.upper
    with open(args.output, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(PREDICTION_COLUMNS)
        for row in zip(S.row_ids[rows], S.col_ids[cols], mean, sd, lower, upper, strict=True):
            writer.writerow([row[0], row[1], *(f"{v:.6g}" for v in row[2:])])
    print(f"predictions of {rows.size} pairs written to {args.output}")
    return 0


def _aligned_triples(S: SparseRatings, ids: IdMaps) -> SparseRatings:
    """The ratings of ``S`` on the fit's columns: its items matched to the fit's item ids (the
    ratings of items the fit does not know are left out, with a note)."""
    aligned = S.with_items(ids.col_ids, unknown="drop")
    if aligned.nnz < S.nnz:
        print(f"note: {S.nnz - aligned.nnz} rating(s) of items the fit does not know are left out")
    return aligned


# --------------------------------------------------------------------------- the fit path


def make_problem(data: Any, args: argparse.Namespace, truth: np.ndarray | None = None) -> Problem:
    """The layout of ``data``, with ``args.holdout`` of its observed entries hidden from the fit.

    Args:
        data: A dense array (``NaN`` = missing) or a :class:`~jaxmix.SparseRatings`.
        args: The options (``holdout``, ``seed``).
        truth: Every entry's true value, where known (the demo's simulation; dense).
    """
    layout = as_data(data, method=None)
    if args.holdout == 0:
        problem = Problem(layout=layout, train=as_data(data))
    else:
        train, test = holdout_split(layout, args.holdout, seed=args.seed)
        rows, cols = (test.rows, test.cols) if isinstance(test, SparseRatings) else np.nonzero(test)
        problem = Problem(layout=layout, train=as_data(train), n_test=int(np.size(rows)))
        problem.scored["held-out"] = Entries(rows, cols, layout.lookup(rows, cols)[1])
    if truth is not None:
        missing = np.nonzero(np.isnan(layout.to_dense()))
        if missing[0].size:
            problem.scored["missing vs truth"] = Entries(*missing, np.asarray(truth)[missing])
    return problem


def check_model_options(args: argparse.Namespace) -> None:
    """Refuse contradictory model options before any work (``-K``, ``--covariance``, ``--rank``,
    ``--select``, ``--ranks``, ``--init``, ``--tol``, ``--split-merge``).

    Raises:
        ValueError: ``--rank``/``--ranks`` with a family other than ``factor``, ``--ranks`` or
            several ``-K`` without ``--select``, repeated candidates, ``--init``/``--tol``/
            ``--select`` (which fits as :func:`jaxmix.select_k` does), or ``--split-merge``
            with no ``K >= 3``.
    """
    ks = _ks(args)
    select = bool(getattr(args, "select", False))
    ranks = getattr(args, "ranks", None)
    factor = args.covariance == FACTOR.name
    for option, given in (("--rank", args.rank is not None), ("--ranks", ranks is not None)):
        if given and not factor:
            raise ValueError(
                f"{option} (the number of factors) applies to --covariance factor only; got "
                f"--covariance {args.covariance}"
            )
    if ranks is not None:
        if not select:
            raise ValueError("--ranks needs --select; to fit one rank use --rank Q")
        if args.rank is not None:
            raise ValueError("give --rank Q or --ranks Q [Q ...], not both")
        if len(set(ranks)) != len(ranks):
            raise ValueError(f"--ranks must be distinct; got {' '.join(map(str, ranks))}")
    if getattr(args, "split_merge", 0) and max(ks) < 3:
        raise ValueError(f"--split-merge needs K >= 3 components; got -K {' '.join(map(str, ks))}")
    if not select:
        if len(ks) > 1:
            raise ValueError(
                f"-K {' '.join(map(str, ks))}: several K need --select, which chooses among "
                "them; give one K to fit it"
            )
        return
    if len(set(ks)) != len(ks):
        raise ValueError(f"-K must be distinct with --select; got {' '.join(map(str, ks))}")
    if args.init != DEFAULT_INIT or args.tol != DEFAULT_TOL:
        raise ValueError(
            f"--select fits every candidate as jaxmix.select_k does ({DEFAULT_INIT} init, tol "
            f"{DEFAULT_TOL:g}); drop --init and --tol"
        )


def _ks(args: argparse.Namespace) -> list[int]:
    """``-K`` as a list (``fit`` takes several, ``demo`` one)."""
    return list(args.K) if isinstance(args.K, (list, tuple)) else [args.K]


def _ranks(args: argparse.Namespace) -> list[int] | None:
    """The ranks ``--select`` tries: ``--ranks``, else ``--rank``, else select_k's default."""
    ranks = getattr(args, "ranks", None)
    if ranks is not None:
        return list(ranks)
    return None if args.rank is None else [args.rank]


def fit_and_score(problem: Problem, args: argparse.Namespace) -> Outcome:
    """Fit EM to ``problem.train`` (with ``--select``: choose ``K`` and the rank on held-out
    training entries, :func:`jaxmix.select_k`); score it and the baselines on the scored
    entries."""
    how = " (sparse EM)" if problem.train.kind == TriplesLayout.kind else ""
    selection = None
    scaling, train, log_jacobian = None, problem.train, 0.0
    if getattr(args, "standardize", False):
        scaling = ColumnScaling.fit(problem.train)
        train = scaling.apply(problem.train)
        log_jacobian = scaling.log_jacobian(problem.train)
        how += ", standardised columns"
    start = time.perf_counter()
    if getattr(args, "select", False):
        selection = _select(train, args, how)
        result = selection.best
    else:
        K = _ks(args)[0]
        _phase(args, f"fitting K={K} with {args.restarts} restarts{how}")
        result = fit_em(
            train,
            K,
            n_init=args.restarts,
            seed=args.seed,
            init=args.init,
            tol=args.tol,
            max_iter=args.max_iter,
            min_var=args.min_var,
            covariance=args.covariance,
            rank=args.rank,
            prior=PRIORS[args.prior],
            progress=not args.quiet,
            split_merge=getattr(args, "split_merge", 0),
        )
    fit_seconds = time.perf_counter() - start
    K = int(result.params.n_components)
    scores: dict[str, dict[str, float]] = {}
    if problem.scored:
        _phase(args, "completing")
        if scaling is None:
            mixture: Callable[..., np.ndarray] = functools.partial(complete, train, result)
        else:

            def mixture(rows: Any, cols: Any) -> np.ndarray:
                return scaling.restore(cols, complete(train, result, rows=rows, cols=cols))

        fills: dict[str, Callable[..., np.ndarray]] = {f"mixture K={K}": mixture}
        for by, label in BASELINES.items():
            fills[label] = functools.partial(mean_baseline, problem.train, by)
        scores = {
            name: {
                method: rmse(at.values, fill(rows=at.rows, cols=at.cols))
                for method, fill in fills.items()
            }
            for name, at in problem.scored.items()
        }
    return Outcome(result, fit_seconds, scores, selection, scaling, train, log_jacobian)


def _select(train: Any, args: argparse.Namespace, how: str) -> Any:
    """``--select``: :func:`jaxmix.select_k` (``criterion="heldout"``) on the training entries.

    A further share of the training entries (``--holdout``, or 0.1 with ``--holdout 0``) is held
    out to score the candidates, so the report's held-out RMSE stays out of the choice. The fits
    are maximum likelihood (MAP with ``--prior default``) with the variance floor, like a plain
    ``fit``.
    """
    ks, ranks = _ks(args), _ranks(args)
    fraction = args.holdout or 0.1
    grid = f"K in {{{', '.join(map(str, ks))}}}"
    if args.covariance == FACTOR.name:
        grid += f", rank in {{{', '.join(map(str, ranks or [FACTOR.rank]))}}}"
    _phase(
        args,
        f"selecting {grid} on {fraction:.0%} of the training entries held out, "
        f"{args.restarts} restarts each{how}",
    )
    return select_k(
        train,
        ks,
        criterion="heldout",
        covariance=args.covariance,
        ranks=ranks,
        prior=PRIORS[args.prior],
        n_init=args.restarts,
        min_var=args.min_var,
        max_iter=args.max_iter,
        seed=args.seed,
        fraction=fraction,
        split_merge=getattr(args, "split_merge", 0),
    )


def _print_report(
    problem: Problem, outcome: Outcome, args: argparse.Namespace, source: str
) -> None:
    result = outcome.reported
    family = family_of(result.params)
    model = model_description(
        outcome.K,
        family.name,
        args.restarts,
        args.init,
        float_dtype().name,
        rank=getattr(family, "rank", None),
        row_offset=getattr(family, "row_offset", None),
        prior=PRIORS[args.prior] is not None,
        standardized=outcome.scaling is not None,
    )
    # scores of the data the fit saw, plus the Jacobian of the standardisation (if any)
    criteria = [
        score(outcome.fit_data, outcome.result) + outcome.log_jacobian for score in (bic, aic)
    ]
    text = fit_report(
        problem.layout,
        result,
        source=source,
        model=model,
        n_test=problem.n_test,
        holdout=args.holdout,
        bic=criteria[0],
        aic=criteria[1],
        seconds=outcome.fit_seconds,
        scores=outcome.scores,
        selection=outcome.selection,
        suggestions=suggestions(args),
    )
    print(text, flush=True)


def suggestions(args: argparse.Namespace) -> list[str]:
    """What to try when the mixture loses to a baseline, given the options of this run."""
    out = []
    if args.covariance != FACTOR.name:
        out.append(
            "--covariance factor --rank 2: low-rank plus diagonal components, which follow "
            "each user's own level and tastes (a per-row offset)"
        )
    if not getattr(args, "select", False) and getattr(args, "command", "") == "fit":
        k = _ks(args)[0]
        grid = " ".join(str(v) for v in sorted({max(1, k // 2), k, 2 * k, 4 * k}))
        out.append(f"--select -K {grid}: choose K on held-out training entries")
    if PRIORS[args.prior] is None:
        out.append(
            "--prior default: MAP-EM, which keeps the means of items with few ratings near "
            "the item mean"
        )
    if args.min_var is not None and args.min_var > 0:
        out.append(f"a lower --min-var than {args.min_var:g} if the data are not on a 1-5 scale")
    return out


def _write_outputs(
    X: Any, result: Any, args: argparse.Namespace, scaling: ColumnScaling | None = None
) -> None:
    """Complete ``X`` (a dense matrix or its layout) and write ``--output`` and
    ``--output-std`` (with ``scaling``, the fit is of the standardised columns and the outputs
    are mapped back to the data's units; the observed entries are copied as they are)."""
    if scaling is None:
        completed, std = complete(X, result, return_std=True)
    else:
        layout = as_data(X, method=None)
        z, z_std = complete(scaling.apply(layout), result, return_std=True)
        cols = np.arange(z.shape[1])[None, :]
        completed, std = scaling.restore(cols, z, z_std)
        observed = layout.observed
        completed = np.where(observed, layout.to_dense(), completed)
        std = np.where(observed, 0.0, std)
    if args.output:
        save_ratings(args.output, completed)
        print(f"completed matrix written to {args.output}")
    if args.output_std:
        save_ratings(args.output_std, std)
        print(f"predictive standard deviations written to {args.output_std}")


def _save_plot_if_asked(args: argparse.Namespace, outcome: Outcome, title: str) -> None:
    if args.plot:
        if outcome.scaling is not None:
            title += " (standardised columns)"
        save_plot(args.plot, outcome.reported, outcome.scores, title)
        print(f"picture saved to {args.plot}")


# --------------------------------------------------------------------------- checks


def _phase(args: argparse.Namespace, message: str) -> None:
    if not args.quiet:
        print(f"{message} ...", flush=True)


def _check_layout_outputs(kind: str, outputs: dict[str, str | None]) -> None:
    """Refuse the outputs a layout of this kind cannot write (the dense matrix's)."""
    if kind != DenseLayout.kind and any(outputs.get(option) for option in DENSE_OUTPUTS):
        raise ValueError(
            "--output, --output-std and --plot need the dense matrix; with --format triples, "
            "--save-fit then 'jaxmix complete --format triples --pairs' predicts chosen pairs"
        )


def _check_outputs(paths: dict[str, str | None], source: str | None = None) -> None:
    """Fail before any work if an output cannot be written where asked.

    Args:
        paths: Output file per option name (``None`` = not asked for); ``"--plot"`` is also
            checked for a picture format matplotlib knows.
        source: The input file, which no output may overwrite.

    Raises:
        ValueError: A folder is missing, a path is a folder or the input, or the format unknown.
    """
    for option, path in paths.items():
        if not path:
            continue
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder):
            raise ValueError(f"{option} {path}: the folder {folder} does not exist")
        if os.path.isdir(path):
            raise ValueError(f"{option} {path} is a folder; give a file name")
        if source is not None and os.path.exists(path) and os.path.exists(source):
            if os.path.samefile(path, source):
                raise ValueError(f"{option} {path} would overwrite the input file")
    if paths.get("--plot"):
        check_picture_path(paths["--plot"])

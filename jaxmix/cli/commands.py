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
"""

from __future__ import annotations

import argparse
import functools
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from jaxmix.cli.plot import check_picture_path, save_plot
from jaxmix.cli.report import fit_report, model_description
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
from jaxmix.evaluation import aic, bic, holdout_split, mean_baseline, rmse, select_k
from jaxmix.inference.em import fit_em
from jaxmix.inference.init import INIT_METHODS
from jaxmix.models.families import FACTOR, family_of
from jaxmix.params import MixtureParams
from jaxmix.persistence import load, save
from jaxmix.posterior import complete
from jaxmix.simulate import simulate_ratings

__all__ = [
    "BASELINES",
    "DEFAULT_INIT",
    "DEFAULT_TOL",
    "DEMO_PLOT",
    "DENSE_OUTPUTS",
    "FORMATS",
    "INIT_CHOICES",
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
    return load_ratings(args.path, missing=args.missing_value)


def _read_triples(args: argparse.Namespace) -> SparseRatings:
    return load_sparse_ratings(args.path)


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
    """

    result: Any
    fit_seconds: float
    scores: dict[str, dict[str, float]]
    selection: Any = None

    @property
    def K(self) -> int:
        """Components of the fit."""
        return int(self.result.params.n_components)


# --------------------------------------------------------------------------- commands


def run_demo(args: argparse.Namespace) -> int:
    """``jaxmix demo``: simulate, fit, score, report and plot."""
    check_model_options(args)
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
        save(outcome.result, args.save_fit)
        print(f"fit saved to {args.save_fit}")
    if args.output or args.output_std:
        held_out = problem.n_test is not None
        _phase(args, "completing from every observed entry" if held_out else "completing")
        _write_outputs(problem.layout, outcome.result, args)
    title = f"jaxmix fit {os.path.basename(args.path)}, K={outcome.K}"
    _save_plot_if_asked(args, outcome, title)
    return 0


def run_complete(args: argparse.Namespace) -> int:
    """``jaxmix complete PATH --fit FILE``: load a saved fit and a matrix, write its completion."""
    if not (args.output or args.output_std):
        raise ValueError("nothing to write: give --output FILE and/or --output-std FILE")
    outputs = {"--output": args.output, "--output-std": args.output_std}
    _check_outputs(outputs, source=args.path)
    _check_outputs(outputs, source=args.fit)
    _phase(args, f"loading the fit {args.fit}")
    result = load(args.fit)
    params = result if isinstance(result, MixtureParams) else getattr(result, "params", None)
    if not isinstance(params, MixtureParams) or np.ndim(params.mu) != 2:
        raise ValueError(f"{args.fit} holds a {type(result).__name__}, not a fitted mixture")
    _phase(args, f"loading {args.path}")
    X = load_ratings(args.path, missing=args.missing_value)
    K, d = np.shape(params.mu)
    if X.shape[1] != d:
        raise ValueError(
            f"{args.path} has {X.shape[1]} columns but the fit in {args.fit} has {d}: give the "
            "matrix the model was fit to (same columns, same order)"
        )
    _phase(args, f"completing {X.shape[0]} rows with K={K} components")
    _write_outputs(X, result, args)
    return 0


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
    ``--select``, ``--ranks``, ``--init``, ``--tol``).

    Raises:
        ValueError: ``--rank``/``--ranks`` with a family other than ``factor``, ``--ranks`` or
            several ``-K`` without ``--select``, repeated candidates, or ``--init``/``--tol``
            with ``--select`` (which fits as :func:`jaxmix.select_k` does).
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
    start = time.perf_counter()
    if getattr(args, "select", False):
        selection = _select(problem, args, how)
        result = selection.best
    else:
        K = _ks(args)[0]
        _phase(args, f"fitting K={K} with {args.restarts} restarts{how}")
        result = fit_em(
            problem.train,
            K,
            n_init=args.restarts,
            seed=args.seed,
            init=args.init,
            tol=args.tol,
            max_iter=args.max_iter,
            min_var=args.min_var,
            covariance=args.covariance,
            rank=args.rank,
            progress=not args.quiet,
        )
    fit_seconds = time.perf_counter() - start
    K = int(result.params.n_components)
    scores: dict[str, dict[str, float]] = {}
    if problem.scored:
        _phase(args, "completing")
        fills: dict[str, Callable[..., np.ndarray]] = {
            f"mixture K={K}": functools.partial(complete, problem.train, result)
        }
        for by, label in BASELINES.items():
            fills[label] = functools.partial(mean_baseline, problem.train, by)
        scores = {
            name: {
                method: rmse(at.values, fill(rows=at.rows, cols=at.cols))
                for method, fill in fills.items()
            }
            for name, at in problem.scored.items()
        }
    return Outcome(result, fit_seconds, scores, selection)


def _select(problem: Problem, args: argparse.Namespace, how: str) -> Any:
    """``--select``: :func:`jaxmix.select_k` (``criterion="heldout"``) on the training entries.

    A further share of the training entries (``--holdout``, or 0.1 with ``--holdout 0``) is held
    out to score the candidates, so the report's held-out RMSE stays out of the choice. The fits
    are maximum likelihood (no prior) with the variance floor, like a plain ``fit``.
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
        problem.train,
        ks,
        criterion="heldout",
        covariance=args.covariance,
        ranks=ranks,
        prior=None,
        n_init=args.restarts,
        min_var=args.min_var,
        max_iter=args.max_iter,
        seed=args.seed,
        fraction=fraction,
    )


def _print_report(
    problem: Problem, outcome: Outcome, args: argparse.Namespace, source: str
) -> None:
    result = outcome.result
    family = family_of(result.params)
    model = model_description(
        outcome.K,
        family.name,
        args.restarts,
        args.init,
        float_dtype().name,
        rank=getattr(family, "rank", None),
        row_offset=getattr(family, "row_offset", None),
    )
    text = fit_report(
        problem.layout,
        result,
        source=source,
        model=model,
        n_test=problem.n_test,
        holdout=args.holdout,
        bic=bic(problem.train, result),
        aic=aic(problem.train, result),
        seconds=outcome.fit_seconds,
        scores=outcome.scores,
        selection=outcome.selection,
    )
    print(text, flush=True)


def _write_outputs(X: Any, result: Any, args: argparse.Namespace) -> None:
    """Complete ``X`` (a dense matrix or its layout) and write ``--output`` and
    ``--output-std``."""
    completed, std = complete(X, result, return_std=True)
    if args.output:
        save_ratings(args.output, completed)
        print(f"completed matrix written to {args.output}")
    if args.output_std:
        save_ratings(args.output_std, std)
        print(f"predictive standard deviations written to {args.output_std}")


def _save_plot_if_asked(args: argparse.Namespace, outcome: Outcome, title: str) -> None:
    if args.plot:
        save_plot(args.plot, outcome.result, outcome.scores, title)
        print(f"picture saved to {args.plot}")


# --------------------------------------------------------------------------- checks


def _phase(args: argparse.Namespace, message: str) -> None:
    if not args.quiet:
        print(f"{message} ...", flush=True)


def _check_layout_outputs(kind: str, outputs: dict[str, str | None]) -> None:
    """Refuse the outputs a layout of this kind cannot write (the dense matrix's)."""
    if kind != DenseLayout.kind and any(outputs.get(option) for option in DENSE_OUTPUTS):
        raise ValueError(
            "--output, --output-std and --plot need the dense matrix; with --format triples use "
            "--save-fit and jaxmix.complete(S, fit, rows=..., cols=...) for chosen entries"
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

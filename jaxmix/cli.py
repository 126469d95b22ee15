"""The ``jaxmix`` command line: fit a mixture to a ratings file, or run a self-contained demo.

Three commands::

    jaxmix demo [--users N] [--items D] [-K K] [--restarts R] [--missing P] ...
    jaxmix fit PATH -K K [--restarts R] [--holdout F] [--output FILE] [--output-std FILE]
        [--save-fit FILE] [--format matrix|triples] ...
    jaxmix complete PATH --fit FILE --output FILE [--output-std FILE] [--missing-value V]

``demo`` and ``fit`` hide a random share of the observed entries (``--holdout``), fit the mixture
by EM with restarts, fill the missing entries and print a short report: the log-likelihood of
every restart, BIC and AIC, the held-out RMSE next to the global, user and item mean baselines and
the fit time. ``demo`` draws its matrix from a planted mixture (:func:`jaxmix.simulate_ratings`);
``fit`` reads the course's text format (:func:`jaxmix.load_ratings`, ``0`` = missing), can write
the completed matrix and its predictive standard deviations, and can save the fitted model
(:func:`jaxmix.save`); with ``--format triples`` it reads (user, item, rating) lines instead
(:func:`jaxmix.load_sparse_ratings`: MovieLens ``ratings.csv``, ``u.data``, ``ratings.dat``), fits
by sparse EM and scores the held-out ratings (no dense output). ``complete`` fills in a ratings
file from a saved model without fitting again; for the matrix the model was fit to it writes
exactly what ``fit --output`` wrote.

Mistakes in the input (a missing or malformed file, an impossible ``K``, a bad option) end with a
one-line ``jaxmix: error: ...`` on stderr and exit status 2. ``--x64`` switches JAX to float64 for
the duration of the command; the library never does so by itself.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NoReturn

import numpy as np

import jaxmix
from jaxmix.types import EMResult

__all__ = ["build_parser", "main"]

PROG = "jaxmix"
DEMO_PLOT = "jaxmix_demo.png"
INIT_CHOICES = ("kmeans++", "random_rows")
BASELINES = ("user", "item", "global")
#: Exceptions that signal a mistake in the user's input rather than a bug: answered in one line.
USER_ERRORS = (ValueError, TypeError, OSError, FloatingPointError)


# --------------------------------------------------------------------------- option types


def _positive_int(text: str) -> int:
    value = _parse(int, text, "an integer")
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1; got {value}")
    return value


def _nonneg_int(text: str) -> int:
    value = _parse(int, text, "an integer")
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be non-negative; got {value}")
    return value


def _nonneg_float(text: str) -> float:
    value = _parse(float, text, "a number")
    if not (np.isfinite(value) and value >= 0.0):
        raise argparse.ArgumentTypeError(f"must be a finite non-negative number; got {text}")
    return value


def _fraction(text: str) -> float:
    value = _parse(float, text, "a number")
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must lie in [0, 1); got {text}")
    return value


def _missing_value(text: str) -> float | None:
    if text.strip().lower() == "none":
        return None
    return _parse(float, text, "a number or 'none'")


def _parse(kind: Callable[[str], Any], text: str, what: str) -> Any:
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}; got {text!r}") from None


# --------------------------------------------------------------------------- parser


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line, like every other user error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{PROG}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``jaxmix`` command (``demo``, ``fit`` and ``complete``)."""
    parser = _Parser(
        prog=PROG,
        description="Gaussian mixture models for partially observed matrices (JAX).",
        epilog="Run 'jaxmix COMMAND --help' for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {jaxmix.__version__}")
    commands = parser.add_subparsers(title="commands", dest="command", required=True)
    common = _common_options()

    demo = commands.add_parser(
        "demo",
        parents=[common],
        help="fit a simulated ratings matrix and report how well it is completed",
        description="Simulate a ratings matrix (1..5 stars) from a planted mixture, hold out some "
        "observed entries, fit by EM with restarts and compare the completion with mean baselines.",
    )
    demo.add_argument("--users", type=_positive_int, default=1000, help="rows (default: 1000)")
    demo.add_argument("--items", type=_positive_int, default=300, help="columns (default: 300)")
    demo.add_argument(
        "-K",
        "--components",
        dest="K",
        type=int,
        default=6,
        help="components, planted and fitted (default: 6)",
    )
    demo.add_argument(
        "--missing",
        type=_fraction,
        default=0.7,
        metavar="SHARE",
        help="expected share of missing ratings (default: 0.7)",
    )
    _plot_options(demo, default=DEMO_PLOT)
    demo.set_defaults(handler=run_demo)

    fit = commands.add_parser(
        "fit",
        parents=[common],
        help="fit a ratings file and optionally write the completed matrix",
        description="Fit a mixture to a whitespace-separated ratings file (one row per line, "
        "0 = missing) and fill in its missing entries. With --holdout > 0 the model is fit "
        "without the held-out entries; the matrix written by --output is still completed from "
        "every observed entry (use --holdout 0 to fit on all of them).",
    )
    fit.add_argument("path", metavar="PATH", help="ratings file")
    fit.add_argument(
        "-K", "--components", dest="K", type=int, required=True, help="number of components"
    )
    fit.add_argument(
        "--format",
        choices=("matrix", "triples"),
        default="matrix",
        help="matrix: one row per line, 0 = missing (default); triples: one 'user item rating' "
        "per line (MovieLens ratings.csv, u.data, ratings.dat), fit by sparse EM",
    )
    _completion_options(fit)
    fit.add_argument(
        "--save-fit",
        metavar="FILE",
        help="save the fitted model here (a .npz file, see jaxmix.save), to fill in a matrix "
        "later with 'jaxmix complete --fit FILE'",
    )
    _plot_options(fit, default=None)
    fit.set_defaults(handler=run_fit)

    complete = commands.add_parser(
        "complete",
        help="fill in a ratings file from a model saved by 'jaxmix fit --save-fit'",
        description="Fill in the missing entries of a ratings file (one row per line, 0 = missing) "
        "with a model saved by 'jaxmix fit --save-fit', without fitting again. The file must have "
        "the columns the model was fit to, in the same order; its rows may be new.",
    )
    complete.add_argument("path", metavar="PATH", help="ratings file")
    complete.add_argument(
        "--fit",
        metavar="FILE",
        required=True,
        help="the saved model (from 'jaxmix fit --save-fit')",
    )
    _completion_options(complete)
    complete.add_argument(
        "--x64", action="store_true", help="compute in float64 (default: JAX's float32)"
    )
    complete.add_argument("-q", "--quiet", action="store_true", help="no phase messages")
    complete.set_defaults(handler=run_complete)
    return parser


def _completion_options(parser: argparse.ArgumentParser) -> None:
    """``--missing-value``, ``--output`` and ``--output-std`` (``fit`` and ``complete``)."""
    parser.add_argument(
        "--missing-value",
        type=_missing_value,
        default=0.0,
        metavar="VALUE",
        help="value that marks a missing entry in PATH, or 'none' (default: 0)",
    )
    parser.add_argument("--output", metavar="FILE", help="write the completed matrix here")
    parser.add_argument(
        "--output-std",
        metavar="FILE",
        help="write the predictive standard deviation of every entry here (0 where observed)",
    )


def _common_options() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    group = common.add_argument_group("fitting")
    group.add_argument(
        "--restarts",
        type=_positive_int,
        default=5,
        metavar="R",
        help="EM restarts, run as one batch; the best log-likelihood wins (default: 5)",
    )
    group.add_argument(
        "--init",
        choices=INIT_CHOICES,
        default="kmeans++",
        help="initialisation (default: kmeans++; random_rows is the course's)",
    )
    group.add_argument(
        "--holdout",
        type=_fraction,
        default=0.1,
        metavar="SHARE",
        help="share of the observed entries hidden from the fit to measure RMSE; 0 skips it "
        "(default: 0.1)",
    )
    group.add_argument(
        "--seed", type=_nonneg_int, default=0, help="seed of everything random (default: 0)"
    )
    group.add_argument(
        "--tol",
        type=_nonneg_float,
        default=1e-6,
        help="relative log-likelihood tolerance (default: 1e-6)",
    )
    group.add_argument(
        "--max-iter",
        type=_positive_int,
        default=1000,
        help="iteration cap per restart (default: 1000)",
    )
    group.add_argument(
        "--min-var", type=_nonneg_float, default=0.25, help="variance floor (default: 0.25)"
    )
    group.add_argument(
        "--x64", action="store_true", help="compute in float64 (default: JAX's float32)"
    )
    group.add_argument(
        "-q", "--quiet", action="store_true", help="no progress bar or phase messages"
    )
    return common


def _plot_options(parser: argparse.ArgumentParser, default: str | None) -> None:
    group = parser.add_argument_group("picture")
    shown = f"default: {default}" if default else "default: none"
    group.add_argument(
        "--plot",
        metavar="FILE",
        default=default,
        help=f"save a picture of the fit (log-likelihood, RMSE, component means) ({shown})",
    )
    group.add_argument(
        "--no-plot", dest="plot", action="store_const", const=None, help="do not save a picture"
    )


# --------------------------------------------------------------------------- entry point


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``jaxmix`` command.

    Args:
        argv: The arguments after the program name; default ``sys.argv[1:]``.

    Returns:
        The exit status: 0 on success, 2 on a usage or input error (reported in one line on
        stderr), 130 when interrupted.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version and usage errors
        return exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    try:
        with _float64(args.x64):
            return args.handler(args)
    except USER_ERRORS as err:
        print(f"{PROG}: error: {_one_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


@contextmanager
def _float64(enabled: bool) -> Iterator[None]:
    """Enable ``jax_enable_x64`` for the block when asked, restoring the previous setting after."""
    if not enabled:
        yield
        return
    import jax

    before = bool(jax.config.read("jax_enable_x64"))
    jax.config.update("jax_enable_x64", True)
    try:
        yield
    finally:
        jax.config.update("jax_enable_x64", before)


def _one_line(err: BaseException) -> str:
    """A single-line description of an exception (file errors name the file)."""
    if isinstance(err, OSError) and err.strerror and err.filename is not None:
        text = f"{err.strerror}: {os.fspath(err.filename)}"
    else:
        text = str(err) or type(err).__name__
    return " ".join(text.split())


# --------------------------------------------------------------------------- commands


@dataclass
class Problem:
    """A matrix to fit, with what the fit is scored against.

    Attributes:
        X: Every observed entry, ``NaN`` where missing.
        X_fit: The matrix EM sees: ``X`` with the held-out entries hidden.
        test_mask: The held-out entries, or ``None`` without a hold-out.
        truth: Every entry's true value where known (the demo's simulation), else ``None``.
    """

    X: np.ndarray
    X_fit: np.ndarray
    test_mask: np.ndarray | None
    truth: np.ndarray | None = None


@dataclass
class Outcome:
    """A fitted problem.

    Attributes:
        result: The EM result.
        fit_seconds: Wall time of :func:`jaxmix.fit_em` (including JIT compilation).
        completed: ``X_fit`` with its missing entries filled.
        scores: RMSE per method (``"mixture K=.."`` and the mean baselines), per scored set.
    """

    result: EMResult
    fit_seconds: float
    completed: np.ndarray
    scores: dict[str, dict[str, float]]


def run_demo(args: argparse.Namespace) -> int:
    """``jaxmix demo``: simulate, fit, complete, report and plot."""
    _check_outputs({"--plot": args.plot})
    _phase(args, f"simulating {args.users} users x {args.items} items from K={args.K} components")
    sim = jaxmix.simulate_ratings(
        args.users, args.items, args.K, missing=args.missing, seed=args.seed
    )
    problem = _make_problem(sim.X, args, truth=sim.X_full)
    outcome = _fit_and_score(problem, args)
    source = f"simulated from K={args.K} planted components (seed {args.seed})"
    _print_report(problem, outcome, args, source)
    _save_plot_if_asked(args, outcome, f"jaxmix demo: {args.users} x {args.items}, K={args.K}")
    return 0


def run_fit(args: argparse.Namespace) -> int:
    """``jaxmix fit PATH``: load, fit, complete, report, save the fit, write the outputs, plot."""
    outputs = {
        "--output": args.output,
        "--output-std": args.output_std,
        "--save-fit": args.save_fit,
        "--plot": args.plot,
    }
    _check_outputs(outputs, source=args.path)
    if args.format == "triples":
        return _run_fit_triples(args)
    _phase(args, f"loading {args.path}")
    X = jaxmix.load_ratings(args.path, missing=args.missing_value)
    problem = _make_problem(X, args)
    outcome = _fit_and_score(problem, args)
    _print_report(problem, outcome, args, f"read from {args.path}")
    if args.save_fit:
        jaxmix.save(outcome.result, args.save_fit)
        print(f"fit saved to {args.save_fit}")
    if args.output or args.output_std:
        _write_completion(problem, outcome, args)
    _save_plot_if_asked(args, outcome, f"jaxmix fit {os.path.basename(args.path)}, K={args.K}")
    return 0


def _run_fit_triples(args: argparse.Namespace) -> int:
    """``jaxmix fit PATH --format triples``: sparse EM on a file of (user, item, rating) lines.

    The completed matrix is not written (it is users x items, too large for a ratings file of
    this kind); the report scores the held-out ratings against the mean baselines.
    """
    if args.output or args.output_std or args.plot:
        raise ValueError(
            "--output, --output-std and --plot need the dense matrix; with --format triples use "
            "--save-fit and jaxmix.complete(S, fit, rows=..., cols=...) for chosen entries"
        )
    _phase(args, f"loading {args.path}")
    S = jaxmix.load_sparse_ratings(args.path)
    train, test = S, None
    if args.holdout > 0:
        train, test = jaxmix.holdout_split(S, args.holdout, seed=args.seed)
    _phase(args, f"fitting K={args.K} with {args.restarts} restarts (sparse EM)")
    start = time.perf_counter()
    result = jaxmix.fit_em(
        train,
        args.K,
        n_init=args.restarts,
        seed=args.seed,
        init=args.init,
        tol=args.tol,
        max_iter=args.max_iter,
        min_var=args.min_var,
        progress=not args.quiet,
    )
    seconds = time.perf_counter() - start
    n, d = S.shape
    rows = [
        ("data", f"{n:,} users x {d:,} items, {S.nnz:,} ratings ({S.density:.2%} observed)"),
        ("source", f"read from {args.path}"),
    ]
    if test is not None:
        rows.append(("held out", f"{test.nnz:,} of {S.nnz:,} ratings ({args.holdout:.0%})"))
    dtype = np.dtype(_jax_float()).name
    rows.append(("model", f"K={args.K}, {args.restarts} restarts, {args.init} init, {dtype}"))
    status = "converged" if result.converged else "not converged (raise --max-iter?)"
    lines = ["", *_key_values(rows), "", *_restart_lines(result), ""]
    lines += _key_values(
        [
            ("log-likelihood", f"{result.log_likelihood:,.2f}  (restart {result.best_restart})"),
            ("BIC", f"{jaxmix.bic(train, result):,.2f}  (higher is better)"),
            ("AIC", f"{jaxmix.aic(train, result):,.2f}  (higher is better)"),
            ("iterations", f"{result.n_iter}, {status}"),
            ("fit time", f"{seconds:.2f} s  (includes JIT compilation)"),
        ]
    )
    if test is not None:
        at = {"rows": test.rows, "cols": test.cols}
        scores = {f"mixture K={args.K}": jaxmix.rmse(test, jaxmix.complete(train, result, **at))}
        for by in BASELINES:
            scores[f"{by} mean"] = jaxmix.rmse(test, jaxmix.mean_baseline(train, by, **at))
        lines += ["", *_score_lines({"held-out": scores})]
    print("\n".join(lines), flush=True)
    if args.save_fit:
        jaxmix.save(result, args.save_fit)
        print(f"fit saved to {args.save_fit}")
    return 0


def run_complete(args: argparse.Namespace) -> int:
    """``jaxmix complete PATH --fit FILE``: load a saved fit and a matrix, write its completion."""
    if not (args.output or args.output_std):
        raise ValueError("nothing to write: give --output FILE and/or --output-std FILE")
    outputs = {"--output": args.output, "--output-std": args.output_std}
    _check_outputs(outputs, source=args.path)
    _check_outputs(outputs, source=args.fit)
    _phase(args, f"loading the fit {args.fit}")
    result = jaxmix.load(args.fit)
    params = result if isinstance(result, jaxmix.MixtureParams) else getattr(result, "params", None)
    if not isinstance(params, jaxmix.MixtureParams) or np.ndim(params.mu) != 2:
        raise ValueError(f"{args.fit} holds a {type(result).__name__}, not a fitted mixture")
    _phase(args, f"loading {args.path}")
    X = jaxmix.load_ratings(args.path, missing=args.missing_value)
    K, d = np.shape(params.mu)
    if X.shape[1] != d:
        raise ValueError(
            f"{args.path} has {X.shape[1]} columns but the fit in {args.fit} has {d}: give the "
            "matrix the model was fit to (same columns, same order)"
        )
    _phase(args, f"completing {X.shape[0]} rows with K={K} components")
    _write_outputs(X, result, args)
    return 0


def _phase(args: argparse.Namespace, message: str) -> None:
    if not args.quiet:
        print(f"{message} ...", flush=True)


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
    plot = paths.get("--plot")
    if plot:
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        ext = os.path.splitext(plot)[1].lower().lstrip(".")
        supported = FigureCanvasAgg.get_supported_filetypes()
        if ext and ext not in supported:
            raise ValueError(
                f"--plot {plot}: unknown picture format {ext!r} (use one of "
                f"{', '.join(sorted(supported))})"
            )


def _make_problem(
    X: np.ndarray, args: argparse.Namespace, truth: np.ndarray | None = None
) -> Problem:
    """Hide ``args.holdout`` of the observed entries (none when it is 0)."""
    if args.holdout == 0:
        return Problem(X=X, X_fit=X, test_mask=None, truth=truth)
    X_fit, test_mask = jaxmix.holdout_split(X, args.holdout, seed=args.seed)
    return Problem(X=X, X_fit=X_fit, test_mask=test_mask, truth=truth)


def _fit_and_score(problem: Problem, args: argparse.Namespace) -> Outcome:
    """Fit EM to ``problem.X_fit``, complete it and score it and the baselines."""
    _phase(args, f"fitting K={args.K} with {args.restarts} restarts")
    start = time.perf_counter()
    result = jaxmix.fit_em(
        problem.X_fit,
        args.K,
        n_init=args.restarts,
        seed=args.seed,
        init=args.init,
        tol=args.tol,
        max_iter=args.max_iter,
        min_var=args.min_var,
        progress=not args.quiet,
    )
    fit_seconds = time.perf_counter() - start
    _phase(args, "completing")
    completed = jaxmix.complete(problem.X_fit, result)
    return Outcome(result, fit_seconds, completed, _score(problem, completed, args.K))


def _score(problem: Problem, completed: np.ndarray, K: int) -> dict[str, dict[str, float]]:
    """RMSE of the mixture and the mean baselines on the held-out and (if known) true entries."""
    sets: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    if problem.test_mask is not None:
        sets["held-out"] = (problem.X, problem.test_mask)
    if problem.truth is not None and np.isnan(problem.X).any():
        sets["missing vs truth"] = (problem.truth, np.isnan(problem.X))
    if not sets:
        return {}
    fills = {f"mixture K={K}": completed}
    fills.update({f"{by} mean": jaxmix.mean_baseline(problem.X_fit, by) for by in BASELINES})
    return {
        name: {method: jaxmix.rmse(target, fill, mask=mask) for method, fill in fills.items()}
        for name, (target, mask) in sets.items()
    }


def _write_completion(problem: Problem, outcome: Outcome, args: argparse.Namespace) -> None:
    """Complete every observed entry of ``problem.X`` and write the requested files."""
    if problem.test_mask is not None:
        _phase(args, "completing from every observed entry")
    _write_outputs(problem.X, outcome.result, args)


def _write_outputs(X: np.ndarray, result: Any, args: argparse.Namespace) -> None:
    """Complete ``X`` with a fitted result and write ``--output`` and ``--output-std``."""
    completed, std = jaxmix.complete(X, result, return_std=True)
    if args.output:
        jaxmix.save_ratings(args.output, completed)
        print(f"completed matrix written to {args.output}")
    if args.output_std:
        jaxmix.save_ratings(args.output_std, std)
        print(f"predictive standard deviations written to {args.output_std}")


# --------------------------------------------------------------------------- report


def _print_report(
    problem: Problem, outcome: Outcome, args: argparse.Namespace, source: str
) -> None:
    """Print the summary of a fit to stdout."""
    lines = ["", *_data_lines(problem, args, source), ""]
    lines += _restart_lines(outcome.result)
    lines += ["", *_fit_lines(problem, outcome)]
    if outcome.scores:
        lines += ["", *_score_lines(outcome.scores)]
    print("\n".join(lines), flush=True)


def _data_lines(problem: Problem, args: argparse.Namespace, source: str) -> list[str]:
    n, d = problem.X.shape
    n_missing = int(np.isnan(problem.X).sum())
    rows = [
        ("data", f"{n:,} rows x {d:,} columns, {n_missing:,} missing ({n_missing / (n * d):.1%})"),
        ("source", source),
    ]
    if problem.test_mask is not None:
        n_test, n_obs = int(problem.test_mask.sum()), n * d - n_missing
        rows.append(("held out", f"{n_test:,} of {n_obs:,} observed entries ({args.holdout:.0%})"))
    dtype = np.dtype(_jax_float()).name
    rows.append(("model", f"K={args.K}, {args.restarts} restarts, {args.init} init, {dtype}"))
    return _key_values(rows)


def _jax_float() -> Any:
    import jax

    return jax.dtypes.canonicalize_dtype(np.float64)


def _restart_lines(result: EMResult) -> list[str]:
    header = ("restart", "log-likelihood", "iterations", "converged", "")
    rows = [
        (
            str(r),
            f"{ll:,.2f}",
            str(int(it)),
            "yes" if conv else "no",
            "* best" if r == result.best_restart else "",
        )
        for r, (ll, it, conv) in enumerate(
            zip(
                result.restart_log_likelihoods,
                result.restart_n_iter,
                result.restart_converged,
                strict=True,
            )
        )
    ]
    return _table(header, rows, n_left=0)


def _fit_lines(problem: Problem, outcome: Outcome) -> list[str]:
    result = outcome.result
    status = "converged" if result.converged else "not converged (raise --max-iter?)"
    rows = [
        ("log-likelihood", f"{result.log_likelihood:,.2f}  (restart {result.best_restart})"),
        ("BIC", f"{jaxmix.bic(problem.X_fit, result):,.2f}  (higher is better)"),
        ("AIC", f"{jaxmix.aic(problem.X_fit, result):,.2f}  (higher is better)"),
        ("iterations", f"{result.n_iter}, {status}"),
        ("fit time", f"{outcome.fit_seconds:.2f} s  (includes JIT compilation)"),
    ]
    return _key_values(rows)


def _score_lines(scores: dict[str, dict[str, float]]) -> list[str]:
    names = list(scores)
    methods = list(next(iter(scores.values())))
    header = ("RMSE", *names)
    rows = [(m, *(f"{scores[name][m]:.4f}" for name in names)) for m in methods]
    return _table(header, rows)


def _key_values(rows: Sequence[tuple[str, str]]) -> list[str]:
    width = max(len(key) for key, _ in rows)
    return [f"{key:<{width}}  {value}" for key, value in rows]


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], n_left: int = 1) -> list[str]:
    """Align a table: the first ``n_left`` columns to the left, the others to the right."""
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]

    def fmt(row: Sequence[str]) -> str:
        cells = [
            cell.ljust(width) if i < n_left else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        return "  ".join(cells).rstrip()

    return [fmt(header), *(fmt(row) for row in rows)]


# --------------------------------------------------------------------------- picture


def _save_plot_if_asked(args: argparse.Namespace, outcome: Outcome, title: str) -> None:
    if args.plot:
        save_plot(args.plot, outcome, title)
        print(f"picture saved to {args.plot}")


def save_plot(path: str, outcome: Outcome, title: str) -> None:
    """Save a picture of a fit: the winner's log-likelihood, RMSE bars and component means.

    Uses matplotlib's Agg canvas directly, so no global backend is changed.

    Args:
        path: Output file; the format follows its extension (PNG by default).
        outcome: The fitted problem.
        title: Title of the figure.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    scores = outcome.scores.get("held-out") or next(iter(outcome.scores.values()), None)
    n_panels = 3 if scores else 2
    fig = Figure(figsize=(4.6 * n_panels, 3.8), layout="constrained")
    FigureCanvasAgg(fig)
    axes = list(fig.subplots(1, n_panels))
    fig.suptitle(title)
    _plot_history(axes[0], outcome.result)
    if scores:
        label = "held-out" if "held-out" in outcome.scores else next(iter(outcome.scores))
        _plot_scores(axes[1], scores, label)
    _plot_means(fig, axes[-1], outcome.result)
    fig.savefig(path, dpi=110)


def _plot_history(ax: Any, result: EMResult) -> None:
    history = np.asarray(result.history)
    steps = np.arange(1, history.size + 1)
    ax.plot(steps, history, marker="o" if history.size <= 30 else None, markersize=3)
    ax.set_title(f"log-likelihood, best of {result.restart_log_likelihoods.size} restarts")
    ax.set_xlabel("EM iteration")
    ax.set_ylabel("log-likelihood")
    ax.grid(alpha=0.3)


def _plot_scores(ax: Any, scores: dict[str, float], label: str) -> None:
    names = list(scores)
    values = [scores[n] for n in names]
    colors = ["tab:blue"] + ["tab:gray"] * (len(names) - 1)
    bars = ax.bar(range(len(names)), values, color=colors)
    ax.bar_label(bars, fmt="%.3f", fontsize=8)
    ax.set_xticks(range(len(names)), [n.replace(" ", "\n", 1) for n in names])
    ax.set_title(f"RMSE ({label})")
    ax.set_ylabel("RMSE")
    ax.margins(y=0.15)


def _plot_means(fig: Any, ax: Any, result: EMResult) -> None:
    weights = np.asarray(result.weights)
    rows = np.argsort(-weights)
    cols = np.argsort(weights @ result.mu)
    image = ax.imshow(result.mu[np.ix_(rows, cols)], aspect="auto", interpolation="nearest")
    ax.set_yticks(range(rows.size), [f"{k} ({weights[k]:.2f})" for k in rows])
    ax.set_title("component means")
    ax.set_ylabel("component (weight)")
    ax.set_xlabel("column, by mean")
    fig.colorbar(image, ax=ax)

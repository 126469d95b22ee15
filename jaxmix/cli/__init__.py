"""The ``jaxmix`` command line: fit a mixture to a ratings file, or run a self-contained demo.

Three commands::

    jaxmix demo [--users N] [--items D] [-K K] [--restarts R] [--missing P] [--covariance C]
        [--rank Q] ...
    jaxmix fit PATH -K K [K ...] [--select] [--restarts R] [--holdout F] [--covariance C]
        [--rank Q | --ranks Q [Q ...]] [--prior none|default] [--split-merge N] [--output FILE]
        [--output-std FILE] [--save-fit FILE] [--format matrix|triples] ...
    jaxmix complete PATH --fit FILE --output FILE [--output-std FILE] [--missing-value V]
    jaxmix complete PATH --format triples --fit FILE --pairs PAIRS --output FILE
        [--hdi-prob P] [--seed S]

``demo`` and ``fit`` hide a random share of the observed entries (``--holdout``), fit the mixture
by EM with restarts (``--covariance``: one of :data:`jaxmix.FAMILIES`; ``--rank``: the factor
family's number of factors), fill the missing entries and print a short report: the log-likelihood
of every restart, BIC and AIC, the held-out RMSE next to the user, item and global mean and the
bias (global mean plus user and item offsets) baselines and the fit time. ``fit --select`` chooses
among several ``-K`` (and ``--ranks``) on held-out training entries (:func:`jaxmix.select_k`,
``criterion="heldout"``), prints the table and goes on with the winner. ``demo`` draws its matrix
from a planted mixture (:func:`jaxmix.simulate_ratings`); ``fit`` reads the course's text format
(:func:`jaxmix.load_ratings`, ``0`` = missing) or, with ``--format triples``, (user, item, rating)
lines (:func:`jaxmix.load_sparse_ratings`: MovieLens ``ratings.csv``, ``u.data``, ``ratings.dat``).
Both formats take one path: :func:`jaxmix.as_data` turns what was read into a data layout, and the
layout decides what can be written (the completed matrix, its predictive standard deviations and
the picture need a dense matrix). ``fit`` can save the fitted model (:func:`jaxmix.save`);
``complete`` fills in a ratings file from a saved model without fitting again; for the matrix the
model was fit to it writes exactly what ``fit --output`` wrote. With ``--format triples`` the model
keeps the user and item ids (``fit --format triples --save-fit``) and ``complete --format triples``
predicts chosen (user id, item id) pairs (``--pairs``) given the users' ratings in PATH, writing a
CSV of ``user, item, mean, sd, lower, upper``. ``fit`` ends its report with a verdict: whether the
mixture beats the baselines on the held-out entries, and what to try when it does not.

Mistakes in the input (a missing or malformed file, an impossible ``K``, a bad option) end with a
one-line ``jaxmix: error: ...`` on stderr and exit status 2; an unknown option names the
command's ``--help``, and the likely mistakes are named (a dense matrix given as ``--format
triples``, a CSV of triples with a header given as a matrix). ``--x64`` switches JAX to float64 for
the duration of the command; the library never does so by itself.

The package: this module (the parser and the entry point), :mod:`jaxmix.cli.commands` (what each
command does), :mod:`jaxmix.cli.report` (the text report) and :mod:`jaxmix.cli.plot` (the
picture).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NoReturn

import jax

from jaxmix._validate import check_nonneg_float, check_nonneg_int, check_positive_int
from jaxmix._version import __version__
from jaxmix.cli.commands import (
    DEFAULT_INIT,
    DEFAULT_TOL,
    DEMO_PLOT,
    FORMATS,
    INIT_CHOICES,
    MISSING_TOKENS,
    PRIORS,
    PROG,
    run_complete,
    run_demo,
    run_fit,
)
from jaxmix.models.families import COVARIANCES

__all__ = ["USER_ERRORS", "build_parser", "main"]

#: Exceptions that signal a mistake in the user's input rather than a bug: answered in one line.
USER_ERRORS = (ValueError, TypeError, OSError, FloatingPointError)


# --------------------------------------------------------------------------- option types


def _parse(kind: Callable[[str], Any], text: str, what: str) -> Any:
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}; got {text!r}") from None


def _checked(kind: Callable[[str], Any], what: str, check: Callable[[Any, str], Any]) -> Any:
    """An argparse type: parse the text as ``kind``, then apply a :mod:`jaxmix._validate` check.

    argparse names the option in front of the message, so the check's message is used without
    an argument name (``must be at least 1; got 0``).
    """

    def parse(text: str) -> Any:
        value = _parse(kind, text, what)
        try:
            return check(value, "")
        except (TypeError, ValueError) as err:
            raise argparse.ArgumentTypeError(str(err).strip()) from None

    return parse


_positive_int = _checked(int, "an integer", check_positive_int)


def _components(text: str) -> int:
    """``-K``: a number of components, at least 1 (refused here, before any work)."""
    value = _parse(int, text, "an integer")
    if value < 1:
        raise argparse.ArgumentTypeError(
            f"K (number of components) must be at least 1; got {value}"
        )
    return value


_nonneg_int = _checked(int, "an integer", check_nonneg_int)
_nonneg_float = _checked(float, "a number", check_nonneg_float)


def _fraction(text: str) -> float:
    value = _parse(float, text, "a number")
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must lie in [0, 1); got {text}")
    return value


def _missing_value(text: str) -> float | str | None:
    """A number, ``none``, or a missing-value word such as ``NA`` (:data:`MISSING_TOKENS`)."""
    if text.strip().lower() == "none":
        return None
    try:
        value = float(text)
    except ValueError:
        token = text.strip()
        if token not in MISSING_TOKENS:
            raise argparse.ArgumentTypeError(
                f"expected a number, 'none' or one of {', '.join(MISSING_TOKENS)}; got {text!r}"
            ) from None
        return token
    if value != value:
        raise argparse.ArgumentTypeError("nan is always read as missing; give another marker")
    return value


def _probability(text: str) -> float:
    value = _parse(float, text, "a number")
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must lie in (0, 1); got {text}")
    return value


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
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
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
        type=_components,
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
        "-K",
        "--components",
        dest="K",
        type=_components,
        nargs="+",
        required=True,
        help="number of components; several with --select, which chooses among them",
    )
    fit.add_argument(
        "--select",
        action="store_true",
        help="choose K among the -K values (and, with --covariance factor, the rank among "
        "--ranks) on held-out entries (jaxmix.select_k): every candidate is fit to the training "
        "entries less a further share (as --holdout, 0.1 with --holdout 0) and scored by the log "
        "predictive density there; the table is printed and the winner, refit on every training "
        "entry, is the fit of the report, --save-fit and --output. The fits start from kmeans++ "
        "with the default --tol (--init and --tol are refused)",
    )
    fit.add_argument(
        "--ranks",
        type=_positive_int,
        nargs="+",
        metavar="Q",
        help="with --select and --covariance factor: the ranks to try (default: --rank, else 1)",
    )
    fit.add_argument(
        "--format",
        choices=tuple(FORMATS),
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
    complete.add_argument(
        "--format",
        choices=tuple(FORMATS),
        default="matrix",
        help="matrix: PATH is a matrix, one row per line (default), and --output the completed "
        "matrix; triples: PATH holds (user, item, rating) lines of the users to predict for, "
        "matched to the model by the ids saved with it ('jaxmix fit --format triples "
        "--save-fit'), and --output gets one CSV line per --pairs pair: user, item, mean, sd, "
        "lower, upper",
    )
    complete.add_argument(
        "--pairs",
        metavar="FILE",
        help="with --format triples: the (user id, item id) pairs to predict, one per line "
        "(a header line is skipped when its first field is not a number)",
    )
    complete.add_argument(
        "--hdi-prob",
        type=_probability,
        default=0.9,
        metavar="P",
        help="with --format triples: probability of the interval [lower, upper] (default: 0.9)",
    )
    complete.add_argument(
        "--seed",
        type=_nonneg_int,
        default=0,
        help="seed of the draws behind the intervals (default: 0)",
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
        help="value that marks a missing entry in PATH: a number, a word such as NA (also N/A, "
        "NULL, ?, ...), or 'none' (default: 0); with --format triples a rating equal to it is "
        "refused as the sign of a dense matrix",
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
        "--split-merge",
        type=_nonneg_int,
        default=0,
        metavar="N",
        help="up to N rounds of split-and-merge moves after the restarts (jaxmix.fit_em's "
        "split_merge: re-deal three components, keep what raises the objective; needs K >= 3; "
        "default: 0, none)",
    )
    group.add_argument(
        "--init",
        choices=INIT_CHOICES,
        default=DEFAULT_INIT,
        help=f"initialisation (default: {DEFAULT_INIT}; random_rows is the course's)",
    )
    group.add_argument(
        "--covariance",
        choices=COVARIANCES,
        default="spherical",
        help="covariance family: one variance per component (spherical, the default), per "
        "component and column (diag), one for all components (shared), or low rank plus "
        "diagonal per component (factor, with --rank factors and a per-row offset)",
    )
    group.add_argument(
        "--rank",
        type=_positive_int,
        metavar="Q",
        help="number of factors of --covariance factor (default: 1); refused with another family",
    )
    group.add_argument(
        "--prior",
        choices=tuple(PRIORS),
        default="none",
        help="none: maximum likelihood (default); default: MAP-EM with jaxmix.Prior()'s weakly "
        "informative prior (keeps the means of rarely rated items near the item mean)",
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
        default=DEFAULT_TOL,
        help="relative log-likelihood tolerance (default: 1e-6)",
    )
    group.add_argument(
        "--max-iter",
        type=_positive_int,
        default=1000,
        help="iteration cap per restart (default: 1000)",
    )
    group.add_argument(
        "--min-var",
        type=_nonneg_float,
        default=None,
        help="variance floor in the data's units (default: jaxmix.fit_em's, 0.25 for ratings "
        "on a 1-5 scale and a quarter of the data's scale squared for data of smaller spread)",
    )
    group.add_argument(
        "--standardize",
        action="store_true",
        help="fit on columns centred and scaled to unit standard deviation over their training "
        "entries, so that columns in different units (age, income, Likert items) count alike; "
        "the report, RMSE and --output are in the data's units (not with --save-fit or "
        "--covariance factor)",
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
        args, unknown = parser.parse_known_args(argv)
        if unknown:  # named with the command's help, where its options are listed
            parser.exit(
                2,
                f"{PROG}: error: unrecognized arguments: {' '.join(unknown)} (see "
                f"'{PROG} {args.command} --help')\n",
            )
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

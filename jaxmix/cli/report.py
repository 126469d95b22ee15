"""The text report of ``jaxmix demo`` and ``jaxmix fit``.

Four blocks, separated by blank lines: the data (described by its layout: a dense matrix in rows,
columns and missing entries, triples in users, items and ratings), every restart's final
log-likelihood, the winner's fit (log-likelihood, BIC, AIC, iterations, time) and, when something
was scored, the RMSE of the mixture and the baselines per scored set of entries, then a verdict on
the held-out entries: whether the mixture beats every baseline, and what to try when it does not.
With ``fit --select`` the selection table (:meth:`jaxmix.HeldoutSelection.format`) comes after the
data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from jaxmix.data import DenseLayout

__all__ = [
    "data_lines",
    "fit_lines",
    "fit_report",
    "key_values",
    "model_description",
    "restart_lines",
    "score_lines",
    "selection_lines",
    "table",
    "verdict_lines",
]

#: The scored set the verdict reads.
HELD_OUT = "held-out"


def fit_report(
    layout: Any,
    result: Any,
    *,
    source: str,
    model: str,
    n_test: int | None,
    holdout: float,
    bic: float,
    aic: float,
    seconds: float,
    scores: Mapping[str, Mapping[str, float]],
    selection: Any = None,
    suggestions: Sequence[str] = (),
) -> str:
    """The whole report of a fit.

    Args:
        layout: The data layout of every observed entry (:func:`jaxmix.as_data`).
        result: The :class:`~jaxmix.EMResult`.
        source: Where the data came from.
        model: The model line (:func:`model_description`).
        n_test: Number of held-out entries, or ``None`` without a hold-out.
        holdout: The share held out (as asked for).
        bic, aic: The scores of ``result`` on the data it was fit to.
        seconds: Wall time of the fit.
        scores: RMSE per scored set, per method (the mixture first); may be empty.
        selection: The :class:`~jaxmix.HeldoutSelection` that chose ``result`` (``fit
            --select``), or ``None``.
        suggestions: What to try if the mixture loses to a baseline (:func:`verdict_lines`).

    Returns:
        The report, starting with a blank line.
    """
    lines = ["", *data_lines(layout, source, n_test, holdout, model), ""]
    if selection is not None:
        lines += [*selection_lines(selection), ""]
    lines += restart_lines(result)
    timed = None if selection is None else f"selection of {len(selection.k)} candidates"
    lines += ["", *fit_lines(result, bic, aic, seconds, timed=timed)]
    if scores:
        lines += ["", *score_lines(scores)]
        verdict = verdict_lines(scores, suggestions)
        if verdict:
            lines += ["", *verdict]
    return "\n".join(lines)


def model_description(
    K: int,
    covariance: str,
    restarts: int,
    init: str,
    dtype: str,
    *,
    rank: int | None = None,
    row_offset: bool | None = None,
    prior: bool = False,
    standardized: bool = False,
) -> str:
    """The model line: ``K=6, spherical covariance, 5 restarts, kmeans++ init, float32``; the
    factor family adds its rank and offset: ``K=6, factor covariance (rank 2, row offset), ...``;
    a MAP fit (``prior``) adds ``, MAP (default prior)`` after the family, a fit of standardised
    columns (``standardized``) ``, standardised columns``.
    """
    details = []
    if rank is not None:
        details.append(f"rank {rank}")
    if row_offset is not None:
        details.append("row offset" if row_offset else "no row offset")
    family = f"{covariance} covariance" + (f" ({', '.join(details)})" if details else "")
    if prior:
        family += ", MAP (default prior)"
    if standardized:
        family += ", standardised columns"
    return f"K={K}, {family}, {restarts} restarts, {init} init, {dtype}"


def data_lines(
    layout: Any, source: str, n_test: int | None, holdout: float, model: str
) -> list[str]:
    """The data block, in the layout's terms (``layout.kind``)."""
    n, d = layout.shape
    nnz = layout.nnz
    if layout.kind == DenseLayout.kind:
        n_missing = n * d - nnz
        data = f"{n:,} rows x {d:,} columns, {n_missing:,} missing ({n_missing / (n * d):.1%})"
        entries = "observed entries"
    else:
        density = nnz / (float(n) * float(d))
        data = f"{n:,} users x {d:,} items, {nnz:,} ratings ({density:.2%} observed)"
        entries = "ratings"
    rows = [("data", data), ("source", source)]
    if n_test is not None:
        rows.append(("held out", f"{n_test:,} of {nnz:,} {entries} ({holdout:.0%})"))
    rows.append(("model", model))
    return key_values(rows)


def restart_lines(result: Any) -> list[str]:
    """One line per restart: final log-likelihood, iterations, convergence, the winner marked."""
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
    return table(header, rows, n_left=0)


def selection_lines(selection: Any) -> list[str]:
    """The ``--select`` block: how the candidates were scored, their table and the choice."""
    rank = f", rank {selection.best_rank}" if selection.best_rank else ""
    return [
        "selection on the training entries (jaxmix.select_k; higher lpd/entry is better)",
        *selection.format().splitlines(),
        f"chosen: K={selection.best_k}{rank}, refit on every training entry",
    ]


def fit_lines(
    result: Any, bic: float, aic: float, seconds: float, timed: str | None = None
) -> list[str]:
    """The winner: log-likelihood, BIC, AIC, iterations and the fit time (``timed``: what else
    the time covers, e.g. a selection)."""
    status = "converged" if result.converged else "not converged (raise --max-iter?)"
    rows = [
        ("log-likelihood", f"{result.log_likelihood:,.2f}  (restart {result.best_restart})"),
        ("BIC", f"{bic:,.2f}  (higher is better)"),
        ("AIC", f"{aic:,.2f}  (higher is better)"),
        ("iterations", f"{result.n_iter}, {status}"),
        (
            "fit time",
            f"{seconds:.2f} s  ({f'{timed} and refit; ' if timed else ''}includes JIT compilation)",
        ),
    ]
    return key_values(rows)


def score_lines(scores: Mapping[str, Mapping[str, float]]) -> list[str]:
    """The RMSE table: one row per method, one column per scored set."""
    names = list(scores)
    methods = list(next(iter(scores.values())))
    header = ("RMSE", *names)
    rows = [(m, *(f"{scores[name][m]:.4f}" for name in names)) for m in methods]
    return table(header, rows)


def verdict_lines(
    scores: Mapping[str, Mapping[str, float]], suggestions: Sequence[str] = ()
) -> list[str]:
    """The verdict on the held-out entries: the mixture (the first method) against the best
    baseline (the others). Empty when nothing was held out.

    Args:
        scores: RMSE per scored set, per method, as in :func:`score_lines`.
        suggestions: What to try when the mixture loses (one option or command each).

    Returns:
        One line when the mixture wins; when it loses, that line and one per suggestion.
    """
    held_out = scores.get(HELD_OUT)
    if not held_out or len(held_out) < 2:
        return []
    mixture, *baselines = held_out
    best = min(baselines, key=lambda name: held_out[name])
    ours, theirs = held_out[mixture], held_out[best]
    if ours < theirs:
        return [
            f"verdict: the mixture beats every baseline on the held-out entries (RMSE "
            f"{ours:.4f} against {theirs:.4f} for the {best} baseline)"
        ]
    lines = [
        f"verdict: the mixture loses to the {best} baseline on the held-out entries (RMSE "
        f"{ours:.4f} against {theirs:.4f}): the {best} baseline predicts these ratings better"
    ]
    if suggestions:
        lines.append("to try:")
        lines += [f"  {text}" for text in suggestions]
    return lines


def key_values(rows: Sequence[tuple[str, str]]) -> list[str]:
    """``key  value`` lines with the values aligned."""
    width = max(len(key) for key, _ in rows)
    return [f"{key:<{width}}  {value}" for key, value in rows]


def table(header: Sequence[str], rows: Sequence[Sequence[str]], n_left: int = 1) -> list[str]:
    """Align a table: the first ``n_left`` columns to the left, the others to the right."""
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]

    def fmt(row: Sequence[str]) -> str:
        cells = [
            cell.ljust(width) if i < n_left else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        return "  ".join(cells).rstrip()

    return [fmt(header), *(fmt(row) for row in rows)]

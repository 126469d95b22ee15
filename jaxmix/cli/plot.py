"""The picture of ``jaxmix demo`` and ``jaxmix fit --plot``: the winner's log-likelihood per
iteration, the RMSE bars of the mixture and the baselines, and the component means.

matplotlib is imported when a picture is checked or drawn (not when the command line starts), and
only its Agg canvas is used, so no global backend is changed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["check_picture_path", "save_plot"]


def check_picture_path(path: str) -> None:
    """Refuse a picture file whose extension matplotlib cannot write.

    Raises:
        ValueError: The extension names an unknown format (no extension means PNG).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    ext = os.path.splitext(path)[1].lower().lstrip(".")
    supported = FigureCanvasAgg.get_supported_filetypes()
    if ext and ext not in supported:
        raise ValueError(
            f"--plot {path}: unknown picture format {ext!r} (use one of "
            f"{', '.join(sorted(supported))})"
        )


def save_plot(
    path: str, result: Any, scores: Mapping[str, Mapping[str, float]], title: str
) -> None:
    """Save a picture of a fit: the winner's log-likelihood, RMSE bars and component means.

    Args:
        path: Output file; the format follows its extension (PNG by default).
        result: The :class:`~jaxmix.EMResult`.
        scores: RMSE per scored set, per method (the mixture first); the bars show the held-out
            set when there is one, else the first; no bars when empty.
        title: Title of the figure.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    label = "held-out" if "held-out" in scores else next(iter(scores), None)
    n_panels = 3 if label is not None else 2
    fig = Figure(figsize=(4.6 * n_panels, 3.8), layout="constrained")
    FigureCanvasAgg(fig)
    axes = list(fig.subplots(1, n_panels))
    fig.suptitle(title)
    _plot_history(axes[0], result)
    if label is not None:
        _plot_scores(axes[1], scores[label], label)
    _plot_means(fig, axes[-1], result)
    fig.savefig(path, dpi=110)


def _plot_history(ax: Any, result: Any) -> None:
    history = np.asarray(result.history)
    steps = np.arange(1, history.size + 1)
    ax.plot(steps, history, marker="o" if history.size <= 30 else None, markersize=3)
    ax.set_title(f"log-likelihood, best of {np.size(result.restart_log_likelihoods)} restarts")
    ax.set_xlabel("EM iteration")
    ax.set_ylabel("log-likelihood")
    ax.grid(alpha=0.3)


def _plot_scores(ax: Any, scores: Mapping[str, float], label: str) -> None:
    names = list(scores)
    values = [scores[n] for n in names]
    colors = ["tab:blue"] + ["tab:gray"] * (len(names) - 1)
    bars = ax.bar(range(len(names)), values, color=colors)
    ax.bar_label(bars, fmt="%.3f", fontsize=8)
    ax.set_xticks(range(len(names)), [n.replace(" ", "\n", 1) for n in names])
    ax.set_title(f"RMSE ({label})")
    ax.set_ylabel("RMSE")
    ax.margins(y=0.15)


def _plot_means(fig: Any, ax: Any, result: Any) -> None:
    weights = np.asarray(result.weights)
    mu = np.asarray(result.mu)
    rows = np.argsort(-weights)
    cols = np.argsort(weights @ mu)
    image = ax.imshow(mu[np.ix_(rows, cols)], aspect="auto", interpolation="nearest")
    ax.set_yticks(range(rows.size), [f"{k} ({weights[k]:.2f})" for k in rows])
    ax.set_title("component means")
    ax.set_ylabel("component (weight)")
    ax.set_xlabel("column, by mean")
    fig.colorbar(image, ax=ax)

"""Example: K-means and EM side by side on a 2-D toy data set.

For each number of components K (default 1..4) the script fits the best of five K-means restarts
(:func:`jaxmix.kmeans`) and the best of five EM restarts (:func:`jaxmix.fit_em`, reference
``random_rows`` initialisation) and draws them next to each other, K-means on the left, EM on the
right, one row per K. Every point is coloured by its assignment (K-means: the hard label; EM: the
component colours blended by the responsibilities), every component gets a circle of radius
``sigma = sqrt(var_k)`` and a label with its mean and sigma. The titles give the K-means cost
and the EM log-likelihood and BIC (higher is better), and a table of the same numbers is printed.

The data are the course's ``toy_data.txt`` (``--data``, default
``$JAXMIX_REFERENCE_DATA/toy_data.txt``); when no data path is available the script draws a planted
3-component 2-D mixture of 250 points instead, so it runs anywhere.

Usage::

    python examples/toy_em_vs_kmeans.py --x64                 # float64, the course's numbers
    python examples/toy_em_vs_kmeans.py --ks 2 3 --out toy.png
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Circle  # noqa: E402

DATA_ENV = "JAXMIX_REFERENCE_DATA"
DATA_FILE = "toy_data.txt"
COLOURS = np.array(plt.get_cmap("tab10").colors)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line.

    Args:
        argv: Arguments (default ``sys.argv[1:]``).

    Returns:
        The parsed options.
    """
    parser = argparse.ArgumentParser(description="K-means vs EM on a 2-D toy data set.")
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help=f"toy data file or the folder holding {DATA_FILE} (default: ${DATA_ENV}/{DATA_FILE})",
    )
    parser.add_argument("--ks", type=int, nargs="+", default=[1, 2, 3, 4], help="values of K")
    parser.add_argument(
        "--restarts", type=int, default=5, help="restarts, seeds 0..R-1 (default 5)"
    )
    parser.add_argument("--out", type=Path, default=Path("toy_em_vs_kmeans.png"), help="PNG file")
    parser.add_argument("--dpi", type=int, default=110, help="resolution of the PNG")
    parser.add_argument("--x64", action="store_true", help="compute in float64 (default float32)")
    return parser.parse_args(argv)


def simulate_toy(n: int = 250, seed: int = 0) -> np.ndarray:
    """A planted 3-component spherical mixture in 2-D (the stand-in for the course data).

    Args:
        n: Number of points.
        seed: Seed of ``numpy.random.default_rng``.

    Returns:
        Array of shape ``(n, 2)``.
    """
    rng = np.random.default_rng(seed)
    means = np.array([[-3.0, 0.0], [2.5, 2.0], [1.5, -3.5]])
    sds = np.array([1.2, 0.9, 1.0])
    labels = rng.choice(3, size=n, p=[0.4, 0.35, 0.25])
    return means[labels] + sds[labels, None] * rng.standard_normal((n, 2))


def load_toy(data: Path | None) -> tuple[np.ndarray, str]:
    """The toy data and a description of where it came from.

    Args:
        data: A file, a folder holding ``toy_data.txt``, or ``None`` for the default location.

    Returns:
        ``(X, source)`` with ``X`` of shape ``(n, 2)``.

    Raises:
        SystemExit: An explicitly given path does not exist.
    """
    import jaxmix

    if data is not None:
        path = data / DATA_FILE if data.is_dir() else data
        if not path.is_file():
            raise SystemExit(f"toy_em_vs_kmeans: no such file: {path}")
    else:
        folder = os.environ.get(DATA_ENV)
        path = Path(folder) / DATA_FILE if folder else None
    if path is not None and path.is_file():
        return jaxmix.load_ratings(path, missing=None), str(path)
    return simulate_toy(), "simulated planted 3-component mixture (no toy_data.txt found)"


def fit_all(X: np.ndarray, ks: Sequence[int], restarts: int) -> list[dict[str, Any]]:
    """Best K-means and best EM solution for every K.

    Args:
        X: The ``(n, 2)`` data.
        ks: Numbers of components.
        restarts: Restarts per fit (seeds ``0 .. restarts-1``).

    Returns:
        One dict per K with the two results and the EM BIC.
    """
    import jaxmix

    fits = []
    for K in ks:
        km = jaxmix.kmeans(X, K, n_init=restarts, seed=0)
        em = jaxmix.fit_em(X, K, n_init=restarts, seed=0, init="random_rows")
        fits.append({"K": K, "kmeans": km, "em": em, "bic": jaxmix.bic(X, em)})
    return fits


def _order(mu: np.ndarray) -> np.ndarray:
    """Component order by the means' first coordinate, so colours match across panels."""
    return np.argsort(mu[:, 0], kind="stable")


def draw_panel(ax: Any, X: np.ndarray, mu: np.ndarray, var: np.ndarray, memb: np.ndarray) -> None:
    """Scatter the points coloured by membership and draw each component's mean and circle.

    Args:
        ax: Matplotlib axes.
        X: The ``(n, 2)`` data.
        mu: Means ``(K, 2)``.
        var: Variances ``(K,)``.
        memb: Memberships ``(n, K)`` (one-hot for hard labels, responsibilities for EM).
    """
    order = _order(mu)
    mu, var, memb = mu[order], var[order], memb[:, order]
    colours = COLOURS[np.arange(len(mu)) % len(COLOURS)]
    ax.scatter(X[:, 0], X[:, 1], c=np.clip(memb @ colours, 0, 1), s=12, alpha=0.8, lw=0)
    for k, (m, v) in enumerate(zip(mu, var, strict=True)):
        sigma = float(np.sqrt(v))
        ax.add_patch(Circle(tuple(m), sigma, fill=False, ec=colours[k], lw=2))
        ax.plot(
            *m,
            marker="X",
            ms=10,
            ls="none",
            color=colours[k],
            mec="black",
            mew=0.8,
            label=f"μ=({m[0]:.2f}, {m[1]:.2f})  σ={sigma:.2f}",
        )
    ax.legend(loc="best", fontsize=8, framealpha=0.9, handletextpad=0.3, borderpad=0.4)
    ax.grid(alpha=0.25)


def _limits(X: np.ndarray, results: Sequence[Any], pad: float = 0.05) -> tuple[tuple, tuple]:
    """Axis limits that hold the data and every drawn circle, with a margin."""
    lo, hi = X.min(axis=0), X.max(axis=0)
    for res in results:
        sigma = np.sqrt(res.var)[:, None]
        lo = np.minimum(lo, (res.mu - sigma).min(axis=0))
        hi = np.maximum(hi, (res.mu + sigma).max(axis=0))
    margin = pad * (hi - lo)
    return (lo[0] - margin[0], hi[0] + margin[0]), (lo[1] - margin[1], hi[1] + margin[1])


def plot(X: np.ndarray, fits: list[dict[str, Any]], out: Path, dpi: int, source: str) -> None:
    """Draw K-means (left) and EM (right) for every K and save the figure as PNG."""
    rows = len(fits)
    span = np.ptp(X, axis=0)
    panel_h = float(np.clip(5.0 * span[1] / max(span[0], 1e-12), 2.6, 5.0)) + 0.7  # + title
    fig, axes = plt.subplots(rows, 2, figsize=(11, panel_h * rows + 0.6), squeeze=False)
    for (ax_km, ax_em), fit in zip(axes, fits, strict=True):
        K, km, em = fit["K"], fit["kmeans"], fit["em"]
        draw_panel(ax_km, X, km.mu, km.var, np.eye(K)[km.labels])
        ax_km.set_title(f"K-means, K={K}: cost {km.cost:.2f}", fontsize=11)
        draw_panel(ax_em, X, em.mu, em.var, em.resp)
        ax_em.set_title(f"EM, K={K}: LL {em.log_likelihood:.2f}, BIC {fit['bic']:.2f}", fontsize=11)
        xlim, ylim = _limits(X, (km, em))
        for ax in (ax_km, ax_em):  # same limits left and right, equal scales
            ax.set_xlim(*xlim)
            ax.set_ylim(*ylim)
            ax.set_aspect("equal", adjustable="box")
    fig.suptitle(f"K-means vs EM (best of restarts)\ndata: {Path(source).name}", fontsize=13)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi)
    plt.close(fig)


def print_table(fits: list[dict[str, Any]]) -> None:
    """Print K, the K-means cost, the EM log-likelihood and the BIC (best BIC marked)."""
    best = max(fits, key=lambda f: f["bic"])["K"]
    print(f"{'K':>3} {'K-means cost':>14} {'EM log-lik':>14} {'BIC':>14}")
    for f in fits:
        mark = "  <- best BIC" if f["K"] == best else ""
        print(
            f"{f['K']:>3} {f['kmeans'].cost:14.7f} {f['em'].log_likelihood:14.7f} "
            f"{f['bic']:14.7f}{mark}"
        )


def main(args: argparse.Namespace) -> Path:
    """Fit, print the table and save the picture.

    Args:
        args: Options from :func:`parse_args`.

    Returns:
        The path of the saved PNG.
    """
    if args.x64:
        import jax

        jax.config.update("jax_enable_x64", True)
    X, source = load_toy(args.data)
    print(f"data: {source} ({X.shape[0]} points)")
    fits = fit_all(X, args.ks, args.restarts)
    print_table(fits)
    plot(X, fits, args.out, args.dpi, source)
    print(f"saved {args.out}")
    return args.out


if __name__ == "__main__":
    main(parse_args())

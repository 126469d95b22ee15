"""Example: one mixture model, three fits: EM, SVI-MAP and mean-field SVI.

The same model, :func:`jaxmix.mixture_model` with the default weakly informative
:class:`jaxmix.Prior`, is fit three ways from the same k-means++ start:

* EM (:func:`jaxmix.fit_em`, closed-form MAP M-steps),
* SVI with a point-mass guide (:func:`jaxmix.fit_svi` ``guide="map"``: Adam, then L-BFGS on the
  ``TraceEnum_ELBO`` loss), which solves the same MAP problem, and
* SVI with a mean-field Normal guide (``guide="meanfield"``), a variational posterior.

on two data sets: the course's 2-D toy data (``--data``, default
``$JAXMIX_REFERENCE_DATA/toy_data.txt``; a planted 3-component 2-D mixture when it is absent) and
a simulated ratings matrix with missing entries (:func:`jaxmix.simulate_ratings`).

The figure (``--out``) shows, for each data set, the objective (log-likelihood + log-prior)
against wall-clock time, as the gap to the best value found: EM's per-iteration objective with its
run time spread evenly over the iterations, SVI-MAP's history (exactly the objective; each step
timed by its share of loss evaluations), and the mean-field fit's objective at the
transformed variational locations, evaluated at checkpoints. Below, the ratings fit's means,
variances and weights: EM's point estimates against the mean-field posterior means with
two-posterior-sd bars. The printed tables give, per matched component, the three fits' weights and
variances, the largest mean difference between EM and SVI-MAP and the mean-field posterior sd.
Compile time is excluded from the time axis and printed apart.

Usage::

    python examples/em_vs_svi.py
    python examples/em_vs_svi.py --steps 300 --mf-steps 500 --users 150 --items 12   # quick
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

DATA_ENV = "JAXMIX_REFERENCE_DATA"
DATA_FILE = "toy_data.txt"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line.

    Args:
        argv: Arguments (default ``sys.argv[1:]``).

    Returns:
        The parsed options.
    """
    parser = argparse.ArgumentParser(description="EM vs SVI-MAP vs mean-field SVI.")
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help=f"toy data file or the folder holding {DATA_FILE} (default: ${DATA_ENV}/{DATA_FILE})",
    )
    parser.add_argument("--K", type=int, default=3, help="components for the toy data (3)")
    parser.add_argument("--ratings-K", type=int, default=3, help="planted and fitted K (3)")
    parser.add_argument("--users", type=int, default=200, help="simulated users (200)")
    parser.add_argument("--items", type=int, default=20, help="simulated items (20)")
    parser.add_argument("--missing", type=float, default=0.3, help="missing share (0.3)")
    parser.add_argument("--steps", type=int, default=1000, help="SVI-MAP Adam steps (1000)")
    parser.add_argument("--mf-steps", type=int, default=1500, help="mean-field SVI steps (1500)")
    parser.add_argument("--samples", type=int, default=1000, help="posterior draws (1000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the start and the draws")
    parser.add_argument("--out", type=Path, default=Path("em_vs_svi.png"), help="PNG file")
    parser.add_argument("--dpi", type=int, default=110, help="resolution of the PNG")
    parser.add_argument("--float32", action="store_true", help="compute in float32 (default 64)")
    return parser.parse_args(argv)


def simulate_toy(n: int = 250, seed: int = 0) -> np.ndarray:
    """A planted 3-component spherical mixture in 2-D (the stand-in for the course data)."""
    rng = np.random.default_rng(seed)
    means = np.array([[-3.0, 0.0], [2.5, 2.0], [1.5, -3.5]])
    sds = np.array([1.2, 0.9, 1.0])
    labels = rng.choice(3, size=n, p=[0.4, 0.35, 0.25])
    return means[labels] + sds[labels, None] * rng.standard_normal((n, 2))


def load_toy(data: Path | None) -> tuple[np.ndarray, str]:
    """The toy data and where it came from.

    Args:
        data: A file, a folder holding ``toy_data.txt``, or ``None`` for the default location.

    Returns:
        ``(X, source)``.

    Raises:
        SystemExit: An explicitly given path does not exist.
    """
    import jaxmix

    if data is not None:
        path = data / DATA_FILE if data.is_dir() else data
        if not path.is_file():
            raise SystemExit(f"em_vs_svi: no such file: {path}")
    else:
        folder = os.environ.get(DATA_ENV)
        path = Path(folder) / DATA_FILE if folder else None
    if path is not None and path.is_file():
        return jaxmix.load_ratings(path, missing=None), path.name
    return simulate_toy(), "simulated 2-D mixture (no toy_data.txt found)"


def fit_three(X: np.ndarray, K: int, args: argparse.Namespace) -> dict[str, Any]:
    """EM, SVI-MAP and mean-field SVI from one k-means++ start, with timings and matchings.

    Args:
        X: ``(n, d)`` data, ``NaN`` = missing.
        K: Number of components.
        args: Options (steps, samples, seed).

    Returns:
        A dict with the three results, their objective-vs-time curves, the matchings and the
        posterior summaries.
    """
    import jax

    import jaxmix
    from jaxmix.inference.init import kmeans_plus_plus
    from jaxmix.models.families import SphericalCov
    from jaxmix.models.mixture import match_components

    prior = jaxmix.Prior().resolve(X)
    mu, var, weights = kmeans_plus_plus(jaxmix.as_data(X), K, args.seed)
    start = jaxmix.MixtureParams(mu, SphericalCov(var), weights)

    def run_em() -> Any:
        return jaxmix.fit_em(
            X, K, init=start, prior=prior, tol=1e-12, min_var=0.0, max_iter=100_000
        )

    begin = time.perf_counter()
    run_em()
    em_first = time.perf_counter() - begin
    begin = time.perf_counter()
    em = run_em()
    em_time = time.perf_counter() - begin
    svi = jaxmix.fit_svi(X, K, init=start, prior=prior, num_steps=args.steps, seed=args.seed)
    every = max(args.mf_steps // 30, 1)
    mf = jaxmix.fit_svi(
        X,
        K,
        guide="meanfield",
        init=start,
        prior=prior,
        num_steps=args.mf_steps,
        seed=args.seed,
        record_every=every,
    )

    em_obj = jaxmix.log_objective(X, em.params, prior=prior)

    def snapshot(t: int) -> Any:  # the point estimate after snapshot_steps[t]
        return jax.tree.map(lambda a: a[t], mf.snapshots)

    mf_obj = np.array(
        [jaxmix.log_objective(X, snapshot(t), prior=prior) for t in range(len(mf.snapshot_steps))]
    )
    draws = mf.sample_posterior(args.samples, seed=args.seed)  # MixtureParams, leading axis S
    sites = {"mu": draws.mu, "var": draws.var, "weights": draws.weights}
    post_mean = {k: np.mean(v, axis=0) for k, v in sites.items()}
    post_sd = {k: np.std(v, axis=0) for k, v in sites.items()}
    perm_map = match_components(em.mu, svi.mu)
    perm_mf = match_components(em.mu, post_mean["mu"])
    return {
        "K": K,
        "em": em,
        "svi": svi,
        "mf": mf,
        "prior": prior,
        "em_time": em_time,
        "em_compile": max(em_first - em_time, 0.0),
        "em_objective": em_obj,
        "rel_gap": (em_obj - svi.objective) / abs(em_obj),
        "curves": {
            "EM": (em_time * np.arange(1, em.n_iter + 1) / em.n_iter, em.history),
            "SVI-MAP": (svi.run_time * svi.history_evals / svi.n_evals, svi.history),
            "mean-field SVI (at q's locations)": (  # the checkpoints after step 0
                mf.run_time * mf.snapshot_steps[1:] / mf.num_steps,
                mf_obj[1:],
            ),
        },
        "perm_map": perm_map,
        "perm_mf": perm_mf,
        "post_mean": post_mean,
        "post_sd": post_sd,
    }


def print_table(name: str, fit: dict[str, Any]) -> None:
    """Print the objectives, timings and the matched parameters of the three fits."""
    em, svi, mf = fit["em"], fit["svi"], fit["mf"]
    pm, ps = fit["post_mean"], fit["post_sd"]
    print(f"\n{name}: K={fit['K']}, default Prior, spherical, same k-means++ start")
    print(f"{'method':34s} {'objective':>16s} {'run s':>8s} {'compile s':>10s} {'work':>18s}")
    print(
        f"{'EM':34s} {fit['em_objective']:16.6f} {fit['em_time']:8.3f} "
        f"{fit['em_compile']:10.3f} {em.n_iter:>12d} iter"
    )
    print(
        f"{'SVI-MAP':34s} {svi.objective:16.6f} {svi.run_time:8.3f} {svi.compile_time:10.3f} "
        f"{svi.n_evals:>12d} evals"
    )
    print(
        f"{'mean-field SVI (at q locations)':34s} {mf.objective:16.6f} {mf.run_time:8.3f} "
        f"{mf.compile_time:10.3f} {mf.n_evals:>12d} evals"
    )
    print(
        f"relative gap (EM - SVI-MAP) / |EM| = {fit['rel_gap']:+.2e}; mean-field final ELBO "
        f"~ {np.mean(mf.history[-50:]):.4f} (mean of the last 50 estimates)"
    )
    print(
        f"{'k':>2s} {'w EM':>7s} {'w MAP':>7s} {'w q: mean +- sd':>18s} {'var EM':>8s} "
        f"{'var MAP':>8s} {'var q: mean +- sd':>18s} {'max|mu EM-MAP|':>15s} "
        f"{'mu posterior sd':>16s}"
    )
    for k in range(fit["K"]):
        j, i = fit["perm_map"][k], fit["perm_mf"][k]
        print(
            f"{k:2d} {em.weights[k]:7.4f} {svi.weights[j]:7.4f} "
            f"{pm['weights'][i]:9.4f} +- {ps['weights'][i]:.4f} {em.var[k]:8.4f} "
            f"{svi.var[j]:8.4f} {pm['var'][i]:9.4f} +- {ps['var'][i]:.4f} "
            f"{np.max(np.abs(em.mu[k] - svi.mu[j])):15.2e} {np.mean(ps['mu'][i]):16.4f}"
        )


def _gap_panel(ax: Any, fit: dict[str, Any], title: str) -> None:
    curves = fit["curves"]
    best = max(np.max(obj) for _, obj in curves.values())
    scale = abs(best)
    for label, (t, obj) in curves.items():
        gap = np.maximum((best - np.asarray(obj)) / scale, 1e-16)
        ax.plot(np.maximum(t, 1e-6), gap, label=label, marker="." if len(t) < 60 else None)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("wall-clock seconds (compile excluded)")
    ax.set_ylabel("(best - objective) / |best|")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)


def plot(fits: dict[str, dict[str, Any]], out: Path, dpi: int, source: str) -> None:
    """The convergence panels and the posterior spread of the ratings fit; saved as PNG."""
    fig, axes = plt.subplots(2, 2, figsize=(12, 9))
    _gap_panel(axes[0, 0], fits["toy"], f"toy data ({source})")
    _gap_panel(axes[0, 1], fits["ratings"], "simulated ratings (missing entries)")
    fit = fits["ratings"]
    em, perm = fit["em"], fit["perm_mf"]
    pm, ps = fit["post_mean"], fit["post_sd"]
    ax = axes[1, 0]
    ax.errorbar(
        em.mu.ravel(),
        pm["mu"][perm].ravel(),
        yerr=2 * ps["mu"][perm].ravel(),
        fmt=".",
        ms=3,
        alpha=0.6,
        label="q mean +- 2 sd",
    )
    lims = [em.mu.min() - 0.2, em.mu.max() + 0.2]
    ax.plot(lims, lims, "k--", lw=1, label="y = x")
    ax.set_xlabel("EM (MAP) mean mu_kl")
    ax.set_ylabel("mean-field posterior of mu_kl")
    ax.set_title("ratings: means, posterior spread vs EM's point", fontsize=10)
    ax.legend(fontsize=8)
    ax = axes[1, 1]
    x = np.arange(fit["K"])
    ax.errorbar(
        x - 0.1,
        pm["weights"][perm],
        yerr=2 * ps["weights"][perm],
        fmt="o",
        ms=4,
        label="weights: q mean +- 2 sd",
    )
    ax.plot(x - 0.1, em.weights, "kx", label="weights: EM")
    ax.errorbar(
        x + 0.1,
        pm["var"][perm],
        yerr=2 * ps["var"][perm],
        fmt="s",
        ms=4,
        label="var: q mean +- 2 sd",
    )
    ax.plot(x + 0.1, em.var, "r+", ms=10, label="var: EM")
    ax.set_xticks(x)
    ax.set_xlabel("component (EM's labels)")
    ax.set_title("ratings: weights and variances", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.suptitle("One model, three fits: EM, SVI-MAP (AutoDelta) and mean-field SVI (AutoNormal)")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi)
    plt.close(fig)


def main(args: argparse.Namespace) -> dict[str, Any]:
    """Fit both data sets three ways, print the tables and save the figure.

    Args:
        args: Options from :func:`parse_args`.

    Returns:
        ``{"toy": {...}, "ratings": {...}, "out": path}`` with each data set's relative gap
        between EM and SVI-MAP and the three objectives.
    """
    import jax

    jax.config.update("jax_enable_x64", not args.float32)
    import jaxmix

    X_toy, source = load_toy(args.data)
    print(f"toy data: {source} ({X_toy.shape[0]} points)")
    sim = jaxmix.simulate_ratings(
        args.users, args.items, args.ratings_K, missing=args.missing, seed=args.seed
    )
    print(f"ratings: simulated {args.users} x {args.items}, {np.isnan(sim.X).mean():.0%} missing")
    fits = {
        "toy": fit_three(X_toy, args.K, args),
        "ratings": fit_three(sim.X, args.ratings_K, args),
    }
    print_table(f"toy data ({source})", fits["toy"])
    print_table("simulated ratings", fits["ratings"])
    plot(fits, args.out, args.dpi, source)
    print(f"\nsaved {args.out}")
    summary: dict[str, Any] = {"out": args.out}
    for name, fit in fits.items():
        summary[name] = {
            "rel_gap": fit["rel_gap"],
            "em_objective": fit["em_objective"],
            "svi_objective": fit["svi"].objective,
            "meanfield_objective": fit["mf"].objective,
        }
    return summary


if __name__ == "__main__":
    main(parse_args())

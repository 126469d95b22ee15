"""Example: the full posterior of a mixture with NUTS, checked with ArviZ.

Two data sets:

1. The course's 2-D toy data (``--data``, default ``$JAXMIX_REFERENCE_DATA/toy_data.txt``; a
   planted 3-component mixture when no file is available). :func:`jaxmix.fit_mcmc` samples the
   posterior of a ``K``-component mixture (NUTS, the component of every point summed out, chains
   started from MAP-EM); :func:`jaxmix.to_inference_data` turns the draws into an ArviZ
   ``InferenceData``; the script prints ``az.summary`` and :func:`jaxmix.diagnose`'s report and
   saves a trace plot and a forest plot. Then :func:`jaxmix.select_k` compares several ``K`` by
   BIC and by PSIS-LOO (``az.compare``) and saves ArviZ's comparison plot.
2. A small simulated ratings matrix (:func:`jaxmix.simulate_ratings`) with 10 % of the observed
   ratings held out. NUTS on the rest, then :func:`jaxmix.predictive_summary` gives every held-out
   entry a predictive mean, standard deviation and 90 % highest-density interval; the script
   prints a table of some of them and the share of held-out ratings inside their interval, next to
   the same share for EM's plug-in intervals (which ignore the parameters' uncertainty).

Every figure is saved as PNG in ``--out-dir``.

Usage::

    python examples/posterior_diagnostics.py --x64
    python examples/posterior_diagnostics.py --warmup 100 --samples 100 --ks 2 3 --out-dir figs
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

DATA_ENV = "JAXMIX_REFERENCE_DATA"
DATA_FILE = "toy_data.txt"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line.

    Args:
        argv: Arguments (default ``sys.argv[1:]``).

    Returns:
        The parsed options.
    """
    parser = argparse.ArgumentParser(description="NUTS posterior diagnostics with ArviZ.")
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help=f"toy data file or the folder holding {DATA_FILE} (default: ${DATA_ENV}/{DATA_FILE})",
    )
    parser.add_argument("--K", type=int, default=3, help="components of the NUTS fits")
    parser.add_argument("--ks", type=int, nargs="+", default=[1, 2, 3, 4], help="K to compare")
    parser.add_argument("--chains", type=int, default=2, help="chains of the NUTS fits")
    parser.add_argument("--warmup", type=int, default=300, help="warm-up iterations per chain")
    parser.add_argument("--samples", type=int, default=300, help="draws kept per chain")
    parser.add_argument("--users", type=int, default=150, help="rows of the ratings matrix")
    parser.add_argument("--items", type=int, default=12, help="columns of the ratings matrix")
    parser.add_argument("--show", type=int, default=8, help="predictive-table rows to print")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data and the fits")
    parser.add_argument("--out-dir", type=Path, default=Path("posterior_diagnostics"))
    parser.add_argument("--dpi", type=int, default=100, help="resolution of the PNGs")
    parser.add_argument("--x64", action="store_true", help="compute in float64 (default float32)")
    return parser.parse_args(argv)


def simulate_toy(n: int = 250, seed: int = 0) -> np.ndarray:
    """A planted 3-component spherical mixture in 2-D (the stand-in for the course data)."""
    rng = np.random.default_rng(seed)
    means = np.array([[-3.0, 0.0], [2.5, 2.0], [1.5, -3.5]])
    sds = np.array([1.2, 0.9, 1.0])
    labels = rng.choice(3, size=n, p=[0.4, 0.35, 0.25])
    return means[labels] + sds[labels, None] * rng.standard_normal((n, 2))


def load_toy(data: Path | None) -> tuple[np.ndarray, str]:
    """The toy data and where it came from (simulated when no file is available).

    Raises:
        SystemExit: An explicitly given path does not exist.
    """
    import jaxmix

    if data is not None:
        path = data / DATA_FILE if data.is_dir() else data
        if not path.is_file():
            raise SystemExit(f"posterior_diagnostics: no such file: {path}")
    else:
        folder = os.environ.get(DATA_ENV)
        path = Path(folder) / DATA_FILE if folder else None
    if path is not None and path.is_file():
        return jaxmix.load_ratings(path, missing=None), str(path)
    return simulate_toy(), "simulated planted 3-component mixture (no toy_data.txt found)"


def _save(fig_or_axes: Any, path: Path, dpi: int) -> Path:
    fig = fig_or_axes if hasattr(fig_or_axes, "savefig") else np.ravel(fig_or_axes)[0].figure
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    print(f"saved {path}")
    return path


def toy_posterior(args: argparse.Namespace) -> dict[str, Any]:
    """NUTS on the toy data: summary, diagnostics, trace and forest plots, the K comparison."""
    import arviz as az

    import jaxmix

    X, source = load_toy(args.data)
    print(f"toy data: {source} ({X.shape[0]} points)")
    fit = jaxmix.fit_mcmc(
        X,
        args.K,
        num_chains=args.chains,
        num_warmup=args.warmup,
        num_samples=args.samples,
        seed=args.seed,
    )
    idata = jaxmix.to_inference_data(fit, X)
    print(az.summary(idata, var_names=["weights", "var", "mu"]).to_string())
    report = jaxmix.diagnose(fit, warn=False)  # prints the report
    paths = [
        _save(
            az.plot_trace(idata, var_names=["weights", "var", "mu"]),
            args.out_dir / "toy_trace.png",
            args.dpi,
        ),
        _save(
            az.plot_forest(idata, var_names=["weights", "var", "mu"], combined=True, hdi_prob=0.9),
            args.out_dir / "toy_forest.png",
            args.dpi,
        ),
    ]
    print(f"\nchoosing K on the toy data (BIC and PSIS-LOO, {len(args.ks)} NUTS fits):")
    selection = jaxmix.select_k(
        X,
        args.ks,
        num_chains=args.chains,
        num_warmup=args.warmup,
        num_samples=args.samples,
        seed=args.seed,
    )
    print(selection.format())
    print(selection.comparison[["rank", "elpd_loo", "p_loo", "elpd_diff", "dse"]].to_string())
    if len(args.ks) > 1:
        paths.append(
            _save(az.plot_compare(selection.comparison), args.out_dir / "toy_compare.png", args.dpi)
        )
    return {"fit": fit, "report": report, "selection": selection, "paths": paths}


def ratings_predictive(args: argparse.Namespace) -> dict[str, Any]:
    """NUTS on a simulated ratings matrix: predictive intervals of held-out ratings."""
    import arviz as az

    import jaxmix

    sim = jaxmix.simulate_ratings(args.users, args.items, K=3, seed=args.seed)
    X_train, test = jaxmix.holdout_split(sim.X, 0.1, seed=args.seed)
    print(f"\nratings: {args.users} users x {args.items} items, {int(test.sum())} held-out ratings")
    fit = jaxmix.fit_mcmc(
        X_train,
        args.K,
        num_chains=args.chains,
        num_warmup=args.warmup,
        num_samples=args.samples,
        seed=args.seed,
    )
    report = jaxmix.diagnose(fit, warn=False)
    entries = np.nonzero(test)
    table = jaxmix.predictive_summary(fit, X_train, 0.9, entries=entries, seed=args.seed)
    em = jaxmix.fit_em(X_train, args.K, prior=jaxmix.Prior(), n_init=5, seed=args.seed)
    plug_in = jaxmix.predictive_summary(em, X_train, 0.9, entries=entries, seed=args.seed)
    print("predictive summary of held-out ratings (90 % HDI):")
    print(table.format(max_rows=args.show))
    coverage = {"mcmc": table.coverage(sim.X), "em_plug_in": plug_in.coverage(sim.X)}
    print(
        f"share of held-out ratings inside their 90 % interval: NUTS {coverage['mcmc']:.3f}, "
        f"EM plug-in {coverage['em_plug_in']:.3f}"
    )
    idata = jaxmix.to_inference_data(fit, X_train, posterior_predictive=False)
    path = _save(
        az.plot_forest(idata, var_names=["weights", "var"], combined=True, hdi_prob=0.9),
        args.out_dir / "ratings_forest.png",
        args.dpi,
    )
    return {"fit": fit, "report": report, "table": table, "coverage": coverage, "paths": [path]}


def main(args: argparse.Namespace) -> dict[str, Any]:
    """Run both parts and save the figures.

    Args:
        args: Options from :func:`parse_args`.

    Returns:
        ``{"toy": ..., "ratings": ...}``: each a dict with the fit, the diagnostics report and
        the saved paths (plus the K selection, and the predictive table and coverages).
    """
    if args.x64:
        import jax

        jax.config.update("jax_enable_x64", True)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    return {"toy": toy_posterior(args), "ratings": ratings_predictive(args)}


if __name__ == "__main__":
    main(parse_args())

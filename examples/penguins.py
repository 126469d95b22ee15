"""Example: clustering the Palmer penguins, missing measurements and all.

The ``palmerpenguins`` package's data: four body measurements (bill length and depth, flipper
length, body mass) of 344 penguins of three species, with ``NaN`` where a measurement is missing.
The measurements are on very different scales (millimetres and grams), so the mixture is fit with
one variance per component and column (``covariance="diag"``).

* **jaxmix** (:func:`jaxmix.fit_em`) clusters *every* row: a row's missing measurements are
  integrated out of its likelihood, and a row with none observed gets the mixture weights.
* **scikit-learn** (``sklearn.mixture.GaussianMixture``, also diagonal) needs complete rows: it is
  fit on those only, and rows with a missing measurement get no cluster.

Each is scored against the species by the adjusted Rand index (1 = the species exactly, about 0 =
chance), jaxmix on all rows and on the complete rows (the rows scikit-learn sees). To see how the
two cope with more holes, ``--hide`` removes a share of the measurements at random first (default
0.1: about a third of the rows lose a measurement, and scikit-learn loses those rows). The
figure shows bill length against flipper length, coloured by jaxmix's cluster, rows with a
hidden measurement ringed.

Usage::

    python examples/penguins.py                     # 10 % of the measurements hidden
    python examples/penguins.py --hide 0.3 --restarts 10 --out penguins.png
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

COLUMNS = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line.

    Args:
        argv: Arguments (default ``sys.argv[1:]``).

    Returns:
        The parsed options.
    """
    parser = argparse.ArgumentParser(description="jaxmix vs scikit-learn on the Palmer penguins.")
    parser.add_argument("--K", type=int, default=3, help="number of clusters (default 3)")
    parser.add_argument(
        "--hide", type=float, default=0.1, help="share of measurements hidden at random (0.1)"
    )
    parser.add_argument("--restarts", type=int, default=5, help="restarts of both fits (5)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the hiding and the fits")
    parser.add_argument("--out", type=Path, default=Path("penguins.png"), help="PNG file")
    parser.add_argument("--x64", action="store_true", help="compute in float64 (default float32)")
    return parser.parse_args(argv)


def load_penguins(hide: float = 0.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The four measurements and the species, optionally with more entries hidden.

    Args:
        hide: Share of the observed measurements set to ``NaN`` at random, in ``[0, 1)``.
        seed: Seed of ``numpy.random.default_rng`` for the hiding.

    Returns:
        ``(X, species, names)``: the ``(344, 4)`` float64 measurements with ``NaN`` where
        missing, the species as integer codes ``(344,)`` and the species' names.
    """
    try:
        import palmerpenguins
    except ImportError:  # pragma: no cover - depends on the environment
        raise SystemExit("this example needs `pip install palmerpenguins`") from None
    if not 0.0 <= hide < 1.0:
        raise SystemExit(f"--hide must lie in [0, 1); got {hide}")
    frame = palmerpenguins.load_penguins()
    X = frame[COLUMNS].to_numpy(dtype=np.float64, na_value=np.nan)
    codes, names = frame["species"].factorize(sort=True)
    rng = np.random.default_rng(seed)
    X[~np.isnan(X) & (rng.random(X.shape) < hide)] = np.nan
    return X, np.asarray(codes), [str(n) for n in names]


def main(args: argparse.Namespace) -> dict[str, Any]:
    """Fit both, print the comparison and save the figure.

    Args:
        args: Options from :func:`parse_args`.

    Returns:
        ``{"n_rows", "n_complete", "ari_jaxmix", "ari_jaxmix_complete", "ari_sklearn",
        "labels"}``: the rows, the complete rows, the adjusted Rand indices (jaxmix on all
        rows, jaxmix and scikit-learn on the complete rows) and jaxmix's cluster of every row.
    """
    if args.x64:
        import jax

        jax.config.update("jax_enable_x64", True)
    from sklearn.metrics import adjusted_rand_score
    from sklearn.mixture import GaussianMixture

    import jaxmix

    X, species, names = load_penguins(args.hide, args.seed)
    complete = ~np.isnan(X).any(axis=1)
    fit = jaxmix.fit_em(X, args.K, covariance="diag", n_init=args.restarts, seed=args.seed)
    labels = np.argmax(fit.resp, axis=1)
    gm = GaussianMixture(
        args.K, covariance_type="diag", n_init=args.restarts, random_state=args.seed
    ).fit(X[complete])
    sk_labels = gm.predict(X[complete])

    out = {
        "n_rows": int(X.shape[0]),
        "n_complete": int(complete.sum()),
        "ari_jaxmix": float(adjusted_rand_score(species, labels)),
        "ari_jaxmix_complete": float(adjusted_rand_score(species[complete], labels[complete])),
        "ari_sklearn": float(adjusted_rand_score(species[complete], sk_labels)),
        "labels": labels,
    }
    n, nc = out["n_rows"], out["n_complete"]
    print(f"Palmer penguins: {n} rows, {nc} complete, {int(np.isnan(X).sum())} missing values")
    print(f"species: {', '.join(names)}; K = {args.K}, diagonal covariances")
    print(f"{'':32s} {'rows clustered':>15s} {'ARI (all)':>10s} {'ARI (complete)':>15s}")
    print(
        f"{'jaxmix fit_em (NaN allowed)':32s} {n:>15d} {out['ari_jaxmix']:>10.3f} "
        f"{out['ari_jaxmix_complete']:>15.3f}"
    )
    print(f"{'sklearn GaussianMixture':32s} {nc:>15d} {'-':>10s} {out['ari_sklearn']:>15.3f}")

    fig, ax = plt.subplots(figsize=(6, 4.5))
    shown = ~np.isnan(X[:, 0]) & ~np.isnan(X[:, 2])
    colours = np.array(plt.get_cmap("tab10").colors)[labels % 10]
    ax.scatter(X[shown, 0], X[shown, 2], c=colours[shown], s=14)
    holes = shown & ~complete
    ax.scatter(X[holes, 0], X[holes, 2], facecolors="none", edgecolors="k", s=40, lw=0.6)
    ax.set_xlabel(COLUMNS[0])
    ax.set_ylabel(COLUMNS[2])
    ax.set_title(f"jaxmix clusters (ARI {out['ari_jaxmix']:.2f}); ringed: a value missing")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=100, bbox_inches="tight")
    plt.close(fig)
    print(f"figure: {args.out}")
    return out


if __name__ == "__main__":
    main(parse_args())

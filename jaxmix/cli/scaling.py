"""``--standardize``: fit on standardised columns, report in the data's units.

A survey mixes columns of different units (age in years, income in dollars, Likert items); the
spherical and shared families give every column one variance per component, so the widest column
decides the clusters. ``--standardize`` centres every column on the mean of its training entries
and divides it by their standard deviation before EM sees it, so that each column counts alike;
every number the command prints or writes is mapped back to the data's units:

* a prediction ``m`` of column ``l`` becomes ``centre_l + scale_l m`` and its predictive standard
  deviation ``scale_l sd`` (exact: the map is affine per column);
* a log-likelihood gains ``-sum_entries log scale_l`` (the Jacobian of the map), so the report's
  log-likelihood, BIC and AIC are those of the data, comparable with a fit without the option.

A column with fewer than two training entries, or with no spread, keeps the pooled standard
deviation of all columns (1 if that is 0 too); a column with no training entry is centred on
the mean of all training entries, so that its prediction is the model's best guess in the data's
units, not 0.

The fit itself lives in the standardised units (a spherical variance there is a different
variance per column in the data's units), so ``--save-fit`` does not take it: see
:func:`check_scaling_options`.
"""

from __future__ import annotations

import argparse
from typing import Any, NamedTuple

import numpy as np

from jaxmix.data import DenseLayout, SparseRatings, as_data

__all__ = ["ColumnScaling", "check_scaling_options"]


class ColumnScaling(NamedTuple):
    """The per-column map ``z = (x - centre) / scale`` of ``--standardize``.

    Attributes:
        centre: The mean of every column's training entries, ``(d,)`` (the mean of all training
            entries for a column with none).
        scale: The standard deviation of every column's training entries, ``(d,)``, positive.
    """

    centre: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, layout: Any) -> ColumnScaling:
        """The map of a layout's observed entries (:func:`jaxmix.as_data`)."""
        summary = layout.summary()
        pooled = float(np.sqrt(summary.pooled_variance))
        fallback = pooled if pooled > 0 else 1.0
        sd = summary.column_sd()
        scale = np.where(np.isfinite(sd) & (sd > 0), sd, fallback)
        return cls(summary.column_means(), np.asarray(scale, np.float64))

    def apply(self, layout: Any) -> Any:
        """The layout's data in standardised units, as a new layout (the input is not changed)."""
        if layout.kind == DenseLayout.kind:
            X = layout.to_dense()
            return as_data((X - self.centre) / self.scale, method="dense")
        S = layout.S
        z = (S.values - self.centre[S.cols]) / self.scale[S.cols]
        return as_data(SparseRatings(S.rows, S.cols, z.astype(S.values.dtype), S.shape))

    def restore(self, cols: Any, mean: Any, sd: Any = None) -> Any:
        """Predictions of the columns ``cols`` (broadcast against ``mean``) back in the data's
        units: ``mean`` alone, or ``(mean, sd)``."""
        cols = np.asarray(cols)
        out = self.centre[cols] + self.scale[cols] * np.asarray(mean)
        if sd is None:
            return out
        return out, self.scale[cols] * np.asarray(sd)

    def log_jacobian(self, layout: Any) -> float:
        """What a log-likelihood of the standardised entries gains in the data's units:
        ``-sum_{observed (u, l)} log scale_l``."""
        return -float(np.sum(layout.summary().count * np.log(self.scale)))

    def in_data_units(self, result: Any, layout: Any) -> Any:
        """``result`` (an :class:`~jaxmix.EMResult` of the standardised ``layout``) with its
        log-likelihoods and objectives shifted into the data's units, for the report; the
        parameters stay standardised."""
        shift = self.log_jacobian(layout)
        return result._replace(
            log_likelihood=result.log_likelihood + shift,
            objective=result.objective + shift,
            restart_log_likelihoods=np.asarray(result.restart_log_likelihoods) + shift,
            restart_objectives=None
            if result.restart_objectives is None
            else np.asarray(result.restart_objectives) + shift,
            history=np.asarray(result.history) + shift,
        )


def check_scaling_options(args: argparse.Namespace) -> None:
    """Refuse ``--standardize`` where its fit cannot be kept in the data's units.

    Raises:
        ValueError: ``--standardize`` with ``--save-fit`` (the fit is in standardised units) or
            with ``--covariance factor`` (its per-row offset has a fixed loading of one in every
            column, which a per-column scale would change; the factor family already scales
            with each column).
    """
    if not getattr(args, "standardize", False):
        return
    if getattr(args, "save_fit", None):
        raise ValueError(
            "--standardize fits in standardised units, which a saved fit could not be used "
            "without; to save a fit that is unchanged by column scales use --covariance diag "
            "(or factor) without --standardize, or drop --save-fit"
        )
    if args.covariance == "factor":
        raise ValueError(
            "--standardize applies to the spherical, shared and diag families; the factor "
            "family already follows each column's scale (its per-row offset is one unit in "
            "every column): drop --standardize"
        )

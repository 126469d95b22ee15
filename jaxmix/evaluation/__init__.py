"""Evaluation: metrics and information criteria, hold-out splits and baselines, model selection,
and the EM/SVI cross-check."""

from jaxmix.evaluation.baselines import holdout_split, mean_baseline
from jaxmix.evaluation.metrics import aic, bic, n_parameters, rmse
from jaxmix.evaluation.selection import HeldoutSelection, KSelection, select_k

__all__ = [
    "HeldoutSelection",
    "KSelection",
    "aic",
    "bic",
    "holdout_split",
    "mean_baseline",
    "n_parameters",
    "rmse",
    "select_k",
]

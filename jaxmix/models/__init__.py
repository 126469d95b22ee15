"""The mixture model: its densities (:mod:`jaxmix.models.mixture`) and its NumPyro declaration
(:mod:`jaxmix.models.model`)."""

from jaxmix.models.mixture import (
    COVARIANCES,
    component_log_joint,
    covariance_of,
    log_prior,
    objective,
    row_log_likelihood,
)
from jaxmix.models.model import mixture_model

__all__ = [
    "COVARIANCES",
    "component_log_joint",
    "covariance_of",
    "log_prior",
    "mixture_model",
    "objective",
    "row_log_likelihood",
]

"""jaxmix: Gaussian mixture models for partially observed matrices, in JAX.

The public API::

    fit_em, kmeans                 fit a mixture / clustering (batched restarts, one compiled call);
                                   fit_em does maximum likelihood or MAP (prior=Prior()), with
                                   covariance="spherical" or "diag"
    Prior, log_objective           the prior (weakly informative defaults) and EM's objective
    mixture_model                  the same mixture as a NumPyro model (enumerated component)
    complete, responsibilities     fill missing entries (with predictive sd), posterior memberships
    bic, aic, n_parameters         model selection (log-likelihood scale, higher is better)
    rmse, holdout_split, mean_baseline   evaluation
    load_ratings, save_ratings     the course's text format (0 = missing)
    simulate_ratings               a ratings matrix from a planted mixture
    MixtureParams, EMResult, KMeansResult

jaxmix never changes JAX's global settings: it computes in float32 unless you enable float64 with
``jax.config.update("jax_enable_x64", True)``.
"""

from jaxmix._data import validate_matrix
from jaxmix.completion import complete, responsibilities
from jaxmix.inference.em import fit_em, log_objective
from jaxmix.inference.kmeans import kmeans
from jaxmix.io import load_ratings, save_ratings
from jaxmix.metrics import aic, bic, holdout_split, mean_baseline, n_parameters, rmse
from jaxmix.models.model import mixture_model
from jaxmix.persistence import load, save
from jaxmix.priors import Prior
from jaxmix.simulate import simulate_ratings
from jaxmix.types import EMResult, KMeansResult, MixtureParams

__version__ = "0.1.0"

__all__ = [
    "EMResult",
    "KMeansResult",
    "MixtureParams",
    "Prior",
    "aic",
    "bic",
    "complete",
    "fit_em",
    "holdout_split",
    "kmeans",
    "load",
    "load_ratings",
    "log_objective",
    "mean_baseline",
    "mixture_model",
    "n_parameters",
    "responsibilities",
    "rmse",
    "save",
    "save_ratings",
    "simulate_ratings",
    "validate_matrix",
]

"""jaxmix: Gaussian mixture models for partially observed matrices, in JAX.

The public API::

    fit_em, kmeans                 fit a mixture / clustering (batched restarts, one compiled call);
                                   fit_em does maximum likelihood or MAP (prior=Prior()), with
                                   covariance="spherical" or "diag"
    Prior, log_objective           the prior (weakly informative defaults) and EM's objective
    mixture_model                  the same mixture as a NumPyro model (enumerated component)
    fit_svi                        the same model fit by NumPyro SVI: guide="map" (the MAP/ML point
                                   EM finds) or "meanfield" (a variational posterior)
    compare_em_svi                 EM and SVI-MAP from the same start, compared (EMSVIComparison)
    fit_mcmc, MCMCResult           the full posterior by NUTS (component summed out, from MAP-EM)
    to_inference_data, diagnose    ArviZ InferenceData (posterior, per-row log-likelihood,
                                   predictive of the missing entries); r_hat/ESS/divergence report
    relabel, DiagnosticsWarning    undo label switching; the warning of a failed diagnostic
    predictive_summary             predictive mean, sd and HDI of every missing entry
    select_k                       BIC and PSIS-LOO (az.compare) over a range of K
    complete, responsibilities     fill missing entries (with predictive sd), posterior memberships
    bic, aic, n_parameters         model selection (log-likelihood scale, higher is better)
    rmse, holdout_split, mean_baseline   evaluation
    load_ratings, save_ratings     the course's text format (0 = missing)
    simulate_ratings               a ratings matrix from a planted mixture
    sparse_ratings, SparseRatings  a matrix as its observed (row, col, value) triples: fit_em,
                                   complete, the metrics accept it (O(nnz K) EM, multi-device)
    load_sparse_ratings            read triples (MovieLens ratings.csv / u.data / ratings.dat)
    simulate_sparse_ratings        sparse ratings at any size (power-law users and items)
    MixtureParams, EMResult, KMeansResult, SVIResult

jaxmix never changes JAX's global settings: it computes in float32 unless you enable float64 with
``jax.config.update("jax_enable_x64", True)``.
"""

from jaxmix._data import validate_matrix
from jaxmix.completion import complete, responsibilities
from jaxmix.crosscheck import EMSVIComparison, compare_em_svi
from jaxmix.diagnostics import DiagnosticsWarning, diagnose, relabel, to_inference_data
from jaxmix.inference.em import fit_em, log_objective
from jaxmix.inference.kmeans import kmeans
from jaxmix.inference.mcmc import fit_mcmc
from jaxmix.inference.svi import fit_svi
from jaxmix.io import load_ratings, save_ratings
from jaxmix.metrics import aic, bic, holdout_split, mean_baseline, n_parameters, rmse
from jaxmix.models.model import mixture_model
from jaxmix.persistence import load, save
from jaxmix.predictive import PredictiveSummary, predictive_summary
from jaxmix.priors import Prior
from jaxmix.selection import KSelection, select_k
from jaxmix.simulate import simulate_ratings, simulate_sparse_ratings
from jaxmix.sparse import SparseRatings, load_sparse_ratings, sparse_ratings
from jaxmix.types import EMResult, KMeansResult, MCMCResult, MixtureParams, SVIResult

__version__ = "0.1.0"

__all__ = [
    "DiagnosticsWarning",
    "EMResult",
    "EMSVIComparison",
    "KMeansResult",
    "KSelection",
    "MCMCResult",
    "MixtureParams",
    "PredictiveSummary",
    "Prior",
    "SVIResult",
    "SparseRatings",
    "aic",
    "bic",
    "compare_em_svi",
    "complete",
    "diagnose",
    "fit_em",
    "fit_mcmc",
    "fit_svi",
    "holdout_split",
    "kmeans",
    "load",
    "load_sparse_ratings",
    "load_ratings",
    "log_objective",
    "mean_baseline",
    "mixture_model",
    "n_parameters",
    "predictive_summary",
    "relabel",
    "responsibilities",
    "rmse",
    "save",
    "save_ratings",
    "select_k",
    "simulate_ratings",
    "simulate_sparse_ratings",
    "sparse_ratings",
    "to_inference_data",
    "validate_matrix",
]

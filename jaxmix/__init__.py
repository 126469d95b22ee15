"""jaxmix: Gaussian mixture models for partially observed matrices, in JAX.

The public API::

    fit_em, kmeans                 fit a mixture / clustering (batched restarts, one compiled call);
                                   fit_em does maximum likelihood or MAP (prior=Prior()), for every
                                   covariance family ("spherical", "diag", "shared") and data layout
    Prior, log_objective           the prior (weakly informative defaults) and EM's objective
    mixture_model                  the same mixture as a NumPyro model (enumerated component)
    fit_svi                        the same model fit by NumPyro SVI: guide="map" (the MAP/ML point
                                   EM finds) or "meanfield" (a variational posterior)
    compare_em_svi                 EM and SVI-MAP from the same start, compared (EMSVIComparison)
    fit_mcmc, MCMCResult           the full posterior by NUTS (component summed out, from MAP-EM)
                                   or by blocked Gibbs (kernel="gibbs")
    to_inference_data, diagnose    ArviZ InferenceData (posterior, per-row log-likelihood,
                                   predictive of the missing entries); r_hat/ESS/divergence report
    relabel, DiagnosticsWarning    undo label switching; the warning of a failed diagnostic
    DataWarning                    a fit decided by the data's scale: VarianceFloorWarning,
                                   EmptyComponentWarning, ColumnScaleWarning, ZeroAsMissingWarning
    predictive_summary             predictive mean, sd and HDI of every missing entry
    select_k                       K (and rank) by PSIS-LOO and BIC, or on held-out entries
    complete, responsibilities     fill missing entries (with predictive sd), posterior memberships
    bic, aic, n_parameters         model selection (log-likelihood scale, higher is better)
    rmse, holdout_split, mean_baseline   evaluation
    load_ratings, save_ratings     the course's text format (0 = missing)
    sample_path                    a small ratings file shipped with jaxmix (dense or triples)
    simulate_ratings               a ratings matrix from a planted mixture
    sparse_ratings, SparseRatings  a matrix as its observed (row, col, value) triples: fit_em,
                                   complete, the metrics accept it (O(nnz K) EM, multi-device)
    load_sparse_ratings            read triples (MovieLens ratings.csv / u.data / ratings.dat)
    simulate_sparse_ratings        sparse ratings at any size (power-law users and items)
    save, load                     safe persistence of any result (.npz + JSON, no pickle)
    load_ids, IdMaps               the user and item ids saved with a fit (save(..., ids=S))
    UnknownIdError                 an id not in the data (a KeyError and a ValueError)
    as_data, FAMILIES              the data layouts and the covariance families
    enable_compilation_cache       opt in to JAX's persistent compilation cache (across processes)
    MixtureParams, EMResult, KMeansResult, SVIResult

jaxmix never changes JAX's global settings: it computes in float32 unless you enable float64 with
``jax.config.update("jax_enable_x64", True)``. The package's structure is described in
ARCHITECTURE.md.
"""

from jaxmix._compilation import enable_compilation_cache
from jaxmix._validate import (
    ColumnScaleWarning,
    DataWarning,
    EmptyComponentWarning,
    VarianceFloorWarning,
    ZeroAsMissingWarning,
)
from jaxmix._version import __version__
from jaxmix.data import (
    IdMaps,
    SparseRatings,
    UnknownIdError,
    as_data,
    load_ratings,
    load_sparse_ratings,
    sample_path,
    save_ratings,
    sparse_ratings,
    validate_matrix,
)
from jaxmix.evaluation import (
    HeldoutSelection,
    KSelection,
    aic,
    bic,
    holdout_split,
    mean_baseline,
    n_parameters,
    rmse,
    select_k,
)
from jaxmix.evaluation.crosscheck import EMSVIComparison, compare_em_svi
from jaxmix.inference.em import fit_em, log_objective
from jaxmix.inference.kmeans import kmeans
from jaxmix.inference.mcmc import fit_mcmc
from jaxmix.inference.svi import fit_svi
from jaxmix.models.families import FAMILIES
from jaxmix.models.mixture import relabel
from jaxmix.models.numpyro_model import mixture_model
from jaxmix.models.prior import Prior
from jaxmix.params import MixtureParams
from jaxmix.persistence import load, load_ids, save
from jaxmix.posterior import (
    DiagnosticsWarning,
    PredictiveSummary,
    complete,
    diagnose,
    predictive_summary,
    responsibilities,
    to_inference_data,
)
from jaxmix.results import EMResult, KMeansResult, MCMCResult, SVIResult
from jaxmix.simulate import simulate_ratings, simulate_sparse_ratings

__all__ = [
    "ColumnScaleWarning",
    "DataWarning",
    "DiagnosticsWarning",
    "EmptyComponentWarning",
    "EMResult",
    "EMSVIComparison",
    "FAMILIES",
    "KMeansResult",
    "HeldoutSelection",
    "IdMaps",
    "KSelection",
    "MCMCResult",
    "MixtureParams",
    "PredictiveSummary",
    "Prior",
    "SVIResult",
    "SparseRatings",
    "UnknownIdError",
    "VarianceFloorWarning",
    "ZeroAsMissingWarning",
    "__version__",
    "aic",
    "as_data",
    "bic",
    "compare_em_svi",
    "complete",
    "diagnose",
    "enable_compilation_cache",
    "fit_em",
    "fit_mcmc",
    "fit_svi",
    "holdout_split",
    "kmeans",
    "load",
    "load_ids",
    "load_ratings",
    "load_sparse_ratings",
    "log_objective",
    "mean_baseline",
    "mixture_model",
    "n_parameters",
    "predictive_summary",
    "relabel",
    "responsibilities",
    "rmse",
    "sample_path",
    "save",
    "save_ratings",
    "simulate_ratings",
    "simulate_sparse_ratings",
    "select_k",
    "sparse_ratings",
    "to_inference_data",
    "validate_matrix",
]

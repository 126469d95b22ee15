"""The mixture model: covariance families, the prior, the density, units and relabelling, the
NumPyro model and its unconstrained coordinates.

This package only re-exports the main names of its submodules; the modules inside
``jaxmix.models`` import from one another's modules (``jaxmix.models.prior``, ...), never from
``jaxmix.models`` itself, so importing any of them has no cycle.
"""

from jaxmix.models.families import (
    COVARIANCES,
    FAMILIES,
    DiagCov,
    Family,
    SharedCov,
    SphericalCov,
    as_params,
    family_of,
    get_family,
)
from jaxmix.models.mixture import (
    match_components,
    match_responsibilities,
    objective,
    permute_components,
    relabel,
    responsibility_costs,
    to_data,
    to_internal,
)
from jaxmix.models.numpyro_model import mixture_model
from jaxmix.models.prior import Prior, log_prior, resolve_prior
from jaxmix.models.variational import constrain, sample_unconstrained, site_names, unconstrain

__all__ = [
    "COVARIANCES",
    "FAMILIES",
    "DiagCov",
    "Family",
    "Prior",
    "SharedCov",
    "SphericalCov",
    "as_params",
    "constrain",
    "family_of",
    "get_family",
    "log_prior",
    "match_components",
    "match_responsibilities",
    "mixture_model",
    "objective",
    "permute_components",
    "relabel",
    "resolve_prior",
    "responsibility_costs",
    "sample_unconstrained",
    "site_names",
    "to_data",
    "to_internal",
    "unconstrain",
]

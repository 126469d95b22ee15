"""The mixture model's densities (and, from the model issue on, its NumPyro declaration)."""

from jaxmix.models.mixture import component_log_joint, row_log_likelihood

__all__ = ["component_log_joint", "row_log_likelihood"]

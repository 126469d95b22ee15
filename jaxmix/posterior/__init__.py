"""The posterior side of a fit: completion and responsibilities, predictive summaries, ArviZ
export and diagnostics."""

from jaxmix.posterior.completion import complete, responsibilities

__all__ = ["complete", "responsibilities"]

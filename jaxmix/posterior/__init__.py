"""The posterior side of a fit: completion and responsibilities, predictive summaries, ArviZ
export and diagnostics."""

from jaxmix.posterior.completion import complete, responsibilities
from jaxmix.posterior.diagnostics import (
    DiagnosticsReport,
    DiagnosticsWarning,
    VariableDiagnostics,
    diagnose,
    to_inference_data,
)
from jaxmix.posterior.predictive import PredictiveSummary, predictive_summary

__all__ = [
    "DiagnosticsReport",
    "DiagnosticsWarning",
    "PredictiveSummary",
    "VariableDiagnostics",
    "complete",
    "diagnose",
    "predictive_summary",
    "responsibilities",
    "to_inference_data",
]

"""The mixture model."""

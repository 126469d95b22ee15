"""Inference algorithms."""

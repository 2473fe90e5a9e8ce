"""Metrics, evaluation of prediction folders, model selection from cross-validation, post-processing."""

"""Evaluation step: held-out metrics and the quality gate."""

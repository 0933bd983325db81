"""Synthetic medical-screening dataset: rare positives, several scanner types."""

"""Drift monitor: reference profiles, drift checks with Evidently semantics, and the retraining trigger."""

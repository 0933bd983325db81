"""Calibration step: fits a temperature so scores read as probabilities."""

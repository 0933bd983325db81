"""Data validation step: checks the dataset against its expectations and splits it."""

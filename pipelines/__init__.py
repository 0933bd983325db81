"""The DAGs (training, retraining, recalibrate, monitoring), their compilation and their local runs."""

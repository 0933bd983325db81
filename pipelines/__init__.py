"""Pipelines (DAGs), their compilation, local execution and the kubeloop CLI."""

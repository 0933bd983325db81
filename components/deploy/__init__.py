"""Serving and progressive delivery: the Seldon model class, request checks, deployments."""

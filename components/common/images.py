"""Container images of the steps (built from images/; pinned per overlay on the cluster)."""

IMAGE = "ghcr.io/kubeloop/kubeloop:0.1.0"
"""The main image: Python 3.11, requirements/main.lock and this package; runs every step."""

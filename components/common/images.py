"""Container images of the steps (built from images/; pinned per overlay on the cluster)."""

IMAGE = "ghcr.io/kubeloop/kubeloop:0.1.0"
"""The main image: Python 3.11, requirements/main.lock and this package; runs every step."""

SERVING_IMAGE = "ghcr.io/kubeloop/kubeloop-serving:0.1.0"
"""The serving image: Python 3.12, requirements/serving.lock (seldon-core 1.19) and this package;
runs components.deploy.seldon_model.KubeloopModel under seldon-core-microservice."""

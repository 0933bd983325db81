"""Container images of the platform: one Dockerfile per image under images/, one tag per release.

The Helm chart's values and the overlays pin these same names (a test checks they agree), and
`make images` prints the build commands.
"""

from __future__ import annotations

import os

REGISTRY = "ghcr.io/kubeloop"
VERSION = "0.1.0"

IMAGE = f"{REGISTRY}/kubeloop:{VERSION}"
"""The main image: Python 3.11, requirements/main.lock (CPU torch) and this package; runs every step."""

TRAINING_GPU_IMAGE = f"{REGISTRY}/kubeloop-cuda:{VERSION}"
"""The main image with CUDA PyTorch: the train step (and its PyTorchJob workers) when it asks for GPUs."""

SERVING_IMAGE = f"{REGISTRY}/kubeloop-serving:{VERSION}"
"""The serving image: Python 3.12, requirements/serving.lock (seldon-core 1.19) and this package;
runs components.deploy.seldon_model.KubeloopModel under seldon-core-microservice."""

OPERATOR_IMAGE = f"{REGISTRY}/kubeloop-operator:{VERSION}"
"""The operator image: kopf running operators.handlers, on requirements/main.lock and this package."""

DOCKERFILES = {
    IMAGE: "images/kubeloop/Dockerfile",
    TRAINING_GPU_IMAGE: "images/kubeloop-cuda/Dockerfile",
    SERVING_IMAGE: "images/kubeloop-serving/Dockerfile",
    OPERATOR_IMAGE: "images/kubeloop-operator/Dockerfile",
}
"""Image -> the Dockerfile that builds it (from the repository root)."""

IMAGE_ENV = "KUBELOOP_IMAGE"
"""Set on the operator and the train step: the main image, as pinned, for the pods they create."""
SERVING_IMAGE_ENV = "KUBELOOP_SERVING_IMAGE"
"""Set on the deploy step: the image of the SeldonDeployment's predictors, as pinned."""
CUDA_IMAGE_ENV = "KUBELOOP_CUDA_IMAGE"
"""Set on the GPU train step: the image of its PyTorchJob workers, as pinned."""


def step_image() -> str:
    """The main image as deployed (an overlay or the chart may pin it by digest), else IMAGE."""
    return os.environ.get(IMAGE_ENV) or IMAGE


def serving_image() -> str:
    """The serving image as deployed (pinned by an overlay or the chart), else SERVING_IMAGE."""
    return os.environ.get(SERVING_IMAGE_ENV) or SERVING_IMAGE


def training_image(gpus: int) -> str:
    """The image of a train pod: the CUDA build when it asks for GPUs."""
    if gpus:
        return os.environ.get(CUDA_IMAGE_ENV) or TRAINING_GPU_IMAGE
    return step_image()


def build_commands(git_commit: str = "$(git rev-parse HEAD)") -> list[str]:
    """`docker build` and `docker push` for every image, from the repository root."""
    lines = []
    for image, dockerfile in DOCKERFILES.items():
        lines.append(f"docker build -f {dockerfile} --build-arg GIT_COMMIT={git_commit} -t {image} .")
    lines += [f"docker push {image}" for image in DOCKERFILES]
    return lines


if __name__ == "__main__":
    print("# Build and push the kubeloop images (no Docker engine runs here); then pin the pushed")
    print("# digests in your overlay (kustomize edit set image) or the chart's images.*.digest.")
    print("\n".join(build_commands()))

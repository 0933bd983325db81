"""Real kubectl and helm binaries: the kustomize build of the manifests validates against the CRDs."""

from __future__ import annotations

import subprocess

import pytest
import yaml

from tests.conftest import REPO, tool
from tests.k8s import load_crds, validate_object

pytestmark = pytest.mark.integration


def test_kubectl_kustomize_renders_valid_pipeline_resources() -> None:
    result = subprocess.run(
        [tool("kubectl"), "kustomize", str(REPO / "manifests" / "pipelines")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    assert sorted(d["kind"] for d in docs) == ["Pipeline"] * 6 + ["PipelineVersion"] * 6
    names = {d["metadata"]["name"] for d in docs if d["kind"] == "Pipeline"}
    assert names == {
        "kubeloop-training",
        "kubeloop-training-gpu",
        "kubeloop-training-images-gpu",
        "kubeloop-recalibrate",
        "kubeloop-retraining",
        "kubeloop-monitoring",
    }
    crds = load_crds()
    for doc in docs:
        validate_object(doc, crds)


def test_helm_and_kubectl_are_the_expected_majors() -> None:
    helm = subprocess.run([tool("helm"), "version", "--short"], capture_output=True, text=True, timeout=60)
    assert helm.returncode == 0 and helm.stdout.startswith(("v3.", "v4."))
    kubectl = subprocess.run(
        [tool("kubectl"), "version", "--client"], capture_output=True, text=True, timeout=60
    )
    assert kubectl.returncode == 0 and "Client Version: v1." in kubectl.stdout

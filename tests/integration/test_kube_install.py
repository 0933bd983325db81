"""Installing kubeloop on a real API server (tests/kubecluster.py): kustomize and Helm.

What a team does first on a cluster, in the cluster guide's order, against the real kube-apiserver
with RBAC and Pod Security admission: the shared upstream CRDs (KFP, Seldon, PyTorchJob,
TrainJob) as they are, then `kubectl apply --server-side -k` of the base and each overlay,
`helm install` of the chart with its default values and each `ci/*-values.yaml`, and the
project's own resources created, listed and read back with the server's defaults.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import tool
from tests.kubecluster import SCHEMAS, ControlPlane

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
OVERLAYS = ["base", "overlays/dev", "overlays/gpu"]
VALUES = sorted(p.name for p in (REPO / "helm" / "kubeloop" / "ci").glob("*-values.yaml"))


def helm(plane: ControlPlane, *args: str) -> str:
    done = subprocess.run(
        [tool("helm"), f"--kubeconfig={plane.kubeconfig}", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return done.stdout


@pytest.fixture(scope="module")
def cluster(kube_cluster: ControlPlane) -> ControlPlane:
    kube_cluster.install_prerequisites()
    return kube_cluster


def test_the_shared_crds_install_as_they_are(cluster: ControlPlane) -> None:
    names = set(cluster.kubectl("get", "crd", "-o", "name").split())
    expected = {
        f"customresourcedefinition.apiextensions.k8s.io/{doc['metadata']['name']}"
        for path in SCHEMAS.glob("*.yaml")
        for doc in yaml.safe_load_all(path.read_text())
        if doc and doc.get("kind") == "CustomResourceDefinition"
    }
    assert expected and expected <= names


@pytest.mark.parametrize("target", OVERLAYS)
def test_kustomize_applies_server_side(cluster: ControlPlane, target: str) -> None:
    """The cluster guide's install (CRDs first, then the kustomization), twice: the second changes nothing."""
    folder = REPO / "manifests" / target
    out = cluster.apply_kustomization(folder)
    assert "serverside-applied" in out
    again = cluster.kubectl("apply", "--server-side", "-k", str(folder))
    assert "serverside-applied" in again
    rendered = [d for d in yaml.safe_load_all(cluster.kubectl("kustomize", str(folder))) if d]
    for doc in rendered:  # every object is on the server, with the labels kustomize rendered
        meta = doc["metadata"]
        where = ["-n", meta["namespace"]] if meta.get("namespace") else []
        got = json.loads(cluster.kubectl("get", _resource(doc), meta["name"], *where, "-o", "json"))
        labels = got["metadata"].get("labels", {})
        assert labels | meta.get("labels", {}) == labels, doc["kind"]


def _resource(doc: dict[str, Any]) -> str:
    """kind.group, as kubectl names a resource unambiguously (the kind alone for the core group)."""
    version = doc["apiVersion"]
    return doc["kind"].lower() + ("." + version.split("/")[0] if "/" in version else "")


@pytest.fixture(scope="module")
def installed(cluster: ControlPlane) -> ControlPlane:
    """manifests/overlays/dev applied: the kubeloop namespace, CRDs, operator and pipelines."""
    cluster.apply_kustomization(REPO / "manifests" / "overlays" / "dev")
    return cluster


def _columns(crd: dict[str, Any]) -> list[str]:
    (version,) = [v for v in crd["spec"]["versions"] if v.get("served")]
    return [c["name"].upper() for c in version["additionalPrinterColumns"] if c.get("priority", 0) == 0]


@pytest.mark.parametrize(
    ("resource", "example"),
    [("modelrollouts", "modelrollout.yaml"), ("retrainpolicies", "retrainpolicy.yaml")],
)
def test_kubectl_get_shows_the_printer_columns(installed: ControlPlane, resource: str, example: str) -> None:
    installed.kubectl("apply", "--server-side", "-f", str(REPO / "examples" / "cluster" / example))
    crd = json.loads(installed.kubectl("get", "crd", f"{resource}.kubeloop.dev", "-o", "json"))
    table = installed.kubectl("-n", "kubeloop", "get", resource).splitlines()
    header, rows = table[0].split(), table[1:]
    assert header == ["NAME", *_columns(crd)]
    name = yaml.safe_load((REPO / "examples" / "cluster" / example).read_text())["metadata"]["name"]
    assert [row.split()[0] for row in rows] == [name]


def _created(cluster: ControlPlane, kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    """Create `kind` named minimal with `spec` in kubeloop; its spec as the server stored it."""
    body = {
        "apiVersion": "kubeloop.dev/v1alpha1",
        "kind": kind,
        "metadata": {"name": "minimal", "namespace": "kubeloop"},
        "spec": spec,
    }
    cluster.kubectl("apply", "--server-side", "-f", "-", stdin=json.dumps(body))
    return dict(
        json.loads(cluster.kubectl("-n", "kubeloop", "get", kind.lower(), "minimal", "-o", "json"))["spec"]
    )


def test_a_minimal_model_rollout_reads_back_with_the_configs_defaults(installed: ControlPlane) -> None:
    """The CRD's defaults are the config's (`deployment.analysis`): what the server fills in is
    what the operator would have assumed."""
    from components.common.rollout_config import RolloutAnalysis
    from operators.crds import ANALYSIS_FIELDS
    from operators.rollout import RolloutSpec, parse_spec

    minimal = {"model": "screening", "seldonDeployment": "screening", "candidate": "3"}
    spec = _created(installed, "ModelRollout", minimal)
    # Filled in by the server: every setting with a default (the optional floors have none).
    defaulted = {
        k for k, name in ANALYSIS_FIELDS.items() if RolloutAnalysis.model_fields[name].default is not None
    }
    assert defaulted and set(spec["analysis"]) == defaulted
    assert parse_spec(spec) == RolloutSpec(model="screening", seldon_deployment="screening", candidate="3")


def test_a_minimal_retrain_policy_leaves_the_monitoring_settings_to_the_configmap(
    installed: ControlPlane,
) -> None:
    """The server fills in no monitoring setting the policy leaves out: a filled-in default would
    override the ConfigMap's own value (it did, to drift_share and retraining.deploy, before the
    CRD dropped those defaults). What the operator builds is the ConfigMap's config."""
    from components.common.config_loader import load_config
    from operators.crds import POLICY_GROUPS
    from operators.retrain import policy_config

    minimal = {
        "model": "screening",
        "config": {"configMap": "screening-config"},
        "kfpHost": "http://kfp:8888",
        "store": "s3://kubeloop",
    }
    spec = _created(installed, "RetrainPolicy", minimal)
    assert spec["config"]["key"] == "config.yaml" and spec["suspend"] is False  # the server's defaults
    assert not [group for group in POLICY_GROUPS if group in spec]
    example = REPO / "examples" / "screening" / "config.yaml"
    read_back = policy_config(spec, example.read_text(), "read back").model_dump()
    assert _differences(read_back["monitoring"], load_config(example).model_dump()["monitoring"]) == []


def _differences(got: Any, expected: Any, path: str = "") -> list[str]:
    """Where two nested dicts differ, as `path: got != expected`."""
    if isinstance(got, dict) and isinstance(expected, dict):
        keys = sorted(set(got) | set(expected), key=str)
        return [d for k in keys for d in _differences(got.get(k), expected.get(k), f"{path}.{k}")]
    return [] if got == expected else [f"{path}: {got!r} != {expected!r}"]


@pytest.mark.parametrize("values", [None, *VALUES])
def test_helm_installs_the_chart_and_uninstalls_it(cluster: ControlPlane, values: str | None) -> None:
    """`helm install` as the cluster guide says (a restricted namespace first), with the default values
    and each ci/*-values.yaml. Each release gets its own namespace and puts its pipelines there
    (pipelines.namespace): the kustomize install already owns kubeloop's pipelines in kubeflow."""
    name = "kl-" + (values or "default-values").removesuffix("-values.yaml").removesuffix("-values")
    namespace = f"helm-{name}"
    cluster.kubectl("create", "namespace", namespace)
    cluster.kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
    chart = REPO / "helm" / "kubeloop"
    extra = ["-f", str(chart / "ci" / values)] if values else []
    helm(
        cluster,
        "install",
        name,
        str(chart),
        "-n",
        namespace,
        *extra,
        "--set",
        f"pipelines.namespace={namespace}",
    )
    status = json.loads(helm(cluster, "status", name, "-n", namespace, "-o", "json"))
    assert status["info"]["status"] == "deployed"
    manifest = [d for d in yaml.safe_load_all(helm(cluster, "get", "manifest", name, "-n", namespace)) if d]
    names = [(_resource(d), d["metadata"]["name"]) for d in manifest]
    assert names
    for resource, object_name in names:  # every object of the release is on the server
        cluster.kubectl("get", resource, object_name, "-n", namespace, "-o", "name")
    helm(cluster, "uninstall", name, "-n", namespace, "--wait=false")
    kept = {  # helm.sh/resource-policy: keep (the bundled MinIO's generated credentials)
        (_resource(d), d["metadata"]["name"])
        for d in manifest
        if (d["metadata"].get("annotations") or {}).get("helm.sh/resource-policy") == "keep"
    }
    for resource, object_name in names:  # gone after the uninstall, but what the chart keeps
        gone = cluster.kubectl_run("get", resource, object_name, "-n", namespace, "-o", "name")
        assert (gone.returncode == 0) == ((resource, object_name) in kept), (
            resource,
            object_name,
            gone.stderr,
        )

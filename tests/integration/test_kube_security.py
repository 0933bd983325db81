"""Pod Security and RBAC as a real API server enforces them (tests/kubecluster.py).

Every pod kubeloop would run (from the kustomize base and overlays, the Helm chart with each
values file, the PyTorchJob of a multi-node training run, the monitor CronJob and the
SeldonDeployment's predictors) is submitted as a Pod, server-side dry run, into a namespace
that enforces the `restricted` Pod Security Standard, and must be admitted; a non-compliant
Pod must be refused (so the check can fail). RBAC is asked of the server with `kubectl auth
can-i`, as the operator's and the monitor's ServiceAccounts, both ways.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import tool
from tests.k8s import pod_spec
from tests.kubecluster import ControlPlane

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
RESTRICTED = "restricted-pods"
OPERATOR = "system:serviceaccount:kubeloop:kubeloop-operator"
MONITOR = "system:serviceaccount:kubeloop:kubeloop-monitor"


@pytest.fixture(scope="module")
def cluster(kube_cluster: ControlPlane) -> ControlPlane:
    """The prerequisites, manifests/overlays/dev applied, and the restricted namespace."""
    kube_cluster.install_prerequisites()
    kube_cluster.apply_kustomization(REPO / "manifests" / "overlays" / "dev")
    kube_cluster.kubectl("create", "namespace", RESTRICTED)
    kube_cluster.kubectl(
        "label", "namespace", RESTRICTED, "pod-security.kubernetes.io/enforce=restricted", "--overwrite"
    )
    return kube_cluster


def _docs(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def _kustomized(cluster: ControlPlane) -> dict[str, dict[str, Any]]:
    pods = {}
    for target in ("base", "overlays/dev", "overlays/gpu", "../manifests/monitor"):
        folder = (REPO / "manifests" / target).resolve()
        for obj in _docs(cluster.kubectl("kustomize", str(folder))):
            if (pod := pod_spec(obj)) is not None:
                pods[f"{folder.relative_to(REPO)}: {obj['kind']}/{obj['metadata']['name']}"] = pod
    return pods


def _charted() -> dict[str, dict[str, Any]]:
    chart = REPO / "helm" / "kubeloop"
    pods = {}
    for values in [None, *sorted((chart / "ci").glob("*-values.yaml"))]:
        extra = ["-f", str(values)] if values else []
        text = subprocess.run(
            [tool("helm"), "template", "kl", str(chart), "-n", RESTRICTED, *extra],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        ).stdout
        for obj in _docs(text):
            if (pod := pod_spec(obj)) is not None:
                label = values.name if values else "default values"
                pods[f"chart ({label}): {obj['kind']}/{obj['metadata']['name']}"] = pod
    return pods


def _rendered_by_steps() -> dict[str, dict[str, Any]]:
    """The pods the train step, the deploy step and the operator create at run time."""
    from components.common.training_config import TrainingConfig
    from components.deploy.seldondeployment import render_seldondeployment, rollout_predictors
    from components.train.pytorchjob import render_pytorchjob

    pods = {}
    job = render_pytorchjob(
        TrainingConfig(nodes=2),
        run_id="r1",
        namespace=RESTRICTED,
        image="i",
        store_uri="s3://k",
        spec_key="k",
    )
    for role, replica in job["spec"]["pytorchReplicaSpecs"].items():
        pods[f"PyTorchJob {role}"] = replica["template"]["spec"]
    for strategy in ("canary", "shadow"):
        sdep = render_seldondeployment(
            "screening", RESTRICTED, "screening", rollout_predictors(strategy, "3", "4")
        )
        for predictor in sdep["spec"]["predictors"]:
            for index, component in enumerate(predictor["componentSpecs"]):
                pods[f"SeldonDeployment {strategy} {predictor['name']}[{index}]"] = component["spec"]
    return pods


def _as_pod(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": RESTRICTED},
        "spec": spec,
    }


def _admit(cluster: ControlPlane, pod: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    # The ServiceAccount admission plugin wants it to exist (the controller manager would have
    # made `default`; none runs here).
    account = pod["spec"].get("serviceAccountName") or "default"
    cluster.kubectl("apply", "--server-side", "-f", "-", stdin=json.dumps(_account(account)))
    return cluster.kubectl_run("create", "--dry-run=server", "-f", "-", stdin=json.dumps(pod))


def _account(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": RESTRICTED}}


def test_every_pod_kubeloop_runs_is_admitted_under_restricted(cluster: ControlPlane) -> None:
    pods = {**_kustomized(cluster), **_charted(), **_rendered_by_steps()}
    kinds = {label.split(": ")[-1].split("/")[0] for label in pods}
    assert {"Deployment", "CronJob", "Pod"} <= kinds | {"Pod"} and len(pods) >= 10, sorted(pods)
    refused = {}
    for index, (label, spec) in enumerate(sorted(pods.items())):
        done = _admit(cluster, _as_pod(f"check-{index}", spec))
        if done.returncode != 0:
            refused[label] = done.stderr.strip()[-600:]
    assert not refused, "\n".join(f"{k}: {v}" for k, v in refused.items())


def test_a_pod_breaking_the_restricted_standard_is_refused(cluster: ControlPlane) -> None:
    (label, spec), *_ = sorted(_kustomized(cluster).items())
    assert _admit(cluster, _as_pod("still-fine", spec)).returncode == 0, label
    broken = json.loads(json.dumps(spec))
    broken["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True
    broken["containers"][0]["securityContext"]["runAsUser"] = 0
    done = _admit(cluster, _as_pod("broken", broken))
    assert done.returncode != 0
    assert "violates PodSecurity" in done.stderr and "allowPrivilegeEscalation" in done.stderr, done.stderr


def _can(
    cluster: ControlPlane, who: str, verb: str, resource: str, namespace: str | None = "kubeloop"
) -> bool:
    where = ["-n", namespace] if namespace else []
    done = cluster.kubectl_run("auth", "can-i", verb, resource, *where, f"--as={who}")
    answer = done.stdout.strip()
    assert answer in ("yes", "no"), done.stderr
    return answer == "yes"


def test_the_operator_may_do_what_its_role_names_and_nothing_more(cluster: ControlPlane) -> None:
    from operators.manifests import rules

    allowed = [
        (verb, f"{resource}.{rule['apiGroups'][0]}" if rule["apiGroups"][0] else resource)
        for rule in rules()
        for resource in rule["resources"]
        for verb in rule["verbs"]
    ]
    assert len(allowed) > 20
    refused_by_server = [(v, r) for v, r in allowed if not _can(cluster, OPERATOR, v, r)]
    assert not refused_by_server
    denied = [
        ("get", "secrets", "kubeloop"),
        ("list", "secrets", "kubeloop"),
        ("delete", "seldondeployments.machinelearning.seldon.io", "kubeloop"),
        ("delete", "modelrollouts.kubeloop.dev", "kubeloop"),
        ("create", "pods", "kubeloop"),
        ("get", "modelrollouts.kubeloop.dev", "default"),  # namespaced: nothing outside kubeloop
        ("create", "clusterroles.rbac.authorization.k8s.io", None),
        ("create", "namespaces", None),
        ("patch", "customresourcedefinitions.apiextensions.k8s.io", None),
    ]
    granted = [d for d in denied if _can(cluster, OPERATOR, d[0], d[1], d[2])]
    assert not granted


def test_the_monitor_has_no_api_rights(cluster: ControlPlane) -> None:
    """The monitor CronJob reads the store and calls KFP, never the Kubernetes API."""
    for verb, resource in [
        ("get", "configmaps"),
        ("get", "secrets"),
        ("list", "pods"),
        ("create", "cronjobs.batch"),
    ]:
        assert not _can(cluster, MONITOR, verb, resource), (verb, resource)


def test_the_operators_own_token_is_authorised_as_its_role(cluster: ControlPlane, tmp_path: Path) -> None:
    """A token from the TokenRequest API, used as the operator would use it: same answers."""
    token = cluster.kubectl(
        "-n", "kubeloop", "create", "token", "kubeloop-operator", "--duration=10m"
    ).strip()
    config = tmp_path / "operator.kubeconfig"
    config.write_text(yaml.safe_dump(cluster.config_for(OPERATOR, token=token)))
    me = json.loads(cluster.kubectl("auth", "whoami", "-o", "json", kubeconfig=config))
    assert me["status"]["userInfo"]["username"] == OPERATOR
    assert (
        cluster.kubectl("-n", "kubeloop", "get", "modelrollouts", "-o", "name", kubeconfig=config) is not None
    )
    refused = cluster.kubectl_run("-n", "kubeloop", "get", "secrets", kubeconfig=config)
    assert refused.returncode != 0 and "forbidden" in refused.stderr.lower(), refused.stderr


def test_the_controllers_make_the_operators_pod_and_restricted_admits_it(cluster: ControlPlane) -> None:
    """kube-controller-manager turns the operator's Deployment into a ReplicaSet and a Pod in the
    restricted kubeloop namespace: Pod Security admission judged the real pod (it stays Pending:
    no scheduler or kubelet runs here)."""
    import time

    deadline = time.monotonic() + 60
    pods: list[dict[str, Any]] = []
    while time.monotonic() < deadline and not pods:
        out = cluster.kubectl(
            "-n", "kubeloop", "get", "pods", "-l", "app.kubernetes.io/component=operator", "-o", "json"
        )
        pods = json.loads(out)["items"]
        time.sleep(0.5)
    sets = json.loads(cluster.kubectl("-n", "kubeloop", "get", "replicasets", "-o", "json"))["items"]
    failures = [
        c for rs in sets for c in rs.get("status", {}).get("conditions", []) if c["type"] == "ReplicaFailure"
    ]
    assert pods, f"no operator pod; ReplicaSet conditions: {failures}"
    assert not failures
    (pod,) = pods
    assert pod["spec"]["serviceAccountName"] == "kubeloop-operator"
    assert pod["metadata"]["ownerReferences"][0]["kind"] == "ReplicaSet"

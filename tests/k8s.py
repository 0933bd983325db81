"""Validating Kubernetes objects against the CRDs in ../shared/schemas (as a cluster would)."""

from __future__ import annotations

import copy
import functools
import re
from pathlib import Path
from typing import Any

import jsonschema
import yaml

SCHEMAS = Path(__file__).resolve().parent.parent.parent / "shared" / "schemas"


_VALIDATORS: dict[int, Any] = {}


@functools.cache
def load_crds() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> openAPIV3Schema of every served version of every shared CRD (parsed once;
    do not modify)."""
    found = {}
    for path in SCHEMAS.glob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            spec = doc["spec"]
            for version in spec["versions"]:
                if version.get("served", True):
                    key = (f"{spec['group']}/{version['name']}", spec["names"]["kind"])
                    found[key] = version["schema"]["openAPIV3Schema"]
    return found


def validate_object(obj: dict[str, Any], crds: dict[tuple[str, str], dict[str, Any]]) -> None:
    """Raise if `obj` has no matching CRD, no name, or breaks the CRD's schema."""
    key = (obj.get("apiVersion", ""), obj.get("kind", ""))
    if key not in crds:
        raise AssertionError(f"no CRD in {SCHEMAS} serves {key}")
    if not obj.get("metadata", {}).get("name"):
        raise AssertionError(f"{key} has no metadata.name")
    schema = crds[key]
    validator = _VALIDATORS.get(id(schema))
    if validator is None:  # checking a large CRD schema itself takes a second; do it once
        cls = jsonschema.validators.validator_for(schema)
        cls.check_schema(schema)
        validator = _VALIDATORS.setdefault(id(schema), cls(schema))
    error = jsonschema.exceptions.best_match(validator.iter_errors(obj))
    if error is not None:
        raise error


def apply_defaults(obj: Any, schema: dict[str, Any]) -> Any:
    """Fill schema defaults into `obj` as the API server does for a structural CRD schema."""
    if isinstance(obj, dict) and schema.get("type") == "object":
        out = dict(obj)
        for key, sub in schema.get("properties", {}).items():
            if key not in out and "default" in sub:
                out[key] = copy.deepcopy(sub["default"])
            if key in out:
                out[key] = apply_defaults(out[key], sub)
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for key in set(out) - set(schema.get("properties", {})):
                out[key] = apply_defaults(out[key], extra)
        return out
    if isinstance(obj, list) and "items" in schema:
        return [apply_defaults(item, schema["items"]) for item in obj]
    return obj


def crd_schema(crd: dict[str, Any]) -> dict[str, Any]:
    """The openAPIV3Schema of a single-version CRD."""
    (version,) = crd["spec"]["versions"]
    return dict(version["schema"]["openAPIV3Schema"])


def validate_custom(obj: dict[str, Any], crd: dict[str, Any]) -> list[str]:
    """Every schema error of `obj` against `crd` (OpenAPI v3.0 keywords: JSON Schema draft 4)."""
    schema = crd_schema(crd)
    jsonschema.Draft4Validator.check_schema(schema)
    validator = jsonschema.Draft4Validator(schema, format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER)
    return [f"{'.'.join(map(str, e.path)) or '(root)'}: {e.message}" for e in validator.iter_errors(obj)]


def validate_rendered(objects: list[dict[str, Any]], kubernetes: str = "1.35") -> None:
    """What a cluster would check on apply: our kinds against our CRDs, KFP's and Seldon's against
    the shared CRDs, every built-in kind against Kubernetes' own schemas (strict: no unknown fields)."""
    import kubernetes_validate

    from operators.crds import all_crds

    ours = {(c["spec"]["group"], c["spec"]["names"]["kind"]): c for c in all_crds()}
    shared = load_crds()
    for obj in objects:
        group = obj["apiVersion"].rsplit("/", 1)[0] if "/" in obj["apiVersion"] else ""
        where = f"{obj['kind']}/{obj['metadata']['name']}"
        if (group, obj["kind"]) in ours:
            errors = validate_custom(obj, ours[(group, obj["kind"])])
            assert errors == [], f"{where}: {errors}"
        elif (obj["apiVersion"], obj["kind"]) in shared:
            validate_object(obj, shared)
        else:
            try:
                kubernetes_validate.validate(obj, kubernetes, strict=True)
            except kubernetes_validate.ValidationError as error:
                raise AssertionError(f"{where}: {error}") from error


WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod"}
CREDENTIAL_ENV = re.compile(r"SECRET|PASSWORD|ACCESS_KEY|ROOT_USER")


def pod_spec(obj: dict[str, Any]) -> dict[str, Any] | None:
    """The pod template of a workload (the spec itself for a Pod); None for other kinds."""
    if obj["kind"] == "Pod":
        return dict(obj["spec"])
    if obj["kind"] == "CronJob":
        return dict(obj["spec"]["jobTemplate"]["spec"]["template"]["spec"])
    if obj["kind"] in WORKLOADS:
        return dict(obj["spec"]["template"]["spec"])
    return None


def assert_restricted(pod: dict[str, Any], where: str) -> int:
    """The security baseline on a pod and every container in it; returns how many containers.

    Restricted Pod Security (non-root, no privilege escalation, no capabilities, RuntimeDefault
    seccomp), a read-only root with /tmp on an emptyDir, resource requests, and credentials only
    by Secret reference.
    """
    assert pod["securityContext"]["runAsNonRoot"] is True, where
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, where
    scratch = {v["name"] for v in pod.get("volumes", []) if "emptyDir" in v}
    containers = [*pod.get("initContainers", []), *pod["containers"]]
    for container in containers:
        context = container["securityContext"]
        assert context["runAsNonRoot"] is True, where
        assert context["allowPrivilegeEscalation"] is False, where
        assert context["capabilities"] == {"drop": ["ALL"]}, where
        assert context["seccompProfile"] == {"type": "RuntimeDefault"}, where
        assert context["readOnlyRootFilesystem"] is True, where
        assert set(container["resources"]["requests"]) >= {"cpu", "memory"}, where
        tmp = [m for m in container.get("volumeMounts", []) if m["mountPath"] == "/tmp"]
        assert tmp and tmp[0]["name"] in scratch, f"{where}: a read-only root needs /tmp on an emptyDir"
        for env in container.get("env", []):
            assert "value" in env or "valueFrom" in env, f"{where}: {env['name']}"
            if CREDENTIAL_ENV.search(env["name"].upper()):
                assert "secretKeyRef" in env.get("valueFrom", {}), f"{where}: {env['name']} not from a Secret"
    return len(containers)

"""What the operator reads and writes on the cluster, behind one small interface.

The runners take a `Cluster`; the kopf handlers pass `KubeCluster` (the Kubernetes Python
client) and tests pass a recording fake, so every write a reconcile makes can be asserted.
"""

from __future__ import annotations

from typing import Any, Protocol

from operators.crds import GROUP, VERSION


class Cluster(Protocol):
    """The API calls a reconcile makes."""

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        ...

    def apply(self, obj: dict[str, Any]) -> str:
        """Create or update `obj` (its metadata names it); returns created, patched or unchanged."""
        ...

    def delete(self, api_version: str, kind: str, namespace: str, name: str) -> bool:
        """Delete the object; False when it was already gone."""
        ...

    def patch_status(self, kind: str, namespace: str, name: str, status: dict[str, Any]) -> None:
        """Merge-patch the status subresource of one of our resources."""
        ...

    def event(self, body: dict[str, Any], kind: str, reason: str, message: str) -> None:
        """Post a Kubernetes Event (Normal or Warning) about `body`."""
        ...


PLURALS = {"ModelRollout": "modelrollouts", "RetrainPolicy": "retrainpolicies"}
_BUILTIN = {
    ("v1", "ConfigMap"): ("CoreV1Api", "config_map"),
    ("batch/v1", "CronJob"): ("BatchV1Api", "cron_job"),
}


class KubeCluster:
    """Cluster through the Kubernetes Python client (in-cluster credentials, else kubeconfig)."""

    def __init__(self) -> None:
        from components.deploy.cluster import custom_objects_api

        self.custom = custom_objects_api()

    def _builtin(self, api_version: str, kind: str) -> tuple[Any, str] | None:
        found = _BUILTIN.get((api_version, kind))
        if found is None:
            return None
        from kubernetes import client

        return getattr(client, found[0])(), found[1]

    @staticmethod
    def _custom(api_version: str, kind: str) -> tuple[str, str, str]:
        group, version = api_version.split("/")
        plural = PLURALS.get(kind) or f"{kind.lower()}s"
        return group, version, plural

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        from kubernetes.client.exceptions import ApiException

        try:
            builtin = self._builtin(api_version, kind)
            if builtin is not None:
                api, noun = builtin
                obj = getattr(api, f"read_namespaced_{noun}")(name, namespace)
                return dict(api.api_client.sanitize_for_serialization(obj))
            group, version, plural = self._custom(api_version, kind)
            return dict(self.custom.get_namespaced_custom_object(group, version, namespace, plural, name))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def apply(self, obj: dict[str, Any]) -> str:
        """Create, or patch what differs (a SeldonDeployment through the deploy step's apply)."""
        from components.deploy.cluster import apply_seldondeployment

        if obj["kind"] == "SeldonDeployment":
            return apply_seldondeployment(self.custom, obj)[0]
        meta = obj["metadata"]
        live = self.get(obj["apiVersion"], obj["kind"], meta["namespace"], meta["name"])
        builtin = self._builtin(obj["apiVersion"], obj["kind"])
        if builtin is None:
            raise ValueError(f"the operator does not write {obj['kind']} objects")
        api, noun = builtin
        if live is None:
            getattr(api, f"create_namespaced_{noun}")(meta["namespace"], obj)
            return "created"
        if _contains(live, obj):
            return "unchanged"
        getattr(api, f"patch_namespaced_{noun}")(meta["name"], meta["namespace"], obj)
        return "patched"

    def delete(self, api_version: str, kind: str, namespace: str, name: str) -> bool:
        """Delete the object; False when it was already gone."""
        from kubernetes.client.exceptions import ApiException

        builtin = self._builtin(api_version, kind)
        if builtin is None:
            raise ValueError(f"the operator does not delete {kind} objects")
        api, noun = builtin
        try:
            getattr(api, f"delete_namespaced_{noun}")(name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def patch_status(self, kind: str, namespace: str, name: str, status: dict[str, Any]) -> None:
        """Merge-patch the status subresource."""
        self.custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, PLURALS[kind], name, {"status": status}
        )

    def event(self, body: dict[str, Any], kind: str, reason: str, message: str) -> None:
        """Post the Event through kopf (it batches, and names the operator as the source)."""
        import kopf

        # kopf reads only apiVersion, kind and metadata, which a plain dict body has.
        kopf.event(body, type=kind, reason=reason, message=message[:1024])  # type: ignore[arg-type]


def _contains(live: Any, wanted: Any) -> bool:
    """Whether every field of `wanted` has that value in `live` (the server adds the rest)."""
    if isinstance(wanted, dict):
        return isinstance(live, dict) and all(_contains(live.get(k), v) for k, v in wanted.items())
    if isinstance(wanted, list):
        return isinstance(live, list) and len(live) == len(wanted) and all(map(_contains, live, wanted))
    return bool(live == wanted)

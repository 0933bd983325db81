"""Cluster mode: apply a rendered SeldonDeployment with the Kubernetes Python client.

Create it when absent; otherwise merge-patch our labels and the whole `spec` (a merge patch
replaces lists, so a predictor that left the rollout leaves the cluster too), carrying the
live `resourceVersion` so that a write racing another writer is refused with 409 Conflict
and decided again on a fresh read. Applying what is already there writes nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from components.common.store import Store

GROUP, VERSION, PLURAL = "machinelearning.seldon.io", "v1", "seldondeployments"
ATTEMPTS = 6


class ApplyError(RuntimeError):
    """The cluster refused the SeldonDeployment; the message says why and what to do."""


def custom_objects_api(context: str | None = None) -> Any:
    """`components.common.cluster.custom_objects_api`, its failure as an ApplyError."""
    from components.common.cluster import NoCredentials
    from components.common.cluster import custom_objects_api as api_of

    try:
        return api_of(context)
    except NoCredentials as exc:
        raise ApplyError(str(exc)) from None


def _hint(status: int) -> str:
    return {
        401: "the credentials were rejected: refresh the kubeconfig token",
        403: "RBAC forbids it: the service account needs get, create and patch on "
        "seldondeployments.machinelearning.seldon.io in this namespace",
        404: "the SeldonDeployment CRD is not installed: install Seldon Core v1 first",
        422: "the API server or Seldon's admission webhook rejected the object",
    }.get(status, "see the API server's message")


def _unchanged(live: dict[str, Any], wanted: dict[str, Any]) -> bool:
    labels = live.get("metadata", {}).get("labels") or {}
    return live.get("spec") == wanted["spec"] and all(
        labels.get(k) == v for k, v in wanted["metadata"].get("labels", {}).items()
    )


def apply_seldondeployment(
    api: Any, sdep: dict[str, Any], sleep: Callable[[float], None] = time.sleep
) -> tuple[str, dict[str, Any]]:
    """Create or patch `sdep`; returns (what happened: created, patched or unchanged, the object).

    Raises:
        ApplyError: The API refused it (the message names the status and the fix), or the
            object kept changing under us for every attempt.
    """
    from kubernetes.client.exceptions import ApiException

    namespace, name = sdep["metadata"]["namespace"], sdep["metadata"]["name"]
    where = f"SeldonDeployment {namespace}/{name}"
    for attempt in range(ATTEMPTS):
        try:
            try:
                live = api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
            except ApiException as exc:
                if exc.status != 404:
                    raise
                return "created", api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, sdep)
            if _unchanged(live, sdep):
                return "unchanged", live
            patch = {
                "metadata": {
                    "labels": sdep["metadata"].get("labels", {}),
                    "resourceVersion": live["metadata"]["resourceVersion"],
                },
                "spec": sdep["spec"],
            }
            return "patched", api.patch_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name, patch
            )
        except ApiException as exc:
            if exc.status == 409 or exc.status in (429, 500, 503, 504):
                sleep(min(0.2 * 2**attempt, 5.0))  # changed or created meanwhile, or busy: read again
                continue
            raise ApplyError(f"{where}: {exc.status} {exc.reason}: {_hint(exc.status)}; {exc.body}") from None
    raise ApplyError(
        f"{where}: still conflicting after {ATTEMPTS} attempts; another writer keeps changing it"
    )


def apply_stored(store: Store, model: str, context: str | None = None) -> dict[str, Any]:
    """Apply the SeldonDeployment the rollout record last wrote to the store.

    Returns what happened and where: {"action", "namespace", "name"}.

    Raises:
        ApplyError: Nothing deployed yet, no credentials, or the cluster refused it.
    """
    from components.common.store import NotFoundError
    from components.deploy.rollout_store import sdep_key

    try:
        sdep = store.read_json(sdep_key(model))
    except NotFoundError:
        raise ApplyError(
            f"nothing to apply: {model} has no deployment yet (`kubeloop deploy` first)"
        ) from None
    action, live = apply_seldondeployment(custom_objects_api(context), sdep)
    meta = live.get("metadata", {})
    return {"action": action, "namespace": meta.get("namespace"), "name": meta.get("name")}

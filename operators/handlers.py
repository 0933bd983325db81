"""The kopf wiring: each handler is one call into a runner, with its errors sorted for kopf.

Handlers return nothing: kopf would store a returned value in the resource's status under the
handler's name, which the CRD's status schema does not declare (the API server prunes it, and
kopf warns about the inconsistency on every tick). What they did goes to the log.

Run it with `kopf run -m operators.handlers --namespace NS` (the operator image does). The
logic lives in the runners and the pure reconcile modules, which the tests drive directly.
"""

from __future__ import annotations

import functools
import logging
import os
import random
from collections.abc import Callable, Mapping
from typing import Any

import kopf

from components.common.images import step_image
from components.deploy.cluster import ApplyError
from operators.cluster import KubeCluster
from operators.crds import GROUP, VERSION
from operators.retrain_runner import finalize_policy, run_policy
from operators.rollout_runner import Retry, SpecProblem, finalize_rollout, run_rollout

PEERING = "kubeloop"
"""The KopfPeering object (manifests/base) through which replicas keep one of them active."""
FINALIZER = "kubeloop.dev/finalizer"
ROLLOUT_TICK_S = float(os.environ.get("KUBELOOP_ROLLOUT_TICK_SECONDS", "30"))
"""How often a rollout is looked at; the spec's analysis.interval says when a verdict is due.
KUBELOOP_ROLLOUT_TICK_SECONDS sets it (the tests' real operator looks every second)."""
POLICY_TICK_S = float(os.environ.get("KUBELOOP_POLICY_TICK_SECONDS", "120"))
"""How often a policy's status is refreshed from the monitor's state in the store
(KUBELOOP_POLICY_TICK_SECONDS)."""


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    """One active replica (mandatory peering); our own annotation prefix and finalizer."""
    settings.peering.name = PEERING
    settings.peering.mandatory = True
    # kopf pauses *every* replica when two share a priority ("Pausing all operators, including
    # self"): each replica draws its own, so the highest works and the others wait for it.
    settings.peering.priority = int(os.environ.get("KUBELOOP_OPERATOR_PRIORITY") or random.randint(1, 2**30))
    settings.peering.lifetime = int(os.environ.get("KUBELOOP_PEERING_LIFETIME_SECONDS", "60"))
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=GROUP)
    settings.posting.level = logging.INFO
    # Namespaced RBAC only: no cluster-wide scan of namespaces and CRDs (the resources are fixed).
    settings.scanning.disabled = True
    settings.execution.max_workers = 4


@functools.cache
def cluster() -> KubeCluster:
    """One API client for the process (in-cluster credentials)."""
    return KubeCluster()


def sorted_errors(call: Callable[[], Any]) -> Any:
    """Run a runner; a bad spec is permanent, everything the cluster may fix is retried."""
    try:
        return call()
    except SpecProblem as exc:
        raise kopf.PermanentError(str(exc)) from None
    except Retry as exc:
        raise kopf.TemporaryError(str(exc), delay=exc.delay) from None
    except ApplyError as exc:
        raise kopf.TemporaryError(str(exc), delay=60) from None


def rollout_owns_deployment(status: Mapping[str, Any], **_: Any) -> bool:
    """Timers run while a rollout progresses, and until its end reached the cluster; not for a
    refused spec (Failed), which only a spec change (the update handler) can mend, and not
    before the create handler started it (a timer firing on the same fresh body started it a
    second time: two Started Events, seen with a real operator)."""
    phase = status.get("phase")
    return phase == "Progressing" or (phase in ("Promoted", "RolledBack") and not status.get("applied"))


@kopf.on.resume(GROUP, VERSION, "modelrollouts")
@kopf.on.create(GROUP, VERSION, "modelrollouts")
@kopf.on.update(GROUP, VERSION, "modelrollouts", field="spec")
def rollout_changed(body: kopf.Body, logger: logging.Logger | logging.LoggerAdapter[Any], **_: Any) -> None:
    """A new or changed ModelRollout: start it (or act on the change) now."""
    logger.info("rollout: %s", sorted_errors(lambda: run_rollout(body, cluster())).action)


@kopf.timer(GROUP, VERSION, "modelrollouts", interval=ROLLOUT_TICK_S, when=rollout_owns_deployment)
def rollout_tick(body: kopf.Body, logger: logging.Logger | logging.LoggerAdapter[Any], **_: Any) -> None:
    """Analyse when the interval has passed; converge the deployment to the status."""
    logger.debug("rollout: %s", sorted_errors(lambda: run_rollout(body, cluster())).action)


@kopf.on.delete(GROUP, VERSION, "modelrollouts")
def rollout_deleted(body: kopf.Body, logger: logging.Logger | logging.LoggerAdapter[Any], **_: Any) -> None:
    """Give the deployment back to production when the rollout was still running."""
    logger.info("rollout deleted: %s", sorted_errors(lambda: finalize_rollout(body, cluster())))


@kopf.on.resume(GROUP, VERSION, "retrainpolicies")
@kopf.on.create(GROUP, VERSION, "retrainpolicies")
@kopf.on.update(GROUP, VERSION, "retrainpolicies", field="spec")
@kopf.timer(GROUP, VERSION, "retrainpolicies", interval=POLICY_TICK_S)
def policy_changed(body: kopf.Body, **_: Any) -> None:
    """Keep the monitor CronJob and the recurring run as the spec says; refresh the status."""
    sorted_errors(lambda: run_policy(body, cluster(), image=step_image()))


@kopf.on.delete(GROUP, VERSION, "retrainpolicies")
def policy_deleted(body: kopf.Body, logger: logging.Logger | logging.LoggerAdapter[Any], **_: Any) -> None:
    """Delete the recurring run; the owned CronJob and ConfigMap are garbage-collected."""
    logger.info("policy deleted: %s", sorted_errors(lambda: finalize_policy(body)))

"""The CustomResourceDefinitions of kubeloop.dev/v1alpha1: ModelRollout and RetrainPolicy.

Written to manifests/base/crds/ by `make compile` (python -m operators.manifests). The
settings a spec shares with the config (ModelRollout's `analysis`, RetrainPolicy's monitoring
groups) are derived from the config's sections (spec_schema.py): names, types, defaults,
bounds and descriptions, so a resource applied without a field behaves as the config's default.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from components.common.monitoring_config import MonitoringConfig
from components.common.rollout_config import RolloutAnalysis
from operators.spec_schema import camel, field_property, section_properties, spec_names

GROUP = "kubeloop.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
NAME = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
"""A DNS-1123 label: model, deployment and pipeline names."""
CRON = r"^(\S+\s+){4}\S+$"
"""Five cron fields (minute hour day month weekday), as both CronJob and KFP (after conversion) take."""


def _string(description: str, **extra: Any) -> dict[str, Any]:
    return {"type": "string", "description": description, **extra}


def _condition() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["type", "status"],
        "properties": {
            "type": _string("Ready or SpecValid."),
            "status": _string("True, False or Unknown.", enum=["True", "False", "Unknown"]),
            "reason": _string("One CamelCase word."),
            "message": _string("What happened, and what to fix when it is False."),
            "lastTransitionTime": _string("When status last changed.", format="date-time"),
        },
    }


def _status_common() -> dict[str, Any]:
    return {
        "observedGeneration": {"type": "integer", "description": "The spec generation last reconciled."},
        "conditions": {
            "type": "array",
            "items": _condition(),
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["type"],
        },
    }


ANALYSIS_DURATIONS = {"interval_seconds": "interval", "max_step_seconds": "maxStep"}
"""The analysis fields the spec writes as duration strings (`interval: 5m`, `maxStep: 14d`), not in
seconds (labelDelaySeconds stays a number: its default, 0, is no duration)."""
ANALYSIS_FIELDS = spec_names(RolloutAnalysis, durations=ANALYSIS_DURATIONS)
"""spec.analysis name -> `deployment.analysis` field (camelCase to the config's names)."""


def analysis_schema(section: type[RolloutAnalysis] = RolloutAnalysis) -> dict[str, Any]:
    """spec.analysis: every field of the config's `deployment.analysis` (`section`), derived from it."""
    properties = section_properties(section, durations=ANALYSIS_DURATIONS)
    first = ANALYSIS_DURATIONS["interval_seconds"]  # the interval leads, as in the examples
    return {
        "type": "object",
        "default": {},
        "description": " ".join((section.__doc__ or "").split()),
        "properties": {first: properties.pop(first), **properties},
    }


def _history_entry() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["time", "action"],
        "properties": {
            "time": _string("When.", format="date-time"),
            "action": _string(
                "What the verdict did.", enum=["start", "hold", "step", "promote", "rollback", "abort"]
            ),
            "weight": {"type": "integer", "description": "The candidate's traffic share after it."},
            "reason": _string("Why, one line per check that decided it."),
            "count": {"type": "integer", "description": "Holds in a row (one entry per run of holds)."},
            "evidence": {
                "type": "array",
                "description": "Each judged check: its estimate, always-valid bounds, limit and rows.",
                "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            },
            "needs": {
                "type": "object",
                "description": "What a hold waited for: labeled rows and positives needed and had.",
                "x-kubernetes-preserve-unknown-fields": True,
            },
        },
    }


def model_rollout_crd() -> dict[str, Any]:
    """ModelRollout: one candidate version stepped into a SeldonDeployment on live analysis."""
    spec = {
        "type": "object",
        "required": ["model", "seldonDeployment", "candidate"],
        "properties": {
            "model": _string(
                "Registered model name (models/<model>/ in the store).", pattern=NAME, maxLength=63
            ),
            "seldonDeployment": _string(
                "The SeldonDeployment (same namespace) that serves the model; the deploy step creates it.",
                pattern=NAME,
                maxLength=63,
            ),
            "candidate": _string("The registered version to roll out.", pattern=r"^[0-9]+$"),
            "strategy": _string(
                "shadow (mirrored, answers nobody), canary (weighted steps), replace (at once) or "
                "shadow-canary (a shadow, then the canary's steps once its verdict is promote).",
                enum=["shadow", "canary", "replace", "shadow-canary"],
                default="canary",
            ),
            "steps": {
                "type": "array",
                "description": "Canary weights in percent, increasing; reaching 100 promotes.",
                "items": {"type": "integer", "minimum": 1, "maximum": 100},
                "minItems": 1,
                "maxItems": 10,
                "default": [10, 50, 100],
            },
            "analysis": analysis_schema(),
            "paused": {
                "type": "boolean",
                "default": False,
                "description": "Hold at the current weight: no analysis, no step.",
            },
            "store": _string(
                "Store with the registry and the request logs (default: the SeldonDeployment's log_uri).",
                pattern=r"^(s3://|/)",
            ),
        },
    }
    status = {
        "type": "object",
        "properties": {
            "phase": _string(
                "Progressing, Promoted, RolledBack, or Failed (a bad spec: see conditions).",
                enum=["Progressing", "Promoted", "RolledBack", "Failed"],
            ),
            "candidate": _string("The version this status is about."),
            "production": _string("The version serving main when the rollout started."),
            "strategy": _string("The strategy the rollout started with."),
            "steps": {"type": "array", "items": {"type": "integer"}},
            "step": {"type": "integer", "description": "Index of the current weight in steps."},
            "weight": {"type": "integer", "description": "The candidate's traffic share now."},
            "startedAt": _string("When the rollout started.", format="date-time"),
            "lastAnalysisAt": _string("When the last verdict was taken.", format="date-time"),
            "lastVerdict": _string("promote, hold or rollback.", enum=["promote", "hold", "rollback"]),
            "lastReason": _string("Why, from the last verdict."),
            "checks": {
                "type": "array",
                "description": "Every check of the last verdict with its numbers.",
                "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            },
            "needs": {
                "type": "object",
                "description": "The labeled evidence a held step still needs (the power calculation): "
                "labeled_rows, positives, have_rows, have_positives, requests, eta_seconds.",
                "x-kubernetes-preserve-unknown-fields": True,
            },
            "history": {"type": "array", "maxItems": 100, "items": _history_entry()},
            "applied": {
                "type": "boolean",
                "description": "Whether the SeldonDeployment and the registry stages follow this status yet.",
            },
            **_status_common(),
        },
    }
    columns = [
        ("Model", "string", ".spec.model", 0),
        ("Candidate", "string", ".spec.candidate", 0),
        ("Strategy", "string", ".spec.strategy", 1),
        ("Phase", "string", ".status.phase", 0),
        ("Weight", "integer", ".status.weight", 0),
        ("Verdict", "string", ".status.lastVerdict", 0),
        ("Reason", "string", ".status.lastReason", 1),
    ]
    return _crd("ModelRollout", "modelrollouts", ["mro"], spec, status, columns)


POLICY_GROUPS: dict[str, tuple[str, ...]] = {
    "logs": ("predictors",),
    "drift": ("window", "late_seconds", "min_rows", "drift_share", "prediction_drift", "features"),
    "check": ("schedule",),
    "trigger": ("trigger.on", "trigger.cooldown_minutes", "trigger.max_runs_per_day", "trigger.dry_run"),
    "retraining": (
        "trigger.pipeline_version",
        "trigger.experiment",
        "retraining.traffic_window",
        "retraining.traffic_share",
        "retraining.min_traffic_rows",
        "retraining.deploy",
        "retraining.split",
        "retraining.schedule",
        "retraining.warm_start",
        "retraining.warm_start_epochs",
        "retraining.warm_start_learning_rate",
    ),
}
"""Where each RetrainPolicy spec group's settings live in the config's `monitoring` section
(dotted paths); a setting's spec name is its last part in camelCase. Each property is derived
from the config field; `monitoring.performance` is set in the ConfigMap only."""
POLICY_REFINEMENTS: dict[str, dict[str, Any]] = {
    "logs.predictors": {"minItems": 1, "items": {"type": "string", "pattern": NAME}},
    "check.schedule": {"pattern": CRON},
    "retraining.schedule": {"pattern": CRON},
}
"""What the cluster checks beyond the config field (spec group.name -> extra schema keywords)."""


def monitoring_field(path: str) -> tuple[type[BaseModel], str]:
    """The section class and field name of a dotted path under the config's `monitoring`."""
    section: type[BaseModel] = MonitoringConfig
    *parents, name = path.split(".")
    for parent in parents:
        section = section.model_fields[parent].annotation  # type: ignore[assignment]
    return section, name


def policy_fields() -> dict[str, dict[str, str]]:
    """Spec group -> camelCase name -> dotted path under `monitoring`."""
    return {
        group: {camel(path.rsplit(".", 1)[-1]): path for path in paths}
        for group, paths in POLICY_GROUPS.items()
    }


def policy_group(group: str) -> dict[str, dict[str, Any]]:
    """The CRD properties of one spec group, each derived from its config field.

    None carries a `default`: the API server fills in declared defaults, and a filled-in value
    would override the ConfigMap's own `monitoring` setting (a real server did exactly that to
    drift_share and retraining.deploy). An unset field means "the ConfigMap's value", which
    the description says, with the config's default.
    """
    out = {}
    for key, path in policy_fields()[group].items():
        section, name = monitoring_field(path)
        prop = {**field_property(section, name), **POLICY_REFINEMENTS.get(f"{group}.{key}", {})}
        default = prop.pop("default", None)
        fallback = "" if default in (None, {}) else f", else {json.dumps(default)}"
        prop["description"] += f" Unset: the ConfigMap's monitoring.{path}{fallback}."
        out[key] = prop
    return out


def retrain_policy_crd() -> dict[str, Any]:
    """RetrainPolicy: a model's drift monitor (a CronJob), its trigger and scheduled retraining."""
    spec = {
        "type": "object",
        "required": ["model", "config", "kfpHost"],
        "properties": {
            "model": _string("Registered model name; must be the config's name.", pattern=NAME, maxLength=63),
            "config": {
                "type": "object",
                "description": "The project config (dataset, serving) in a ConfigMap; no credentials in it.",
                "required": ["configMap"],
                "properties": {
                    "configMap": _string("ConfigMap name (same namespace).", pattern=NAME),
                    "key": _string("Key holding the YAML.", default="config.yaml"),
                },
            },
            "store": _string(
                "Artifact store with the reference profiles and the request logs (default: the config's).",
                pattern=r"^s3://",
            ),
            "kfpHost": _string("Kubeflow Pipelines API the retraining runs start on.", pattern=r"^https?://"),
            "logs": {
                "type": "object",
                "description": "Which request logs (logs/<model>/<predictor>/) are live traffic.",
                "properties": policy_group("logs"),
            },
            "drift": {
                "type": "object",
                "description": "How each window of traffic is compared with the production profile.",
                "properties": policy_group("drift"),
            },
            "check": {
                "type": "object",
                "properties": {
                    **policy_group("check"),
                    "image": _string("Monitor image (default: the operator's kubeloop image)."),
                },
            },
            "trigger": {"type": "object", "properties": policy_group("trigger")},
            "retraining": {"type": "object", "properties": policy_group("retraining")},
            "suspend": {"type": "boolean", "default": False, "description": "Suspend the monitor CronJob."},
        },
    }
    status = {
        "type": "object",
        "properties": {
            "cronJob": _string("The monitor CronJob this policy owns."),
            "recurringRun": _string("The KFP recurring run id of spec.retraining.schedule."),
            "lastCheckAt": _string("End of the last window the monitor decided.", format="date-time"),
            "lastWindow": _string("That window's name."),
            "lastVerdict": _string("none, skip, trigger or dry_run."),
            "lastReason": _string("Why."),
            "lastFindings": {"type": "array", "items": {"type": "string"}},
            "lastTriggeredRun": _string("Run id of the last retraining run the monitor started."),
            "lastTriggeredAt": _string("When.", format="date-time"),
            "lastTriggeredStatus": _string("starting, started or dry_run."),
            **_status_common(),
        },
    }
    columns = [
        ("Model", "string", ".spec.model", 0),
        ("Schedule", "string", ".spec.check.schedule", 1),
        ("Last-Check", "date", ".status.lastCheckAt", 0),
        ("Verdict", "string", ".status.lastVerdict", 0),
        ("Last-Run", "string", ".status.lastTriggeredRun", 0),
        ("Reason", "string", ".status.lastReason", 1),
    ]
    return _crd("RetrainPolicy", "retrainpolicies", ["rtp"], spec, status, columns)


def _crd(
    kind: str,
    plural: str,
    short: list[str],
    spec: dict[str, Any],
    status: dict[str, Any],
    columns: list[tuple[str, str, str, int]],
) -> dict[str, Any]:
    printer = [
        {"name": name, "type": kind_, "jsonPath": path, **({"priority": p} if p else {})}
        for name, kind_, path, p in columns
    ]
    printer.append({"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"})
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{plural}.{GROUP}",
            "labels": {"app.kubernetes.io/name": "kubeloop", "app.kubernetes.io/part-of": "kubeloop"},
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": short,
                "categories": ["kubeloop"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": printer,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": spec,
                                "status": status,
                            },
                        }
                    },
                }
            ],
        },
    }


def kopf_peering_crd() -> dict[str, Any]:
    """kopf's KopfPeering (kopf.dev/v1): replicas of the operator find each other; one is active."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "kopfpeerings.kopf.dev"},
        "spec": {
            "group": "kopf.dev",
            "scope": "Namespaced",
            "names": {"kind": "KopfPeering", "plural": "kopfpeerings", "singular": "kopfpeering"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                            },
                        }
                    },
                }
            ],
        },
    }


def all_crds() -> list[dict[str, Any]]:
    """Every CRD the operator needs, in apply order."""
    return [model_rollout_crd(), retrain_policy_crd(), kopf_peering_crd()]

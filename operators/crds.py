"""The CustomResourceDefinitions of kubeloop.dev/v1alpha1: ModelRollout and RetrainPolicy.

Written to manifests/base/crds/ by `make compile` (python -m operators.manifests); the schema
defaults come from the same settings classes the local mode uses, so a resource applied
without a field behaves as the config's default.
"""

from __future__ import annotations

from typing import Any

from components.common.config import RolloutAnalysis
from components.common.monitoring_config import DURATION, MonitoringConfig

GROUP = "kubeloop.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
NAME = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
"""A DNS-1123 label: model, deployment and pipeline names."""
CRON = r"^(\S+\s+){4}\S+$"
"""Five cron fields (minute hour day month weekday), as both CronJob and KFP (after conversion) take."""


def _string(description: str, **extra: Any) -> dict[str, Any]:
    return {"type": "string", "description": description, **extra}


def _number(description: str, default: float, **extra: Any) -> dict[str, Any]:
    return {"type": "number", "description": description, "default": default, **extra}


def _integer(description: str, default: int, **extra: Any) -> dict[str, Any]:
    return {"type": "integer", "description": description, "default": default, **extra}


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


def analysis_schema() -> dict[str, Any]:
    """spec.analysis: the thresholds of components.deploy.analysis, with the config's defaults."""
    d = RolloutAnalysis()
    return {
        "type": "object",
        "default": {},
        "description": "When the candidate is promoted, held or rolled back (request logs and labels).",
        "properties": {
            "interval": _string(
                "How often the operator analyses and steps, such as 60s or 5m.",
                default="1m",
                pattern=DURATION,
            ),
            "minRequests": _integer(
                "Requests each side needs before any verdict; fewer: hold.", d.min_requests, minimum=1
            ),
            "alpha": _number(
                "Significance level of the error-rate and latency tests.",
                d.alpha,
                exclusiveMinimum=True,
                minimum=0,
                maximum=0.5,
            ),
            "maxErrorIncrease": _number(
                "Largest tolerated rise of the 5xx rate over main.",
                d.max_error_increase,
                minimum=0,
                maximum=1,
            ),
            "maxP50Ratio": _number(
                "Largest tolerated candidate/main median latency.", d.max_p50_ratio, minimum=1
            ),
            "maxP99Ratio": _number(
                "Largest tolerated candidate/main tail latency.", d.max_p99_ratio, minimum=1
            ),
            "minLatencyIncreaseMs": _number(
                "A latency rise smaller than this is never a regression.",
                d.min_latency_increase_ms,
                minimum=0,
            ),
            "maxPsi": _number(
                "Largest tolerated PSI of the candidate's scores against main's.", d.max_psi, minimum=0
            ),
            "minAgreement": _number(
                "Shadow: smallest share of paired rows with main's decision.",
                d.min_agreement,
                minimum=0,
                maximum=1,
            ),
            "minCorrelation": _number(
                "Shadow: smallest correlation of paired probabilities.",
                d.min_correlation,
                minimum=-1,
                maximum=1,
            ),
            "minLabeled": _integer(
                "Labeled rows (labels/<model>/ in the store) before ROC AUC and the floors judge.",
                d.min_labeled,
                minimum=1,
            ),
            "minLabeledPositives": _integer(
                "Positive labels among them before recall and specificity judge.",
                d.min_labeled_positives,
                minimum=1,
            ),
            "maxAucDrop": _number(
                "Largest tolerated drop of ROC AUC below main's on labeled rows.",
                d.max_auc_drop,
                minimum=0,
                maximum=1,
            ),
            "minRecall": {
                "type": "number",
                "minimum": 0,
                "maximum": 1,
                "description": "Smallest recall of the candidate on labeled rows (unset: not judged).",
            },
            "minSpecificity": {
                "type": "number",
                "minimum": 0,
                "maximum": 1,
                "description": "Smallest specificity of the candidate on labeled rows (unset: not judged).",
            },
        },
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
                "shadow-canary (a shadow, then the canary's steps once it agrees).",
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


def retrain_policy_crd() -> dict[str, Any]:
    """RetrainPolicy: a model's drift monitor (a CronJob), its trigger and scheduled retraining."""
    m = MonitoringConfig()
    feature = {
        "type": "object",
        "properties": {
            "test": _string(
                "Drift test (default: Evidently's choice by column type).",
                enum=["ks", "chisquare", "z", "wasserstein", "jensenshannon"],
            ),
            "threshold": {"type": "number", "exclusiveMinimum": True, "minimum": 0},
            "ignore": {"type": "boolean"},
        },
    }
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
                "default": {},
                "description": "Which request logs (logs/<model>/<predictor>/) are live traffic.",
                "properties": {
                    "predictors": {
                        "type": "array",
                        "items": {"type": "string", "pattern": NAME},
                        "minItems": 1,
                        "default": list(m.predictors),
                    }
                },
            },
            "drift": {
                "type": "object",
                "default": {},
                "description": "How each window of traffic is compared with the production profile.",
                "properties": {
                    "window": _string("Window length.", default=m.window, pattern=DURATION),
                    "lateSeconds": _number("Wait this long after a window ends.", m.late_seconds, minimum=0),
                    "minRows": _integer("Rows a window needs for a verdict.", m.min_rows, minimum=1),
                    "driftShare": _number(
                        "Share of drifted features that is data drift.",
                        m.drift_share,
                        exclusiveMinimum=True,
                        minimum=0,
                        maximum=1,
                    ),
                    "predictionDrift": {"type": "boolean", "default": m.prediction_drift},
                    "features": {"type": "object", "additionalProperties": feature},
                },
            },
            "check": {
                "type": "object",
                "default": {},
                "properties": {
                    "schedule": _string(
                        "Cron schedule (UTC) of the monitor passes.", default=m.schedule, pattern=CRON
                    ),
                    "image": _string("Monitor image (default: the operator's kubeloop image)."),
                },
            },
            "trigger": {
                "type": "object",
                "default": {},
                "properties": {
                    "on": {
                        "type": "array",
                        "items": {
                            "type": "string",
                            "enum": ["data_drift", "prediction_drift", "performance"],
                        },
                        "default": list(m.trigger.on),
                    },
                    "cooldownMinutes": _integer(
                        "No new run this soon after the last.", m.trigger.cooldown_minutes, minimum=0
                    ),
                    "maxRunsPerDay": _integer(
                        "At most this many runs a day.", m.trigger.max_runs_per_day, minimum=0
                    ),
                    "dryRun": {"type": "boolean", "default": False, "description": "Decide, start nothing."},
                },
            },
            "retraining": {
                "type": "object",
                "default": {},
                "properties": {
                    "pipelineVersion": _string(
                        "Pinned retraining pipeline version id (default: the newest)."
                    ),
                    "experiment": _string("KFP experiment of the runs.", default=m.trigger.experiment),
                    "schedule": _string(
                        "Cron schedule (UTC) of retraining regardless of drift (a KFP recurring run).",
                        pattern=CRON,
                    ),
                    "deploy": _string(
                        "How the retrained version goes out.",
                        enum=["shadow", "canary", "shadow-canary", "none"],
                        default="shadow",
                    ),
                    "trafficWindow": _string(
                        "Served rows this recent join the training data.",
                        default=m.retraining.traffic_window,
                        pattern=DURATION,
                    ),
                    "trafficShare": _number(
                        "Largest share of training rows from traffic.",
                        m.retraining.traffic_share,
                        minimum=0,
                        maximum=1,
                    ),
                    "split": _string(
                        "Split of the retraining set (default: the dataset's); random puts the new "
                        "traffic in every split, temporal in the held-out ones only.",
                        enum=["random", "temporal", "group"],
                    ),
                    "warmStart": {
                        "type": "boolean",
                        "default": m.retraining.warm_start,
                        "description": "Start the retrained model from the production version's weights.",
                    },
                },
            },
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

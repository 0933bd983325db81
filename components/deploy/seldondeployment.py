"""Rendering a SeldonDeployment (machinelearning.seldon.io/v1) and checking Seldon's admission rules.

Each predictor runs the serving image with `components.deploy.seldon_model.KubeloopModel`,
which fetches its registered version from the store (`model_uri`) and writes request logs
per predictor. A canary is a second predictor with a traffic weight; a shadow is a predictor
with `shadow: true`, which receives a copy of every request and answers nobody.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from components.common.cluster import restricted_container_security, store_env
from components.common.config import ServingConfig
from components.common.images import serving_image
from components.deploy.model_metrics import PORT as METRICS_PORT

MODEL_CLASS = "components.deploy.seldon_model.KubeloopModel"
WORKER_THREADS_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
"""One compute thread per gunicorn worker: the workers are the parallelism, and a BLAS pool in
each forked worker fights the others for the cores (a numpy dot in the request path ran 5x
slower under load with OpenBLAS's default threads)."""

CONTAINER = "model"
"""The graph node and its container share this name: Seldon matches them by name."""


@dataclass(frozen=True)
class Predictor:
    """One predictor: a registered version and how much traffic it gets."""

    name: str
    version: str
    traffic: int = 100
    shadow: bool = False


@dataclass(frozen=True)
class ServingSettings:
    """What every predictor pod shares."""

    store_uri: str = "s3://kubeloop"
    image: str = field(default_factory=serving_image)
    cpu: str = "500m"
    memory: str = "1Gi"
    cpu_limit: str = "2"
    memory_limit: str = "2Gi"
    flush_rows: int = 1000
    flush_seconds: float = 5.0
    max_rows: int = 10_000
    max_request_bytes: int = 64 * 2**20
    request_timeout_seconds: float = 60.0
    sample_share: float = 0.0
    retention_days: int | None = None
    workers: int = 2
    replicas: int = 1
    seldon_logger_url: str | None = None
    labels: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_config(cls, store_uri: str, serving: ServingConfig) -> ServingSettings:
        """Settings from the config's deployment.serving section."""
        return cls(store_uri=store_uri, **serving.model_dump())


def _parameters(model: str, predictor: Predictor, settings: ServingSettings) -> list[dict[str, str]]:
    values: list[tuple[str, str, str]] = [
        ("model_uri", f"{settings.store_uri.rstrip('/')}/models/{model}/{predictor.version}", "STRING"),
        ("model_version", predictor.version, "STRING"),
        ("predictor", predictor.name, "STRING"),
        ("log_uri", settings.store_uri, "STRING"),
        ("flush_rows", str(settings.flush_rows), "INT"),
        ("flush_seconds", str(settings.flush_seconds), "FLOAT"),
        ("max_rows", str(settings.max_rows), "INT"),
        ("max_request_bytes", str(settings.max_request_bytes), "INT"),
        ("sample_share", str(settings.sample_share), "FLOAT"),
        ("retention_days", str(settings.retention_days or 0), "INT"),
    ]
    return [{"name": name, "value": value, "type": kind} for name, value, kind in values]


def _annotations(settings: ServingSettings) -> dict[str, str]:
    """Seldon's request limits: large image batches need more time and bigger messages than
    its defaults (the executor's and the model's)."""
    milliseconds = str(round(settings.request_timeout_seconds * 1000))
    return {
        "seldon.io/rest-timeout": milliseconds,
        "seldon.io/grpc-timeout": milliseconds,
        "seldon.io/grpc-max-message-size": str(settings.max_request_bytes),
    }


def _labels(model: str, predictor: Predictor, settings: ServingSettings) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "kubeloop-serving",
        "app.kubernetes.io/part-of": "kubeloop",
        "kubeloop.dev/model": model,
        "kubeloop.dev/version": predictor.version,
        "kubeloop.dev/predictor": predictor.name,
        **settings.labels,
    }


def _predictor(model: str, predictor: Predictor, settings: ServingSettings) -> dict[str, Any]:
    container = {
        "name": CONTAINER,
        "image": settings.image,
        "securityContext": restricted_container_security(),
        "resources": {
            "requests": {"cpu": settings.cpu, "memory": settings.memory},
            "limits": {"cpu": settings.cpu_limit, "memory": settings.memory_limit},
        },
        "env": [
            {"name": "MODEL_NAME", "value": MODEL_CLASS},  # what the image's entrypoint serves
            {"name": "SERVICE_TYPE", "value": "MODEL"},
            {"name": "GUNICORN_WORKERS", "value": str(settings.workers)},
            *({"name": k, "value": v} for k, v in WORKER_THREADS_ENV.items()),
            *store_env(),
        ],
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],  # the model files land here
        # kubeloop's own /metrics (Seldon's port 6000 serves Seldon's): scrape it with a PodMonitor
        "ports": [{"name": "model-metrics", "containerPort": METRICS_PORT, "protocol": "TCP"}],
    }
    body: dict[str, Any] = {
        "name": predictor.name,
        "replicas": settings.replicas,
        "labels": _labels(model, predictor, settings),
        "componentSpecs": [
            {
                "metadata": {"labels": _labels(model, predictor, settings)},
                "spec": {
                    "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [container],
                    "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}}],
                },
            }
        ],
        "graph": {
            "name": CONTAINER,
            "type": "MODEL",
            "endpoint": {"type": "REST"},
            "parameters": _parameters(model, predictor, settings),
            "children": [],
        },
    }
    if settings.seldon_logger_url:
        body["graph"]["logger"] = {"mode": "all", "url": settings.seldon_logger_url}
    if predictor.shadow:
        body["shadow"] = True
    else:
        body["traffic"] = predictor.traffic
    return body


def render_seldondeployment(
    name: str,
    namespace: str,
    model: str,
    predictors: list[Predictor],
    settings: ServingSettings | None = None,
) -> dict[str, Any]:
    """The SeldonDeployment for `predictors` of registered `model`.

    Raises:
        ValueError: The predictors break one of Seldon's admission rules (see `admission_errors`).
    """
    settings = settings or ServingSettings()
    sdep = {
        "apiVersion": "machinelearning.seldon.io/v1",
        "kind": "SeldonDeployment",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/part-of": "kubeloop", "kubeloop.dev/model": model},
        },
        "spec": {
            "name": name,
            "protocol": "seldon",
            "annotations": _annotations(settings),
            "predictors": [_predictor(model, p, settings) for p in predictors],
        },
    }
    errors = admission_errors(sdep)
    if errors:
        raise ValueError("SeldonDeployment would be rejected: " + "; ".join(errors))
    return sdep


def admission_errors(sdep: dict[str, Any]) -> list[str]:
    """What Seldon Core v1's admission webhook would reject, beyond the CRD schema."""
    predictors = sdep.get("spec", {}).get("predictors", [])
    errors: list[str] = []
    names = [p.get("name") for p in predictors]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        errors.append(f"predictor names repeat: {duplicates}")
    shadows = [p for p in predictors if p.get("shadow")]
    serving = [p for p in predictors if not p.get("shadow")]
    if len(shadows) > 1:
        errors.append(f"{len(shadows)} shadow predictors; at most one is allowed")
    if shadows and not serving:
        errors.append("a shadow cannot be the only predictor: nothing would answer")
    if len(serving) > 1:
        total = sum(int(p.get("traffic", 0)) for p in serving)
        if total != 100:
            errors.append(f"traffic over the non-shadow predictors sums to {total}, not 100")
    elif len(serving) == 1 and 0 < int(serving[0].get("traffic", 0)) < 100:
        errors.append(f"a single predictor cannot take {serving[0]['traffic']}% of traffic: use 0 or 100")
    for predictor in predictors:
        containers = {
            c.get("name")
            for spec in predictor.get("componentSpecs", [])
            for c in spec.get("spec", {}).get("containers", [])
        }
        for unit in _units(predictor.get("graph", {})):
            if unit.get("name") not in containers and not unit.get("implementation"):
                errors.append(
                    f"predictor {predictor.get('name')}: graph unit {unit.get('name')!r} has no container "
                    "of that name and no implementation"
                )
    return errors


def _units(node: dict[str, Any]) -> list[dict[str, Any]]:
    return [node, *(unit for child in node.get("children", []) for unit in _units(child))]


def rollout_predictors(
    strategy: str, production: str | None, candidate: str, canary_weight: int = 10
) -> list[Predictor]:
    """The predictors of a rollout step: main (production) plus the candidate as canary or shadow.

    Args:
        strategy: shadow, canary or replace.
        production: The version serving now, or None before the first deployment.
        candidate: The version being rolled out.
        canary_weight: The canary's share of traffic (canary strategy).
    """
    if production is None or production == candidate or strategy == "replace" or canary_weight >= 100:
        return [Predictor("main", candidate, traffic=100)]
    if strategy == "shadow":
        return [Predictor("main", production, traffic=100), Predictor("shadow", candidate, shadow=True)]
    if strategy == "canary":
        return [
            Predictor("main", production, traffic=100 - canary_weight),
            Predictor("canary", candidate, traffic=canary_weight),
        ]
    raise ValueError(f"unknown strategy {strategy!r}; use shadow, canary or replace")


STANDARD_LABELS = ("app.kubernetes.io/name", "app.kubernetes.io/part-of", "kubeloop.dev/model")


def settings_of(sdep: dict[str, Any]) -> tuple[str, ServingSettings]:
    """The model and the ServingSettings a SeldonDeployment was rendered with (render's inverse).

    The operator re-renders a live deployment at each rollout step from these, so a step keeps
    whatever image, resources and store the deploy step chose.

    Raises:
        ValueError: The deployment was not rendered by kubeloop (no main predictor with the
            kubeloop model container), so its settings cannot be read back.
    """
    name = sdep.get("metadata", {}).get("name", "?")
    predictors = [p for p in sdep.get("spec", {}).get("predictors", []) if not p.get("shadow")]
    main = next((p for p in predictors if p.get("name") == "main"), predictors[0] if predictors else None)
    try:
        assert main is not None
        container = next(
            c for c in main["componentSpecs"][0]["spec"]["containers"] if c.get("name") == CONTAINER
        )
        params = {p["name"]: p["value"] for p in main["graph"]["parameters"]}
        env = {e["name"]: e.get("value") for e in container.get("env", [])}
        resources = container.get("resources", {})
        defaults = ServingSettings()
        labels = {
            k: v
            for k, v in main.get("labels", {}).items()
            if k not in STANDARD_LABELS
            and not k.startswith(("kubeloop.dev/version", "kubeloop.dev/predictor"))
        }
        settings = ServingSettings(
            store_uri=params["log_uri"],
            image=container["image"],
            cpu=resources.get("requests", {}).get("cpu", defaults.cpu),
            memory=resources.get("requests", {}).get("memory", defaults.memory),
            cpu_limit=resources.get("limits", {}).get("cpu", defaults.cpu_limit),
            memory_limit=resources.get("limits", {}).get("memory", defaults.memory_limit),
            flush_rows=int(params.get("flush_rows", defaults.flush_rows)),
            flush_seconds=float(params.get("flush_seconds", defaults.flush_seconds)),
            max_rows=int(params.get("max_rows", defaults.max_rows)),
            max_request_bytes=int(params.get("max_request_bytes", defaults.max_request_bytes)),
            sample_share=float(params.get("sample_share", defaults.sample_share)),
            retention_days=int(params.get("retention_days", 0)) or None,
            request_timeout_seconds=int(
                sdep["spec"]
                .get("annotations", {})
                .get("seldon.io/rest-timeout", defaults.request_timeout_seconds * 1000)
            )
            / 1000,
            workers=int(env.get("GUNICORN_WORKERS") or defaults.workers),
            replicas=int(main.get("replicas", defaults.replicas)),
            seldon_logger_url=(main["graph"].get("logger") or {}).get("url"),
            labels=labels,
        )
        model = sdep["metadata"]["labels"]["kubeloop.dev/model"]
    except (AssertionError, KeyError, IndexError, StopIteration, TypeError, ValueError) as exc:
        raise ValueError(
            f"SeldonDeployment {name} was not rendered by kubeloop ({type(exc).__name__}: {exc}); "
            "create it with the deploy step or `kubeloop deploy`, which the operator can step"
        ) from None
    return str(model), settings

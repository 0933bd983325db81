"""Register the calibrated, evaluated model as a new version in the registry."""

from __future__ import annotations

import io
import json
from typing import Any

import pandas as pd

from components.common.artifacts import SCHEMA_FILE, DatasetSchema
from components.common.drift_reference import (
    EMBEDDING_REFERENCE,
    FEATURE_REFERENCE,
    PREDICTION_REFERENCE,
    SAMPLE_FILE,
    build_reference,
)
from components.common.modalities import INPUTS_FILE
from components.common.registry import Registry
from components.common.step import StepContext
from components.common.tasks import Task
from components.register.card import render_card

SPLIT_FILES = (SCHEMA_FILE, "data_profile.json", "expectation_suite.json")
"""From validate_data: the next run validates its data against the profile and suite."""
DRIFT_FILES = (FEATURE_REFERENCE, SAMPLE_FILE)
"""From validate_data (runs before the monitor existed have none): what the monitor tests traffic against."""
SERVABLE_FILES = ("model.onnx", INPUTS_FILE, "calibration.json", "predictions.parquet")
"""From calibrate: what serving loads, and the stored predictions recalibration works on."""
TRAIN_FILES = ("model.pt", "loss_curve.png")
EVALUATION_FILES = ("metrics.json", "decision.json", "decision.md", "curves.json", "roc.png")
EVALUATION_PLOTS = ("pr.png", "confusion.png", "error_gallery.html")
"""Written when the task draws them (a precision-recall curve needs a single score); the error
gallery by evaluations since it existed."""
PLOTS = {
    "reliability": "reliability.png",
    "loss_curve": "loss_curve.png",
    "roc": "roc.png",
    "pr": "pr.png",
    "confusion": "confusion.png",
}


def gate_record(decision: dict[str, Any]) -> dict[str, Any]:
    """What lineage keeps of the gate: the verdict, an override and what it let through."""
    return {
        "passed": decision["passed"],
        "forced": decision.get("forced", False),
        "reason": decision.get("reason"),
        "champion": decision.get("champion"),
        "failed_checks": [c["check"] for c in decision.get("checks", []) if not c["passed"]],
    }


def index_info(
    run_id: str, lineage: dict[str, Any], metrics: dict[str, Any], calibration: dict[str, Any], task: Task
) -> dict[str, Any]:
    """The summary the registry index keeps for `kubeloop models`."""
    threshold = calibration["operating_point"].get("threshold")
    return {
        "run_id": run_id,
        "parent_run": lineage.get("parent_run"),
        "trigger": lineage.get("trigger"),
        "config_hash": lineage.get("config_hash"),
        "data_fingerprint": lineage["data"]["fingerprint"],
        "metrics": {
            k: round(float(metrics[k]), 4) for k in task.headline_metrics if metrics.get(k) is not None
        }
        | {"ece": round(float(calibration["after"]["ece"]), 4)},
        "threshold": None if threshold is None else round(float(threshold), 6),
        "calibration": calibration["method"],
        "forced": bool(lineage.get("gate", {}).get("forced")),
    }


def prediction_reference(files: dict[str, bytes], task: Task) -> bytes:
    """The drift reference of what this version answers (probabilities and the decision) on the
    test split.

    Built from the stored test logits through this version's calibration and operating point,
    so a recalibrated version gets its own; the monitor tests served answers against it.
    """
    record = json.loads(files["calibration.json"])
    predictions = pd.read_parquet(io.BytesIO(files["predictions.parquet"]))
    test = predictions[predictions["split"] == "test"]
    probability = task.probabilities(record, {"logit": task.logits_from_columns(test)})
    decision = task.decide(probability, record["operating_point"])
    frame = pd.DataFrame(task.answer_columns(probability, decision))
    reference, _ = build_reference(frame, [], source="test split, calibrated")
    return reference.to_json().encode()


def publish(
    ctx: StepContext,
    files: dict[str, bytes],
    info: dict[str, Any],
    schema: DatasetSchema,
) -> tuple[str, str]:
    """Register `files` plus a card naming the new version; returns (version, card HTML)."""
    registry = Registry(ctx.store)
    name = ctx.config.name
    load = {
        k: json.loads(files[k]) for k in ("metrics.json", "decision.json", "calibration.json", "lineage.json")
    }
    plots = {key: files[file] for key, file in PLOTS.items() if file in files}
    cards: dict[str, str] = {}

    def card_for(version: str) -> dict[str, bytes]:
        cards[version] = render_card(
            name,
            version,
            load["metrics.json"],
            load["decision.json"],
            load["calibration.json"],
            load["lineage.json"],
            schema,
            plots,
            files.get("error_gallery.html", b"").decode(),
        )
        return {"card.html": cards[version].encode()}

    version = registry.register(name, files, info, versioned_files=card_for)
    card = cards[version]
    ctx.store.write_text(ctx.key("card.html"), card)
    ctx.store.write_json(
        ctx.key("result.json"),
        {"model": name, "version": version, "prefix": registry.version_prefix(name, version)},
    )
    ctx.metrics["version"] = int(version)
    ctx.notes.append(f"registered {name} version {version}")
    return version, card


def run(
    ctx: StepContext, splits: str, model: str, evaluation: str, calibration: str, lineage_key: str = ""
) -> tuple[str, str]:
    """The step body. Returns (version, model card HTML).

    Args:
        ctx: The step context.
        splits: validate_data's prefix (schema, profile, suite).
        model: Where the checkpoint and loss curve are (train's prefix, or a version's).
        evaluation: evaluate's prefix (metrics, decision, curves).
        calibration: The servable folder (model.onnx, preprocessing, calibration.json).
        lineage_key: The lineage record; default: this run's validate_data lineage.json.
    """
    store = ctx.store
    lineage = store.read_json(lineage_key or ctx.upstream("validate_data", "lineage.json"))
    decision = store.read_json(f"{evaluation}/decision.json")
    lineage["gate"] = gate_record(decision)
    if store.exists(f"{model}/model_code.json"):  # the factory, its parameters and source hash
        lineage["model"] = store.read_json(f"{model}/model_code.json")
    files: dict[str, bytes] = {f: store.read_bytes(f"{splits}/{f}") for f in SPLIT_FILES}
    files |= {f: store.read_bytes(f"{splits}/{f}") for f in DRIFT_FILES if store.exists(f"{splits}/{f}")}
    files |= {f: store.read_bytes(f"{calibration}/{f}") for f in (*SERVABLE_FILES, "reliability.png")}
    if store.exists(f"{calibration}/{EMBEDDING_REFERENCE}"):  # image models: for the monitor
        files[EMBEDDING_REFERENCE] = store.read_bytes(f"{calibration}/{EMBEDDING_REFERENCE}")
    schema = DatasetSchema.from_json(files[SCHEMA_FILE])
    task = schema.make_task()
    files[PREDICTION_REFERENCE] = prediction_reference(files, task)
    files |= {f: store.read_bytes(f"{model}/{f}") for f in TRAIN_FILES if store.exists(f"{model}/{f}")}
    files |= {f: store.read_bytes(f"{evaluation}/{f}") for f in EVALUATION_FILES}
    files |= {
        f: store.read_bytes(f"{evaluation}/{f}")
        for f in EVALUATION_PLOTS
        if store.exists(f"{evaluation}/{f}")
    }
    files["lineage.json"] = json.dumps(lineage, indent=2, sort_keys=True).encode()
    info = index_info(
        ctx.run_id,
        lineage,
        store.read_json(f"{evaluation}/metrics.json"),
        store.read_json(f"{calibration}/calibration.json"),
        task,
    )
    if lineage["gate"]["forced"]:
        ctx.notes.append(f"gate overridden: {lineage['gate']['reason']}")
    return publish(ctx, files, info, schema)

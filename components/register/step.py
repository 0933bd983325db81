"""Register the evaluated, calibrated model as a new version in the registry."""

from __future__ import annotations

from components.common.registry import Registry
from components.common.step import StepContext
from components.register.card import render_card

MODEL_FILES = ("model.onnx", "model.pt", "preprocessing.json")


def run(ctx: StepContext, splits: str, model: str, evaluation: str, calibration: str) -> tuple[str, str]:
    """The step body. Returns (version, model card HTML)."""
    store = ctx.store
    lineage = store.read_json(ctx.upstream("validate_data", "lineage.json"))
    schema = store.read_json(f"{splits}/schema.json")
    metrics = store.read_json(f"{evaluation}/metrics.json")
    decision = store.read_json(f"{evaluation}/decision.json")
    calib = store.read_json(f"{calibration}/calibration.json")
    registry = Registry(store)
    name = ctx.config.name
    info = {
        "run_id": ctx.run_id,
        "parent_run": lineage.get("parent_run"),
        "trigger": lineage.get("trigger"),
        "config_hash": lineage.get("config_hash"),
        "data_fingerprint": lineage["data"]["fingerprint"],
        "metrics": {k: round(float(metrics[k]), 4) for k in ("recall", "precision", "roc_auc", "pr_auc")}
        | {"ece": round(float(calib["after"]["ece"]), 4)},
    }
    files: dict[str, bytes | str] = {f: store.read_bytes(f"{model}/{f}") for f in MODEL_FILES}
    files.update(
        {
            "calibration.json": store.read_bytes(f"{calibration}/calibration.json"),
            "metrics.json": store.read_bytes(f"{evaluation}/metrics.json"),
            "lineage.json": store.read_bytes(ctx.upstream("validate_data", "lineage.json")),
            "schema.json": store.read_bytes(f"{splits}/schema.json"),
            # The next run validates its data against these (components.validate_data.reference).
            "data_profile.json": store.read_bytes(f"{splits}/data_profile.json"),
            "expectation_suite.json": store.read_bytes(f"{splits}/expectation_suite.json"),
        }
    )
    plots = {
        "reliability": store.read_bytes(f"{calibration}/reliability.png"),
        "loss_curve": store.read_bytes(f"{model}/loss_curve.png"),
    }
    cards: dict[str, str] = {}

    def card_for(version: str) -> dict[str, bytes]:
        cards[version] = render_card(name, version, metrics, decision, calib, lineage, schema, plots)
        return {"card.html": cards[version].encode()}

    version = registry.register(name, files, info, versioned_files=card_for)
    card = cards[version]
    store.write_text(ctx.key("card.html"), card)
    store.write_json(
        ctx.key("result.json"),
        {"model": name, "version": version, "prefix": registry.version_prefix(name, version)},
    )
    ctx.metrics["version"] = int(version)
    ctx.notes.append(f"registered {name} version {version}")
    return version, card

"""Calibrate: fit the map on the calibration split, choose the operating point, measure on test.

Outputs a servable model folder: `model.onnx` (the temperature folded in as a `probability`
output when that method wins), `preprocessing.json`, `calibration.json` (method, parameters,
operating point, before/after measures) and `predictions.parquet` (logits and labels of the
calibration, validation and test splits, so the threshold can be moved without retraining).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from components.calibrate.fit import fit_and_select
from components.calibrate.measures import reliability, summary
from components.calibrate.operating_point import operating_point
from components.common import calibration
from components.common.artifacts import DatasetSchema
from components.common.plots import png
from components.common.scoring import load_split, onnx_logits
from components.common.step import StepContext
from components.common.tasks import Task

SPLITS = ("calibration", "validation", "test")


def reliability_png(curves: dict[str, dict[str, list[float]]], split: str = "test") -> bytes:
    """Reliability diagram: each curve against the diagonal of perfect calibration."""

    def draw(ax: Any) -> None:
        ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect")
        for name, curve in curves.items():
            line = ax.plot(curve["predicted"], curve["observed"], alpha=0.6, label=name)[0]
            # Marker area grows with the rows in the bin: a wild point on 3 rows looks small.
            sizes = [8 + 120 * (count / max(curve["count"])) ** 0.5 for count in curve["count"]]
            ax.scatter(curve["predicted"], curve["observed"], s=sizes, color=line.get_color())
        ax.set(
            xlabel="predicted probability",
            ylabel="observed positive rate",
            title=f"Reliability ({split} split)",
            xlim=(0, 1),
            ylim=(0, 1),
        )
        ax.legend(loc="upper left", title="marker area ~ rows in bin", title_fontsize="small")

    return png(draw)


def describe(record: dict[str, Any]) -> str:
    """One line naming the map, e.g. 'temperature T=1.83' or 'isotonic (12 knots)'."""
    params = record["params"]
    if record["method"] == "temperature":
        return f"temperature T={params['temperature']:.3f}"
    if record["method"] == "platt":
        return f"platt a={params['a']:.3f} b={params['b']:.3f}"
    if record["method"] == "isotonic":
        return f"isotonic ({len(params['x'])} knots)"
    return str(record["method"])


def calibrated_model(onnx_model: bytes, record: dict[str, Any]) -> bytes:
    """The graph serving loads: temperature folded in; other maps stay in calibration.json."""
    if record["method"] == "temperature":
        return calibration.fold_temperature(onnx_model, record["params"]["temperature"])
    return onnx_model


def build_record(
    ctx: StepContext, task: Task, logits: dict[str, np.ndarray], ys: dict[str, np.ndarray]
) -> dict[str, Any]:
    """Fit and select the map, measure it on test, and choose the operating point on validation."""
    cfg = ctx.config.calibration
    chosen, selection = fit_and_select(
        cfg.method, logits["calibration"], ys["calibration"], logits["validation"], ys["validation"]
    )
    if not all(np.isfinite(v) for v in selection.values()):
        raise RuntimeError(f"calibration fit did not converge ({selection}); check the calibration split")
    probs = {name: calibration.apply(chosen, z) for name, z in logits.items()}
    point = operating_point(
        ("validation", probs["validation"], ys["validation"]),
        ("test", probs["test"], ys["test"]),
        cfg.target_recall,
        cfg.target_specificity,
        ctx.config.evaluation.threshold,
        ctx.config.evaluation.confidence,
    )
    return {
        **chosen,
        "configured": cfg.method,
        "selection": {"split": "validation", "metric": "nll", "candidates": selection},
        "onnx_probability_output": chosen["method"] == "temperature",
        "fitted_on": {"split": "calibration", "rows": int(len(ys["calibration"]))},
        "measured_on": {"split": "test", "rows": int(len(ys["test"]))},
        "bins": cfg.bins,
        "before": summary(task.uncalibrated(logits["test"]), ys["test"], cfg.bins),
        "after": summary(probs["test"], ys["test"], cfg.bins),
        "operating_point": point,
    }


def run(ctx: StepContext, splits: str, model: str) -> dict[str, Any]:
    """The step body. Returns the calibration record (also written as calibration.json)."""
    task = DatasetSchema.read(ctx.store, splits).make_task()
    frames = {name: load_split(ctx.store, splits, name) for name in SPLITS}
    logits = {name: onnx_logits(ctx.store, model, frame) for name, frame in frames.items()}
    ys = {name: task.frame_targets(frame) for name, frame in frames.items()}
    record = build_record(ctx, task, logits, ys)
    bins = record["bins"]
    curves = {
        "uncalibrated": reliability(task.uncalibrated(logits["test"]), ys["test"], bins),
        describe(record): reliability(calibration.apply(record, logits["test"]), ys["test"], bins),
    }
    predictions = pd.concat(
        [pd.DataFrame({"split": name, "logit": logits[name], "label": ys[name]}) for name in SPLITS],
        ignore_index=True,
    )
    with ctx.store.staged(ctx.key("predictions.parquet")) as path:
        predictions.to_parquet(path, index=False)
    ctx.store.write_bytes(
        ctx.key("model.onnx"), calibrated_model(ctx.store.read_bytes(f"{model}/model.onnx"), record)
    )
    ctx.store.write_bytes(ctx.key("preprocessing.json"), ctx.store.read_bytes(f"{model}/preprocessing.json"))
    ctx.store.write_json(ctx.key("reliability.json"), curves)
    ctx.store.write_bytes(ctx.key("reliability.png"), reliability_png(curves))
    ctx.store.write_text(ctx.key("calibration.md"), render_report(record))
    ctx.store.write_json(ctx.key("calibration.json"), record)
    report(ctx, record)
    return record


def report(ctx: StepContext, record: dict[str, Any]) -> None:
    """Progress line and KFP metrics: the map, before/after on test, the operating point."""
    before, after, point = record["before"], record["after"], record["operating_point"]
    test = point["rates"]["test"]
    target = point["target"]
    aim = f"target {next(iter(target))} {next(iter(target.values()))}" if target else "fixed threshold"
    print(
        f"{describe(record)} (chosen by validation NLL from {', '.join(record['selection']['candidates'])}): "
        f"test ECE {before['ece']:.4f} -> {after['ece']:.4f}, MCE {before['mce']:.4f} -> {after['mce']:.4f}, "
        f"Brier {before['brier']:.4f} -> {after['brier']:.4f}; operating point {point['threshold']:.4f} "
        f"({aim}): test recall {test['recall']:.4f}, specificity {test['specificity']:.4f}",
        flush=True,
    )
    ctx.metrics.update(
        ece_before=round(before["ece"], 4),
        ece_after=round(after["ece"], 4),
        threshold=round(point["threshold"], 4),
    )
    if record["method"] == "temperature":
        ctx.metrics["temperature"] = round(record["params"]["temperature"], 4)
    ctx.notes.append(f"calibration: {describe(record)}; operating threshold {point['threshold']:.4f} ({aim})")


def render_report(record: dict[str, Any]) -> str:
    """Markdown for the Kubeflow UI: the map, its selection, before/after, the operating point."""
    before, after, point = record["before"], record["after"], record["operating_point"]
    lines = [
        f"# Calibration: {describe(record)}",
        "",
        f"Configured `{record['configured']}`; validation NLL:",
        "",
    ]
    lines += ["| candidate | validation NLL |", "|---|---|"]
    lines += [f"| {name} | {value:.4f} |" for name, value in record["selection"]["candidates"].items()]
    lines += ["", f"## Test split ({record['measured_on']['rows']} rows, {record['bins']} bins)", ""]
    lines += ["| measure | uncalibrated | calibrated |", "|---|---|---|"]
    lines += [f"| {k} | {before[k]:.4f} | {after[k]:.4f} |" for k in ("ece", "mce", "brier", "nll")]
    target = point["target"]
    aim = f"{next(iter(target))} >= {next(iter(target.values()))}" if target else "fixed threshold"
    level = f"{point['confidence']:.0%}"
    lines += [
        "",
        f"## Operating point: threshold {point['threshold']:.4f} ({aim}, set on {point['chosen_on']})",
        "",
    ]
    lines += [
        f"| split | recall | {level} interval | specificity | {level} interval |",
        "|---|---|---|---|---|",
    ]
    for split, r in point["rates"].items():
        recall_low, recall_high = r["recall_interval"]
        spec_low, spec_high = r["specificity_interval"]
        lines.append(
            f"| {split} | {r['recall']:.4f} | {recall_low:.4f} – {recall_high:.4f} | "
            f"{r['specificity']:.4f} | {spec_low:.4f} – {spec_high:.4f} |"
        )
    return "\n".join(lines) + "\n"

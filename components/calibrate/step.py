"""Calibrate: fit the map on the calibration split, choose the operating point, measure on test.

Outputs a servable model folder: `model.onnx` (the temperature folded in as a `probability`
output when that method wins), `preprocessing.json`, `calibration.json` (method, parameters,
operating point, before/after measures) and `predictions.parquet` (per split and row: the label,
the raw logits, the calibrated probabilities and the decision, so the operating point can be
moved without retraining and every metric recomputed from what serving answers).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from components.common.artifacts import DatasetSchema
from components.common.drift_reference import EMBEDDING_REFERENCE
from components.common.modalities import INPUTS_FILE
from components.common.plots import png
from components.common.scoring import load_split, onnx_logits_and_embeddings
from components.common.step import StepContext
from components.common.tasks import Task

SPLITS = ("calibration", "validation", "test")


def reliability_png(
    curves: dict[str, dict[str, list[float]]], axes: tuple[str, str], split: str = "test"
) -> bytes:
    """Reliability diagram: each curve against the diagonal of perfect calibration."""

    def draw(ax: Any) -> None:
        ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect")
        for name, curve in curves.items():
            line = ax.plot(curve["predicted"], curve["observed"], alpha=0.6, label=name)[0]
            # Marker area grows with the rows in the bin: a wild point on 3 rows looks small.
            sizes = [8 + 120 * (count / max(curve["count"])) ** 0.5 for count in curve["count"]]
            ax.scatter(curve["predicted"], curve["observed"], s=sizes, color=line.get_color())
        ax.set(
            xlabel=axes[0],
            ylabel=axes[1],
            title=f"Reliability ({split} split)",
            xlim=(0, 1),
            ylim=(0, 1),
        )
        ax.legend(loc="upper left", title="marker area ~ rows in bin", title_fontsize="small")

    return png(draw)


def build_record(
    ctx: StepContext, task: Task, logits: dict[str, np.ndarray], ys: dict[str, np.ndarray]
) -> dict[str, Any]:
    """Fit and select the map, measure it on test, and choose the operating point on validation."""
    cfg = ctx.config.calibration
    chosen, selection = task.fit_calibration(
        cfg.method, logits["calibration"], ys["calibration"], logits["validation"], ys["validation"]
    )
    if not all(np.isfinite(v) for v in selection.values()):
        raise RuntimeError(f"calibration fit did not converge ({selection}); check the calibration split")
    probs = {name: task.probabilities(chosen, {"logit": z}) for name, z in logits.items()}
    point = task.operating_point(
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
        "onnx_probability_output": task.folds_into_graph(chosen),
        "fitted_on": {"split": "calibration", "rows": int(len(ys["calibration"]))},
        "measured_on": {"split": "test", "rows": int(len(ys["test"]))},
        "bins": cfg.bins,
        "before": task.calibration_measures(task.uncalibrated(logits["test"]), ys["test"], cfg.bins),
        "after": task.calibration_measures(probs["test"], ys["test"], cfg.bins),
        "operating_point": point,
    }


def run(ctx: StepContext, splits: str, model: str) -> dict[str, Any]:
    """The step body. Returns the calibration record (also written as calibration.json)."""
    schema = DatasetSchema.read(ctx.store, splits)
    task, modality = schema.make_task(), schema.make_modality()
    frames = {name: load_split(ctx.store, splits, name) for name in SPLITS}
    keep = modality.monitors_embeddings  # what the monitor compares served embeddings with
    scored = {
        n: onnx_logits_and_embeddings(ctx.store, model, f, task, modality, keep) for n, f in frames.items()
    }
    logits = {name: z for name, (z, _) in scored.items()}
    held_out = [e for _, e in scored.values() if e is not None]
    if held_out:
        with ctx.store.staged(ctx.key(EMBEDDING_REFERENCE)) as path:
            np.save(path, np.vstack(held_out).astype(np.float32))
    ys = {name: task.frame_targets(frame) for name, frame in frames.items()}
    record = build_record(ctx, task, logits, ys)
    bins = record["bins"]
    curves = {
        "uncalibrated": task.reliability(task.uncalibrated(logits["test"]), ys["test"], bins),
        task.describe_calibration(record): task.reliability(
            task.probabilities(record, {"logit": logits["test"]}), ys["test"], bins
        ),
    }
    parts = []
    for name in SPLITS:
        p = task.probabilities(record, {"logit": logits[name]})
        decided = task.decide(p, record["operating_point"])
        columns = task.prediction_columns(logits[name], p, decided)
        parts.append(pd.DataFrame({"split": name, **columns, "label": ys[name]}))
    predictions = pd.concat(parts, ignore_index=True)
    with ctx.store.staged(ctx.key("predictions.parquet")) as path:
        predictions.to_parquet(path, index=False)
    ctx.store.write_bytes(
        ctx.key("model.onnx"), task.serving_graph(ctx.store.read_bytes(f"{model}/model.onnx"), record)
    )
    ctx.store.write_bytes(ctx.key(INPUTS_FILE), ctx.store.read_bytes(f"{model}/{INPUTS_FILE}"))
    ctx.store.write_json(ctx.key("reliability.json"), curves)
    ctx.store.write_bytes(ctx.key("reliability.png"), reliability_png(curves, task.reliability_axes))
    ctx.store.write_text(ctx.key("calibration.md"), render_report(record, task))
    ctx.store.write_json(ctx.key("calibration.json"), record)
    report(ctx, record, task)
    return record


def rate_names(rates: dict[str, Any]) -> list[str]:
    """The rates of an operating point that carry an interval (recall, specificity, per class)."""
    return [k for k in rates if f"{k}_interval" in rates]


def aim(point: dict[str, Any]) -> str:
    """What the operating point aimed at, e.g. 'target recall 0.9' or 'fixed threshold'."""
    target = point["target"]
    if not target:
        return "fixed threshold" if point.get("threshold") is not None else "no target"
    return "target " + ", ".join(f"{k} {v}" for k, v in target.items())


def report(ctx: StepContext, record: dict[str, Any], task: Task) -> None:
    """Progress line and KFP metrics: the map, before/after on test, the operating point."""
    before, after, point = record["before"], record["after"], record["operating_point"]
    test = point["rates"]["test"]
    rates = ", ".join(f"{k} {test[k]:.4f}" for k in rate_names(test))
    rule = task.describe_point(point)
    print(
        f"{task.describe_calibration(record)} (chosen by validation NLL from "
        f"{', '.join(record['selection']['candidates'])}): "
        f"test ECE {before['ece']:.4f} -> {after['ece']:.4f}, MCE {before['mce']:.4f} -> {after['mce']:.4f}, "
        f"Brier {before['brier']:.4f} -> {after['brier']:.4f}; {rule} "
        f"({aim(point)}): test {rates}",
        flush=True,
    )
    ctx.metrics.update(ece_before=round(before["ece"], 4), ece_after=round(after["ece"], 4))
    if point.get("threshold") is not None:
        ctx.metrics["threshold"] = round(point["threshold"], 4)
    if record["method"] == "temperature":
        ctx.metrics["temperature"] = round(record["params"]["temperature"], 4)
    ctx.notes.append(f"calibration: {task.describe_calibration(record)}; {rule} ({aim(point)})")


def render_report(record: dict[str, Any], task: Task) -> str:
    """Markdown for the Kubeflow UI: the map, its selection, before/after, the operating point."""
    before, after, point = record["before"], record["after"], record["operating_point"]
    lines = [
        f"# Calibration: {task.describe_calibration(record)}",
        "",
        f"Configured `{record['configured']}`; validation NLL:",
        "",
    ]
    lines += ["| candidate | validation NLL |", "|---|---|"]
    lines += [f"| {name} | {value:.4f} |" for name, value in record["selection"]["candidates"].items()]
    lines += ["", f"## Test split ({record['measured_on']['rows']} rows, {record['bins']} bins)", ""]
    lines += ["| measure | uncalibrated | calibrated |", "|---|---|---|"]
    measures = [k for k in ("ece", "mce", "classwise_ece", "brier", "nll") if k in before]
    lines += [f"| {k} | {before[k]:.4f} | {after[k]:.4f} |" for k in measures]
    target = point["target"]
    goal = (
        ", ".join(f"{k} >= {v}" if k != "class" else f"class {v}" for k, v in target.items())
        if target
        else ""
    )
    level = f"{point['confidence']:.0%}"
    where = f"set on {point['chosen_on']}"
    lines += ["", f"## Operating point: {task.describe_point(point)} ({goal or aim(point)}, {where})", ""]
    names = rate_names(next(iter(point["rates"].values())))
    lines += [
        "| split | " + " | ".join(f"{n} | {level} interval" for n in names) + " |",
        "|---|" + "---|---|" * len(names),
    ]
    for split, r in point["rates"].items():
        cells = " | ".join(
            f"{r[n]:.4f} | {r[f'{n}_interval'][0]:.4f} – {r[f'{n}_interval'][1]:.4f}" for n in names
        )
        lines.append(f"| {split} | {cells} |")
    return "\n".join(lines) + "\n"

"""Fit a temperature on the calibration split; measure before/after on the test split."""

from __future__ import annotations

from typing import Any

import numpy as np

from components.calibrate.temperature import fit_temperature, reliability, summary
from components.common.plots import png
from components.common.scoring import labels, load_split, onnx_logits, sigmoid
from components.common.step import StepContext


def reliability_png(curves: dict[str, dict[str, list[float]]]) -> bytes:
    """Reliability diagram: each curve against the diagonal of perfect calibration."""

    def draw(ax: Any) -> None:
        ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect")
        for name, curve in curves.items():
            ax.plot(curve["predicted"], curve["observed"], marker="o", label=name)
        ax.set(
            xlabel="predicted probability",
            ylabel="observed positive rate",
            title="Reliability (test split)",
            xlim=(0, 1),
            ylim=(0, 1),
        )
        ax.legend(loc="upper left")

    return png(draw)


def run(ctx: StepContext, splits: str, model: str) -> dict[str, Any]:
    """The step body. Returns the calibration record (also written as calibration.json)."""
    schema = ctx.store.read_json(f"{splits}/schema.json")
    frames = {name: load_split(ctx.store, splits, name) for name in ("calibration", "test")}
    logits = {name: onnx_logits(ctx.store, model, frame) for name, frame in frames.items()}
    ys = {name: labels(frame, schema) for name, frame in frames.items()}
    bins = ctx.config.calibration.bins
    temperature = fit_temperature(logits["calibration"], ys["calibration"])
    if not np.isfinite(temperature):
        raise RuntimeError("temperature fit did not converge; check the calibration split")
    before = summary(logits["test"], ys["test"], 1.0, bins)
    after = summary(logits["test"], ys["test"], temperature, bins)
    record = {
        "method": "temperature",
        "temperature": temperature,
        "fitted_on": {"split": "calibration", "rows": int(len(ys["calibration"]))},
        "measured_on": {"split": "test", "rows": int(len(ys["test"]))},
        "bins": bins,
        "before": before,
        "after": after,
    }
    curves = {
        "uncalibrated": reliability(sigmoid(logits["test"]), ys["test"], bins),
        f"T = {temperature:.3f}": reliability(sigmoid(logits["test"] / temperature), ys["test"], bins),
    }
    ctx.store.write_json(ctx.key("reliability.json"), curves)
    ctx.store.write_bytes(ctx.key("reliability.png"), reliability_png(curves))
    ctx.store.write_json(ctx.key("calibration.json"), record)
    print(
        f"temperature {temperature:.4f}: test ECE {before['ece']:.4f} -> {after['ece']:.4f}, "
        f"NLL {before['nll']:.4f} -> {after['nll']:.4f}",
        flush=True,
    )
    ctx.metrics.update(
        temperature=round(temperature, 4),
        ece_before=round(before["ece"], 4),
        ece_after=round(after["ece"], 4),
    )
    return record

"""The model card: one HTML page with data, lineage, metrics, gate and calibration."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from components.common.artifacts import DatasetSchema
from components.common.plots import img_tag
from components.common.tasks import Task


def _table(rows: Sequence[tuple[str, Any]]) -> str:
    body = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(_fmt(v))}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"


def _grid(rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
    """A table with a header row, one row per record (None shows as n/a)."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>"
        + "".join(f"<td>{html.escape('n/a' if r[c] is None else _fmt(r[c]))}</td>" for c in columns)
        + "</tr>"
        for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _slices_section(metrics: dict[str, Any]) -> str:
    slices, worst = metrics.get("slices") or [], metrics.get("worst_slice")
    if not slices:
        return "<p>No slices configured (<code>evaluation.slices</code>).</p>"
    columns = list(slices[0])  # column, slice, rows, the task's counts and slice metrics
    text = _grid(slices, columns)
    if worst:
        text += (
            f"<p>Worst slice for {html.escape(worst['metric'])}: <b>{html.escape(worst['column'])}="
            f"{html.escape(str(worst['slice']))}</b> at {_fmt(worst[worst['metric']])} against "
            f"{_fmt(worst['overall'])} overall (gap {_fmt(worst['gap'])}).</p>"
        )
    errors = metrics.get("errors") or []
    if errors:
        text += "<h3>Where the errors are</h3>" + _grid(errors, ("error", "where", "count", "share_of_kind"))
    return text


def _gallery_section(gallery: str) -> str:
    """The error gallery (versions evaluated before it existed have none)."""
    if not gallery:
        return ""
    return "<h2>Error gallery</h2><p>The test split's most confident mistakes, by slice.</p>" + gallery


def _plot(plots: dict[str, bytes], key: str, alt: str) -> str:
    return img_tag(plots[key], alt) if key in plots else ""


def _override(decision: dict[str, Any]) -> str:
    if not decision.get("forced"):
        return ""
    return (
        "<p class=banner><b>Gate OVERRIDDEN</b> (force_promote): "
        f"{html.escape(str(decision.get('reason')))}. The failed checks below were let through.</p>"
    )


def _champion_section(comparison: dict[str, Any] | None, confidence: float) -> str:
    if comparison is None:
        return "<p>No champion in production when this ran: only the floors applied.</p>"
    version = html.escape(str(comparison["version"]))
    if "error" in comparison:
        return f"<p>Champion v{version} could not be scored: {html.escape(str(comparison['error']))}</p>"
    rows = [
        {"metric": metric, **row, "interval": _span(row.get("low"), row.get("high"), signed=True)}
        for metric, row in comparison["metrics"].items()
    ]
    for row in rows:
        row["champion"] = row.pop("reference")
    return (
        f"<h3>Against champion v{version} (same test rows; {confidence:.0%} paired bootstrap)</h3>"
        + _grid(rows, ("metric", "candidate", "champion", "difference", "interval"))
    )


def _span(low: float | None, high: float | None, signed: bool = False) -> str | None:
    sign = "+" if signed else ""
    return None if low is None or high is None else f"{low:{sign}.4f} – {high:{sign}.4f}"


def _params(calibration: dict[str, Any]) -> str:
    params = calibration.get("params", {})
    if calibration.get("method") == "isotonic":
        return f"{len(params.get('x', []))} knots"

    def value(v: Any) -> str:
        return "[" + ", ".join(f"{x:.3f}" for x in v) + "]" if isinstance(v, list) else f"{v:.4f}"

    return ", ".join(f"{k} = {value(v)}" for k, v in params.items())


def _calibration_section(calibration: dict[str, Any], task: Task) -> str:
    before, after = calibration["before"], calibration["after"]
    selection = calibration.get("selection", {}).get("candidates", {})
    where = (
        "folded into model.onnx (output <code>probability</code>)"
        if calibration.get("onnx_probability_output")
        else "applied by the serving code from calibration.json"
    )
    text = _table(
        [
            ("method", f"{calibration.get('method')} (configured {calibration.get('configured', 'n/a')})"),
            ("parameters", _params(calibration)),
            ("validation NLL per candidate", ", ".join(f"{k} {v:.4f}" for k, v in selection.items())),
        ]
    )
    text += f"<p>The map is {where}.</p>"
    source = calibration.get("recalibrated_from")
    if source:
        new = calibration["operating_point"].get("threshold")
        text += (
            f"<p class=banner>Recalibrated from version {html.escape(str(source['version']))}: same weights "
            f"(model.onnx sha256 {html.escape(source['model_sha256'][:12])}…), same map; threshold "
            f"{_fmt(source.get('threshold'))} → {_fmt(new)}.</p>"
        )
    names = [k for k in ("ece", "mce", "classwise_ece", "brier", "nll") if k in before]
    measures = [{"measure": k, "uncalibrated": before[k], "calibrated": after[k]} for k in names]
    text += _grid(measures, ("measure", "uncalibrated", "calibrated"))
    point = calibration.get("operating_point")
    if point:
        target = point.get("target")
        aim = ", ".join(f"{k} >= {v}" for k, v in target.items() if k != "class") if target else ""
        rule = html.escape(task.describe_point(point))
        text += f"<h3>Operating point: {rule} ({html.escape(aim or 'no target')})</h3>"
        split_rates: dict[str, dict[str, Any]] = point.get("rates", {})
        first = next(iter(split_rates.values()), {})
        rate_names = [k for k in first if f"{k}_interval" in first]
        rates = [
            {"split": split}
            | {n: r[n] for n in rate_names}
            | {f"{n} interval": _span(*r[f"{n}_interval"]) for n in rate_names}
            for split, r in split_rates.items()
        ]
        if rates:
            text += _grid(rates, ["split", *(c for n in rate_names for c in (n, f"{n} interval"))])
    return text


def _model_code(model: dict[str, Any] | None) -> str:
    if not model:
        return "n/a"
    digest = model.get("source_sha256")
    return f"{model['factory']} {model.get('params') or ''}" + (
        f" (source sha256 {digest[:12]}…)" if digest else ""
    )


def _started_from(model: dict[str, Any] | None) -> str:
    init = (model or {}).get("init_from")
    if not init:
        return "random initialisation"
    return f"{init['source']} (weights sha256 {init['sha256'][:12]}…)"


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else "n/a" if value is None else str(value)


def render_card(
    name: str,
    version: str,
    metrics: dict[str, Any],
    decision: dict[str, Any],
    calibration: dict[str, Any],
    lineage: dict[str, Any],
    schema: DatasetSchema,
    plots: dict[str, bytes],
    gallery: str = "",
) -> str:
    """Self-contained HTML (the plot is inlined) for the registry and the Kubeflow UI; `gallery`
    is evaluate's error gallery fragment (its own escaped HTML)."""
    task = schema.make_task()
    checks = (
        "".join(
            f"<tr><td>{html.escape(c['check'])}</td><td>{c['observed']}</td><td>{c['required']}</td>"
            f"<td class={'ok' if c['passed'] else 'bad'}>{'pass' if c['passed'] else 'FAIL'}</td></tr>"
            for c in decision.get("checks", [])
        )
        or "<tr><td colspan=4>no floors configured</td></tr>"
    )
    git = lineage.get("git", {})
    splits = schema.splits
    intervals = metrics.get("intervals") or {}
    level = f"{metrics.get('confidence', 0.95):.0%}"

    def with_interval(key: str) -> str:
        bounds = intervals.get(key)
        value = _fmt(metrics[key])
        return f"{value}  ({level} CI {bounds[0]:.4f} – {bounds[1]:.4f})" if bounds else value

    shown = ("threshold", *task.metric_names, "prevalence")
    metric_rows = [(k, with_interval(k)) for k in shown if k in metrics and metrics[k] is not None]
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(name)} v{version} model card</title>
<style>body{{font-family:system-ui,sans-serif;max-width:900px;margin:2em auto;color:#222}}
table{{border-collapse:collapse;margin:.5em 0 1.5em}}
td,th{{border:1px solid #ccc;padding:4px 10px;text-align:left}}
.ok{{color:#1a7f37;font-weight:bold}}.bad{{color:#c62828;font-weight:bold}}code{{font-size:90%}}
.row{{display:flex;gap:1em}}.row img{{width:48%}}
.banner{{background:#fff3cd;border:1px solid #e0a800;padding:.6em}}
.gallery{{display:flex;flex-wrap:wrap;gap:.5em}}.gallery figure{{margin:0;text-align:center}}
.gallery img{{width:96px;image-rendering:pixelated;border:1px solid #ccc}}
.gallery figcaption{{font-size:80%;color:#555}}.gallery table{{font-size:75%;margin:0}}</style></head>
<body><h1>{html.escape(name)} &middot; version {version}</h1>
<p>Run <code>{html.escape(str(lineage.get("run_id")))}</code>, trigger <b>{
        html.escape(str(lineage.get("trigger")))
    }</b>,
parent run <code>{html.escape(str(lineage.get("parent_run") or "none"))}</code>.</p>
<h2>Data</h2>
{
        _table(
            [
                ("dataset", lineage.get("data", {}).get("path")),
                ("fingerprint", lineage.get("data", {}).get("fingerprint")),
                ("features", ", ".join(schema.features)),
                ("label", schema.label),
            ]
            + [
                (
                    f"{s} split",
                    ", ".join(
                        [f"{int(v['rows'])} rows", *(f"{k} {x:.4f}" for k, x in v.items() if k != "rows")]
                    ),
                )
                for s, v in splits.items()
            ]
        )
    }
<h2>Gate</h2>{_override(decision)}
<table><tr><th>check</th><th>observed</th><th>required</th><th>result</th></tr>{checks}</table>
{_champion_section(metrics.get("champion"), metrics.get("confidence", 0.95))}
<h2>Test-split metrics</h2>
<p>Calibrated probabilities at the operating point, as serving decides.</p>{_table(metric_rows)}
<div class=row>{_plot(plots, "roc", "ROC curve")}{_plot(plots, "pr", "precision-recall curve")}</div>
{_plot(plots, "confusion", "confusion matrix")}
<h2>Slices</h2>{_slices_section(metrics)}
{_gallery_section(gallery)}
<h2>Calibration and operating point</h2>
{_calibration_section(calibration, task)}
{img_tag(plots["reliability"], "reliability diagram")}
<h2>Training</h2>
{_plot(plots, "loss_curve", "loss curve") or "<p>No loss curve was stored with these weights.</p>"}
<h2>Lineage</h2>
{
        _table(
            [
                ("git commit", git.get("commit")),
                ("uncommitted changes", git.get("dirty")),
                ("config hash", lineage.get("config_hash")),
                ("model code", _model_code(lineage.get("model"))),
                ("started from", _started_from(lineage.get("model"))),
                ("packages", ", ".join(f"{k} {v}" for k, v in lineage.get("packages", {}).items())),
            ]
        )
    }
</body></html>
"""

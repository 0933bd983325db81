"""The loop's HTML index (a timeline with links and inline plots) and its terminal summary table."""

from __future__ import annotations

import base64
import html
import io
import os
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

from components.common.artifacts import version_prefix
from components.common.store import LocalStore, NotFoundError, Store
from loop.record import INDEX_KEY, RECORD_KEY, LoopRecord, Stage

PREDICTOR_COLOURS = {"main": "#4c72b0", "canary": "#dd8452", "shadow": "#55a868"}
STATUS_COLOURS = {"succeeded": "#1a7f37", "failed": "#cf222e", "running": "#9a6700"}


def rollout_plot(store: Store, model: str, history: list[dict[str, Any]]) -> bytes:
    """PNG: rows served per second by each predictor during the rollout, with each decision marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from components.deploy.analysis import read_logs
    from components.deploy.request_log import window_start

    start = datetime.fromisoformat(history[0]["time"])
    since = window_start(history[0]["time"], 60)
    counts: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for predictor in PREDICTOR_COLOURS:
        for record in read_logs(store, model, predictor, since):
            second = int((datetime.fromisoformat(record["time"]) - start).total_seconds())
            if second >= 0:
                counts[predictor][second] += 1
    figure, axis = plt.subplots(figsize=(9, 3.2), dpi=100)
    for predictor, per_second in counts.items():
        if per_second:
            xs = list(range(max(per_second) + 1))
            label = f"{predictor} (mirrored)" if predictor == "shadow" else predictor
            axis.plot(xs, [per_second.get(x, 0) for x in xs], label=label, color=PREDICTOR_COLOURS[predictor])
    for entry in history:
        x = (datetime.fromisoformat(entry["time"]) - start).total_seconds()
        if entry["action"] in ("start", "step", "promote", "rollback"):
            axis.axvline(x, color="#666", linestyle=":", linewidth=1)
            axis.annotate(
                f"{entry['action']} {entry.get('weight', '')}%",
                (x, 1),
                xycoords=("data", "axes fraction"),
                rotation=90,
                va="top",
                ha="right",
                fontsize=8,
                color="#444",
            )
    axis.set_xlabel("seconds since the rollout started")
    axis.set_ylabel("rows served per second")
    axis.set_title("Rollout: traffic per predictor")
    axis.legend(loc="upper left", fontsize=8)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()


def _relative(key: str) -> str:
    """Link from loop/index.html to a store key."""
    return "../" + key


def _image(store: Store, key: str, alt: str) -> str:
    try:
        data = store.read_bytes(key)
    except NotFoundError:
        return ""
    encoded = base64.b64encode(data).decode()
    alt = html.escape(alt)
    return (
        f'<figure><img alt="{alt}" src="data:image/png;base64,{encoded}">'
        f"<figcaption>{alt}</figcaption></figure>"
    )


def _metrics_line(metrics: dict[str, Any]) -> str:
    keys = ("roc_auc", "recall", "precision", "ece")
    return "  ".join(f"{k} {metrics[k]:.3f}" for k in keys if isinstance(metrics.get(k), int | float))


def _stage_html(store: Store, model: str, stage: Stage) -> str:
    colour = STATUS_COLOURS.get(stage.status, "#444")
    links = " · ".join(
        f'<a href="{html.escape(_relative(key))}">{html.escape(label)}</a>'
        for label, key in stage.links.items()
    )
    parts = [
        f'<section class="stage"><h2><span class="dot" style="background:{colour}"></span>'
        f"{html.escape(stage.name)} <small>{stage.seconds:.1f} s · {html.escape(stage.started)}</small></h2>",
        f"<p class=title>{html.escape(stage.title)}</p>",
        f"<p class=decision><b>{html.escape(stage.status)}</b>: {html.escape(stage.decision)}</p>",
    ]
    if links:
        parts.append(f"<p class=links>{links}</p>")
    if "metrics" in stage.facts:
        parts.append(f"<p class=metrics>{html.escape(_metrics_line(stage.facts['metrics']))}</p>")
    for window in stage.facts.get("windows", []):
        findings = ", ".join(window["findings"]) or "nothing"
        parts.append(
            f"<p class=window>window {html.escape(window['window'])}: {window['rows']} rows, found "
            f"{html.escape(findings)} → <b>{html.escape(window['action'])}</b> "
            f"({html.escape(window['reason'])})</p>"
        )
    thumbnails = [_image(store, t["key"], t["caption"]) for t in stage.facts.get("thumbnails", [])]
    if any(thumbnails):
        parts.append('<div class="thumbs">' + "".join(thumbnails) + "</div>")
    if stage.facts.get("history"):
        rows = "".join(
            f"<tr><td>{html.escape(h['time'][11:19])}</td><td>{html.escape(h['action'])}</td>"
            f"<td>{h.get('weight', '')}%</td><td class=evidence>{_evidence_html(h)}</td>"
            f"<td class=why>{html.escape(h['reason'])}</td></tr>"
            for h in stage.facts["history"]
        )
        parts.append(
            "<table><tr><th>time</th><th>action</th><th>candidate</th><th>evidence</th><th>why</th></tr>"
            f"{rows}</table>"
        )
    version = stage.facts.get("version")
    if version:
        prefix = version_prefix(model, version)
        plots = [
            _image(store, f"{prefix}/roc.png", f"v{version} ROC"),
            _image(store, f"{prefix}/reliability.png", f"v{version} calibration"),
        ]
        parts.append('<div class="plots">' + "".join(plots) + "</div>")
    if stage.links.get("rollout plot"):
        parts.append(_image(store, stage.links["rollout plot"], "traffic per predictor during the rollout"))
    parts.append("</section>")
    return "\n".join(parts)


def _number(value: Any) -> str:
    return f"{value:+.4g}" if isinstance(value, float) else str(value)


def _evidence_html(entry: dict[str, Any]) -> str:
    """What a verdict rested on: each judged check's estimate, bounds and limit; what a hold needed."""
    lines = []
    for check in entry.get("evidence", []):
        bounds = check.get("bounds")
        span = f" [{_number(bounds[0])}, {_number(bounds[1])}]" if bounds else ""
        rows = f", {check['rows']:,} rows" if "rows" in check else ""
        colour = "#1a7f37" if check["status"] == "pass" else "#cf222e"
        lines.append(
            f'<span style="color:{colour}">{html.escape(check["check"])} {check["status"]}</span> '
            f"{_number(check.get('observed'))}{span} vs {_number(check.get('limit'))}{rows}"
        )
    needs = entry.get("needs")
    if needs:
        lines.append(
            f"needs {needs['labeled_rows']:,} labeled rows ({needs['positives']:,} positives) for a "
            f"{needs['margin']:g} {html.escape(str(needs['metric']))} margin; had {needs['have_rows']:,} "
            f"({needs['have_positives']:,})"
        )
    return "<br>".join(lines)


STYLE = """
body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;color:#1f2328;padding:0 1em}
h1{margin-bottom:.2em} .sub{color:#59636e;margin-top:0}
.stage{border-left:3px solid #d0d7de;padding:.2em 0 .6em 1em;margin:0 0 1em .4em}
.stage h2{font-size:1.1em;margin:.2em 0} .stage small{color:#59636e;font-weight:normal}
.dot{display:inline-block;width:.8em;height:.8em;border-radius:50%;margin:0 .5em 0 -1.45em}
.title{color:#59636e;margin:.1em 0} .decision{margin:.3em 0} .links a{margin-right:.2em}
.metrics{font-family:monospace} table{border-collapse:collapse;font-size:.9em;margin:.4em 0}
td,th{border:1px solid #d0d7de;padding:.2em .5em;text-align:left;vertical-align:top}
.plots{display:flex;gap:1em;flex-wrap:wrap} figure{margin:.4em 0} figcaption{font-size:.85em;color:#59636e}
.plots img{width:440px}
.thumbs{display:flex;gap:.5em;flex-wrap:wrap} .thumbs img{height:96px}
img{max-width:100%} .stages td{font-family:monospace}
td.evidence{min-width:21em;font-size:.82em} td.why{font-size:.78em;color:#59636e}
"""


def render_index(record: LoopRecord, store: Store) -> str:
    """The loop's index page: what happened, in order, with every artifact a click away."""
    outcome = "completed" if record.succeeded else f"stopped: {record.error}"
    stages = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(v) if v else '-')}</td></tr>"
        for k, v in record.stages.items()
    )
    body = "\n".join(_stage_html(store, record.model, s) for s in record.stages_run)
    return f"""<!doctype html><html><head><meta charset="utf-8">
<title>kubeloop loop: {html.escape(record.model)}</title><style>{STYLE}</style></head><body>
<h1>kubeloop loop: {html.escape(record.model)}</h1>
<p class=sub>scenario {html.escape(record.scenario)} · started {html.escape(record.started)} ·
{record.seconds:.0f} s · {html.escape(outcome)}</p>
<table class=stages><tr><th>registry stage</th><th>version</th></tr>{stages}</table>
{body}
<p class=sub>Store {html.escape(record.store)} · <a href="loop.json">loop.json</a></p>
</body></html>
"""


def write_index(record: LoopRecord, store: Store) -> str:
    """Write the rollout plot (when there was a rollout) and the index; the index's path or URI."""
    rollout = record.find("rollout")
    if rollout is not None and rollout.facts.get("history"):
        store.write_bytes("loop/rollout.png", rollout_plot(store, record.model, rollout.facts["history"]))
        rollout.links["rollout plot"] = "loop/rollout.png"
    record.save(store)
    store.write_text(INDEX_KEY, render_index(record, store))
    if isinstance(store, LocalStore):
        return os.path.relpath(store.path(INDEX_KEY))
    return f"{store.uri.rstrip('/')}/{INDEX_KEY}"


def mirror_index(record: LoopRecord, store: Store, folder: Path) -> str:
    """Copy the index, the loop record and every file the index links to from an object store
    into `folder` at the same keys, so a browser opens the index from this machine; its path."""
    local = LocalStore(folder)
    keys = [INDEX_KEY, RECORD_KEY, *(key for stage in record.stages_run for key in stage.links.values())]
    for key in dict.fromkeys(keys):
        try:
            local.write_bytes(key, store.read_bytes(key))
        except NotFoundError:
            pass  # the index shows the link; the copy cannot have it either
    return os.path.relpath(local.path(INDEX_KEY))


def summary_table(record: LoopRecord) -> Any:
    """The terminal's table: one row per stage with its time and decision."""
    from rich.table import Table

    table = Table(title=f"kubeloop loop {record.model} ({record.scenario}, {record.seconds:.0f} s)")
    for column in ("stage", "status", "seconds", "decision"):
        table.add_column(column, overflow="fold")
    for stage in record.stages_run:
        style = "green" if stage.status == "succeeded" else "red"
        table.add_row(
            stage.name, f"[{style}]{stage.status}[/{style}]", f"{stage.seconds:.1f}", stage.decision
        )
    return table

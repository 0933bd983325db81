"""Reference pages generated from the code, never written twice: the CLI (from the argument
parsers), the config (from the typed models), the CRDs (from their schemas) and the metrics
(from their definitions). `scripts/docs_hooks.py` puts them into the site as it builds."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HELP_WIDTH = "100"


@contextlib.contextmanager
def _columns(width: str) -> Iterator[None]:
    # argparse wraps help to the terminal's width: a fixed one keeps the page the same everywhere.
    saved = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = width
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = saved


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """Each subcommand's parser by name, in the order `--help` lists them."""
    for action in parser._actions:  # argparse keeps its subparsers only here
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def cli_reference() -> str:
    """`kubeloop --help` and every subcommand's help, in the order `kubeloop --help` lists them."""
    from cli.main import build_parser

    parser = build_parser()
    with _columns(HELP_WIDTH):
        parts = ["### kubeloop\n", "```text\n" + parser.format_help().rstrip() + "\n```\n"]
        for name, sub in subcommands(parser).items():
            parts += [f"### kubeloop {name}\n", "```text\n" + sub.format_help().rstrip() + "\n```\n"]
    return "\n".join(parts)


def config_reference() -> str:
    """Every config key with its default and meaning."""
    from scripts.config_reference import render

    return escape_outside_code(render())


def escape_outside_code(text: str) -> str:
    """`<` and `>` as entities outside code spans: Markdown would take `<model>` for an HTML tag."""
    parts = text.split("`")
    for i in range(0, len(parts), 2):
        parts[i] = parts[i].replace("<", "&lt;").replace(">", "&gt;")
    return "`".join(parts)


def _cell(text: Any) -> str:
    return escape_outside_code(" ".join(str(text).split()).replace("|", "\\|"))


def _schema_rows(schema: dict[str, Any], prefix: str, required: set[str]) -> list[str]:
    rows = []
    for name, field in schema.get("properties", {}).items():
        if not prefix and name in ("apiVersion", "kind", "metadata"):
            continue  # every object's; Kubernetes documents them
        key = f"{prefix}{name}"
        kind = field.get("type", "object" if "properties" in field else "any")
        if kind == "array" and "type" in field.get("items", {}):
            kind = f"array of {field['items']['type']}"
        rules = []
        if "enum" in field:
            rules.append("one of " + ", ".join(f"`{v}`" for v in field["enum"]))
        if "pattern" in field:
            rules.append(f"pattern `{field['pattern']}`")
        for bound in ("minimum", "maximum", "minLength", "maxLength", "minItems", "maxItems"):
            if bound in field:
                rules.append(f"{bound} {field[bound]}")
        default = f"`{json.dumps(field['default'])}`" if "default" in field else ""
        needed = "yes" if name in required else ""
        description = _cell(field.get("description", ""))
        rules_text = "; ".join(rules)
        rows.append(f"| `{key}` | {kind} | {needed} | {default} | {_cell(rules_text)} | {description} |")
        nested = field if "properties" in field else field.get("items", {})
        if "properties" in nested:
            rows += _schema_rows(nested, f"{key}.", set(nested.get("required", [])))
    return rows


def crd_reference() -> str:
    """Each CRD kubeloop installs: its names, printer columns and every field of its schema."""
    from operators.crds import all_crds

    parts = []
    for crd in all_crds():
        spec = crd["spec"]
        names = spec["names"]
        version = spec["versions"][0]
        schema = version["schema"]["openAPIV3Schema"]
        short = ", ".join(names.get("shortNames", [])) or "none"
        parts.append(f"## {names['kind']}\n")
        parts.append(
            f"`{spec['group']}/{version['name']}`, {spec['scope'].lower()}; `kubectl get {names['plural']}` "
            f"(short names: {short}).\n"
        )
        if schema.get("description"):
            parts.append(_cell(schema["description"]) + "\n")
        columns = version.get("additionalPrinterColumns", [])
        if columns:
            parts.append("| column | type | from |\n|---|---|---|")
            parts.append(
                "\n".join(f"| {c['name']} | {c['type']} | `{c['jsonPath']}` |" for c in columns) + "\n"
            )
        parts.append("| field | type | required | default | rules | meaning |\n|---|---|---|---|---|---|")
        parts.append("\n".join(_schema_rows(schema, "", set(schema.get("required", [])))) + "\n")
    return "\n".join(parts)


def _table(definitions: dict[str, str]) -> str:
    rows = [f"| `{name}` | {_cell(text)} |" for name, text in definitions.items()]
    return "\n".join(["| metric | definition |", "|---|---|", *rows]) + "\n"


def metrics_reference() -> str:
    """The held-out metrics of each task, the calibration measures and the served Prometheus series."""
    from components.common.tasks import metric_definitions as d
    from components.deploy.model_metrics import exposition

    with tempfile.TemporaryDirectory() as empty:
        served = [line for line in exposition(Path(empty)).splitlines() if line.startswith("# HELP ")]
    series = {line.split()[2]: line.split(" ", 3)[3] for line in served}
    return "\n".join(
        [
            "## Binary tasks\n",
            _table(d.BINARY),
            "## Multi-class tasks\n",
            _table(d.MULTICLASS),
            "Per class:\n",
            _table(d.PER_CLASS),
            "## Calibration\n",
            _table(d.CALIBRATION),
            "## Served metrics (Prometheus, each predictor's `/metrics`)\n",
            _table(series),
        ]
    )


GENERATED = {
    "cli": cli_reference,
    "config": config_reference,
    "crds": crd_reference,
    "metrics": metrics_reference,
}
"""`<!-- generated: NAME -->` in a page is replaced by GENERATED[NAME]()."""

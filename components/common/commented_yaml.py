"""YAML with a comment beside each value: what `kubeloop init` writes, so each inferred
setting says where it came from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

COMMENT_COLUMN = 40


@dataclass
class Entry:
    """One YAML key: its value, or its children for a section, and why it was chosen."""

    key: str
    value: Any = None
    why: str = ""
    children: list[Entry] = field(default_factory=list)


def plain(value: Any) -> Any:
    """A numpy scalar as the Python value YAML writes plainly."""
    return value.item() if hasattr(value, "item") else value


def flow(value: Any) -> str:
    """A value as one line of YAML ("yes" stays a string, lists and mappings stay on the line)."""
    text = yaml.safe_dump(value, default_flow_style=True, width=10**6, allow_unicode=True, sort_keys=False)
    return str(text).strip().removesuffix("...").strip()


def render(entries: list[Entry], header: list[str] | None = None, indent: int = 0) -> str:
    """The entries as YAML, each comment beside its value; `header` lines as a comment on top."""
    lines = [f"# {line}" if line else "#" for line in header or []]
    pad = "  " * indent
    for entry in entries:
        key = entry.key if entry.key.isidentifier() else flow(entry.key)
        if entry.children:
            lines.append(f"{pad}{key}:" + (f"  # {entry.why}" if entry.why else ""))
            lines.append(render(entry.children, None, indent + 1))
        else:
            text = f"{pad}{key}: {flow(entry.value)}"
            lines.append(f"{text.ljust(COMMENT_COLUMN)}  # {entry.why}" if entry.why else text)
    return "\n".join(lines)

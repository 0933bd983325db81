"""What `kubeloop loop` did, stage by stage: timing, decisions, facts and links, kept as loop.json."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from components.common.store import Store

RECORD_KEY = "loop/loop.json"
INDEX_KEY = "loop/index.html"


@dataclass
class Stage:
    """One stage of the loop."""

    name: str
    title: str
    started: str = ""
    seconds: float = 0.0
    status: str = "running"  # running, succeeded or failed
    decision: str = ""
    facts: dict[str, Any] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)  # label -> store key


@dataclass
class LoopRecord:
    """The loop's timeline."""

    model: str
    scenario: str
    store: str
    overrides: list[str]
    started: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    seconds: float = 0.0
    stages_run: list[Stage] = field(default_factory=list)
    stages: dict[str, Any] = field(default_factory=dict)  # the registry's stages at the end
    error: str = ""

    @contextlib.contextmanager
    def stage(self, name: str, title: str) -> Iterator[Stage]:
        """Time a stage; an exception marks it failed (with its message) and goes on up."""
        entry = Stage(name, title, datetime.now(UTC).isoformat(timespec="seconds"))
        self.stages_run.append(entry)
        began = time.monotonic()
        try:
            yield entry
        except BaseException as exc:
            entry.status = "failed"
            entry.decision = entry.decision or f"{type(exc).__name__}: {exc}"
            raise
        else:
            entry.status = "succeeded"
        finally:
            entry.seconds = round(time.monotonic() - began, 1)

    @property
    def succeeded(self) -> bool:
        """Every stage ran to its end."""
        return not self.error and all(s.status == "succeeded" for s in self.stages_run)

    def find(self, name: str) -> Stage | None:
        """The stage of that name, if it ran."""
        return next((s for s in self.stages_run if s.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return asdict(self)

    def save(self, store: Store) -> str:
        """Write loop.json; its key."""
        store.write_json(RECORD_KEY, self.to_dict())
        return RECORD_KEY

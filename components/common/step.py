"""What every step shares: its store prefix, a status record, gate failures, KFP UI outputs."""

from __future__ import annotations

import contextlib
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.common.config import KubeloopConfig
from components.common.registry import now_iso
from components.common.store import Store, open_store

STEPS = ("validate_data", "train", "calibrate", "evaluate", "register", "deploy")


class GateFailed(RuntimeError):
    """A quality gate said no: the pipeline stops here and the report says why."""


@dataclass
class StepContext:
    """A running step: its config, store, run id and where its outputs go."""

    config: KubeloopConfig
    store: Store
    run_id: str
    step: str
    metrics: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def prefix(self) -> str:
        """Store prefix of this step's outputs: runs/<run_id>/<step>."""
        return run_prefix(self.run_id, self.step)

    def key(self, name: str) -> str:
        """Store key of one output file of this step."""
        return f"{self.prefix}/{name}"

    def upstream(self, step: str, name: str) -> str:
        """Store key of a file written by an earlier step of the same run."""
        return f"{run_prefix(self.run_id, step)}/{name}"


def run_prefix(run_id: str, step: str) -> str:
    """Store prefix of a step of a run."""
    return f"runs/{run_id}/{step}"


@contextlib.contextmanager
def step_context(config_json: str, store_uri: str, run_id: str, step: str) -> Iterator[StepContext]:
    """Run a step body and always leave `status.json` (written last, atomically).

    A reader that finds `status.json` with status 'succeeded' may trust every other output
    of the step: they were all written before it.
    """
    config = KubeloopConfig.from_json(config_json)
    ctx = StepContext(config=config, store=open_store(store_uri), run_id=run_id, step=step)
    started, began = now_iso(), time.monotonic()
    record: dict[str, Any] = {"step": step, "run_id": run_id, "started": started}
    try:
        yield ctx
        record["status"] = "succeeded"
    except GateFailed as exc:
        record.update(status="gate_failed", reason=str(exc))
        raise
    except Exception as exc:
        record.update(
            status="failed", reason=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc(limit=8)
        )
        raise
    finally:
        record.update(
            finished=now_iso(),
            seconds=round(time.monotonic() - began, 2),
            metrics=ctx.metrics,
            notes=ctx.notes,
        )
        ctx.store.write_json(ctx.key("status.json"), record)


def write_kfp_metrics(artifact: Any, metrics: dict[str, float]) -> None:
    """Log scalar metrics to a KFP `Metrics` output (shown in the Kubeflow UI)."""
    for name, value in metrics.items():
        artifact.log_metric(name, float(value))


def write_kfp_text(artifact: Any, text: str) -> None:
    """Write a KFP `Markdown` or `HTML` output's file."""
    path = Path(artifact.path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")

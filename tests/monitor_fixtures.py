"""Helpers for monitor tests: a registered production version without training, and request-log files."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from components.common.config import KubeloopConfig
from components.common.config_loader import load_config
from components.common.drift_reference import PREDICTION_REFERENCE, build_reference
from components.common.registry import Registry
from components.common.store import Store
from examples.screening.generate import FEATURES, generate
from tests.conftest import REPO

SCREENING = REPO / "examples" / "screening" / "config.yaml"
HOUR = timedelta(hours=1)
T0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
"""The first window of the monitor tests' traffic."""
CATEGORICAL = ["scanner"]


def monitor_config(*overrides: str) -> KubeloopConfig:
    """The screening example with hourly windows checked at once after they end."""
    return load_config(SCREENING, ["monitoring.late_seconds=0", *overrides])


def register_production(store: Store, rows: int = 4000, card: dict[str, float] | None = None) -> str:
    """Register a version whose drift references come from scanner-A data; make it production."""
    data = generate(rows=rows, prevalence=0.05, scanners={"A": 1.0}, seed=1)
    features, sample = build_reference(data, CATEGORICAL, FEATURES, source="test")
    rng = np.random.default_rng(0)
    probability = rng.beta(1, 12, size=rows)
    answers = pd.DataFrame({"probability": probability, "decision": (probability >= 0.2).astype("int64")})
    predictions, _ = build_reference(answers, [])
    buffer = sample.to_parquet(index=False)
    files = {
        "drift_reference.json": features.to_json().encode(),
        "drift_sample.parquet": buffer,
        PREDICTION_REFERENCE: predictions.to_json().encode(),
        "metrics.json": json.dumps(
            card or {"recall": 0.8, "precision": 0.3, "roc_auc": 0.9, "pr_auc": 0.5}
        ).encode(),
    }
    registry = Registry(store)
    version = registry.register("screening", files, {"run_id": "test"})
    registry.set_stage("screening", version, "production")
    return version


def log_lines(
    start: datetime,
    rows: int,
    version: str,
    scanner: str = "A",
    seed: int = 0,
    probability_shift: float = 0.0,
    request_prefix: str = "r",
) -> tuple[list[str], pd.DataFrame]:
    """Request-log lines as serving writes them, one served row a minute apart at most, and the data."""
    data = generate(rows=rows, prevalence=0.05, scanners={scanner: 1.0}, seed=seed)
    rng = np.random.default_rng(seed)
    probability = np.clip(rng.beta(1, 12, size=rows) + probability_shift, 0, 1)
    lines = []
    step = 3000.0 / rows  # spread over the first 50 minutes of the hour
    for i in range(rows):
        features = {name: (data[name].iloc[i].item() if name != "scanner" else scanner) for name in FEATURES}
        time = (start + timedelta(seconds=i * step)).isoformat(timespec="milliseconds")
        record = {
            "request_id": f"{request_prefix}{seed}-{i}",
            "time": time,
            "predictor": "main",
            "model": "screening",
            "model_version": version,
            "status": 200,
            "latency_ms": 1.5,
            "row": 0,
            "probability": float(probability[i]),
            "decision": int(probability[i] >= 0.2),
            "features": features,
        }
        lines.append(json.dumps(record) + "\n")
    return lines, data


def write_log(
    store: Store, start: datetime, lines: list[str], predictor: str = "main", name: str = "1-a-000000"
) -> str:
    """One log file in the folder of `start`'s hour."""
    folder = start.replace(minute=0, second=0, microsecond=0).strftime("%Y%m%dT%H%M")
    key = f"logs/screening/{predictor}/{folder}/{name}.jsonl"
    store.write_bytes(key, "".join(lines).encode())
    return key


class RecordingLauncher:
    """Starts nothing: records what the monitor asked for, and answers status as told."""

    def __init__(self, state: str = "running") -> None:
        self.started: list[tuple[str, dict]] = []
        self.states: dict[str, str] = {}
        self.state = state  # what every started run reports

    def start(self, run_id: str, evidence: dict) -> str:
        self.started.append((run_id, evidence))
        self.states.setdefault(run_id, self.state)
        return f"recorded:{run_id}"

    def status(self, run_id: str) -> str:
        return self.states.get(run_id, "failed")

"""The loop's second half through the CLI: drifted traffic -> the monitor -> one retraining run -> v2."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from components.common.registry import Registry
from components.common.store import LocalStore
from tests.e2e.test_training_pipeline import kubeloop, run_screening, small_screening
from tests.monitor_fixtures import log_lines, write_log

pytestmark = pytest.mark.e2e


def test_drifted_traffic_triggers_one_retraining_run_with_its_evidence(tmp_path: Path) -> None:
    store_path = tmp_path / "store"
    overrides = small_screening(
        tmp_path,
        "monitoring.late_seconds=0",
        "monitoring.performance.enabled=false",
        "evaluation.max_regression={roc_auc: 0.1, recall: 0.3}",  # 4 epochs on 6,400 rows: noisy
    )
    first = run_screening(store_path, tmp_path, *overrides)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    store = LocalStore(store_path)
    Registry(store).set_stage("screening", "1", "production")
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
    plan = ["A", "B", "B"]
    for number, scanner in enumerate(plan):
        start = hour + timedelta(hours=number)
        lines, data = log_lines(start, 800, "1", scanner, seed=number, request_prefix=f"h{number}-")
        write_log(store, start, lines)
        labels = pd.DataFrame(
            {"request_id": [f"h{number}-{number}-{i}" for i in range(800)], "label": data["label"]}
        )
        store.write_bytes(f"labels/screening/{start:%Y%m%dT%H}.csv", labels.to_csv(index=False).encode())
    config = ["--config", str(Path("examples/screening/config.yaml").resolve()), "--store", str(store_path)]
    monitored = kubeloop(["monitor", *config, "--once", "--wait", *overrides], Path.cwd())
    out = monitored.stdout + monitored.stderr
    assert monitored.returncode == 0, out[-4000:]
    assert "window 1/3" in out and "window 3/3" in out
    assert out.count("decision: trigger") == 1 and "decision: skip" in out, out[-4000:]
    run_id = f"retrain-screening-{(hour + timedelta(hours=1)):%Y%m%dt%H%M%Sz}"
    assert f"{run_id}: succeeded" in out, out[-4000:]
    outcome = store.read_json(f"runs/{run_id}/retraining.json")
    assert outcome["state"] == "succeeded" and outcome["version"] == 2
    lineage = store.read_json("models/screening/2/lineage.json")
    assert lineage["trigger"] == "drift"
    assert (
        lineage["evidence"]["window"]["rows"] == 800
        and "intensity_mean" in lineage["evidence"]["drifted_features"]
    )
    assert lineage["evidence"]["report"].endswith("report.html")
    assembled = store.read_json(f"runs/{run_id}/assemble/assembled.json")
    assert assembled["traffic_rows"] == 2400 and assembled["reference_rows"] == 4000
    assert Registry(store).stages("screening")["shadow"] == "2"  # monitoring.retraining.deploy: shadow
    assert store.exists("models/screening/2/drift_reference.json")
    assert store.exists("models/screening/2/prediction_reference.json")
    again = kubeloop(["monitor", *config, "--once", *overrides], Path.cwd())
    assert "no window has closed" in again.stdout  # nothing is checked twice

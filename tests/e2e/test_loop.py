"""`kubeloop loop`, smaller: both scenarios end to end, each decision asserted, each linked artifact there.

The drift scenario runs on the S3 server (tests/conftest.py: versitygw on 127.0.0.1), the
bad candidate on a folder: every step, predictor and retraining run goes through the store.
"""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path
from typing import Any

import pytest

from components.common.registry import Registry
from components.common.store import LocalStore, Store, open_store
from tests.e2e.test_training_pipeline import SCREENING, kubeloop, small_screening

pytestmark = pytest.mark.e2e


def run_loop(
    tmp_path: Path, scenario: str, s3: dict[str, str] | None = None
) -> tuple[Store, dict[str, Any], str]:
    """The loop on a small dataset with short windows (on the S3 server when given its
    environment, else in a folder); its store, loop.json and output."""
    store = f"s3://kubeloop-loop/{uuid.uuid4().hex}" if s3 else str(tmp_path / "loop")
    overrides = small_screening(
        tmp_path,
        "dataset.generator.params.rows=6000",
        "training.epochs=6",
        "evaluation.max_regression={roc_auc: 0.05, recall: 0.2}",  # small test sets are noisy
        "loop.window=10s",
        "loop.live.rows=600",
        "loop.shifted.rows=2000",
    )
    done = kubeloop(
        ["loop", "--config", str(SCREENING), "--store", store, f"scenario={scenario}", *overrides],
        tmp_path if s3 else Path.cwd(),
        env={**os.environ, **s3} if s3 else None,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    opened = open_store(store)
    return opened, opened.read_json("loop/loop.json"), output


def stage(record: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in record["stages_run"] if s["name"] == name)


def assert_index_links_exist(store: Store) -> None:
    page = store.read_text("loop/index.html")
    links = re.findall(r'href="\.\./([^"]+)"', page)
    assert links, "the index links to nothing"
    missing = [key for key in links if not store.exists(key)]
    assert not missing, f"the index links to missing artifacts: {missing}"
    for needed in ("card.html", "report.md", "report.html", "rollout.json", "labels/"):
        assert any(needed in key for key in links), f"no link to {needed}"
    assert page.count("data:image/png;base64,") >= 3  # ROC and calibration of each version, the rollout


def assert_monitor_found_drift_once(store: Store, record: dict[str, Any]) -> None:
    windows = stage(record, "monitor")["facts"]["windows"]
    assert len(windows) == 2
    live, shifted = windows
    assert live["action"] == "none" and "data_drift" not in live["findings"]  # no drift -> no trigger
    assert shifted["action"] == "trigger" and "data_drift" in shifted["findings"]
    state = store.read_json("monitor/screening/state.json")
    assert len(state["runs"]) == 1  # drift -> exactly one retraining run
    lineage = store.read_json("models/screening/2/lineage.json")
    assert lineage["trigger"] == "drift" and "intensity_mean" in lineage["evidence"]["drifted_features"]


def test_the_loop_retrains_on_drift_and_promotes_the_candidate_through_shadow_and_canary(
    tmp_path: Path, s3_env: dict[str, str]
) -> None:
    store, record, output = run_loop(tmp_path, "drift", s3_env)
    assert [s["status"] for s in record["stages_run"]] == ["succeeded"] * 7, record
    assert_monitor_found_drift_once(store, record)
    rollout = stage(record, "rollout")["facts"]
    moves = [(h["action"], h["weight"]) for h in rollout["history"] if h["action"] != "hold"]
    assert moves == [("start", 0), ("step", 10), ("step", 50), ("promote", 100)], moves
    assert (
        rollout["client_failures"] == 0 and rollout["served_by"].get("canary", 0) > 0
    )  # weights moved under load
    history = store.read_json("deployments/screening/rollout.json")["history"]
    shadow_verdict = next(h["reason"] for h in history if h["action"] == "step")
    assert shadow_verdict.startswith("shadow passed") and "ROC AUC" in shadow_verdict  # labels judged it
    stages = Registry(store).stages("screening")
    assert stages["production"] == "2" and "1" in stages["archived"]
    assert_index_links_exist(store)
    assert "scenario drift: the candidate was promoted" in output and "index of the loop:" in output
    # This machine's copy of the index opens in a browser: it and every file it links to are there.
    copy = tmp_path / re.findall(r"a copy here, with what it links to: (\S+)", output)[-1]
    assert_index_links_exist(LocalStore(copy.parent.parent))
    assert s3_env["AWS_SECRET_ACCESS_KEY"] not in output


def test_a_worse_candidate_forced_past_its_gate_is_rolled_back_by_the_shadow_analysis(tmp_path: Path) -> None:
    store, record, output = run_loop(tmp_path, "bad_candidate")
    assert_monitor_found_drift_once(store, record)
    decision = store.read_json(f"runs/{stage(record, 'retrain')['facts']['run_id']}/evaluate/decision.json")
    assert decision["passed"] is False and decision["forced"] is True  # the gate failed; it was overridden
    history = store.read_json("deployments/screening/rollout.json")["history"]
    assert history[-1]["action"] == "rollback" and history[-1]["weight"] == 0
    assert any(check in history[-1]["reason"] for check in ("ROC AUC", "recall", "specificity"))  # labels
    assert all(h["weight"] == 0 for h in history)  # it never answered a client
    stages = Registry(store).stages("screening")
    assert stages["production"] == "1" and "2" in stages["archived"]
    assert_index_links_exist(store)
    assert "scenario bad_candidate: the candidate was rolled back" in output

"""The monitor's pass on real log files: windows, watermark, bad files, reports, one run per episode."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from components.common.store import LocalStore
from components.monitor.monitor import load_state, monitor_pass
from components.monitor.traffic import Window, closed_windows, read_window
from tests.monitor_fixtures import (
    HOUR,
    T0,
    RecordingLauncher,
    log_lines,
    monitor_config,
    register_production,
    write_log,
)


def hours(n: int) -> datetime:
    return T0 + n * HOUR


@pytest.fixture()
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "store")


def test_windows_are_aligned_and_resume_at_the_watermark() -> None:
    first = T0 + timedelta(minutes=17)
    windows = closed_windows(first, None, hours(3) + timedelta(seconds=59), 3600, 60)
    assert [w.start for w in windows] == [hours(0), hours(1)]  # the third ends 59 s ago: still open
    later = closed_windows(first, hours(2), hours(5), 3600, 0)
    assert [w.start for w in later] == [hours(2), hours(3), hours(4)]


def test_rows_are_read_from_their_hour_and_bad_files_are_skipped_with_the_reason(store: LocalStore) -> None:
    lines, _ = log_lines(T0, 50, "1")
    write_log(store, T0, lines)
    partial = write_log(store, T0, [lines[0], lines[1][:40]], name="1-b-000000")  # cut short, no newline
    garbage = write_log(store, T0, ["not json\n"], name="1-c-000000")
    read = read_window(store, "screening", ["main"], Window(T0, hours(1)))
    assert len(read.rows) == 50 and read.files == 1
    assert set(read.skipped) == {partial, garbage}
    assert "cut short" in read.skipped[partial] and "JSON" in read.skipped[garbage]
    assert read.rows["features.scanner"].eq("A").all()
    half = read_window(store, "screening", ["main"], Window(T0, T0 + timedelta(minutes=25)))
    assert 0 < len(half.rows) < 50 and half.late_rows == 50 - len(half.rows)


def test_a_drifted_episode_triggers_exactly_one_run_and_a_clean_window_none(store: LocalStore) -> None:
    version = register_production(store)
    plan = ["A", "A", "B", "B", "B", "A", "B"]
    for hour, scanner in enumerate(plan):
        write_log(store, hours(hour), log_lines(hours(hour), 400, version, scanner, seed=hour)[0])
    config = monitor_config("monitoring.trigger.cooldown_minutes=120")
    launcher = RecordingLauncher("succeeded")
    lines: list[str] = []
    result = monitor_pass(store, config, launcher, now=hours(len(plan)), progress=lines.append)
    actions = [d.action for d in result.decisions]
    assert ["data_drift" in c.findings for c in result.checks] == [s == "B" for s in plan]
    assert "data_drift" in result.checks[2].findings
    # Window 2 starts the episode's run; 3 and 4 are the same episode; 5 is clean and ends it;
    # 6 starts a new episode but the cooldown (120 min after window 2's end) has passed.
    assert actions == ["none", "none", "trigger", "skip", "skip", "none", "trigger"]
    assert "already started" in result.decisions[3].reason
    assert [run for run, _ in launcher.started] == [result.decisions[2].run_id, result.decisions[6].run_id]
    assert load_state(store, "screening").trigger.runs[0]["status"] == "succeeded"
    evidence = launcher.started[0][1]
    assert evidence["findings"] == ["data_drift"] and "intensity_mean" in evidence["drifted_features"]
    assert evidence["report"].endswith("report.html") and store.exists(result.checks[2].report)
    assert "<html" in store.read_text(result.checks[2].report).lower()
    assert any("window 3/7" in line and "features drifted" in line for line in lines)
    # Every decision is recorded next to its window's check.
    for check, decision in zip(result.checks, result.decisions, strict=True):
        recorded = store.read_json(f"monitor/screening/windows/{check.window}/decision.json")
        assert recorded["action"] == decision.action


def test_cooldown_and_in_flight_runs_hold_a_new_episode(store: LocalStore) -> None:
    version = register_production(store)
    for hour, scanner in enumerate(["B", "A", "B"]):
        write_log(store, hours(hour), log_lines(hours(hour), 1000, version, scanner, seed=hour)[0])
    launcher = RecordingLauncher("succeeded")
    result = monitor_pass(store, monitor_config(), launcher, now=hours(3))  # cooldown 360 min
    assert [d.action for d in result.decisions] == ["trigger", "none", "skip"]
    assert "cooldown" in result.decisions[2].reason
    assert len(launcher.started) == 1
    busy = LocalStore(store.root.parent / "busy")
    version = register_production(busy)
    for hour, scanner in enumerate(["B", "A", "B"]):
        write_log(busy, hours(hour), log_lines(hours(hour), 1000, version, scanner, seed=hour)[0])
    held = monitor_pass(
        busy, monitor_config("monitoring.trigger.cooldown_minutes=0"), RecordingLauncher(), now=hours(3)
    )
    assert [d.action for d in held.decisions] == ["trigger", "none", "skip"]
    assert "is still running" in held.decisions[2].reason


def test_nothing_is_checked_twice_after_a_restart(store: LocalStore) -> None:
    version = register_production(store)
    for hour in range(2):
        write_log(store, hours(hour), log_lines(hours(hour), 200, version, "A", seed=hour)[0])
    launcher = RecordingLauncher()
    first = monitor_pass(store, monitor_config(), launcher, now=hours(2))
    assert len(first.checks) == 2 and load_state(store, "screening").watermark == hours(2)
    again = monitor_pass(store, monitor_config(), launcher, now=hours(2))  # a restart: a new pass
    assert again.checks == [] and "no window has closed" in again.waiting
    write_log(store, hours(2), log_lines(hours(2), 200, version, "A", seed=2)[0])
    later = monitor_pass(store, monitor_config(), launcher, now=hours(3))
    assert [c.window for c in later.checks] == [Window(hours(2), hours(3)).name]


def test_a_run_recorded_but_not_started_is_started_by_the_next_pass(store: LocalStore) -> None:
    version = register_production(store)
    write_log(store, hours(0), log_lines(hours(0), 300, version, "B")[0])

    class Crashing(RecordingLauncher):
        def start(self, run_id: str, evidence: dict) -> str:
            raise KeyboardInterrupt  # the monitor dies between recording the run and starting it

    with pytest.raises(KeyboardInterrupt):
        monitor_pass(store, monitor_config(), Crashing(), now=hours(1))
    assert load_state(store, "screening").trigger.runs[0]["status"] == "starting"
    launcher = RecordingLauncher()
    result = monitor_pass(store, monitor_config(), launcher, now=hours(1))
    assert result.checks == []  # the window was decided before the crash
    assert [run for run, _ in launcher.started] == ["retrain-screening-20261120t080000z"]
    assert load_state(store, "screening").trigger.runs[0]["status"] == "started"


def test_a_small_window_says_so_and_triggers_nothing(store: LocalStore) -> None:
    version = register_production(store)
    write_log(store, hours(0), log_lines(hours(0), 40, version, "B")[0])
    launcher = RecordingLauncher()
    result = monitor_pass(store, monitor_config(), launcher, now=hours(1))
    assert result.decisions[0].action == "none"
    assert "40 rows in the window; a verdict needs at least 100" in result.decisions[0].reason
    assert launcher.started == []


def test_dry_run_records_the_decision_and_starts_nothing(store: LocalStore) -> None:
    version = register_production(store)
    write_log(store, hours(0), log_lines(hours(0), 300, version, "B")[0])
    launcher = RecordingLauncher()
    result = monitor_pass(store, monitor_config("monitoring.trigger.dry_run=true"), launcher, now=hours(1))
    assert result.decisions[0].action == "dry_run" and launcher.started == []


def test_prediction_drift_and_performance_decay_from_labels(store: LocalStore) -> None:
    version = register_production(
        store, card={"recall": 0.9, "precision": 0.5, "roc_auc": 0.95, "pr_auc": 0.6}
    )
    lines, data = log_lines(hours(0), 600, version, "A", probability_shift=0.3)
    write_log(store, hours(0), lines)
    labels = pd.DataFrame({"request_id": [f"r0-{i}" for i in range(600)], "label": data["label"].to_numpy()})
    store.write_bytes("labels/screening/batch-1.csv", labels.to_csv(index=False).encode())
    store.write_bytes("labels/screening/notes.txt", b"ignored")
    launcher = RecordingLauncher()
    result = monitor_pass(
        store, monitor_config("monitoring.performance.min_positives=5"), launcher, now=hours(1)
    )
    check = result.checks[0]
    assert "prediction_drift" in check.findings and "data_drift" not in check.findings
    assert check.performance is not None and check.performance["labeled_rows"] == 600
    assert "performance" in check.findings  # random scores: ROC AUC near 0.5 against the card's 0.95
    assert result.decisions[0].action == "trigger"


def test_an_unknown_feature_in_the_settings_is_named(store: LocalStore) -> None:
    version = register_production(store)
    write_log(store, hours(0), log_lines(hours(0), 200, version)[0])
    config = monitor_config("monitoring.features={scaner: {ignore: true}}")
    with pytest.raises(ValueError, match=r"monitoring.features names \['scaner'\]"):
        monitor_pass(store, config, RecordingLauncher(), now=hours(1))


def test_without_a_production_version_the_monitor_says_what_to_do(store: LocalStore) -> None:
    result = monitor_pass(store, monitor_config(), RecordingLauncher(), now=hours(1))
    assert "no production version" in result.waiting


def test_decay_is_acted_on_even_when_the_window_is_too_small_for_drift(store: LocalStore) -> None:
    version = register_production(
        store, card={"recall": 0.9, "precision": 0.5, "roc_auc": 0.95, "pr_auc": 0.6}
    )
    lines, data = log_lines(hours(0), 60, version, "A", seed=3)
    write_log(store, hours(0), lines)
    labels = pd.DataFrame({"request_id": [f"r3-{i}" for i in range(60)], "label": data["label"].to_numpy()})
    assert labels["label"].sum() >= 2
    store.write_bytes("labels/screening/batch.csv", labels.to_csv(index=False).encode())
    config = monitor_config("monitoring.performance.min_labeled=50", "monitoring.performance.min_positives=2")
    lines_out: list[str] = []
    result = monitor_pass(store, config, RecordingLauncher(), now=hours(1), progress=lines_out.append)
    check = result.checks[0]
    assert check.data_drift is not None and check.data_drift["too_small"]
    assert check.findings == ["performance"] and result.decisions[0].action == "trigger"
    assert any(
        "no data-drift verdict (60 rows" in line and "performance decayed" in line for line in lines_out
    )

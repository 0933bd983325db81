"""The simulation of the decision benchmark (tests/benchmarks/decision_scenarios.py) and its runner."""

from __future__ import annotations

import json
import re
import sys
import types
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pytest

from components.common.rollout_config import RolloutAnalysis
from components.common.tasks import default_task
from components.common.tasks.ranking import roc_auc as auc
from components.deploy.analysis import Verdict
from components.deploy.logframe import answered, log_frame, requests
from components.deploy.rollout import advance, start
from tests.benchmarks import bench_decisions
from tests.benchmarks.decision_scenarios import (
    BASE_ERROR_RATE,
    DECIDERS,
    LABEL_PLANS,
    MODES,
    NOISE_CORRELATION,
    PREVALENCE,
    REFERENCE_ROWS,
    SCENARIOS,
    START,
    Scenario,
    Traffic,
    draw_rows,
    models,
    old_decider,
    simulate,
)

BY_NAME = {s.name: s for s in SCENARIOS}
ANSWER = {"request_id", "row", "time", "predictor", "model", "model_version", "status", "latency_ms"}


def served(name: str, rows: int = 400_000, seed: int = 0) -> dict[str, np.ndarray]:
    """Labels and both sides' probabilities and decisions of many rows of a scenario."""
    main, candidate = models(BY_NAME[name])
    y, e_main, e_candidate = draw_rows(np.random.default_rng(seed), rows)
    p_m, d_m = main.serve(y, e_main)
    p_c, d_c = candidate.serve(y, e_candidate)
    return {
        "y": y.astype(int),
        "p_m": p_m,
        "d_m": d_m,
        "p_c": p_c,
        "d_c": d_c,
        "e_m": e_main,
        "e_c": e_candidate,
    }


def test_records_are_in_the_request_log_format() -> None:
    traffic = Traffic(BY_NAME["5xx+10%"], LABEL_PLANS["immediate"], seed=1)
    traffic.serve(3, 10, shadowing=False)
    records = traffic.main + traffic.candidate
    failed = [r for r in records if r["status"] == 500]
    assert failed and len(failed) < len(records)
    for r in records:
        extra = {"error"} if r["status"] == 500 else {"probability", "decision"}
        assert set(r) == ANSWER | extra  # _log_failure's fields, or _lines' without the inputs
        assert r["row"] == 0 and r["model"] == "bench" and json.loads(json.dumps(r)) == r
        moment = datetime.fromisoformat(r["time"])
        assert moment.utcoffset() == timedelta(0) and re.fullmatch(
            r".*T\d\d:\d\d:\d\d\.\d{3}\+00:00", r["time"]
        )
        assert START + timedelta(minutes=3) <= moment < START + timedelta(minutes=4)
    assert {(r["predictor"], r["model_version"]) for r in records} == {("main", "1"), ("canary", "2")}
    # The analysis reads them: every answered row, every request with its status.
    names = default_task().answer_names
    assert len(answered(log_frame(records, names), names)) == len(records) - len(failed)
    assert len(requests(log_frame(traffic.candidate, names))) == len(traffic.candidate)
    assert all(0 < r["probability"] < 1 and r["decision"] in (0, 1) for r in records if r["status"] == 200)


def test_a_canary_splits_the_requests_and_a_shadow_mirrors_them() -> None:
    canary = Traffic(BY_NAME["equal"], LABEL_PLANS["immediate"], seed=2)
    canary.serve(0, 10, shadowing=False)
    main_ids = {r["request_id"] for r in canary.main}
    canary_ids = {r["request_id"] for r in canary.candidate}
    assert not main_ids & canary_ids and len(main_ids | canary_ids) == 1000
    assert 60 <= len(canary_ids) <= 140
    shadow = Traffic(BY_NAME["equal"], LABEL_PLANS["immediate"], seed=2)
    shadow.serve(0, 0, shadowing=True)
    assert [(r["request_id"], r["row"]) for r in shadow.main] == [
        (r["request_id"], r["row"]) for r in shadow.candidate
    ]
    assert {r["predictor"] for r in shadow.candidate} == {"shadow"}


def test_the_binormal_main_ranks_at_0_85_and_is_calibrated() -> None:
    traffic = Traffic(BY_NAME["equal"], LABEL_PLANS["immediate"], seed=3, rate=100_000)
    traffic.serve(0, 0, shadowing=True)
    labels = traffic.arrived(0)
    rows_main = answered(log_frame(traffic.main, ("probability",)), ("probability",))
    y = np.array(
        [labels[(rid, row)] for rid, row in zip(rows_main["request_id"], rows_main["row"], strict=True)]
    )
    p = rows_main["probability"].to_numpy()
    assert auc(y, p) == pytest.approx(0.85, abs=0.01)
    assert p.mean() == pytest.approx(PREVALENCE, rel=0.05) and y.mean() == pytest.approx(PREVALENCE, rel=0.1)
    rows = served("equal")
    assert np.corrcoef(rows["e_m"], rows["e_c"])[0, 1] == pytest.approx(NOISE_CORRELATION, abs=0.01)
    # Each model decides at the threshold that gave recall 0.8 on its validation sample.
    for side in ("d_m", "d_c"):
        assert rows[side][rows["y"] == 1].mean() == pytest.approx(0.8, abs=0.02)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_each_candidate_ranks_as_intended(scenario: Scenario) -> None:
    rows = served(scenario.name)
    assert auc(rows["y"], rows["p_m"]) == pytest.approx(scenario.main_auc, abs=0.006)
    difference = auc(rows["y"], rows["p_c"]) - auc(rows["y"], rows["p_m"])
    assert difference == pytest.approx(scenario.candidate_auc - scenario.main_auc, abs=0.005)
    _, candidate = models(scenario)
    assert candidate.reference.shape == (REFERENCE_ROWS, 1)


def test_the_groups_follow_the_margin() -> None:
    groups = {s.name: s.group for s in SCENARIOS}
    assert [n for n, g in groups.items() if g == "worse-margin"] == ["worse-0.02", "worse-0.03"]
    assert [n for n, g in groups.items() if g == "worse-2x"] == ["worse-0.04", "worse-0.06", "worse-0.10"]
    assert groups["drifted-main"] == groups["better+0.10"] == "good"
    assert all(s.kind == "faulty" for s in SCENARIOS if s.name[:3] in ("5xx", "lat", "cal"))


def test_skewed_and_drifted_scores_no_longer_look_like_their_validation() -> None:
    skew = served("calibration-skew")
    _, candidate = models(BY_NAME["calibration-skew"])
    assert np.median(skew["p_c"]) > 3 * np.median(candidate.reference)  # served logit +1.5
    assert skew["d_c"].mean() > 2 * skew["d_m"].mean()  # the validated threshold flags far more
    drifted = served("drifted-main")
    main, candidate = models(BY_NAME["drifted-main"])
    assert np.median(drifted["p_m"]) > 1.8 * np.median(main.reference)  # main's logit +0.8 and AUC 0.78
    assert np.median(drifted["p_c"]) == pytest.approx(np.median(candidate.reference), rel=0.05)


def test_labels_arrive_after_their_delay_for_their_share() -> None:
    delayed = Traffic(BY_NAME["equal"], LABEL_PLANS["delayed"], seed=4)
    for interval in range(12):
        delayed.serve(interval, 0, shadowing=True)
        arrived = dict(delayed.arrived(interval))
        if interval < 10:
            assert not arrived
    assert {k[0].split("-")[0] for k in arrived} == {"r0", "r1"}  # intervals 0 and 1, at 10 and 11
    assert len(arrived) / 2000 == pytest.approx(0.8, abs=0.03)
    immediate = Traffic(BY_NAME["equal"], LABEL_PLANS["immediate"], seed=4)
    immediate.serve(0, 0, shadowing=True)
    assert len(immediate.arrived(0)) == 1000
    never = Traffic(BY_NAME["equal"], LABEL_PLANS["never"], seed=4)
    for interval in range(3):
        never.serve(interval, 0, shadowing=True)
        assert not never.arrived(interval)


def _rates(name: str) -> tuple[float, float, float, float]:
    traffic = Traffic(BY_NAME[name], LABEL_PLANS["never"], seed=5, rate=50_000)
    traffic.serve(0, 0, shadowing=True)
    sides = []
    for records in (traffic.main, traffic.candidate):
        sides.append(np.mean([r["status"] == 500 for r in records]))
        sides.append(float(np.median([r["latency_ms"] for r in records])))
    return sides[0], sides[1], sides[2], sides[3]


@pytest.mark.parametrize(
    ("name", "extra", "slower"),
    [
        ("5xx+2%", 0.02, 1),
        ("5xx+10%", 0.10, 1),
        ("latency-1.5x", 0, 1.5),
        ("latency-3x", 0, 3),
        ("equal", 0, 1),
    ],
)
def test_faulty_candidates_fail_and_slow_down_as_intended(name: str, extra: float, slower: float) -> None:
    main_errors, main_p50, errors, p50 = _rates(name)
    assert main_errors == pytest.approx(BASE_ERROR_RATE, abs=0.0006)
    assert errors == pytest.approx(BASE_ERROR_RATE + extra, abs=0.003)
    assert main_p50 == pytest.approx(20, rel=0.02) and p50 / main_p50 == pytest.approx(slower, rel=0.03)


def _spy(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> list[tuple[list[dict[str, Any]], list[dict[str, Any]]]]:
    calls: list[tuple[list[dict[str, Any]], list[dict[str, Any]]]] = []

    def spy(main: list[dict[str, Any]], candidate: list[dict[str, Any]], *args: Any) -> Verdict:
        calls.append((main, candidate))
        return Verdict("hold", ["spied"])

    monkeypatch.setattr(f"tests.benchmarks.previous_analysis.{name}", spy)
    return calls


def test_the_old_decider_judges_the_current_step_of_each_side_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    shadows, canaries = _spy(monkeypatch, "analyse_shadow"), _spy(monkeypatch, "analyse_canary")
    traffic = Traffic(BY_NAME["equal"], LABEL_PLANS["immediate"], seed=6)
    rollout = start("bench", "shadow-canary", "1", "2", [10, 50, 100], now=START)
    traffic.serve(0, rollout.weight, rollout.shadowing)
    old_decider(rollout, traffic.main, traffic.candidate, traffic.arrived(0), traffic.now(0))
    rollout, _ = advance(rollout, Verdict("promote", ["ok"]), now=traffic.now(0))  # now the 10% canary
    traffic.serve(1, rollout.weight, rollout.shadowing)
    old_decider(rollout, traffic.main, traffic.candidate, traffic.arrived(1), traffic.now(1))
    (shadow_main, shadow), (canary_main, canary) = shadows[0], canaries[0]
    assert len(shadow_main) == len(shadow) == 1000
    assert {r["predictor"] for r in canary} == {"canary"} and len(canary_main) + len(canary) == 1000
    assert all(r["time"] >= rollout.step_started for r in canary_main)


def test_a_run_ends_at_a_decision_or_holds_to_the_maximum() -> None:
    def hold(*_: Any) -> Verdict:
        return Verdict("hold", ["waiting"])

    def promote(*_: Any) -> Verdict:
        return Verdict("promote", ["ok"])

    equal, plan = BY_NAME["equal"], LABEL_PLANS["never"]
    assert simulate(equal, MODES["whole"], plan, 1, hold, max_intervals=5).decision == "hold"
    assert simulate(equal, MODES["whole"], plan, 1, promote).intervals == 3  # shadow, 10%, 50%
    assert simulate(equal, MODES["canary-10"], plan, 1, promote).intervals == 1  # a step is a pass
    assert simulate(equal, MODES["shadow"], plan, 1, promote).decision == "promote"


@dataclass
class FakeEvidence:
    reference: np.ndarray
    main_drifted: bool
    prevalence: float
    expected_metric: float


def test_the_new_decider_calls_judge_with_its_interface(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []

    def judge(rollout: Any, main: list, candidate: list, labels: dict, settings: Any, **kw: Any) -> Verdict:
        calls.append({"main": len(main), "candidate": len(candidate), "settings": settings, **kw})
        return Verdict("promote" if len(calls) > 1 else "hold", ["fake"])

    fake = types.ModuleType("components.deploy.judge")
    fake.Evidence, fake.judge = FakeEvidence, judge  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "components.deploy.judge", fake)
    drifted = BY_NAME["drifted-main"]
    result = simulate(
        drifted, MODES["whole"], LABEL_PLANS["never"], 1, DECIDERS["new"](drifted, LABEL_PLANS["never"])
    )
    assert result.decision == "promote" and result.intervals == 4
    assert [c["main"] + c["candidate"] for c in calls] == [2000, 4000, 5000, 6000]  # all since the start
    assert calls[0]["settings"] == RolloutAnalysis(label_share=0) and calls[-1]["now"] == START + timedelta(
        minutes=4
    )
    evidence = calls[0]["evidence"]
    assert evidence.main_drifted and evidence.reference.shape == (REFERENCE_ROWS, 1)


def test_the_runner_prints_the_table_and_the_summary(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--quick", "--seeds", "2", "--decider", "old", "--jobs", "1"]
    bench_decisions.main([*argv, "--only", "worse-0.10 whole", "--only", "equal whole"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert sum(line.startswith("[") for line in lines) == 6  # a progress line per cell
    head = next(i for i, line in enumerate(lines) if line.startswith("scenario"))
    rows = [line.split() for line in lines[head + 1 : head + 7]]
    assert [r[:4] for r in rows][:2] == [
        ["equal", "good", "whole", "immediate"],
        ["equal", "good", "whole", "delayed"],
    ]
    for row in rows:
        assert row[4] == "2" and sum(float(x) for x in row[5:8]) == pytest.approx(100)
    assert lines[head + 7].startswith("false promote (worse and faulty whole rollouts): ")
    assert any(line.startswith("false rollback (good whole rollouts") for line in lines)
    assert re.fullmatch(
        r"decisions: false-promote \d+\.\d %; ratio (\d+\.\d\d|nan) vs the previous analysis \(\d+\.\d %\)",
        lines[-1],
    )

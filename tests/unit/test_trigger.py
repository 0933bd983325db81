"""The trigger's decisions, pure: episodes, daily cap, failed runs, a new production version."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from components.monitor.trigger import TriggerPolicy, TriggerState, decide

T0 = datetime(2026, 11, 20, tzinfo=UTC)


def walk(
    policy: TriggerPolicy, plan: list[tuple[list[str], str]], failed: set[int] = frozenset()
) -> list[str]:
    """Decide hourly windows; plan: (findings, production version) per window."""
    state, actions = TriggerState(), []
    for hour, (findings, version) in enumerate(plan):
        if hour in failed:  # the run started by the previous window failed
            state = TriggerState(state.episode, tuple({**r, "status": "failed"} for r in state.runs))
        decision, state = decide(
            policy, state, "m", f"w{hour:02d}", T0 + timedelta(hours=hour + 1), findings, version
        )
        if decision.action == "trigger":
            state = TriggerState(state.episode, tuple({**r, "status": "succeeded"} for r in state.runs))
        actions.append(decision.action)
    return actions


def test_the_daily_cap_holds_new_episodes() -> None:
    drift, clean = (["data_drift"], "1"), ([], "1")
    policy = TriggerPolicy(cooldown_minutes=0, max_runs_per_day=2)
    assert walk(policy, [drift, clean, drift, clean, drift]) == ["trigger", "none", "trigger", "none", "skip"]
    assert walk(TriggerPolicy(max_runs_per_day=0), [drift]) == ["skip"]


def test_a_failed_run_is_retried_within_its_episode() -> None:
    drift = (["data_drift"], "1")
    policy = TriggerPolicy(cooldown_minutes=0)
    assert walk(policy, [drift, drift, drift]) == ["trigger", "skip", "skip"]
    assert walk(policy, [drift, drift, drift], failed={1}) == ["trigger", "trigger", "skip"]


def test_a_new_production_version_starts_a_new_episode() -> None:
    policy = TriggerPolicy(cooldown_minutes=0)
    assert walk(policy, [(["data_drift"], "1"), (["data_drift"], "1"), (["data_drift"], "2")]) == [
        "trigger",
        "skip",
        "trigger",
    ]


def test_findings_the_trigger_does_not_act_on_are_recorded_only() -> None:
    decision, state = decide(TriggerPolicy(), TriggerState(), "m", "w", T0, ["prediction_drift"], "1")
    assert decision.action == "none" and "acts on" in decision.reason and state.runs == ()
    decision, _ = decide(TriggerPolicy(dry_run=True), TriggerState(), "m", "w", T0, ["performance"], "1")
    assert decision.action == "dry_run" and decision.run_id == "retrain-m-w"

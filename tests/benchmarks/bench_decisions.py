"""Benchmark: the decision quality of the rollout analysis on simulated rollouts (issue 24).

Every scenario of decision_scenarios.py (a candidate as good as main, better, worse by the
margin or more, or faulty: 5xx, latency, a calibration skew; and a retrained candidate beside a
drifted main) is rolled out in four modes: `shadow` (one shadow step), `canary-10` (the 10%
step alone: its first verdict that is not a hold), `canary-50` (a canary at 50%) and `whole`
(shadow-canary 0 -> 10 -> 50 -> 100, to promotion or rollback), with labels arriving at once,
ten intervals late for 80% of the rows, or never (the per-step modes: at once and never). A run
that reaches `--max-intervals` without a decision counts as a hold.

The decider is the analysis under test: `old` (today's analyse_shadow / analyse_canary on the
current step's logs, as rollout_store.analyse_logs runs them) or `new`
(components.deploy.judge), the default where it imports.

Per scenario x mode x labels: promote / hold / rollback rates and the median time to a
decision. Then the false-promote rate over the worse and faulty whole rollouts, the false-rollback
rate over the good ones with labels, the share decided without labels, and the median time to a
decision. Last line: `decisions: false-promote F %; ratio R vs the previous analysis (BASE %)`,
BASE the old decider's false-promote rate measured by this harness: the BASELINE constants
below, from `--decider old --seeds 200 --jobs 1` on 2026-12-07 at commit fc9f45c (769 s on one
core); `--decider old` recomputes it.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import statistics
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from components.common.rollout_config import RolloutAnalysis  # noqa: E402
from tests.benchmarks.decision_scenarios import (  # noqa: E402
    DECIDERS,
    LABEL_PLANS,
    MODES,
    SCENARIOS,
    LabelPlan,
    Mode,
    RunResult,
    Scenario,
    run_seed,
    simulate,
)

DEFAULT_SEEDS = {"old": 100, "new": 3}
"""Runs per cell, per decider, for 10 minutes or less on 2 cores. The old decider decides within
a few intervals: 3.9 s a seed on one core, 3.5 s on 2 shared with other work (100 seeds: about
3 to 6 minutes). The new one holds until the evidence arrives, so many runs go on to
--max-intervals with every record since the start judged at each look: one seed of all 126
cells took 170 s on 2 workers (2026-12-07). The figures in the rollouts page come from longer runs (more
seeds, `--only ' whole '` for the whole rollouts)."""
DEFAULT_MAX_INTERVALS = 120
"""Two hours of simulated traffic a run: an equal candidate's whole rollout is decided in about
10 to 40 intervals; what is still held then is held for want of evidence."""
QUICK_SEEDS, QUICK_MAX_INTERVALS = 2, 30
PER_STEP_LABELS = ("immediate", "never")
"""The per-step modes skip delayed labels (runtime); `whole` runs all three."""

BASELINE_FALSE_PROMOTE_PCT: float | None = 9.2
"""The old decider: 553 of 6,000 worse and faulty whole rollouts promoted (worse by the margin
28.8 %, by twice or more 9.4 %, faulty 1.3 %; every one with labels at once: 27.6 % of those,
none with labels delayed or never, which roll back at the shadow step)."""
BASELINE_RUNS, BASELINE_SEEDS = 6000, 200
BASELINE_MEASURED = "2026-12-07, commit fc9f45c"


@dataclass(frozen=True)
class Config:
    """One cell of the table: a scenario in a mode with a label plan."""

    scenario: Scenario
    mode: Mode
    plan: LabelPlan

    @property
    def name(self) -> str:
        return f"{self.scenario.name} {self.mode.name} {self.plan.name}"


def configs(only: Sequence[str] = ()) -> list[Config]:
    """Every cell, in table order; with `only`, those whose name contains one of the strings."""
    cells = []
    for scenario in SCENARIOS:
        for mode in MODES.values():
            plans = LABEL_PLANS if mode.name == "whole" else PER_STEP_LABELS
            cells += [Config(scenario, mode, LABEL_PLANS[p]) for p in plans]
    return [c for c in cells if not only or any(o in c.name for o in only)]


@dataclass(frozen=True)
class Job:
    config: Config
    decider: str
    seeds: int
    rate: int
    max_intervals: int


def run_job(job: Job) -> tuple[Config, list[RunResult], float]:
    """All seeds of one cell (in a worker process): (cell, results, seconds)."""
    started = time.perf_counter()
    c = job.config
    decider = DECIDERS[job.decider](c.scenario, c.plan)
    results = [
        simulate(
            c.scenario,
            c.mode,
            c.plan,
            run_seed(c.scenario.name, c.mode.name, c.plan.name, i),
            decider,
            job.rate,
            job.max_intervals,
        )
        for i in range(job.seeds)
    ]
    return c, results, time.perf_counter() - started


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:5.1f}" if whole else "  n/a"


def _count(results: Iterable[RunResult], decision: str) -> int:
    return sum(r.decision == decision for r in results)


def _median_time(results: Iterable[RunResult], interval_minutes: float) -> str:
    """The median intervals of the runs that decided, and in simulated minutes."""
    decided = [r.intervals for r in results if r.decision != "hold"]
    if not decided:
        return "-"
    median = statistics.median(decided)
    return f"{median:g} intervals ({median * interval_minutes:g} min)"


def table(results: dict[Config, list[RunResult]], interval_minutes: float) -> list[str]:
    """One line per cell: runs, promote / hold / rollback %, median time to a decision."""
    head = f"{'scenario':<17} {'class':<13} {'mode':<10} {'labels':<10} {'runs':>5} "
    lines = [head + "promote%  hold% rollback%  median time to a decision"]
    for c, rs in results.items():
        lines.append(
            f"{c.scenario.name:<17} {c.scenario.group:<13} {c.mode.name:<10} {c.plan.name:<10} {len(rs):>5} "
            f"{_pct(_count(rs, 'promote'), len(rs)):>8} {_pct(_count(rs, 'hold'), len(rs)):>6} "
            f"{_pct(_count(rs, 'rollback'), len(rs)):>9}  {_median_time(rs, interval_minutes)}"
        )
    return lines


def _whole(results: dict[Config, list[RunResult]], groups: set[str], plans: set[str]) -> list[RunResult]:
    return [
        r
        for c, rs in results.items()
        if c.mode.name == "whole" and c.scenario.group in groups and c.plan.name in plans
        for r in rs
    ]


def _rate(label: str, runs: list[RunResult], decision: str | tuple[str, ...]) -> tuple[str, float]:
    wanted = (decision,) if isinstance(decision, str) else decision
    hits = sum(r.decision in wanted for r in runs)
    rate = 100 * hits / len(runs) if runs else float("nan")
    return f"{label}: {_pct(hits, len(runs)).strip()} % ({hits}/{len(runs)})", rate


ALL_PLANS = set(LABEL_PLANS)
BAD = {"worse-margin", "worse-2x", "faulty"}
MARGIN_TEXT = ", ".join(
    f"-{s.main_auc - s.candidate_auc:.2f}" for s in SCENARIOS if s.group == "worse-margin"
)


def summary(results: dict[Config, list[RunResult]], interval_minutes: float) -> tuple[list[str], float]:
    """The summary lines, and the false-promote rate (%) over the worse and faulty whole rollouts."""
    line, false_promote = _rate(
        "false promote (worse and faulty whole rollouts)", _whole(results, BAD, ALL_PLANS), "promote"
    )
    lines = [line]
    for group, what in (
        ("worse-margin", f"worse by the margin ({MARGIN_TEXT})"),
        ("worse-2x", "worse by twice the margin or more"),
        ("faulty", "faulty (5xx, latency, calibration skew)"),
    ):
        lines.append("  " + _rate(what, _whole(results, {group}, ALL_PLANS), "promote")[0])
    by_plan = [_rate(p, _whole(results, BAD, {p}), "promote")[0] for p in LABEL_PLANS]
    lines.append("  by labels: " + "; ".join(by_plan))
    good = _whole(results, {"good"}, {"immediate", "delayed"})
    lines.append(
        _rate("false rollback (good whole rollouts, labels immediate or delayed)", good, "rollback")[0]
    )
    lines.append(
        _rate(
            "promoted with labels never arriving (whole rollouts)",
            _whole(results, {"good", *BAD}, {"never"}),
            "promote",
        )[0]
    )
    lines.append(
        "  "
        + _rate(
            "faulty ones rolled back on guardrails alone", _whole(results, {"faulty"}, {"never"}), "rollback"
        )[0]
    )
    faulty = _whole(results, {"faulty"}, ALL_PLANS)
    lines.append(_rate("faulty whole rollouts rolled back (all label plans)", faulty, "rollback")[0])
    lines.append(
        "median time to a decision (whole rollouts): "
        + _median_time(_whole(results, {"good", *BAD}, ALL_PLANS), interval_minutes)
    )
    return lines, false_promote


def final_line(false_promote: float, base: float) -> str:
    """`decisions: false-promote F %; ratio R vs the previous analysis (BASE %)`."""
    ratio = false_promote / base if base else (float("inf") if false_promote else float("nan"))
    figures = f"false-promote {false_promote:.1f} %; ratio {ratio:.2f}"
    return f"decisions: {figures} vs the previous analysis ({base:.1f} %)"


def default_decider() -> str:
    """`new`: components.deploy.judge."""
    return "new"


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--seeds", type=int, help=f"runs per cell (default by decider {DEFAULT_SEEDS}; --quick {QUICK_SEEDS})"
    )
    parser.add_argument(
        "--only", action="append", default=[], help="cells whose 'scenario mode labels' has it"
    )
    parser.add_argument(
        "--quick", action="store_true", help=f"a smoke run: {QUICK_SEEDS} seeds, shorter runs"
    )
    parser.add_argument("--decider", choices=sorted(DECIDERS), default=None)
    parser.add_argument("--rate", type=int, default=1000, help="requests per interval")
    parser.add_argument("--max-intervals", type=int, help="a run without a decision by then is a hold (240)")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), help="worker processes")
    args = parser.parse_args(argv)
    args.decider = args.decider or default_decider()
    args.seeds = args.seeds or (QUICK_SEEDS if args.quick else DEFAULT_SEEDS[args.decider])
    args.max_intervals = args.max_intervals or (QUICK_MAX_INTERVALS if args.quick else DEFAULT_MAX_INTERVALS)
    return args


def _progress(done: int, total: int, c: Config, rs: list[RunResult], seconds: float, elapsed: float) -> str:
    counts = ", ".join(
        f"{d} {_pct(_count(rs, d), len(rs)).strip()}%" for d in ("promote", "hold", "rollback")
    )
    return f"[{done}/{total}] {c.name}: {counts} ({seconds:.1f} s; {elapsed:.0f} s in all)"


def run_all(jobs: list[Job], workers: int) -> dict[Config, list[RunResult]]:
    """Every job, in worker processes (one: in this one), with a progress line per cell."""
    started, out = time.perf_counter(), {}
    pool = multiprocessing.get_context("fork").Pool(workers) if workers > 1 else None
    try:
        done = pool.imap_unordered(run_job, jobs) if pool else map(run_job, jobs)
        for i, (c, rs, seconds) in enumerate(done, 1):
            out[c] = rs
            print(_progress(i, len(jobs), c, rs, seconds, time.perf_counter() - started), flush=True)
    finally:
        if pool:
            pool.close()
            pool.join()
    return {j.config: out[j.config] for j in jobs}


def main(argv: Sequence[str] | None = None) -> None:
    args = parse(argv)
    cells = configs(args.only)
    if not cells:
        raise SystemExit(f"no cell matches {args.only}")
    started = time.perf_counter()
    print(
        f"{len(cells)} cells x {args.seeds} seeds, decider {args.decider}, {args.rate} requests an "
        f"interval, at most {args.max_intervals} intervals a run, {args.jobs} workers",
        flush=True,
    )
    jobs = [Job(c, args.decider, args.seeds, args.rate, args.max_intervals) for c in cells]
    results = run_all(jobs, args.jobs)
    interval_minutes = RolloutAnalysis().interval_seconds / 60
    print("\n".join(table(results, interval_minutes)))
    lines, false_promote = summary(results, interval_minutes)
    print("\n".join(lines))
    recorded = math.nan if BASELINE_FALSE_PROMOTE_PCT is None else BASELINE_FALSE_PROMOTE_PCT
    base = recorded
    if args.decider == "old":
        base = false_promote
        print(
            f"(the old decider measured now; recorded: {recorded:.1f} % over {BASELINE_RUNS} rollouts, "
            f"{BASELINE_SEEDS} seeds, {BASELINE_MEASURED})"
        )
    print(f"{time.perf_counter() - started:.0f} s")
    print(final_line(false_promote, base))


if __name__ == "__main__":
    main()

"""Simulated rollouts for the decision-quality benchmark (bench_decisions.py, issue 24).

A gateway sends `rate` one-row requests per analysis interval to main (version 1) and to the
candidate (version 2): a canary gets each request with its weight's probability, a shadow a
mirrored copy of every one. Both sides log records in the request-log format (seldon_model.py:
`_lines` for answers, `_log_failure` for 5xx), stamped with the simulated clock.

Scores are binormal: a row's label y ~ Bernoulli(3%), a model's latent score is mu * y + e with
standard normal e, the two models' e correlated 0.7 (two models of the same rows), and
ROC AUC = Phi(mu / sqrt 2). A model serves sigmoid(mu * s - mu^2 / 2 + logit(3%)), the
probability calibrated for the population it was validated on, and decides at the threshold
that gives recall 0.8 on that validation sample, whose probabilities are its `reference`.

Labels (request id, row) -> y arrive `delay` intervals after the request for a `share` of the
rows. A decider (the analysis under test) is called at the end of every interval and its verdict
is applied with `rollout.advance`; a run ends at a decision or after `max_intervals` (a hold).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy.stats import norm

from components.common.rollout_config import RolloutAnalysis
from components.deploy.analysis import Verdict
from components.deploy.logframe import Key, labels_frame, log_frame
from components.deploy.rollout import Rollout, advance, start

MODEL = "bench"
ANSWER_NAMES = ("probability",)
"""A binary task's answer field."""
MAIN_VERSION, CANDIDATE_VERSION = "1", "2"
PREVALENCE = 0.03
MAIN_AUC = 0.85
NOISE_CORRELATION = 0.7
RECALL = 0.8
VALIDATION_ROWS = 200_000
"""Rows of a validation sample: the threshold's quantile needs thousands of positives."""
REFERENCE_ROWS = 20_000
"""Of them, the validation probabilities passed as the reference."""
LATENCY_MEDIAN_MS, LATENCY_SIGMA = 20.0, 0.35
BASE_ERROR_RATE = 0.001
MARGIN = RolloutAnalysis().margin
START = datetime(2030, 1, 1, tzinfo=UTC)

Record = dict[str, Any]
Labels = dict[Key, int]
Decider = Callable[[Rollout, list[Record], list[Record], Labels, datetime], Verdict]
"""(rollout, main's records, the candidate's records, labels arrived, now) -> verdict. Within a
run the same lists and dict are passed each time, grown: records are appended in time order."""
Decision = Literal["promote", "hold", "rollback"]
Kind = Literal["good", "worse", "faulty"]


def separation(auc: float) -> float:
    """The binormal mu of a ROC AUC: AUC = Phi(mu / sqrt 2)."""
    return math.sqrt(2) * float(norm.ppf(auc))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


LOGIT_PREVALENCE = math.log(PREVALENCE / (1 - PREVALENCE))


@dataclass(frozen=True)
class Scenario:
    """A candidate against main. AUCs are on the served population; `main_shift` and
    `candidate_shift` are added to every served logit (main drifted; a serving skew)."""

    name: str
    kind: Kind
    candidate_auc: float
    main_auc: float = MAIN_AUC
    main_shift: float = 0.0
    candidate_shift: float = 0.0
    extra_errors: float = 0.0
    latency_factor: float = 1.0
    main_drifted: bool = False

    @property
    def group(self) -> str:
        """good; worse by the margin; worse by twice the margin or more; faulty."""
        if self.kind != "worse":
            return self.kind
        drop = self.main_auc - self.candidate_auc
        return "worse-2x" if drop >= 2 * MARGIN - 1e-9 else "worse-margin"


def _worse(drop: float) -> Scenario:
    return Scenario(f"worse-{drop:.2f}", "worse", MAIN_AUC - drop)


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("equal", "good", MAIN_AUC),
    Scenario("better+0.03", "good", MAIN_AUC + 0.03),
    Scenario("better+0.10", "good", MAIN_AUC + 0.10),
    *(_worse(d) for d in (MARGIN, 0.03, 2 * MARGIN, 0.06, 0.10)),
    # Same ranking, served logits +1.5 while the reference and threshold stay as validated.
    Scenario("calibration-skew", "faulty", MAIN_AUC, candidate_shift=1.5),
    Scenario("5xx+2%", "faulty", MAIN_AUC, extra_errors=0.02),
    Scenario("5xx+10%", "faulty", MAIN_AUC, extra_errors=0.10),
    Scenario("latency-1.5x", "faulty", MAIN_AUC, latency_factor=1.5),
    Scenario("latency-3x", "faulty", MAIN_AUC, latency_factor=3.0),
    # The population moved: main ranks it worse and scores it higher than it was validated on;
    # the candidate was retrained (and validated) on it.
    Scenario("drifted-main", "good", 0.86, main_auc=0.78, main_shift=0.8, main_drifted=True),
)


@dataclass(frozen=True, eq=False)
class Model:
    """A served version: latent separation on the served population, the mu its probability
    was calibrated for, a logit shift, its threshold and its validation probabilities."""

    version: str
    served_mu: float
    fitted_mu: float
    shift: float
    threshold: float
    reference: np.ndarray = field(repr=False)

    def probability(self, latent: np.ndarray) -> np.ndarray:
        """Served probabilities of latent scores (the calibrated map, then the shift)."""
        mu = self.fitted_mu
        return _sigmoid(mu * latent - mu * mu / 2 + LOGIT_PREVALENCE + self.shift)

    def serve(self, y: np.ndarray, noise: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(probabilities, decisions) of rows with labels y and this model's noise."""
        p = self.probability(self.served_mu * y + noise)
        return p, (p >= self.threshold).astype(np.int64)


def validate(mu: float, rng: np.random.Generator, rows: int = VALIDATION_ROWS) -> tuple[float, np.ndarray]:
    """(threshold for recall 0.8, the first REFERENCE_ROWS probabilities as an (n, 1) reference)
    of a model calibrated for separation mu, on a validation sample of its own population."""
    y = rng.random(rows) < PREVALENCE
    p = _sigmoid(mu * (mu * y + rng.standard_normal(rows)) - mu * mu / 2 + LOGIT_PREVALENCE)
    return float(np.quantile(p[y], 1 - RECALL)), p[:REFERENCE_ROWS].reshape(-1, 1)


def _seed(*parts: object) -> int:
    """A stable seed of names (hash() of a str changes between processes)."""
    return zlib.crc32("/".join(map(str, parts)).encode())


@cache
def models(scenario: Scenario) -> tuple[Model, Model]:
    """(main, candidate), each validated once per scenario; main was validated before any drift."""
    rng = np.random.default_rng(_seed("validation", scenario.name))
    main_mu, candidate_mu = separation(MAIN_AUC), separation(scenario.candidate_auc)
    main_threshold, main_reference = validate(main_mu, rng)
    threshold, reference = validate(candidate_mu, rng)
    main = Model(
        MAIN_VERSION,
        separation(scenario.main_auc),
        main_mu,
        scenario.main_shift,
        main_threshold,
        main_reference,
    )
    candidate = Model(
        CANDIDATE_VERSION, candidate_mu, candidate_mu, scenario.candidate_shift, threshold, reference
    )
    return main, candidate


def draw_rows(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(labels, main's noise, the candidate's noise) of n rows: the noises correlate as two
    models' errors on the same rows do."""
    y = rng.random(n) < PREVALENCE
    e_main = rng.standard_normal(n)
    e_candidate = NOISE_CORRELATION * e_main + math.sqrt(1 - NOISE_CORRELATION**2) * rng.standard_normal(n)
    return y, e_main, e_candidate


@dataclass(frozen=True)
class LabelPlan:
    """When labels arrive: `delay` intervals after the request, for a `share` of the rows."""

    name: str
    delay: int
    share: float


LABEL_PLANS = {
    p.name: p
    for p in (LabelPlan("immediate", 0, 1.0), LabelPlan("delayed", 10, 0.8), LabelPlan("never", 0, 0.0))
}


@dataclass(frozen=True)
class Mode:
    """Which part of a rollout is judged: a strategy and its steps; `first_verdict` ends the run
    at the first verdict that is not a hold (a step counts as a pass)."""

    name: str
    strategy: str
    steps: tuple[int, ...]
    first_verdict: bool = False


MODES = {
    m.name: m
    for m in (
        Mode("shadow", "shadow", (100,)),
        Mode("canary-10", "canary", (10, 50, 100), first_verdict=True),
        Mode("canary-50", "canary", (50, 100)),
        Mode("whole", "shadow-canary", (10, 50, 100)),
    )
}


def _stamps(start: datetime, seconds: np.ndarray) -> list[str]:
    """ISO UTC times with milliseconds, as now_iso writes them."""
    origin = np.datetime64(start.replace(tzinfo=None), "ms")
    moments = origin + np.round(seconds * 1000).astype("timedelta64[ms]")
    return [f"{s}+00:00" for s in np.datetime_as_string(moments, unit="ms")]


class Traffic:
    """One run's gateway: per interval, the requests of both sides as logged, and the labels."""

    def __init__(
        self,
        scenario: Scenario,
        plan: LabelPlan,
        seed: int,
        rate: int = 1000,
        interval_seconds: float = 60.0,
    ) -> None:
        self.scenario, self.plan, self.rate, self.interval_seconds = scenario, plan, rate, interval_seconds
        self.main_model, self.candidate_model = models(scenario)
        self.rng = np.random.default_rng(seed)
        self.main: list[Record] = []
        self.candidate: list[Record] = []
        self.labels: Labels = {}
        self._pending: dict[int, Labels] = {}  # interval at whose end they arrive -> labels

    def now(self, interval: int) -> datetime:
        """The end of an interval: when it is analysed."""
        return START + timedelta(seconds=(interval + 1) * self.interval_seconds)

    def serve(self, interval: int, weight: int, shadowing: bool) -> None:
        """Generate one interval's requests and log them on each side."""
        n, rng, s = self.rate, self.rng, self.scenario
        seconds = interval * self.interval_seconds + np.sort(rng.uniform(0, self.interval_seconds, n))
        times = _stamps(START, seconds)
        ids = [f"r{interval}-{i}" for i in range(n)]
        y, e_main, e_candidate = draw_rows(rng, n)
        sides = (
            (self.main_model, e_main, BASE_ERROR_RATE, 1.0),
            (self.candidate_model, e_candidate, BASE_ERROR_RATE + s.extra_errors, s.latency_factor),
        )
        served = []
        for model, noise, error_rate, slower in sides:
            p, d = model.serve(y, noise)
            latency = LATENCY_MEDIAN_MS * slower * np.exp(LATENCY_SIGMA * rng.standard_normal(n))
            served.append((model, p, d, latency, rng.random(n) < error_rate))
        to_candidate = np.ones(n, bool) if shadowing else rng.random(n) < weight / 100
        main_rows = np.ones(n, bool) if shadowing else ~to_candidate  # a shadow answers nobody
        self.main += _records("main", ids, times, *served[0], main_rows)
        predictor = "shadow" if shadowing else "canary"
        self.candidate += _records(predictor, ids, times, *served[1], to_candidate)
        self._label(interval, ids, y)

    def _label(self, interval: int, ids: list[str], y: np.ndarray) -> None:
        labeled = np.flatnonzero(self.rng.random(len(ids)) < self.plan.share)
        if len(labeled):
            bucket = self._pending.setdefault(interval + self.plan.delay, {})
            bucket.update({(ids[i], 0): int(y[i]) for i in labeled.tolist()})

    def arrived(self, interval: int) -> Labels:
        """The labels arrived by the end of `interval` (the same dict, grown)."""
        self.labels.update(self._pending.pop(interval, {}))
        return self.labels


def _records(
    predictor: str,
    ids: list[str],
    times: list[str],
    model: Model,
    p: np.ndarray,
    d: np.ndarray,
    latency: np.ndarray,
    failed: np.ndarray,
    rows: np.ndarray,
) -> list[Record]:
    """The log records of the rows a side served: answers as `_lines`, 5xx as `_log_failure`."""
    out: list[Record] = []
    probability, decision, ms, fail = p.tolist(), d.tolist(), np.round(latency, 3).tolist(), failed.tolist()
    for i in np.flatnonzero(rows).tolist():
        record: Record = {
            "request_id": ids[i],
            "row": 0,
            "time": times[i],
            "predictor": predictor,
            "model": MODEL,
            "model_version": model.version,
        }
        if fail[i]:
            record.update(status=500, error="simulated server error", latency_ms=ms[i])
        else:
            record.update(status=200, latency_ms=ms[i], probability=probability[i], decision=decision[i])
        out.append(record)
    return out


def old_decider(
    rollout: Rollout, main: list[Record], candidate: list[Record], labels: Labels, now: datetime
) -> Verdict:
    """Today's analysis, as rollout_store.analyse_logs runs it, without the store: the current
    step's rows of each side's own version, the labels, and the default settings."""
    since = datetime.fromisoformat(rollout.step_started)
    name = "shadow" if rollout.shadowing else "canary"

    def rows(records: list[Record], predictor: str, version: str | None) -> list[Record]:
        return [
            r
            for r in records
            if r["predictor"] == predictor
            and r.get("model_version") == version
            and datetime.fromisoformat(r["time"]) >= since
        ]

    from tests.benchmarks.previous_analysis import PreviousSettings, analyse_canary, analyse_shadow

    ours, theirs = rows(main, "main", rollout.production), rows(candidate, name, rollout.candidate)
    if rollout.shadowing:
        return analyse_shadow(ours, theirs, PreviousSettings(), labels)
    return analyse_canary(ours, theirs, PreviousSettings(), labels)


class Frames:
    """One run's growing records as the analysis' columns, each record converted once (the
    analysis would convert them all at every interval: what the operator does with the logs it
    reads, but hours of simulated traffic a run would then cost minutes)."""

    def __init__(self) -> None:
        self.source: object = None
        self.count = 0
        self.frame: pd.DataFrame | None = None

    def _grown(self, source: object, size: int) -> int:
        """How many items are new; a new run's list starts over."""
        if source is not self.source or size < self.count:
            self.source, self.count, self.frame = source, 0, None
        return size - self.count

    def records(self, records: list[Record]) -> pd.DataFrame:
        """The records as a log frame."""
        if self._grown(records, len(records)) or self.frame is None:
            part = log_frame(records[self.count :], ANSWER_NAMES)
            self.frame = part if self.frame is None else pd.concat([self.frame, part], ignore_index=True)
            self.count = len(records)
        return self.frame

    def labels(self, labels: Labels) -> pd.DataFrame:
        """The labels as a frame (the dict only grows: new keys come last)."""
        if self._grown(labels, len(labels)) or self.frame is None:
            part = labels_frame({k: labels[k] for k in list(labels)[self.count :]})
            self.frame = part if self.frame is None else pd.concat([self.frame, part], ignore_index=True)
            self.count = len(labels)
        return self.frame


def settings_for(plan: LabelPlan, interval_seconds: float) -> RolloutAnalysis:
    """The defaults, with the labels described as a team would configure them: their share and
    their delay (`deployment.analysis.label_share`, `label_delay_seconds`)."""
    return RolloutAnalysis(label_share=plan.share, label_delay_seconds=plan.delay * interval_seconds)


def new_decider(scenario: Scenario, plan: LabelPlan) -> Decider:
    """The analysis (components.deploy.judge): every record since the start, the candidate's
    validation probabilities, whether main drifted, and the label plan's settings."""
    from components.deploy.judge import Evidence, judge

    evidence = Evidence(
        reference=models(scenario)[1].reference,
        main_drifted=scenario.main_drifted,
        prevalence=PREVALENCE,
        expected_metric=scenario.candidate_auc,
    )
    settings = settings_for(plan, RolloutAnalysis().interval_seconds)
    main_frames, candidate_frames, label_frames = Frames(), Frames(), Frames()

    def decide(
        rollout: Rollout, main: list[Record], candidate: list[Record], labels: Labels, now: datetime
    ) -> Verdict:
        verdict: Verdict = judge(
            rollout,
            main_frames.records(main),
            candidate_frames.records(candidate),
            label_frames.labels(labels),
            settings,
            now=now,
            evidence=evidence,
        )
        return verdict

    return decide


DECIDERS: dict[str, Callable[[Scenario, LabelPlan], Decider]] = {
    "old": lambda *_: old_decider,
    "new": new_decider,
}


@dataclass(frozen=True)
class RunResult:
    """How a run ended and after how many intervals (a hold: after the maximum)."""

    decision: Decision
    intervals: int


def simulate(
    scenario: Scenario,
    mode: Mode,
    plan: LabelPlan,
    seed: int,
    decider: Decider,
    rate: int = 1000,
    max_intervals: int = 240,
) -> RunResult:
    """One rollout, analysed at the end of every interval until a decision or the maximum."""
    interval_seconds = RolloutAnalysis().interval_seconds
    traffic = Traffic(scenario, plan, seed, rate, interval_seconds)
    rollout = start(MODEL, mode.strategy, MAIN_VERSION, CANDIDATE_VERSION, list(mode.steps), now=START)
    for interval in range(max_intervals):
        traffic.serve(interval, rollout.weight, rollout.shadowing)
        now = traffic.now(interval)
        verdict = decider(rollout, traffic.main, traffic.candidate, traffic.arrived(interval), now)
        rollout, action = advance(rollout, verdict, now=now)
        if action == "rollback":
            return RunResult("rollback", interval + 1)
        if action == "promote" or (action == "step" and mode.first_verdict):
            return RunResult("promote", interval + 1)
    return RunResult("hold", max_intervals)


def run_seed(*parts: object) -> int:
    """The seed of one run: the same for both deciders, so they judge the same traffic."""
    return _seed("run", *parts)

"""`kubeloop loop`: the closed loop on 127.0.0.1, from a first model to a retrained one in production.

Every stage runs the real thing: the training DAG under kfp.local (its deploy step puts v1
in production), `seldon-core-microservice` predictors behind the local gateway following
the SeldonDeployment in the store, the monitor on the request logs, the retraining run it
starts, and the rollout analysis stepping the new version through shadow and canary. Only
time is compressed (`loop` section): windows of seconds instead of hours. The scenario
`bad_candidate` makes the retraining run's candidate worse and forces it past its gate, so the
rollout analysis is what must stop it.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from components.common.artifacts import DatasetSchema, version_prefix
from components.common.config import KubeloopConfig
from components.common.config_loader import load_config
from components.common.monitoring_config import duration_seconds
from components.common.registry import Registry
from components.common.store import NotFoundError, open_store
from components.evaluate.gallery import GALLERY_FILE as ERROR_GALLERY
from components.validate_data.gallery import GALLERY_FILE as GATE_GALLERY
from loop.record import LoopRecord, Stage
from loop.traffic import Replay, Replayed, generate_rows, write_labels

SCENARIOS = ("drift", "bad_candidate")
EXPECTED = {"drift": "promoted", "bad_candidate": "rolled_back"}
"""How each scenario's rollout must end."""
THUMBNAILS = 8
"""Inputs of each traffic phase shown as thumbnails in the index (where inputs have them)."""
NOTES_SHOWN = 6
"""A step's notes (warnings, decisions) shown in the retraining progress; all are in status.json."""
ROLLOUT_BATCH = 500
"""Rows per batch of rollout traffic: labels are written after each."""
BAD_REASON = "scenario bad_candidate: a candidate made worse on purpose, forced past its failed gate"


class LoopError(RuntimeError):
    """A stage did not end as the loop needs; the message says which and where its output is."""


def loop_overrides(config: KubeloopConfig) -> list[str]:
    """What the loop changes for every run it makes: compressed time, v1 deployed by its pipeline."""
    loop = config.loop
    return [
        "deployment.auto_deploy=true",
        f"monitoring.window={loop.window}",
        f"monitoring.late_seconds={loop.late_seconds}",
        "deployment.serving.flush_seconds=1",
        f"deployment.analysis.interval_seconds={loop.analysis_interval_seconds}",
        f"deployment.analysis.warmup_seconds={loop.warmup_seconds}",
        f"deployment.analysis.min_latency_increase_ms={loop.min_latency_increase_ms}",
    ]


class Loop:
    """One run of the scenario; each stage is a method, each records itself in `record`."""

    def __init__(
        self,
        config_path: str,
        overrides: list[str],
        store_uri: str,
        work: Path,
        scenario: str = "drift",
        say: Callable[[str], None] = print,
        verbose: bool = False,
    ) -> None:
        if scenario not in SCENARIOS:
            raise ValueError(f"unknown scenario {scenario!r}; use one of {', '.join(SCENARIOS)}")
        base = load_config(config_path, [*overrides, f"store={store_uri}"])
        self.overrides = [*overrides, *loop_overrides(base), f"store={store_uri}"]
        self.config_path = str(Path(config_path).resolve())
        self.config = load_config(config_path, self.overrides)
        self.store = open_store(store_uri)
        self.work = work  # this machine's side: the predictors' and runs' logs, generated traffic
        self.scenario, self.verbose = scenario, verbose
        self.started = time.monotonic()
        self._say = say
        self.record = LoopRecord(self.config.name, scenario, store_uri, self.overrides)
        self.serving: Any = None
        self.stop = threading.Event()
        self.follower: threading.Thread | None = None

    def say(self, stage: str, line: str) -> None:
        """A progress line: seconds since the start, the stage, the message."""
        self._say(f"[{time.monotonic() - self.started:6.1f}s] {stage:<10} {line}")

    # -- stages ---------------------------------------------------------------------------

    def train_first(self) -> None:
        """Train, gate, register and deploy v1 (the training DAG; its deploy step makes it
        production); or start from the production model the store already holds."""
        from pipelines.local import materialize_dataset, new_run_id, run_training

        registry = Registry(self.store)
        versions = registry.versions(self.config.name)
        if versions:  # a `kubeloop run` trained it: production, else the newest version
            version = registry.champion(self.config.name) or list(versions)[-1]
            self._start_from(version, str(versions[version].get("run_id")))
            return
        with self.record.stage("train v1", "train, gate and register the first model, deploy it") as stage:
            if materialize_dataset(self.config):
                self.say("train", f"generated the dataset {self.config.dataset.path}")
            run_id = f"loop-v1-{new_run_id()}"
            self.say("train", f"run {run_id}: validate, train, calibrate, evaluate, register, deploy")
            with self._step_output(f"{run_id}.log", "train"):
                result = run_training(self.config, self.store, run_id, trigger="loop")
            if not result.succeeded:
                failed = result.failed_step or {}
                raise LoopError(
                    f"v1's run stopped at {failed.get('step')}: {failed.get('reason') or result.error}"
                )
            version = str(next(s for s in result.steps if s["step"] == "register")["metrics"]["version"])
            stage.decision = f"v{version} registered and deployed as production"
            self._link_run(stage, run_id, version)

    def _start_from(self, version: str, run_id: str) -> None:
        """A store where `kubeloop run` trained the model: `version` (production, else the newest)
        is the loop's first model, put in production and served with the loop's settings. The
        loop's windows, trigger and rollout read everything served under the model's name, so a
        store that served it is refused."""
        from components.deploy.rollout_store import serve_production

        name = self.config.name
        with self.record.stage("train v1", f"start from v{version} in the store") as stage:
            served = [p for p in (f"logs/{name}", f"labels/{name}", f"monitor/{name}") if self.store.list(p)]
            if served:
                raise LoopError(
                    f"the store already holds {', '.join(served)}: its traffic would join the loop's "
                    "windows and its monitor state the trigger's; give the loop a fresh store, or "
                    f"one where `kubeloop run` trained the model to start from"
                )
            schema = DatasetSchema.read(self.store, version_prefix(name, version))
            wanted = (self.config.dataset.label, self.config.dataset.modality)
            if (schema.label, schema.modality) != wanted:
                raise LoopError(
                    f"v{version} in the store learnt {schema.label!r} from {schema.modality} data; "
                    f"this config's traffic has {wanted[0]!r} from {wanted[1]} data: use the store "
                    "the config's own `kubeloop run` trained into"
                )
            try:
                serve_production(self.store, self.config, version)
            except ValueError as exc:
                raise LoopError(str(exc)) from exc
            self.say("train", f"v{version} of the store (run {run_id}) is the first model: no training")
            stage.decision = f"v{version} from the store, deployed as production"
            self._link_run(stage, run_id, version)

    def serve(self) -> None:
        """Start the predictors and the gateway, following the SeldonDeployment in the store."""
        from components.deploy.local_follow import follow
        from components.deploy.local_serving import LocalServing, free_port

        with self.record.stage("serve", "predictors and the gateway on 127.0.0.1") as stage:
            port = free_port()
            self.serving = LocalServing(
                self.work / "serving", port=port, say=lambda line: self.say("serve", line.strip())
            )
            self.follower = threading.Thread(
                target=follow,
                args=(self.store, self.config, self.serving, self.stop, 0.5, True),
                kwargs={"say": self._rollout_line},
                name="loop-follow",
                daemon=True,
            )
            self.follower.start()
            deadline = time.monotonic() + 180
            while not self._gateway_up():
                if time.monotonic() > deadline or not self.follower.is_alive():
                    raise LoopError("the predictors did not start in 180 s: see the serve lines above")
                time.sleep(0.2)
            stage.decision = f"gateway {self.serving.url}"

    def _rollout_line(self, line: str) -> None:
        """An analysis verdict one check a line; other lines as they are."""
        marker = "every check passed: "
        if (
            not line.startswith(("analysis: step", "analysis: promote", "analysis: rollback"))
            or "; " not in line
        ):
            self.say("rollout", line)
            return
        head, found, rest = line.partition(marker)
        if not found:
            action, _, rest = line[len("analysis: ") :].partition(": ")
            head = f"analysis: {action}: "
        self.say("rollout", head.rstrip())
        for part in rest.split("; "):
            self.say("rollout", f"  - {part}")

    def _gateway_up(self) -> bool:
        return bool(self.serving.gateway and self.serving.state()["predictors"])

    def replay_phases(self) -> None:
        """Live traffic, then shifted traffic, each in its own monitor window, with labels after."""
        loop = self.config.loop
        window = duration_seconds(loop.window)
        features = self._features()
        known = self._known_columns(features)
        replay = Replay(self.serving.url, features, self.config.dataset.make_modality(), loop.concurrency)
        first = self._next_boundary(window, margin=1.0)
        self._set_watermark(first)
        for number, phase in enumerate((loop.live, loop.shifted)):
            start = first + timedelta(seconds=number * window)
            title = f"{phase.name}: {phase.rows:,} rows in the window from {start:%H:%M:%S}"
            with self.record.stage(f"traffic {number + 1}", title) as stage:
                params = {**phase.params, "rows": phase.rows, "seed": phase.seed}
                frame = generate_rows(self.config, params, self._traffic_folder(f"p{number + 1}"))
                self._sleep_until(start, "traffic", f"waiting for the window at {start:%H:%M:%S}")
                self.say("traffic", f"{phase.name}: sending {len(frame):,} rows through the gateway")
                sent = replay.send(frame, f"p{number + 1}", loop.rows_per_request)
                if datetime.now(UTC) >= start + timedelta(seconds=window):
                    self.say(
                        "traffic", f"warning: the replay ran past its {loop.window} window; raise loop.window"
                    )
                key = write_labels(
                    self.store,
                    self.config.name,
                    f"p{number + 1}",
                    sent,
                    frame,
                    self.config.dataset.label,
                    loop.rows_per_request,
                    known,
                )
                self._check_sent(sent, phase.name)
                stage.facts["thumbnails"] = self._thumbnails(frame, f"p{number + 1}")
                stage.decision = f"{sent.rows:,} rows in {sent.requests} requests, all answered"
                stage.facts.update(rows=sent.rows, requests=sent.requests, p50_ms=round(sent.p50_ms(), 2))
                stage.links["labels"] = key
                self.say("traffic", f"{stage.decision}; labels written to {key}")
        self._sleep_until(
            first + timedelta(seconds=2 * window + loop.late_seconds), "monitor", "windows closing"
        )

    def monitor(self) -> str:
        """One monitor pass over both windows; returns the retraining run it started."""
        from components.monitor.launch import LocalLauncher
        from components.monitor.monitor import monitor_pass

        with self.record.stage("monitor", "drift checks of the closed windows") as stage:
            self.launcher = LocalLauncher(
                self.store,
                self.config.name,
                self.config_path,
                self._retrain_overrides(),
                self.work / "monitor-runs",
            )
            result = monitor_pass(
                self.store,
                self.config,
                self.launcher,
                progress=lambda line: self.say("monitor", line.strip()),
            )
            if result.waiting:
                raise LoopError(f"the monitor checked nothing: {result.waiting}")
            for check, decision in zip(result.checks, result.decisions, strict=True):
                stage.facts.setdefault("windows", []).append(
                    {
                        "window": decision.window,
                        "rows": check.rows,
                        "findings": list(check.findings),
                        "action": decision.action,
                        "reason": decision.reason,
                        "report": check.report,
                    }
                )
                if check.report:
                    stage.links[f"drift report {decision.window}"] = check.report
                embedding_report = (check.embedding_drift or {}).get("report")
                if embedding_report:
                    stage.links[f"embedding drift {decision.window}"] = embedding_report
            triggers = [d for d in result.decisions if d.action == "trigger"]
            stage.decision = f"{len(result.decisions)} windows: " + ", ".join(
                f"{d.action} ({', '.join(d.findings) or 'no finding'})" for d in result.decisions
            )
            if len(triggers) != 1 or not result.started:
                raise LoopError(f"expected one retraining run from the shifted window; {stage.decision}")
            run_id = str(triggers[0].run_id)
            stage.links["evidence"] = f"monitor/{self.config.name}/runs/{run_id}/evidence.json"
            return run_id

    def retrain(self, run_id: str) -> str:
        """Follow the retraining run step by step; returns the version it registered."""
        from components.monitor.launch import OUTCOME_FILE
        from pipelines.retraining import RETRAINING_STEPS

        title = "assemble, validate, train, calibrate, evaluate, register, deploy"
        with self.record.stage("retrain", title) as stage:
            log = self.work / "monitor-runs" / f"{run_id}.log"
            self.say("retrain", f"run {run_id} (log: {log})")
            seen: set[str] = set()
            read = 0
            deadline = time.monotonic() + self.config.loop.retraining_timeout_seconds
            while True:
                for step in RETRAINING_STEPS:
                    key = f"runs/{run_id}/{step}/status.json"
                    if step not in seen and self.store.exists(key):
                        seen.add(step)
                        status = self.store.read_json(key)
                        self.say("retrain", f"{step}: {status['status']} in {status['seconds']:.1f} s")
                        for note in status.get("notes", [])[:NOTES_SHOWN]:
                            self.say("retrain", f"  {note if len(note) < 150 else note[:147] + '...'}")
                read = self._progress_of(log, read)
                state = self.launcher.status(run_id)
                if state != "running":
                    break
                if time.monotonic() > deadline:
                    raise LoopError(f"retraining run {run_id} ran past loop.retraining_timeout_seconds")
                time.sleep(0.5)
            outcome = self.store.read_json(f"runs/{run_id}/{OUTCOME_FILE}") if state == "succeeded" else {}
            if state != "succeeded" or not outcome.get("version"):
                raise LoopError(f"retraining run {run_id} {state}: see {log}")
            version = str(outcome["version"])
            stage.decision = f"v{version} registered ({self._lineage(version)})"
            self._link_run(stage, run_id, version)
            return version

    def rollout(self, version: str) -> str:
        """Send shifted traffic while the analysis moves v2 through shadow and canary; its last phase."""
        from components.deploy.rollout_store import load

        loop = self.config.loop
        with self.record.stage("rollout", f"v{version}: {self.config.monitoring.retraining.deploy}") as stage:
            features = self._features()
            known = self._known_columns(features)
            replay = Replay(self.serving.url, features, self.config.dataset.make_modality(), loop.concurrency)
            sent = Replayed()
            done = threading.Event()

            def traffic() -> None:
                # Batches of fresh exams; their labels follow each batch (time is compressed).
                batch = 0
                while not done.is_set():
                    batch += 1
                    params = {**loop.shifted.params, "rows": ROLLOUT_BATCH, "seed": loop.shifted.seed + batch}
                    frame = generate_rows(self.config, params, self._traffic_folder(f"r{batch}"))
                    got = replay.send(frame, f"r{batch}", loop.rollout_rows_per_request, stop=done)
                    write_labels(
                        self.store,
                        self.config.name,
                        f"r{batch}",
                        got,
                        frame,
                        self.config.dataset.label,
                        loop.rollout_rows_per_request,
                        known,
                    )
                    sent.statuses.update(got.statuses)
                    sent.served_by.update(got.served_by)

            sender = threading.Thread(target=traffic, name="loop-traffic", daemon=True)
            sender.start()
            deadline = time.monotonic() + loop.rollout_timeout_seconds
            try:
                while True:
                    try:
                        current = load(self.store, self.config.name)
                    except ValueError:
                        current = None
                    if (
                        current is not None
                        and current.candidate == version
                        and current.phase != "progressing"
                    ):
                        break
                    if time.monotonic() > deadline:
                        raise LoopError(
                            f"the rollout of v{version} was not decided in {loop.rollout_timeout_seconds:g} s"
                        )
                    time.sleep(0.5)
            finally:
                done.set()
                sender.join(timeout=60)
            stage.facts.update(
                history=list(current.history),
                requests=sent.requests,
                served_by=dict(sent.served_by),
                statuses={str(k): v for k, v in sent.statuses.items()},
            )
            stage.links["rollout record"] = f"deployments/{self.config.name}/rollout.json"
            failures = sum(v for k, v in sent.statuses.items() if k >= 500)
            path = " → ".join(
                "shadow" if h["action"] == "start" and h["weight"] == 0 else f"{h['weight']}%"
                for h in current.history
                if h["action"] in ("start", "step", "promote")
            )
            last = current.history[-1]
            why = "every check passed" if last["action"] == "promote" else last["reason"]
            stage.decision = f"v{version} {current.phase.replace('_', ' ')} ({path}): {why}"
            stage.facts["client_failures"] = failures
            return current.phase

    def finish(self) -> None:
        """Stop serving (the predictors flush their logs) and record the registry's stages."""
        self.stop.set()
        if self.follower is not None:
            self.follower.join(timeout=10)
        if self.serving is not None:
            self.serving.close()
        stages = Registry(self.store).stages(self.config.name)
        self.record.stages = {k: v for k, v in stages.items() if k != "history"}

    # -- helpers --------------------------------------------------------------------------

    def _retrain_overrides(self) -> list[str]:
        if self.scenario != "bad_candidate":
            return self.overrides
        import json

        forced = ["evaluation.force_promote=true", f"evaluation.force_reason={json.dumps(BAD_REASON)}"]
        return [*self.overrides, *self.config.loop.bad_candidate, *forced]

    def _step_output(self, name: str, stage: str) -> contextlib.AbstractContextManager[None]:
        """Steps' output to a log under loop/, and their progress lines here (all of it with verbose)."""
        from loop.progress import progress_only
        from pipelines.output_filter import quiet_executor_dumps

        if self.verbose:
            return quiet_executor_dumps()
        return progress_only(self.work / "loop" / name, lambda line: self.say(stage, line))

    def _progress_of(self, log: Path, offset: int) -> int:
        """Say the progress lines the run's log gained since `offset`; the new offset."""
        from loop.progress import COLOUR, PROGRESS

        try:
            with log.open("rb") as handle:
                handle.seek(offset)
                data = handle.read()
        except OSError:
            return offset
        whole = data[: data.rfind(b"\n") + 1]
        for line in whole.decode(errors="replace").splitlines():
            text = COLOUR.sub("", line).split(" - INFO - ")[-1]
            if PROGRESS.search(text) and not text.startswith("Task "):  # status.json says more
                self.say("retrain", text.strip())
        return offset + len(whole)

    def _thumbnails(self, frame: Any, name: str) -> list[dict[str, str]]:
        """A few of a phase's inputs as thumbnails under loop/thumbnails/ (inputs that have them:
        images), each captioned with its device and label."""
        dataset = self.config.dataset
        device = dataset.device_column if dataset.device_column in frame.columns else None
        sample = (frame.groupby(device).head(THUMBNAILS // 2) if device else frame).head(THUMBNAILS)
        shown = []
        pairs = zip(dataset.make_modality().thumbnails(sample), sample.iterrows(), strict=True)
        for number, (png, (_, row)) in enumerate(pairs):
            if png is None:
                continue
            key = f"loop/thumbnails/{name}-{number}.png"
            self.store.write_bytes(key, png)
            caption = f"{row[device]}, " if device else ""
            shown.append({"key": key, "caption": f"{caption}{dataset.label} {row[dataset.label]}"})
        return shown

    def _traffic_folder(self, name: str) -> Path:
        """Where a batch of replayed rows is generated (an image batch's files stay for the replay)."""
        return self.work / "loop" / "traffic" / name

    def _known_columns(self, features: list[str]) -> list[str]:
        """What a site records beside each label, which the retraining set keeps: the device,
        the patient (the group its split keeps whole) and the columns evaluation slices by; not
        the model's `features`, which come from the request log."""
        dataset = self.config.dataset
        named = [
            dataset.device_column,
            dataset.group_column,
            *(s.column for s in self.config.evaluation.slices),
        ]
        return list(dict.fromkeys(c for c in named if c and c not in features))

    def _features(self) -> list[str]:
        version = Registry(self.store).champion(self.config.name)
        return DatasetSchema.read(self.store, version_prefix(self.config.name, str(version))).features

    def _lineage(self, version: str) -> str:
        lineage = self.store.read_json(f"{version_prefix(self.config.name, version)}/lineage.json")
        evidence = lineage.get("evidence") or {}
        drifted = ", ".join(evidence.get("drifted_features", [])[:4])
        forced = "; its failed gate overridden" if (lineage.get("gate") or {}).get("forced") else ""
        return f"trigger {lineage.get('trigger')}: {drifted or 'no drifted features listed'}{forced}"

    def _link_run(self, stage: Stage, run_id: str, version: str) -> None:
        """Links to what a run wrote that a person reads: reports and the model card."""
        wanted = {
            "validation report": f"runs/{run_id}/validate_data/report.md",
            "data docs": f"runs/{run_id}/validate_data/data_docs.html",
            "evaluation report": f"runs/{run_id}/evaluate/decision.md",
            "gate gallery": f"runs/{run_id}/validate_data/{GATE_GALLERY}",
            "error gallery": f"runs/{run_id}/evaluate/{ERROR_GALLERY}",
            "model card": f"{version_prefix(self.config.name, version)}/card.html",
        }
        for label, key in wanted.items():
            if self.store.exists(key):
                stage.links[label] = key
        stage.facts["run_id"] = run_id
        stage.facts["version"] = version
        try:
            stage.facts["metrics"] = self.store.read_json(
                f"{version_prefix(self.config.name, version)}/metrics.json"
            )
        except NotFoundError:
            pass

    def _check_sent(self, sent: Replayed, phase: str) -> None:
        bad = {status: n for status, n in sent.statuses.items() if status != 200}
        if bad:
            raise LoopError(f"{phase}: the gateway answered {bad} (status: requests); see the serve lines")

    def _set_watermark(self, start: datetime) -> None:
        """The monitor starts at the loop's first window (older windows hold nothing of this loop)."""
        from components.monitor.monitor import MonitorState, load_state, save_state

        state = load_state(self.store, self.config.name)
        save_state(self.store, self.config.name, MonitorState(start, state.trigger, state.version))

    def _next_boundary(self, window: int, margin: float) -> datetime:
        """The next start of a monitor window at least `margin` seconds away."""
        now = datetime.now(UTC).timestamp() + margin
        return datetime.fromtimestamp((int(now) // window + 1) * window, UTC)

    def _sleep_until(self, moment: datetime, stage: str, why: str) -> None:
        wait = (moment - datetime.now(UTC)).total_seconds()
        if wait > 0:
            self.say(stage, f"{why} ({wait:.1f} s)")
            time.sleep(wait)


def run_loop(loop: Loop) -> str | None:
    """Every stage in order; the rollout's last phase (None when a stage stopped the loop)."""
    try:
        loop.train_first()
        loop.serve()
        loop.replay_phases()
        run_id = loop.monitor()
        version = loop.retrain(run_id)
        return loop.rollout(version)
    except LoopError as exc:
        loop.record.error = str(exc)
        return None
    finally:
        loop.finish()

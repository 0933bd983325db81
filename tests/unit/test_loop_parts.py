"""The loop's parts that run without serving: scenario arguments, overrides, labels, output, the record."""

from __future__ import annotations

import base64
import io
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pytest

from cli.loop import split_scenario
from components.common.artifacts import DatasetSchema
from components.common.config_loader import load_config
from components.common.modalities.tabular import TabularModality
from components.common.registry import Registry
from components.common.store import LocalStore
from components.deploy.rollout_store import deploy, load, serve_production
from components.deploy.seldondeployment import Predictor
from loop.engine import Loop, LoopError, loop_overrides
from loop.progress import ProgressFilter
from loop.record import LoopRecord
from loop.report import render_index, summary_table
from loop.traffic import Replay, Replayed, generate_rows, write_labels
from tests.conftest import REPO

SCREENING = REPO / "examples" / "screening" / "config.yaml"
SCREENING_IMAGES = REPO / "examples" / "screening_images" / "config.yaml"


def test_scenario_is_taken_from_the_key_value_arguments() -> None:
    assert split_scenario(["scenario=bad_candidate", "training.epochs=2"], None) == (
        "bad_candidate",
        ["training.epochs=2"],
    )
    assert split_scenario(["training.epochs=2"], None) == ("drift", ["training.epochs=2"])
    assert split_scenario([], "bad_candidate")[0] == "bad_candidate"


def test_the_loop_compresses_time_and_deploys_through_the_pipeline() -> None:
    config = load_config(SCREENING, ["loop.window=20s", "loop.analysis_interval_seconds=3"])
    overrides = loop_overrides(config)
    changed = load_config(SCREENING, ["loop.window=20s", *overrides])
    assert changed.monitoring.window == "20s" and changed.deployment.auto_deploy
    assert changed.deployment.analysis.interval_seconds == 3 and changed.deployment.serving.flush_seconds == 1
    assert changed.deployment.analysis.min_latency_increase_ms == 20  # scheduling noise on shared cores


def test_phase_rows_come_from_the_datasets_generator_with_the_phase_params(tmp_path: Path) -> None:
    config = load_config(SCREENING)
    shifted = generate_rows(config, {**config.loop.shifted.params, "rows": 400, "seed": 3}, tmp_path / "p2")
    assert len(shifted) == 400 and set(shifted["scanner"]) == {"A", "B"}
    assert set(generate_rows(config, {"rows": 200, "seed": 4}, tmp_path / "p1")["scanner"]) == {"A"}
    with pytest.raises(ValueError, match="dataset.generator"):
        generate_rows(load_config(SCREENING, ["dataset.generator=null"]), {}, tmp_path / "p3")


def test_generated_images_stay_for_the_replay_and_are_sent_as_files(tmp_path: Path) -> None:
    config = load_config(SCREENING_IMAGES)
    frame = generate_rows(config, {"rows": 20, "seed": 5, "scale": 0.5}, tmp_path / "p1")
    assert len(frame) == 20 and all(Path(p).is_file() for p in frame["image"])  # resolved, kept
    body = config.dataset.make_modality().request(frame.head(3), ["image"])
    files = [base64.b64decode(b) for b in body["jsonData"]["images"]]
    assert files == [Path(p).read_bytes() for p in frame["image"].head(3)]


def test_labels_are_written_for_the_answered_requests_only(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    frame = pd.DataFrame({"label": [0, 1, 0, 1, 1], "scanner": ["A", "B", "A", "B", "A"]})
    sent = Replayed(request_ids=["r1-0", "r1-2"])  # r1-1 got no answer
    key = write_labels(store, "screening", "r1", sent, frame, "label", 2, known=["scanner", "absent"])
    written = pd.read_csv(io.BytesIO(store.read_bytes(key)))
    assert written.to_dict("records") == [
        {"request_id": "r1-0", "row": 0, "label": 0, "scanner": "A"},
        {"request_id": "r1-0", "row": 1, "label": 1, "scanner": "B"},
        {"request_id": "r1-2", "row": 0, "label": 1, "scanner": "A"},
    ]


class Echo(BaseHTTPRequestHandler):
    """Answers like the gateway: 200 and the predictor's name, or 400 for a body without data."""

    protocol_version = "HTTP/1.1"
    bodies: list[bytes] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Echo.bodies.append(body)
        status = 200 if b'"ndarray"' in body else 400
        self.send_response(status)
        self.send_header("X-Kubeloop-Predictor", "main")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


def test_a_replay_sends_every_row_once_with_its_request_id() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/api/v1.0/predictions"
        frame = pd.DataFrame({"age": range(25), "scanner": ["A"] * 25})
        Echo.bodies = []
        replay = Replay(url, ["age", "scanner"], TabularModality(), concurrency=3)
        sent = replay.send(frame, "p1", rows_per_request=10)
    finally:
        server.shutdown()
        server.server_close()
    assert sorted(sent.request_ids) == ["p1-0", "p1-1", "p1-2"] and sent.rows == 25
    assert sent.statuses == {200: 3} and sent.served_by == {"main": 3}
    assert sum(len(json.loads(body)["data"]["ndarray"]) for body in Echo.bodies) == 25
    assert any(b'"puid": "p1-2"' in body for body in Echo.bodies)


def test_progress_filter_keeps_the_log_whole_and_says_only_progress() -> None:
    said: list[str] = []
    log = io.StringIO()
    wrapper = ProgressFilter(io.StringIO(), log, said.append)
    wrapper.write("    [KFP Executor] Looking for component\n    epoch   1/15  steps 20  train_loss 1.2\n")
    wrapper.write(
        "03:30:31 - INFO - Task \x1b[96m'train'\x1b[0m finished with status \x1b[92mSUCCESS\x1b[0m\n"
    )
    assert said == ["epoch   1/15  steps 20  train_loss 1.2", "Task 'train' finished with status SUCCESS"]
    assert "Looking for component" in log.getvalue()


def test_a_failed_stage_is_recorded_and_shown(tmp_path: Path) -> None:
    record = LoopRecord("screening", "drift", str(tmp_path), [])
    with record.stage("train v1", "train") as stage:
        stage.decision = "v1 registered"
    with pytest.raises(RuntimeError), record.stage("serve", "predictors"):
        raise RuntimeError("no seldon-core-microservice")
    assert [s.status for s in record.stages_run] == ["succeeded", "failed"] and not record.succeeded
    assert "no seldon-core-microservice" in record.find("serve").decision  # type: ignore[union-attr]
    page = render_index(record, LocalStore(tmp_path))
    assert "train v1" in page and "RuntimeError: no seldon-core-microservice" in page
    assert summary_table(record).row_count == 2


def _trained_store(tmp_path: Path, label: str = "label", production: bool = False) -> LocalStore:
    """A store as `kubeloop run` leaves it with auto_deploy off: v1 registered, in no stage
    (`production=True`: as `kubeloop deploy` leaves it)."""
    store = LocalStore(tmp_path / "store")
    schema = DatasetSchema(features=["age"], categorical=[], label=label, positive_value=1)
    registry = Registry(store)
    version = registry.register(
        "screening", {"schema.json": json.dumps(schema.to_dict()).encode()}, {"run_id": "r1"}
    )
    if production:
        registry.set_stage("screening", version, "production")
    return store


def _loop_on(store: LocalStore, tmp_path: Path) -> Loop:
    return Loop(str(SCREENING), [], str(store.root), tmp_path / "work", say=lambda line: None)


def test_the_loop_starts_from_the_production_model_a_store_holds_and_serves_it_from_that_store(
    tmp_path: Path,
) -> None:
    store = _trained_store(tmp_path)
    loop = _loop_on(store, tmp_path)
    loop.train_first()  # no training: v1 is there
    assert loop.record.stages_run[-1].decision == "v1 from the store, deployed as production"
    assert loop.record.stages_run[-1].facts["run_id"] == "r1"
    assert load(store, "screening").predictors() == [Predictor("main", "1")]
    sdep = json.dumps(store.read_json("deployments/screening/seldondeployment.json"))
    assert f'"value": "{store.root}/models/screening/1"' in sdep  # this store's model
    assert '"name": "flush_seconds", "type": "FLOAT", "value": "1.0"' in sdep  # the loop's serving settings
    assert Registry(store).champion("screening") == "1"  # made production by the record


def test_of_several_versions_the_loop_starts_from_production(tmp_path: Path) -> None:
    store = _trained_store(tmp_path, production=True)
    Registry(store).register("screening", {"schema.json": b"{}"}, {"run_id": "r2"})  # newer, not deployed
    loop = _loop_on(store, tmp_path)
    loop.train_first()
    assert loop.record.stages_run[-1].facts["version"] == "1"
    assert load(store, "screening").predictors() == [Predictor("main", "1")]


def test_a_store_that_served_the_model_or_holds_another_label_is_refused(tmp_path: Path) -> None:
    store = _trained_store(tmp_path)
    store.write_bytes("logs/screening/main/x.jsonl", b"{}\n")
    with pytest.raises(LoopError, match="logs/screening"):
        _loop_on(store, tmp_path).train_first()
    other = _trained_store(tmp_path / "other", label="outcome")
    with pytest.raises(LoopError, match="'outcome'"):
        _loop_on(other, tmp_path / "other").train_first()


def test_serving_the_production_version_leaves_a_rollout_in_progress_alone(tmp_path: Path) -> None:
    store = _trained_store(tmp_path, production=True)
    config = load_config(SCREENING)
    Registry(store).register("screening", {"schema.json": b"{}"}, {"run_id": "r2"})
    deploy(store, config, "2")  # v2 now rolls out beside v1
    with pytest.raises(ValueError, match="v2 is still rolling out"):
        serve_production(store, config, "1")
    assert load(store, "screening").phase == "progressing"


def test_a_deployed_version_is_served_again_with_the_loops_settings(tmp_path: Path) -> None:
    store = _trained_store(tmp_path)
    deploy(store, load_config(SCREENING), "1")  # as a run with auto_deploy leaves it
    key = "deployments/screening/seldondeployment.json"
    assert '"name": "flush_seconds", "type": "FLOAT", "value": "5.0"' in json.dumps(store.read_json(key))
    _loop_on(store, tmp_path).train_first()
    assert '"name": "flush_seconds", "type": "FLOAT", "value": "1.0"' in json.dumps(store.read_json(key))
    assert load(store, "screening").predictors() == [Predictor("main", "1")]

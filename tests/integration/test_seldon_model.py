"""The Seldon model class under a real seldon-core-microservice (serving env) on 127.0.0.1."""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from components.common.config import TrainingConfig
from tests.conftest import REPO, free_port

pytestmark = pytest.mark.integration
SERVING = REPO / ".venv-serving" / "bin"
FEATURES_DROPPED = ("exam_id", "exam_time", "site_id", "label")


def registered_version(folder: Path) -> dict[str, Any]:
    """A version folder as the registry holds it: a small trained model with Platt calibration."""
    import torch

    from components.calibrate.fit import fit
    from components.calibrate.operating_point import operating_point
    from components.common import calibration
    from components.common.preprocessing import Preprocessing
    from components.train.recipe import fit as train
    from components.train.step import export_onnx
    from examples.screening.generate import generate

    frame = generate(rows=3000, prevalence=0.1, scanners={"A": 0.5, "B": 0.5}, seed=11)
    features = [c for c in frame.columns if c not in FEATURES_DROPPED]
    prep = Preprocessing.fit(frame.iloc[:2000], features, ["scanner"])
    x, y = prep.encode(frame), frame["label"].to_numpy(dtype=np.float32)
    model, _ = train(
        TrainingConfig(epochs=2, hidden_sizes=[16]),
        x[:1500],
        y[:1500],
        x[1500:2000],
        y[1500:2000],
        prep,
        log=lambda _: None,
    )
    folder.mkdir(parents=True)
    export_onnx(model, x.shape[1], folder / "model.onnx")
    with torch.no_grad():
        logits = model(torch.from_numpy(x)).numpy().reshape(-1).astype(np.float64)
    record = fit("platt", logits[2000:2500], y[2000:2500].astype(int))
    p = calibration.apply(record, logits)
    labels = y.astype(int)
    record["operating_point"] = operating_point(
        ("validation", p[2000:2500], labels[2000:2500]), ("test", p[2500:], labels[2500:]), 0.9, None, 0.5
    )
    (folder / "calibration.json").write_text(json.dumps(record))
    (folder / "preprocessing.json").write_text(json.dumps(prep.to_dict()))
    (folder / "schema.json").write_text(json.dumps({"features": features, "categorical": ["scanner"]}))
    (folder / "lineage.json").write_text(json.dumps({"config": {"name": "screening"}}))
    return {
        "frame": frame[features].iloc[2500:].reset_index(drop=True),
        "probability": p[2500:],
        "record": record,
    }


@contextlib.contextmanager
def microservice(model_dir: Path, folder: Path, **parameters: Any) -> Iterator[dict[str, Any]]:
    """seldon-core-microservice serving `model_dir` on 127.0.0.1, stopped (whole group) on exit."""
    if not (SERVING / "seldon-core-microservice").exists():
        if os.environ.get("CI"):
            pytest.fail("`make test` should have created .venv-serving")
        pytest.skip(".venv-serving missing; run `make setup`")
    http, grpc, metrics = free_port(), free_port(), free_port()
    typed = {str: "STRING", int: "INT", float: "FLOAT"}
    values = [
        {"name": name, "value": str(value), "type": typed[type(value)]}
        for name, value in {"model_dir": str(model_dir), **parameters}.items()
    ]
    log = (folder / f"seldon-{http}.log").open("w")
    process = subprocess.Popen(
        [
            str(SERVING / "seldon-core-microservice"),
            "components.deploy.seldon_model.KubeloopModel",
            *("--service-type", "MODEL", "--http-port", str(http), "--grpc-port", str(grpc)),
            *("--metrics-port", str(metrics), "--parameters", json.dumps(values)),
        ],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), "PATH": f"{SERVING}:{os.environ['PATH']}"},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: gunicorn workers and the metrics server go too
    )
    base = f"http://127.0.0.1:{http}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{base}/health/ping", timeout=2) as reply:
                    if reply.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError):
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                log.flush()
                pytest.fail("microservice did not start:\n" + Path(log.name).read_text()[-3000:])
            time.sleep(0.3)
        yield {
            "base": base,
            "metrics": f"http://127.0.0.1:{metrics}",
            "process": process,
            "log": Path(log.name),
        }
    finally:
        stop_group(process)
        log.close()


@pytest.fixture(scope="module")
def version(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    model_dir = tmp_path_factory.mktemp("models") / "7"
    return {**registered_version(model_dir), "model_dir": model_dir}


@pytest.fixture(scope="module")
def server(version: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    folder = tmp_path_factory.mktemp("serving")
    logs = folder / "store"
    options = {
        "max_rows": 500,
        "log_uri": str(logs),
        "predictor": "main",
        "flush_rows": 5,
        "flush_seconds": 0.5,
    }
    # model_uri: the files are fetched from the store, as on a cluster (model_dir goes unused).
    options["model_uri"] = str(version["model_dir"])
    with microservice(folder / "unused", folder, **options) as running:
        yield {**version, **running, "logs": logs}


def logged_rows(store: Path) -> list[dict[str, Any]]:
    """Every record of every log file under the store's logs/ folder."""
    return [
        json.loads(line)
        for path in sorted((store / "logs").rglob("*.jsonl"))
        for line in path.read_text().splitlines()
    ]


def stop_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's process group, then SIGKILL whatever is left after 10 s."""
    group = os.getpgid(process.pid)
    os.killpg(group, signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGKILL)
    process.wait(timeout=10)


def post(base: str, body: Any) -> tuple[int, dict[str, Any]]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(
        f"{base}/api/v1.0/predictions", data=data, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def test_ndarray_and_named_rows_get_calibrated_probability_and_decision(server: dict[str, Any]) -> None:
    frame, expected = server["frame"], server["probability"]
    rows = frame.iloc[:50]
    status, reply = post(
        server["base"], {"data": {"names": list(rows.columns), "ndarray": rows.values.tolist()}}
    )
    assert status == 200, reply
    assert reply["data"]["names"] == ["probability", "decision"]
    served = np.array(reply["data"]["ndarray"])
    np.testing.assert_allclose(served[:, 0], expected[:50], atol=1e-5)
    threshold = server["record"]["operating_point"]["threshold"]
    assert (served[:, 1] == (served[:, 0] >= threshold)).all()
    tags = reply["meta"]["tags"]
    assert {k: tags[k] for k in ("model_name", "model_version", "threshold")} == {
        "model_name": "screening",
        "model_version": "7",
        "threshold": threshold,
    }
    assert len(tags["request_id"]) == 32  # none was sent: the server made one
    named = {"jsonData": {"instances": rows.iloc[:5].to_dict(orient="records")}}
    status, reply = post(server["base"], named)
    assert status == 200, reply
    predictions = reply["jsonData"]["predictions"]
    np.testing.assert_allclose([r["probability"] for r in predictions], expected[:5], atol=1e-5)
    assert [r["decision"] for r in predictions] == [int(r["probability"] >= threshold) for r in predictions]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"data": {"ndarray": [[1.0, 2.0]]}}, "each row needs 11 values"),
        ({"data": {"names": ["a", "b"], "ndarray": [[1.0, 2.0]]}}, "names do not match"),
        ({"jsonData": {"age": 61}}, "missing"),
        ({"jsonData": {"instances": [{"nope": 1}]}}, "unknown ['nope']"),
        ({"data": {"ndarray": [[math.nan] * 11]}}, "needs a finite number"),
        ({"data": {"ndarray": [["x"] * 11]}}, "must be a number, got 'x'"),
        ({"data": {"ndarray": [[1.0] * 11] * 501}}, "the limit is 500"),
        (
            {"strData": "61, 4.5, A"},
            "a list of rows, 2 dimensions) or named features as jsonData; got 0 dimensions",
        ),
    ],
)
def test_bad_requests_get_a_400_with_the_reason(server: dict[str, Any], body: Any, message: str) -> None:
    status, reply = post(server["base"], body)
    assert status == 400, reply
    assert message in reply["status"]["info"]
    assert server["process"].poll() is None  # the worker is still alive


def test_malformed_json_is_a_400_not_a_crash(server: dict[str, Any]) -> None:
    status, _ = post(server["base"], b'{"data": {"ndarray": [[1, 2,')
    assert status == 400
    status, reply = post(server["base"], {"data": {"ndarray": server["frame"].iloc[:1].values.tolist()}})
    assert status == 200, reply


def test_health_metadata_and_per_version_metrics(server: dict[str, Any]) -> None:
    with urllib.request.urlopen(f"{server['base']}/health/status", timeout=10) as reply:
        assert reply.status == 200
    with urllib.request.urlopen(f"{server['base']}/api/v1.0/metadata", timeout=10) as reply:
        metadata = json.loads(reply.read())
    assert metadata["versions"] == ["7"] and metadata["outputs"][0]["schema"]["names"] == [
        "probability",
        "decision",
    ]
    status, reply = post(server["base"], {"data": {"ndarray": server["frame"].iloc[:3].values.tolist()}})
    assert status == 200, reply
    with urllib.request.urlopen(f"{server['metrics']}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    counted = [
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith("kubeloop_predictions_total") and 'kubeloop_version="7"' in line
    ]
    assert counted and max(counted) >= 3  # every row served so far, labelled with the version
    buckets = [line for line in text.splitlines() if line.startswith("kubeloop_predict_seconds_bucket")]
    assert buckets and 'kubeloop_version="7"' in buckets[0]  # a latency histogram per version


def test_every_served_row_is_logged_once_with_its_request_id(server: dict[str, Any]) -> None:
    frame = server["frame"]
    sent = {}
    for index in range(12):
        puid = f"req-{index:03d}"
        rows = frame.iloc[index : index + 1 + index % 3]
        status, reply = post(
            server["base"], {"meta": {"puid": puid}, "data": {"ndarray": rows.values.tolist()}}
        )
        assert status == 200 and reply["meta"]["tags"]["request_id"] == puid
        sent[puid] = (rows, np.array(reply["data"]["ndarray"]))
    status, _ = post(server["base"], {"meta": {"puid": "bad-1"}, "data": {"ndarray": [[1.0, 2.0]]}})
    assert status == 400
    sent["bad-1"] = (frame.iloc[:1], None)  # one record: the refusal, with its status and reason
    expected = {(puid, row) for puid, (rows, _) in sent.items() for row in range(len(rows))}
    deadline = time.monotonic() + 20
    while True:
        records = [r for r in logged_rows(server["logs"]) if r["request_id"] in sent]
        if len(records) >= len(expected) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    keys = [(r["request_id"], r["row"]) for r in records]
    assert sorted(keys) == sorted(expected)  # every row, none twice
    [refused] = [r for r in records if r["request_id"] == "bad-1"]
    assert refused["status"] == 400 and "each row needs 11 values" in refused["error"]
    for record in records:
        if record["request_id"] == "bad-1":
            continue
        rows, served = sent[record["request_id"]]
        assert record["features"] == {
            k: (v if isinstance(v, str) else float(v)) for k, v in rows.iloc[record["row"]].items()
        }
        assert record["probability"] == pytest.approx(served[record["row"], 0])
        assert record["decision"] == served[record["row"], 1]
        assert (
            record["predictor"] == "main"
            and record["model"] == "screening"
            and record["model_version"] == "7"
        )
        assert record["latency_ms"] > 0 and record["time"].endswith("+00:00") and record["status"] == 200
    folders = {
        p.parent.relative_to(server["logs"]).parts[:3] for p in (server["logs"] / "logs").rglob("*.jsonl")
    }
    assert folders == {("logs", "screening", "main")}


def test_a_graceful_shutdown_writes_every_queued_row(version: dict[str, Any], tmp_path: Path) -> None:
    logs = tmp_path / "store"
    # Nothing is written on its own for an hour: only the SIGTERM flush can write these rows.
    options = {"log_uri": str(logs), "predictor": "canary", "flush_rows": 100_000, "flush_seconds": 3600.0}
    with microservice(version["model_dir"], tmp_path, **options) as running:
        frame = version["frame"]
        for index in range(30):
            body = {
                "meta": {"puid": f"s-{index}"},
                "data": {"ndarray": frame.iloc[index : index + 2].values.tolist()},
            }
            assert post(running["base"], body)[0] == 200
        assert logged_rows(logs) == []
        os.kill(running["process"].pid, signal.SIGTERM)  # as Kubernetes does: to the main process only
        expected = sorted((f"s-{i}", row) for i in range(30) for row in (0, 1))
        deadline = time.monotonic() + 45  # gunicorn passes the signal on to its worker at once
        while len(logged_rows(logs)) < len(expected) and time.monotonic() < deadline:
            time.sleep(0.2)
        records = logged_rows(logs)
        assert "Worker exiting" in running["log"].read_text()
    keys = sorted((r["request_id"], r["row"]) for r in records)
    assert keys == expected

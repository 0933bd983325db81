"""The Seldon model class under a real seldon-core-microservice (serving env) on 127.0.0.1."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.serving import SERVING, logged_rows, microservice, post, registered_version

pytestmark = pytest.mark.integration


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
    # Seldon's tensor form in, tensor out (numbers only: the scanner code reads as an unseen category)
    numeric = [
        [1.0 if isinstance(v, str) else float(v) for v in row] for row in rows.iloc[:4].values.tolist()
    ]
    tensor = {"shape": [4, 11], "values": [v for row in numeric for v in row]}
    status, reply = post(server["base"], {"meta": {"puid": "t-1"}, "data": {"tensor": tensor}})
    assert status == 200, reply
    assert reply["data"]["tensor"]["shape"] == [4, 2] and len(reply["data"]["tensor"]["values"]) == 8
    assert reply["meta"]["puid"] == "t-1" and reply["meta"]["tags"]["request_id"] == "t-1"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"data": {"ndarray": [[1.0, 2.0]]}}, "each row needs 11 values"),
        ({"data": {"names": ["a", "b"], "ndarray": [[1.0, 2.0]]}}, "names do not match"),
        ({"jsonData": {"age": 61}}, "missing"),
        ({"jsonData": {"instances": [{"nope": 1}]}}, "unknown ['nope']"),
        ({"data": {"ndarray": [[math.inf] * 11]}}, "needs a finite number"),
        ({"data": {"ndarray": [["x"] * 11]}}, "must be a number, got 'x'"),
        ({"data": {"ndarray": [[1.0] * 11] * 501}}, "the limit is 500"),
        ({"strData": "61, 4.5, A"}, 'not text or a file (strData, binData): send rows as {"data"'),
        ({"binData": "NjEsIDQuNQ=="}, "scores table rows, not text or a file"),
        ({"data": {"tensor": {"shape": [1, 11], "values": [1.0, 2.0]}}}, 'data.tensor needs "shape"'),
        ({"data": {"ndarray": [[1.0] * 11, [1.0] * 10]}}, "row 1: each row needs 11 values"),
    ],
)
def test_bad_requests_get_a_400_with_the_reason(server: dict[str, Any], body: Any, message: str) -> None:
    status, reply = post(server["base"], body)
    assert status == 400, reply
    assert message in reply["status"]["info"]
    assert server["process"].poll() is None  # the worker is still alive


def test_missing_values_are_imputed_as_evaluation_imputes_them(server: dict[str, Any]) -> None:
    import onnxruntime as ort
    import pandas as pd

    from components.common import calibration
    from components.common.preprocessing import Preprocessing

    rows = server["frame"].iloc[:20].astype(object)
    rows.iloc[::3, 0] = None  # the first feature missing in every third row
    rows.iloc[1::4, rows.columns.get_loc("scanner")] = None  # and some scanners
    body = {"data": {"names": list(rows.columns), "ndarray": rows.values.tolist()}}
    status, reply = post(server["base"], body)
    assert status == 200, reply
    served = np.array(reply["data"]["ndarray"])
    # Evaluation's path: the same rows as a DataFrame with NaN, encoded, scored, calibrated.
    folder = server["model_dir"]
    prep = Preprocessing.from_dict(json.loads((folder / "preprocessing.json").read_text()))
    frame = pd.DataFrame(rows.to_dict(orient="list"))
    frame = frame.astype({c: float for c in prep.numeric})
    session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    logits = session.run(["logit"], {"features": prep.encode(frame)})[0].reshape(-1)
    expected = calibration.apply(server["record"], logits.astype(np.float64))
    np.testing.assert_allclose(served[:, 0], expected, rtol=1e-5, atol=1e-7)
    assert server["process"].poll() is None


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
    url = server["model_metrics"]
    assert url  # kubeloop's own endpoint, next to Seldon's

    def scrape() -> dict[str, float]:
        with urllib.request.urlopen(url, timeout=10) as reply:
            text = reply.read().decode()
        assert "# TYPE kubeloop_predict_seconds histogram" in text
        return {
            line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line and not line.startswith("#") and 'kubeloop_version="7"' in line
        }

    def total(values: dict[str, float], prefix: str) -> float:
        return sum(v for k, v in values.items() if k.startswith(prefix))

    time.sleep(1.2)  # what earlier tests served is on disk by now (a write a second, when changed)
    before = scrape()
    for rows in (3, 1):
        status, reply = post(
            server["base"], {"data": {"ndarray": server["frame"].iloc[:rows].values.tolist()}}
        )
        assert status == 200, reply
    assert post(server["base"], {"data": {"ndarray": [[1.0, 2.0]]}})[0] == 400
    deadline = time.monotonic() + 15  # each worker's thread writes its totals once a second
    while True:
        after = scrape()
        served = total(after, "kubeloop_predictions_total") - total(before, "kubeloop_predictions_total")
        requests = total(after, "kubeloop_requests_total{") - total(before, "kubeloop_requests_total{")
        if (served >= 4 and requests >= 3) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert served == 4 and requests == 3 and any('status="400"' in k and v >= 1 for k, v in after.items())
    buckets = {k.split('le="')[1].split('"')[0]: v for k, v in after.items() if "_bucket{" in k}
    # A cumulative histogram per version: +Inf holds every request, fewer fall under 0.5 ms.
    assert (
        buckets["0.0005"]
        <= buckets["0.01"]
        <= buckets["+Inf"]
        == total(after, "kubeloop_predict_seconds_count")
    )
    with urllib.request.urlopen(f"{server['metrics']}/metrics", timeout=10) as reply:
        assert "kubeloop_" not in reply.read().decode()  # none of ours on Seldon's per-request path


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


def test_the_grpc_entry_point_answers_as_the_rest_one(version: dict[str, Any]) -> None:
    """Seldon hands a gRPC message, decoded, to `predict`: same probabilities and decisions as REST."""
    rows = version["frame"].iloc[:20]
    script = """
import json, sys
import numpy as np
from components.deploy.seldon_model import KubeloopModel
rows = json.loads(sys.argv[2])
model = KubeloopModel(model_dir=sys.argv[1], metrics_port=0)
names, values = list(rows[0]), [list(r.values()) for r in rows]
raw = model.predict_raw({"data": {"names": names, "ndarray": values}})["data"]["ndarray"]
grpc = model.predict(np.array(values, dtype=object), names)
named = model.predict({"instances": rows}, None)
print(json.dumps({"raw": raw, "grpc": grpc.data.tolist(), "named": named.data["predictions"]}))
"""
    answer = _in_serving_env(script, str(version["model_dir"]), rows.to_json(orient="records"))
    np.testing.assert_allclose(np.array(answer["grpc"])[:, 0], version["probability"][:20], atol=1e-5)
    assert answer["grpc"] == answer["raw"]
    assert [[r["probability"], float(r["decision"])] for r in answer["named"]] == answer["raw"]
    threshold = version["record"]["operating_point"]["threshold"]
    assert [d for _, d in answer["raw"]] == [float(p >= threshold) for p, _ in answer["raw"]]


def test_seldons_empty_metric_updates_are_skipped_and_real_ones_recorded() -> None:
    """Seldon updates its custom metrics through a manager process after every prediction, also
    with nothing to record; kubeloop's workers skip the empty call (components/deploy/seldon_metrics.py)."""
    script = """
import json
from seldon_core.metrics import SeldonMetrics
from components.deploy.seldon_metrics import skip_empty_updates
plain, patched = SeldonMetrics(), SeldonMetrics()
plain.update([], "predict")  # Seldon's own: a round trip that writes the worker's empty dict
skip_empty_updates()
skip_empty_updates()  # twice: still one wrapper
patched.update([], "predict")
empty = dict(patched.data)
patched.update([{"type": "COUNTER", "key": "mine", "value": 3}], "predict")
patched.update_reward(2.5)
names = {sample.name: sample.value for family in patched.collect() for sample in family.samples}
print(json.dumps({"plain": len(dict(plain.data)), "empty": len(empty), "names": names}))
"""
    answer = _in_serving_env(script)
    assert answer["plain"] == 1 and answer["empty"] == 0
    assert answer["names"]["mine_total"] == 3
    assert answer["names"]["seldon_api_model_feedback_reward_total"] == 2.5


def test_seldons_feedback_reward_still_reaches_its_metrics(server: dict[str, Any]) -> None:
    """Through the real server: a feedback reward (a non-empty update) shows on Seldon's /metrics."""
    rows = server["frame"].iloc[:1].values.tolist()
    body = {"request": {"data": {"ndarray": rows}}, "reward": 1.5}
    request = urllib.request.Request(
        f"{server['base']}/api/v1.0/feedback", json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as reply:
        assert reply.status == 200
    with urllib.request.urlopen(f"{server['metrics']}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    rewards = [line for line in text.splitlines() if line.startswith("seldon_api_model_feedback_reward")]
    assert rewards and float(rewards[0].split()[-1]) >= 1.5, text[-2000:]


def _in_serving_env(script: str, *args: str) -> Any:
    """Run `script` with the serving environment's Python in the repository; the JSON of its last line."""
    out = subprocess.run(
        [str(SERVING / "python"), "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.splitlines()[-1])

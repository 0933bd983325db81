"""The local gateway in front of real microservices: weights, shadow isolation, live weight changes."""

from __future__ import annotations

import contextlib
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from components.common.store import LocalStore
from components.deploy.analysis import AnalysisSettings, read_logs
from components.deploy.gateway import Gateway, Route, serve
from components.deploy.judge import judge
from components.deploy.rollout import Rollout
from components.deploy.seldondeployment import Predictor, render_seldondeployment
from tests.conftest import free_port
from tests.serving import logged_rows, microservice, registered_version

pytestmark = pytest.mark.integration


@contextlib.contextmanager
def bad_shadow(sleep_s: float) -> Iterator[str]:
    """A shadow that sleeps, then fails every request with a 500."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            return

        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            time.sleep(sleep_s)
            self.send_response(500)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def predictors(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    folder = tmp_path_factory.mktemp("gateway")
    version = registered_version(folder / "models" / "7")
    store = folder / "store"
    with contextlib.ExitStack() as stack:
        urls = {}
        for name, number in (("main", "7"), ("canary", "8"), ("shadow", "9")):
            options = {
                "log_uri": str(store),
                "predictor": name,
                "model_version": number,
                "flush_seconds": 0.3,
            }
            running = stack.enter_context(microservice(folder / "models" / "7", folder, **options))
            urls[name] = running["base"]
        gateway = Gateway(route_for([Predictor("main", "7")], urls))
        server = serve(gateway, free_port())
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            yield {
                **version,
                "urls": urls,
                "gateway": gateway,
                "store": store,
                "base": f"http://127.0.0.1:{server.server_address[1]}",
            }
        finally:
            server.shutdown()
            server.server_close()
            gateway.close()


def route_for(predictors: list[Predictor], urls: dict[str, str]) -> Route:
    sdep = render_seldondeployment("screening", "kubeloop", "screening", predictors)
    return Route.from_deployment(sdep, urls)


def call(
    base: str, body: bytes | dict[str, Any], path: str = "/api/v1.0/predictions"
) -> tuple[int, dict, dict]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(f"{base}{path}", data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.status, json.loads(reply.read()), dict(reply.headers)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}"), dict(error.headers)


def rows(frame: Any, index: int) -> dict[str, Any]:
    return {"data": {"ndarray": frame.iloc[index % len(frame) : index % len(frame) + 1].values.tolist()}}


def test_traffic_follows_the_weights_over_2000_requests(predictors: dict[str, Any]) -> None:
    gateway, frame = predictors["gateway"], predictors["frame"]
    gateway.update(
        route_for(
            [Predictor("main", "7", traffic=90), Predictor("canary", "8", traffic=10)], predictors["urls"]
        )
    )
    seen = {"main": 0, "canary": 0}
    for i in range(2000):
        status, reply, headers = call(predictors["base"], rows(frame, i))
        assert status == 200, reply
        seen[headers["X-Kubeloop-Predictor"]] += 1
        assert (
            reply["meta"]["tags"]["model_version"]
            == {"main": "7", "canary": "8"}[headers["X-Kubeloop-Predictor"]]
        )
    # Binomial(2000, 0.1): sd 13.4; 4 sd either side fails a correct gateway about once in 16,000 runs.
    assert abs(seen["canary"] - 200) <= 54, seen


def test_no_request_fails_while_the_weights_change(predictors: dict[str, Any]) -> None:
    gateway, frame, urls = predictors["gateway"], predictors["frame"], predictors["urls"]
    steps = [[Predictor("main", "7", traffic=100 - w), Predictor("canary", "8", traffic=w)] for w in (10, 50)]
    steps.append([Predictor("canary", "8", traffic=100)])
    statuses, answered_by = [], set()
    done = threading.Event()

    def client() -> None:
        i = 0
        while not done.is_set():
            status, _, headers = call(predictors["base"], rows(frame, i))
            statuses.append(status)
            answered_by.add(headers.get("X-Kubeloop-Predictor"))
            i += 1

    thread = threading.Thread(target=client)
    thread.start()
    for _ in range(3):
        for step in steps:
            gateway.update(route_for(step, urls))
            time.sleep(0.3)
    done.set()
    thread.join(timeout=30)
    assert len(statuses) > 50 and set(statuses) == {200}
    assert answered_by == {"main", "canary"}


def test_a_failing_slow_shadow_changes_no_answer_and_no_latency(predictors: dict[str, Any]) -> None:
    gateway, frame, urls = predictors["gateway"], predictors["frame"], predictors["urls"]
    plain = route_for([Predictor("main", "7")], urls)
    with bad_shadow(0.05) as shadow_url:
        shadowed = Route(plain.serving, ("shadow", shadow_url))
        timings: dict[str, list[float]] = {"plain": [], "shadowed": []}
        answers: dict[str, list[Any]] = {"plain": [], "shadowed": []}
        for block in range(8):  # interleaved blocks, so drift in machine load hits both alike
            for label, route in (("plain", plain), ("shadowed", shadowed)):
                gateway.update(route)
                for i in range(40):
                    started = time.perf_counter()
                    status, reply, _ = call(predictors["base"], rows(frame, block * 40 + i))
                    timings[label].append(1000 * (time.perf_counter() - started))
                    assert status == 200
                    answers[label].append(reply["data"]["ndarray"])
        gateway.update(plain)
    assert answers["plain"] == answers["shadowed"]  # the same rows got the same answers
    p50 = {k: float(np.median(v)) for k, v in timings.items()}
    assert p50["shadowed"] - p50["plain"] <= 1.0, p50
    assert gateway.shadow_dropped == 0


def test_a_real_shadow_pairs_with_main_in_the_logs(predictors: dict[str, Any]) -> None:
    gateway, frame, urls = predictors["gateway"], predictors["frame"], predictors["urls"]
    gateway.update(route_for([Predictor("main", "7"), Predictor("shadow", "9", shadow=True)], urls))
    ids = []
    for i in range(60):
        status, reply, headers = call(predictors["base"], {"meta": {"puid": f"pair-{i}"}, **rows(frame, i)})
        assert status == 200 and headers["X-Kubeloop-Predictor"] == "main"
        ids.append(headers["X-Kubeloop-Request-Id"])
    assert ids == [f"pair-{i}" for i in range(60)]
    store = LocalStore(predictors["store"])
    deadline = time.monotonic() + 20
    while True:
        shadow = [r for r in read_logs(store, "screening", "shadow") if r["request_id"].startswith("pair-")]
        main = [r for r in read_logs(store, "screening", "main") if r["request_id"].startswith("pair-")]
        if (len(shadow) >= 60 and len(main) >= 60) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert len(shadow) == 60 and len(main) == 60
    started = min(datetime.fromisoformat(r["time"]) for r in main + shadow) - timedelta(seconds=1)
    begin = {"time": started.isoformat(), "action": "start", "weight": 0, "reason": "test"}
    rollout = Rollout(
        "screening", "shadow", "7", "9", (10, 50, 100), started=started.isoformat(), history=(begin,)
    )
    settings = AnalysisSettings(
        min_requests=50, label_share=0, on_no_labels="guardrails", max_error_increase=0.1
    )
    verdict = judge(rollout, main, shadow, {}, settings, datetime.now(UTC))
    agreement = next(c for c in verdict.checks if c["check"] == "agreement")
    assert "same decision as main on 100.0% of 60 paired rows" in agreement["detail"]  # the same model
    assert verdict.decision == "promote", verdict.reasons  # its own mirrored calls within the guardrails
    gateway.update(route_for([Predictor("main", "7")], urls))


def test_bad_requests_pass_through_as_4xx(predictors: dict[str, Any]) -> None:
    base = predictors["base"]
    status, reply, _ = call(base, {"data": {"ndarray": [[1.0, 2.0]]}})
    assert status == 400 and "each row needs 11 values" in reply["status"]["info"]
    status, _, _ = call(base, b'{"data": [1,')
    assert status == 400
    status, _, _ = call(base, {"data": {}}, path="/nope")
    assert status == 404
    with urllib.request.urlopen(f"{base}/health", timeout=10) as reply:
        assert json.loads(reply.read())["serving"][0][0] == "main"


def test_a_deployment_with_an_unknown_predictor_is_refused(predictors: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="predictor 'blue' has no local upstream"):
        route_for([Predictor("blue", "7")], predictors["urls"])
    assert logged_rows(Path(predictors["store"]))  # the module's traffic was logged meanwhile

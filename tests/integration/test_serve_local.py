"""`kubeloop serve --auto` end to end: real predictors, the gateway, and rollouts decided on their logs.

One `kubeloop serve` process follows the store for the whole module, as a user would run it,
while the tests deploy candidates with the CLI and send traffic through the gateway. The
faulty candidates are real bad models: NaN scores on a fifth of the rows (500s), a graph
with large matrix products (slow), a calibration with its intercept moved (shifted scores).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from cli.main import main
from components.common.registry import Registry
from components.common.store import LocalStore
from components.deploy.rollout import Rollout
from tests.conftest import REPO, free_port
from tests.serving import SERVING, make_variant, registered_version

CONFIG = str(REPO / "examples" / "screening" / "config.yaml")
OVERRIDES = [
    "deployment.serving.flush_seconds=0.3",
    "deployment.serving.workers=1",
    "deployment.analysis.interval_seconds=1",
    # No labels come in these tests: guardrails alone decide (the serving loop is under test).
    "deployment.analysis.label_share=0",
    "deployment.analysis.on_no_labels=guardrails",
]
VARIANTS = ("base", "erroring", "slow", "shifted", "healthy", "agreeing", "broken")


def cli(store: Path, command: str, *args: str) -> int:
    if command == "rollout":
        return main(["rollout", args[0], "--config", CONFIG, "--store", str(store), *args[1:], *OVERRIDES])
    return main([command, "--config", CONFIG, "--store", str(store), *args, *OVERRIDES])


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    if not (SERVING / "seldon-core-microservice").exists():
        if os.environ.get("CI"):
            pytest.fail("`make test` should have created .venv-serving")
        pytest.skip(".venv-serving missing; run `make setup`")
    root = tmp_path_factory.mktemp("serve")
    data = registered_version(root / "base")
    store = root / "store"
    registry = Registry(LocalStore(store))
    versions = {}
    for kind in VARIANTS:
        folder = root / "base"
        if kind == "broken":  # a model file that onnxruntime cannot load
            folder = make_variant(root / "base", root / kind, "healthy")
            (folder / "model.onnx").write_bytes(b"not a model")
        elif kind != "base":
            folder = make_variant(root / "base", root / kind, "healthy" if kind == "agreeing" else kind)
        files = {path.name: path for path in folder.iterdir()}
        versions[kind] = registry.register("screening", files, {"run_id": kind})
    assert cli(store, "deploy", "--model", versions["base"]) == 0
    port = free_port()
    log = (root / "serve.log").open("w")
    process = subprocess.Popen(
        [
            str(REPO / ".venv" / "bin" / "kubeloop"),
            *("serve", "--config", CONFIG, "--store", str(store), "--port", str(port)),
            *("--auto", "--poll", "0.2", "--drain-seconds", "1", *OVERRIDES),
        ],
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    gateway = f"http://127.0.0.1:{port}"
    served = {
        "store": store,
        "versions": versions,
        "rows": data["frame"],
        "gateway": gateway,
        "log": log.name,
    }
    try:
        wait_for(lambda: serving_state(store)["predictors"][0]["version"] == versions["base"], 120, served)
        yield served
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            code = process.wait(timeout=60)
        finally:
            os.killpg(process.pid, signal.SIGKILL) if process.poll() is None else None
            log.close()
        leftover = subprocess.run(["pgrep", "-f", str(store)], capture_output=True, text=True).stdout.split()
        assert code == 0 and not leftover, Path(log.name).read_text()[-3000:]


def serving_state(store: Path) -> dict[str, Any]:
    path = store / "deployments" / "screening" / "local-serving.json"
    return json.loads(path.read_text()) if path.exists() else {"predictors": [{"version": None}]}


def rollout(store: Path) -> dict[str, Any]:
    return dict(json.loads((store / "deployments" / "screening" / "rollout.json").read_text()))


def serving_versions(store: Path) -> list[tuple[str, str, int]]:
    return [(p["name"], p["version"], p["traffic"]) for p in serving_state(store)["predictors"]]


def wait_for(condition: Callable[[], bool], seconds: float, served: dict[str, Any]) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except (OSError, KeyError, IndexError, ValueError):
            pass
        time.sleep(0.1)
    pytest.fail("timed out; kubeloop serve said:\n" + Path(served["log"]).read_text()[-4000:])


def request(gateway: str, row: dict[str, Any]) -> tuple[int, str]:
    body = json.dumps({"data": {"names": list(row), "ndarray": [list(row.values())]}}).encode()
    message = urllib.request.Request(
        f"{gateway}/api/v1.0/predictions", data=body, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(message, timeout=30) as reply:
            return reply.status, reply.headers["X-Kubeloop-Predictor"]
    except urllib.error.HTTPError as error:
        return error.code, error.headers["X-Kubeloop-Predictor"]


def drive(served: dict[str, Any], seconds: float = 150) -> Counter[tuple[str, int]]:
    """Send traffic until the rollout is decided and `kubeloop serve` runs its outcome."""
    rows = [
        {k: (v.item() if hasattr(v, "item") else v) for k, v in r.items()}
        for r in served["rows"].to_dict("records")
    ]
    store, outcomes, sent = served["store"], Counter[tuple[str, int]](), 0
    deadline = time.monotonic() + seconds
    with ThreadPoolExecutor(4) as pool:
        while rollout(store)["phase"] == "progressing":
            if time.monotonic() > deadline:
                pytest.fail(f"undecided after {sent} requests:\n" + Path(served["log"]).read_text()[-4000:])
            batch = [rows[(sent + i) % len(rows)] for i in range(100)]
            for status, predictor in pool.map(lambda row: request(served["gateway"], row), batch):
                outcomes[(predictor, status)] += 1
            sent += len(batch)
    # The record is written before its SeldonDeployment, so wait on what the record calls for.
    decided = Rollout.from_dict(rollout(store)).predictors()
    expected = [(p.name, p.version, 0 if p.shadow else p.traffic) for p in decided]
    wait_for(lambda: serving_versions(store) == expected, 60, served)
    return outcomes


def canary_rolled_back(served: dict[str, Any], kind: str) -> str:
    store, versions = served["store"], served["versions"]
    production = Registry(LocalStore(store)).champion("screening")
    # A first step of 50% gets the canary its sample sooner; the steps are the rollout's own.
    assert cli(store, "deploy", "--model", versions[kind], "deployment.canary_steps=[50,100]") == 0
    wait_for(lambda: ("canary", versions[kind], 50) in serving_versions(store), 120, served)
    canary_pid = next(p["pid"] for p in serving_state(store)["predictors"] if p["name"] == "canary")
    outcomes = drive(served)
    record = rollout(store)
    assert record["phase"] == "rolled_back", record["history"]
    assert serving_versions(store) == [("main", production, 100)]
    assert Registry(LocalStore(store)).stage_of("screening", versions[kind]) == "archived"
    assert all(status == 200 for (name, status), _ in outcomes.items() if name == "main"), outcomes
    wait_for(lambda: not Path(f"/proc/{canary_pid}").exists(), 30, served)
    return str(record["history"][-1]["reason"])


def test_a_canary_that_errors_is_rolled_back(served: dict[str, Any]) -> None:
    reason = canary_rolled_back(served, "erroring")
    assert reason.startswith("error rate: canary"), reason


def test_a_slow_canary_is_rolled_back(served: dict[str, Any]) -> None:
    reason = canary_rolled_back(served, "slow")
    assert "latency: " in reason and "error rate" not in reason, reason


def test_a_canary_with_shifted_scores_is_rolled_back(served: dict[str, Any]) -> None:
    reason = canary_rolled_back(served, "shifted")
    assert reason.startswith("own score shift: PSI"), reason


def test_a_candidate_that_cannot_load_changes_nothing(served: dict[str, Any]) -> None:
    store, versions = served["store"], served["versions"]
    before = serving_state(store)
    assert cli(store, "deploy", "--model", versions["broken"]) == 0
    wait_for(lambda: "could not serve it" in Path(served["log"]).read_text(), 120, served)
    assert serving_state(store) == before  # the routing and processes stayed as they were
    status, predictor = request(served["gateway"], served["rows"].iloc[0].to_dict())
    assert (status, predictor) == (200, "main")
    assert cli(store, "rollout", "rollback", "--reason", "model file corrupt") == 0
    assert rollout(store)["phase"] == "rolled_back"


def test_a_healthy_canary_is_promoted_through_every_step(served: dict[str, Any]) -> None:
    store, versions = served["store"], served["versions"]
    old = Registry(LocalStore(store)).champion("screening")
    assert cli(store, "deploy", "--model", versions["healthy"], "--strategy", "canary") == 0
    outcomes = drive(served)
    history = rollout(store)["history"]
    moves = [(h["action"], h["weight"]) for h in history if h["action"] != "hold"]
    assert moves == [("start", 10), ("step", 50), ("promote", 100)], history
    assert serving_versions(store) == [("main", versions["healthy"], 100)]
    stages = Registry(LocalStore(store)).stages("screening")
    assert stages["production"] == versions["healthy"] and old in stages["archived"]
    # Every request succeeded, through both weight changes and main's move to the new version.
    assert {status for _, status in outcomes} == {200}, outcomes
    assert outcomes[("canary", 200)] >= 400


def test_an_agreeing_shadow_is_promoted(served: dict[str, Any]) -> None:
    store, versions = served["store"], served["versions"]
    assert cli(store, "deploy", "--model", versions["agreeing"], "--strategy", "shadow") == 0
    wait_for(lambda: ("shadow", versions["agreeing"], 0) in serving_versions(store), 120, served)
    outcomes = drive(served)
    record = rollout(store)
    assert record["phase"] == "promoted", record["history"]
    assert "error rate: shadow 0.00%" in record["history"][-1]["reason"]  # its mirrored calls judged
    assert {name for name, _ in outcomes} == {"main"}  # a shadow answers nobody
    assert serving_versions(store) == [("main", versions["agreeing"], 100)]

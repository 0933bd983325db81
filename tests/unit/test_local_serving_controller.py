"""LocalServing's bookkeeping, with stand-in predictor processes (tests/fakes): which process
serves which predictor, what is kept, replaced or refused. The real microservices are in
tests/integration/test_serve_local.py."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from components.deploy.local_serving import LocalServing
from components.deploy.seldondeployment import Predictor, ServingSettings, render_seldondeployment
from tests.conftest import REPO, free_port

FAKES = REPO / "tests" / "fakes"


def sdep(*predictors: Predictor) -> dict[str, Any]:
    return render_seldondeployment(
        "screening", "kubeloop", "screening", list(predictors), ServingSettings("/s")
    )


@pytest.fixture
def serving(tmp_path: Path) -> Iterator[LocalServing]:
    local = LocalServing(tmp_path, port=free_port(), drain_seconds=0, say=lambda _: None, bin_dir=FAKES)
    try:
        yield local
    finally:
        local.close()


def answer(url: str) -> dict[str, Any]:
    request = urllib.request.Request(url, data=b"{}", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as reply:
        return dict(json.loads(reply.read()))


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def pids(serving: LocalServing) -> dict[str, int]:
    return {p["name"]: p["pid"] for p in serving.state()["predictors"]}


def test_weights_keep_processes_a_new_version_replaces_one(serving: LocalServing) -> None:
    serving.apply(sdep(Predictor("main", "1", 90), Predictor("canary", "2", 10)))
    first = pids(serving)
    serving.apply(sdep(Predictor("main", "1", 50), Predictor("canary", "2", 50)))
    assert pids(serving) == first  # a weight change swaps the routing table only
    serving.apply(sdep(Predictor("main", "2")))
    assert serving.state()["predictors"][0]["version"] == "2"
    assert answer(serving.url)["parameters"]["model_version"] == "2"
    serving.close()  # joins the drains
    assert not any(alive(pid) for pid in first.values())


def test_a_deployment_that_cannot_be_served_leaves_everything_as_it_was(
    serving: LocalServing, monkeypatch: pytest.MonkeyPatch
) -> None:
    serving.apply(sdep(Predictor("main", "1")))
    before = serving.state()
    monkeypatch.setenv("FAKE_SELDON_FAIL", "3")
    with pytest.raises(RuntimeError, match="predictor canary v3 exited; its log"):
        serving.apply(sdep(Predictor("main", "1", 90), Predictor("canary", "3", 10)))
    assert serving.state() == before
    no_traffic = sdep(Predictor("main", "1", 90), Predictor("canary", "4", 10))
    for predictor in no_traffic["spec"]["predictors"]:
        predictor["traffic"] = 0  # nothing left to answer
    with pytest.raises(ValueError, match="no predictor takes traffic"):
        serving.apply(no_traffic)
    assert serving.state() == before
    assert list(serving.log_dir.glob("canary-v4-*.log")), "the canary's process was started"
    leftover = subprocess.run(["pgrep", "-f", "/s/models/screening/4"], capture_output=True, text=True)
    assert leftover.stdout == ""  # and stopped again
    assert answer(serving.url)["parameters"]["model_version"] == "1"

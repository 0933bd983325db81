"""Runs started on a cluster: the real kfp.Client against a recording KFP v2beta1 API on 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import kfp
import pytest

from cli.main import main
from components.common.kfp_client import RETRAINING_PIPELINE, TOKEN_ENV, TOKEN_PATH_ENV, kfp_client
from components.common.store import LocalStore
from components.monitor.launch import KfpLauncher
from components.monitor.monitor import monitor_pass
from components.monitor.step import run_checks
from components.monitor.traffic import Window
from tests.conftest import REPO
from tests.kfp_api import FakeKfpApi
from tests.monitor_fixtures import log_lines, monitor_config, register_production, write_log

COMPILED = REPO / "manifests" / "pipelines"
T0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
EVIDENCE = {"window": "20261120T0800", "findings": ["data_drift"], "drifted_features": ["age"]}


@pytest.fixture()
def api(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeKfpApi]:
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.config/kfp/context.json from this machine
    monkeypatch.setenv(TOKEN_PATH_ENV, str(tmp_path / "no-token"))
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    with FakeKfpApi() as server:
        yield server


def upload(client: kfp.Client, name: str) -> str:
    """Upload the compiled pipeline as `kubectl apply` of manifests/pipelines/ would register it."""
    return str(client.upload_pipeline(str(COMPILED / f"{name}.yaml"), pipeline_name=name).pipeline_id)


def test_a_triggered_run_is_created_once_with_the_evidence_and_its_state_followed(api: FakeKfpApi) -> None:
    client = kfp.Client(host=api.url)
    pipeline_id = upload(client, RETRAINING_PIPELINE)
    newest = client.upload_pipeline_version(
        str(COMPILED / f"{RETRAINING_PIPELINE}.yaml"), "v2", pipeline_id=pipeline_id
    ).pipeline_version_id
    launcher = KfpLauncher(client, "kubeloop-retraining")
    kfp_run = launcher.start("retrain-screening-20261120T0800", EVIDENCE)
    assert launcher.start("retrain-screening-20261120T0800", EVIDENCE) == kfp_run  # idempotent by name
    created = api.called("POST", "/runs")
    assert len(created) == 1
    body = created[0].body
    assert body["display_name"] == "retrain-screening-20261120T0800"
    assert body["pipeline_version_reference"] == {"pipeline_id": pipeline_id, "pipeline_version_id": newest}
    parameters = body["runtime_config"]["parameters"]
    assert json.loads(parameters.pop("evidence")) == EVIDENCE
    assert parameters == {"run_id": "retrain-screening-20261120T0800", "trigger": "drift"}
    assert len(api.called("POST", "/experiments")) == 1
    assert body["experiment_id"] == next(iter(api.state.experiments))
    assert launcher.status("retrain-screening-20261120T0800") == "running"  # PENDING
    for state, expected in [("RUNNING", "running"), ("SUCCEEDED", "succeeded"), ("FAILED", "failed")]:
        api.set_run_state(kfp_run, state)
        assert launcher.status("retrain-screening-20261120T0800") == expected
    assert launcher.status("retrain-never-started") == "failed"
    # A second launcher (the monitor after a restart) reuses the experiment and finds the run.
    assert KfpLauncher(client, "kubeloop-retraining").start("retrain-screening-20261120T0800", {}) == kfp_run
    assert len(api.called("POST", "/experiments")) == 1 and len(api.called("POST", "/runs")) == 1


def test_a_pinned_version_is_used_and_a_missing_pipeline_is_named(api: FakeKfpApi) -> None:
    client = kfp.Client(host=api.url)
    with pytest.raises(ValueError, match="'kubeloop-retraining' is not registered.*manifests/pipelines"):
        KfpLauncher(client, "x").start("retrain-a", EVIDENCE)
    assert api.called("POST", "/runs") == []
    pipeline_id, versions = api.add_pipeline(RETRAINING_PIPELINE, versions=2)
    KfpLauncher(client, "x", version_id=versions[0]).start("retrain-a", EVIDENCE)
    reference = api.called("POST", "/runs")[0].body["pipeline_version_reference"]
    assert reference == {"pipeline_id": pipeline_id, "pipeline_version_id": versions[0]}


def test_kubeloop_schedule_creates_the_recurring_run(
    api: FakeKfpApi, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(REPO / "examples" / "screening" / "config.yaml")
    argv = ["schedule", "--config", config, "--cron", "0 3 * * 1", "--host", api.url]
    assert main(argv) == 1  # nothing registered yet
    assert "is not registered" in capsys.readouterr().err
    pipeline_id = upload(kfp.Client(host=api.url), RETRAINING_PIPELINE)
    assert main(argv) == 0
    assert "created recurring run recurring-" in capsys.readouterr().out
    (job,) = [r.body for r in api.called("POST", "/recurringruns")]
    assert job["display_name"] == "screening-retraining" and job["mode"] == "ENABLE"
    assert job["trigger"] == {"cron_schedule": {"cron": "0 0 3 * * 1"}}
    assert job["max_concurrency"] == 1 and job["no_catchup"] is True
    assert job["runtime_config"]["parameters"] == {"trigger": "schedule"}
    assert job["pipeline_version_reference"]["pipeline_id"] == pipeline_id


def test_the_monitoring_step_starts_one_kfp_run_per_episode(api: FakeKfpApi, tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    version = register_production(store)
    for hour, scanner in enumerate(["A", "B", "B"]):
        start = T0 + timedelta(hours=hour)
        write_log(store, start, log_lines(start, 600, version, scanner, seed=hour)[0])
    upload(kfp.Client(host=api.url), RETRAINING_PIPELINE)
    config = monitor_config()
    summary, html, started = run_checks(config.to_json(), str(store.root), api.url)
    assert started == 1 and "<html" in html.lower() and "# Drift monitor" in summary
    (run,) = api.state.runs.values()
    drifted = Window(T0 + timedelta(hours=1), T0 + timedelta(hours=2)).name
    assert run["display_name"] == f"retrain-screening-{drifted.lower()}"
    evidence = json.loads(run["runtime_config"]["parameters"]["evidence"])
    assert (
        evidence["window"]["start"] == "2026-11-20T09:00:00+00:00"
        and "intensity_mean" in evidence["drifted_features"]
    )
    # The next window is the same episode, and the run is still pending on the cluster: no new run.
    launcher = KfpLauncher(kfp.Client(host=api.url), config.monitoring.trigger.experiment)
    again = monitor_pass(store, config, launcher, now=T0 + timedelta(hours=4))
    assert again.started == [] and len(api.state.runs) == 1


def test_a_pods_projected_token_is_sent_and_reread_when_the_kubelet_rotates_it(
    api: FakeKfpApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert "authorization" not in _last_headers(api, kfp_client(api.url))  # single-user KFP: none
    monkeypatch.setenv(TOKEN_ENV, "from-kubectl-create-token")
    assert _last_headers(api, kfp_client(api.url))["authorization"] == "Bearer from-kubectl-create-token"
    token = tmp_path / "token"
    token.write_text("projected-1")
    monkeypatch.setenv(TOKEN_PATH_ENV, str(token))
    client = kfp_client(api.url)  # the projected token wins over the variable
    assert _last_headers(api, client)["authorization"] == "Bearer projected-1"
    token.write_text("projected-2")
    assert _last_headers(api, client)["authorization"] == "Bearer projected-2"


def _last_headers(api: FakeKfpApi, client: kfp.Client) -> dict[str, str]:
    client.list_experiments()
    return api.requests[-1].headers


SCREENING = str(REPO / "examples" / "screening" / "config.yaml")
ON_CLUSTER = ["store=s3://kubeloop", "dataset.path=s3://kubeloop/datasets/screening/screening.parquet"]


def test_register_uploads_each_compiled_pipeline_once_and_a_changed_one_as_a_new_version(
    api: FakeKfpApi, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "compiled"
    folder.mkdir()
    for name in ("kubeloop-retraining", "kubeloop-monitoring"):
        for suffix in (".yaml", ".k8s.yaml"):
            (folder / f"{name}{suffix}").write_bytes((COMPILED / f"{name}{suffix}").read_bytes())
    (folder / "kustomization.yaml").write_text("resources: []\n")
    assert main(["register", "--host", api.url, "--dir", str(folder)]) == 0
    assert capsys.readouterr().out.count("created") == 2
    assert sorted(p["display_name"] for p in api.state.pipelines.values()) == [
        "kubeloop-monitoring",
        "kubeloop-retraining",
    ]
    assert len(api.called("POST", "/pipelines/upload")) == 2  # the .k8s.yaml files are not uploaded
    assert main(["register", "--host", api.url, "--dir", str(folder)]) == 0
    assert capsys.readouterr().out.count("unchanged") == 2
    assert api.called("POST", "/pipelines/upload_version") == []
    changed = folder / "kubeloop-monitoring.yaml"
    changed.write_text(changed.read_text() + "# recompiled\n")
    assert main(["register", "--host", api.url, "--dir", str(folder)]) == 0
    out = capsys.readouterr().out
    assert (
        "uploaded  kubeloop-monitoring: kubeloop-monitoring-" in out
        and "unchanged kubeloop-retraining" in out
    )
    (upload,) = api.called("POST", "/pipelines/upload_version")
    assert upload.query["name"].startswith("kubeloop-monitoring-") and upload.body["pipelineInfo"]
    assert main(["register", "--host", api.url, "--dir", str(folder)]) == 0  # the new one is now current
    assert capsys.readouterr().out.count("unchanged") == 2
    assert main(["register", "--host", api.url, "--dir", str(tmp_path)]) == 1
    assert "no compiled pipelines" in capsys.readouterr().err


def test_submit_sends_the_configs_own_pipeline_and_refuses_a_local_config(
    api: FakeKfpApi, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["submit", "--host", api.url, "--config", SCREENING]) == 2
    err = capsys.readouterr().err
    assert "dataset.path" in err and "store=s3://" in err and api.requests == []
    argv = ["submit", "--host", api.url, "--config", SCREENING, "--run-id", "r-1", *ON_CLUSTER]
    assert main([*argv, "training.epochs=3", "training.nproc=1"]) == 0
    assert "submitted run r-1" in capsys.readouterr().out
    (run,) = [r.body for r in api.called("POST", "/runs")]
    assert run["display_name"] == "r-1" and "pipeline_version_reference" not in run
    spec = run["pipeline_spec"]["pipeline_spec"]
    assert spec["pipelineInfo"]["name"] == "kubeloop-training-screening"
    config = json.loads(spec["root"]["inputDefinitions"]["parameters"]["config_json"]["defaultValue"])
    assert config["training"]["epochs"] == 3 and config["store"] == "s3://kubeloop"
    assert run["runtime_config"]["parameters"] == {
        "run_id": "r-1",
        "trigger": "manual",
        "store_uri": "s3://kubeloop",
    }
    assert api.state.experiments[run["experiment_id"]]["display_name"] == "kubeloop-training"


def test_submit_to_a_registered_pipeline_passes_the_config_as_a_parameter(
    api: FakeKfpApi, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["submit", "--host", api.url, "--config", SCREENING, "--run-id", "r-2", *ON_CLUSTER]
    assert main([*argv, "--pipeline", "kubeloop-training"]) == 1
    assert "'kubeloop-training' is not registered" in capsys.readouterr().err
    pipeline_id = upload(kfp.Client(host=api.url), "kubeloop-training")
    assert main([*argv, "--pipeline", "kubeloop-training", "training.epochs=4"]) == 0
    (run,) = [r.body for r in api.called("POST", "/runs")]
    assert run["pipeline_version_reference"]["pipeline_id"] == pipeline_id
    parameters = run["runtime_config"]["parameters"]
    assert json.loads(parameters["config_json"])["training"]["epochs"] == 4
    assert parameters["run_id"] == "r-2" and parameters["store_uri"] == "s3://kubeloop"


def test_an_unreachable_api_and_an_api_error_are_one_readable_line(
    api: FakeKfpApi, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    assert main(["register", "--host", closed, "--dir", str(COMPILED)]) == 1
    assert "cannot reach the Kubeflow Pipelines API" in capsys.readouterr().err
    pipeline_id, versions = api.add_pipeline("kubeloop-training")
    argv = [
        "submit",
        "--host",
        api.url,
        "--config",
        SCREENING,
        *ON_CLUSTER,
        "--pipeline",
        "kubeloop-training",
    ]
    assert main([*argv, "--version", "version-9999"]) == 1  # a pinned version that does not exist
    err = capsys.readouterr().err
    assert "answered 404" in err and "Pipeline version version-9999 not found" in err
    assert main([*argv, "--version", versions[0]]) == 0 and pipeline_id


def test_a_monitor_on_a_schedule_survives_a_failed_api_call_and_starts_the_run_next_pass(
    api: FakeKfpApi, tmp_path: Path
) -> None:
    store = LocalStore(tmp_path / "store")
    version = register_production(store)
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
    for number, scanner in enumerate(["A", "B", "B"]):
        start = hour + timedelta(hours=number)
        write_log(store, start, log_lines(start, 600, version, scanner, seed=number)[0])
    upload(kfp.Client(host=api.url), RETRAINING_PIPELINE)
    api.fail("POST", "/runs", status=503)  # the API is briefly unavailable when the run is created
    argv = ["monitor", "--config", SCREENING, "--store", str(store.root), "--host", api.url, "--every", "1s"]
    process = subprocess.Popen(
        [sys.executable, "-m", "cli", *argv, "monitoring.late_seconds=0"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore::FutureWarning"},
    )
    try:
        deadline = time.monotonic() + 120
        while not api.state.runs and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 0, out[-3000:]
    assert "answered 503" in out and "next pass in 1 s" in out, out[-3000:]
    assert out.count("decision: trigger") == 1 and "Traceback" not in out, out[-3000:]
    assert len(api.called("POST", "/runs")) == 2  # the failed call and the one the next pass made
    (run,) = api.state.runs.values()
    assert run["display_name"] == f"retrain-screening-{hour + timedelta(hours=1):%Y%m%dt%H%M%Sz}"

"""kubeloop's model metrics: per-worker totals in files, summed into Prometheus text, served over HTTP."""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from components.deploy.local_serving import free_port
from components.deploy.model_metrics import Counts, exposition, metrics_server

LABELS = {"kubeloop_model": "screening", "kubeloop_version": "7", "predictor": "main"}


def samples(text: str) -> dict[str, float]:
    """`name{labels} value` lines as {"name{labels}": value}."""
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }


def test_workers_are_summed_and_the_histogram_is_cumulative(tmp_path: Path) -> None:
    first = Counts(tmp_path, LABELS, worker="101")
    second = Counts(tmp_path, LABELS, worker="102")
    first.observe(200, 0.0004, rows=3, positives=1)
    first.observe(200, 0.003, rows=1, positives=1)
    second.observe(200, 0.2, rows=2, positives=0)
    second.observe(400, 0.0001)
    first.write()
    second.write()
    text = exposition(tmp_path)
    values = samples(text)
    base = 'kubeloop_model="screening",kubeloop_version="7",predictor="main"'
    assert values[f"kubeloop_predictions_total{{{base}}}"] == 6
    assert values[f"kubeloop_positive_decisions_total{{{base}}}"] == 2
    assert values[f'kubeloop_requests_total{{{base},status="200"}}'] == 3
    assert values[f'kubeloop_requests_total{{{base},status="400"}}'] == 1
    buckets = {
        le: values[f'kubeloop_predict_seconds_bucket{{{base},le="{le}"}}']
        for le in ("0.0005", "0.005", "0.25", "+Inf")
    }
    assert buckets == {"0.0005": 2, "0.005": 3, "0.25": 4, "+Inf": 4}
    assert values[f"kubeloop_predict_seconds_count{{{base}}}"] == 4
    assert values[f"kubeloop_predict_seconds_sum{{{base}}}"] == pytest.approx(0.2035)
    assert "# TYPE kubeloop_predict_seconds histogram" in text


def test_the_thread_writes_changed_totals_and_a_dead_worker_still_counts(tmp_path: Path) -> None:
    key = 'kubeloop_predictions_total{kubeloop_model="screening",kubeloop_version="7",predictor="main"}'
    counts = Counts(tmp_path, LABELS, every=0.05, worker="201")
    counts.observe(200, 0.001, rows=1)
    assert key not in samples(exposition(tmp_path))  # nothing on disk yet: the headers alone
    counts.start()
    try:
        counts.observe(200, 0.001, rows=1)
        deadline = time.monotonic() + 10
        while samples(exposition(tmp_path)).get(key) != 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert samples(exposition(tmp_path))[key] == 2
    finally:
        counts.stop()
    # gunicorn replaced the worker: its file stays, and the new one's counts add to it
    replacement = Counts(tmp_path, LABELS, worker="202")
    replacement.observe(200, 0.001, rows=5)
    replacement.stop()  # writes what is left
    assert samples(exposition(tmp_path))[key] == 7
    assert not list(tmp_path.glob("*.partial"))  # written by rename: a scrape never reads half


def test_versions_get_their_own_series_and_labels_are_escaped(tmp_path: Path) -> None:
    for worker, labels, rows in (("1", LABELS, 1), ("2", {**LABELS, "kubeloop_version": 'v"2'}, 4)):
        counts = Counts(tmp_path, labels, worker=worker)
        counts.observe(200, 0.001, rows=rows)
        counts.write()
    values = samples(exposition(tmp_path))
    assert (
        values['kubeloop_predictions_total{kubeloop_model="screening",kubeloop_version="7",predictor="main"}']
        == 1
    )
    assert (
        values[
            'kubeloop_predictions_total{kubeloop_model="screening",kubeloop_version="v\\"2",predictor="main"}'
        ]
        == 4
    )


def test_the_endpoint_serves_metrics_and_refuses_other_paths(tmp_path: Path) -> None:
    counts = Counts(tmp_path, LABELS, worker="1")
    counts.observe(200, 0.001, rows=2)
    counts.write()
    port = free_port()
    server = metrics_server(tmp_path, "127.0.0.1", port)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{port}"
    try:
        with urllib.request.urlopen(f"{url}/metrics", timeout=5) as reply:
            body = reply.read().decode()
            assert reply.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        assert "kubeloop_predictions_total{" in body and body.rstrip().endswith("} 1")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{url}/other", timeout=5)
        assert refused.value.code == 404
    finally:
        server.shutdown()
        server.server_close()

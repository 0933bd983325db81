"""kubeloop's own Prometheus metrics for a model server, kept off Seldon's request path.

Seldon's custom metrics go through a multiprocessing manager that copies every series of a
worker both ways on every request: measured with callgrind, our 11 series cost 580k
instructions a request, a fifth of everything the server does. Instead each gunicorn worker
counts in memory (`Counts`) and a thread of its own writes the totals, once a second when
they changed, to the worker's file in a shared folder (`<pid>.json`, replaced atomically).
`serve_metrics` (run by Seldon's `custom_service` hook in its own process) answers
`GET /metrics` with the sum over the files. A worker that died keeps its file, so counters
never go down when gunicorn replaces a worker; a scrape sees counts at most a second old.
"""

from __future__ import annotations

import bisect
import json
import logging
import math
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

PORT = 6001
"""Where a model container serves kubeloop's /metrics (container port name `model-metrics`)."""

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, math.inf)
"""Upper bounds (seconds) of the model-time histogram."""


class Counts:
    """One worker's totals: rows, positive decisions, requests by status, model time.

    Made in each worker after the fork (a copy made before it would count from the parent's
    totals, and its writer thread would not survive the fork). `observe` only adds in memory;
    a background thread writes the totals when they changed, every `every` seconds.
    """

    def __init__(self, folder: Path, labels: dict[str, str], every: float = 1.0, worker: str = "") -> None:
        """
        Args:
            folder: The folder every worker of the server writes to.
            labels: Prometheus labels of every series (model, version, predictor).
            every: Seconds between writes of this worker's file.
            worker: The file's name; default: this process's pid.
        """
        self.labels, self.every = labels, every
        self.path = folder / f"{worker or os.getpid()}.json"
        self._lock = threading.Lock()
        self.rows = self.positives = 0
        self.requests: dict[str, int] = {}
        self.buckets = [0] * len(LATENCY_BUCKETS)  # per bucket, not cumulative
        self.seconds = 0.0
        self._changed = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def observe(self, status: int, seconds: float, rows: int = 0, positives: int = 0) -> None:
        """Count one request (a few dict and list updates: nothing leaves the process here)."""
        index = bisect.bisect_left(LATENCY_BUCKETS, seconds)  # the first bound >= seconds
        key = str(status)
        with self._lock:
            self.rows += rows
            self.positives += positives
            self.requests[key] = self.requests.get(key, 0) + 1
            self.buckets[index] += 1
            self.seconds += seconds
            self._changed = True

    def start(self) -> None:
        """Write the totals from a background thread whenever they changed, every `every` seconds."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="kubeloop-metrics", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop the thread and write what it has not written yet."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.write()

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            if self._changed:
                self.write()

    def write(self) -> None:
        """Replace this worker's file with its totals now."""
        with self._lock:
            self._changed = False
            record = {
                "labels": self.labels,
                "rows": self.rows,
                "positives": self.positives,
                "requests": dict(self.requests),
                "buckets": list(self.buckets),
                "seconds": self.seconds,
            }
        path, partial = self.path, self.path.with_suffix(".partial")
        try:
            partial.write_text(json.dumps(record))
            os.replace(partial, path)  # a scrape never reads half a file
        except OSError:
            logger.exception("metrics: writing %s failed; the next round tries again", path)
            with self._lock:
                self._changed = True


def exposition(folder: Path) -> str:
    """Prometheus text format: the sum of every worker's file in `folder`, per label set."""
    totals: dict[tuple[tuple[str, str], ...], dict[str, Any]] = {}
    for path in sorted(folder.glob("*.json")):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # replaced or removed meanwhile: the next scrape reads it
        key = tuple(sorted(record["labels"].items()))
        total = totals.setdefault(
            key,
            {
                "rows": 0,
                "positives": 0,
                "requests": {},
                "buckets": [0] * len(LATENCY_BUCKETS),
                "seconds": 0.0,
            },
        )
        total["rows"] += record["rows"]
        total["positives"] += record["positives"]
        for status, count in record["requests"].items():
            total["requests"][status] = total["requests"].get(status, 0) + count
        total["buckets"] = [a + b for a, b in zip(total["buckets"], record["buckets"], strict=True)]
        total["seconds"] += record["seconds"]
    return "".join(_families(totals))


def _families(totals: dict[tuple[tuple[str, str], ...], dict[str, Any]]) -> Iterator[str]:
    def labels(key: tuple[tuple[str, str], ...], **extra: str) -> str:
        pairs = [*key, *extra.items()]
        return "{" + ",".join(f'{name}="{_escape(value)}"' for name, value in pairs) + "}"

    yield "# HELP kubeloop_predictions_total Rows scored.\n# TYPE kubeloop_predictions_total counter\n"
    for key, total in totals.items():
        yield f"kubeloop_predictions_total{labels(key)} {total['rows']}\n"
    yield (
        "# HELP kubeloop_positive_decisions_total Rows at or above the operating threshold.\n"
        "# TYPE kubeloop_positive_decisions_total counter\n"
    )
    for key, total in totals.items():
        yield f"kubeloop_positive_decisions_total{labels(key)} {total['positives']}\n"
    yield (
        "# HELP kubeloop_requests_total Prediction requests by HTTP status.\n"
        "# TYPE kubeloop_requests_total counter\n"
    )
    for key, total in totals.items():
        for status, count in sorted(total["requests"].items()):
            yield f"kubeloop_requests_total{labels(key, status=status)} {count}\n"
    yield (
        "# HELP kubeloop_predict_seconds Model time per request (checks, scoring, logging).\n"
        "# TYPE kubeloop_predict_seconds histogram\n"
    )
    for key, total in totals.items():
        cumulative = 0
        for bound, count in zip(LATENCY_BUCKETS, total["buckets"], strict=True):
            cumulative += count
            le = "+Inf" if math.isinf(bound) else f"{bound:g}"
            yield f"kubeloop_predict_seconds_bucket{labels(key, le=le)} {cumulative}\n"
        yield f"kubeloop_predict_seconds_sum{labels(key)} {total['seconds']!r}\n"
        yield f"kubeloop_predict_seconds_count{labels(key)} {cumulative}\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def serve_metrics(folder: Path, host: str, port: int) -> None:
    """Answer GET /metrics (and /prometheus) on host:port with `exposition(folder)`; runs forever."""
    server = metrics_server(folder, host, port)
    logger.info("kubeloop model metrics on http://%s:%s/metrics from %s", host, port, folder)
    server.serve_forever()


def metrics_server(folder: Path, host: str, port: int) -> ThreadingHTTPServer:
    """The /metrics server, bound and not yet serving."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            if self.path.split("?")[0] not in ("/metrics", "/prometheus"):
                self.send_error(404, "kubeloop's model metrics are at /metrics")
                return
            body = exposition(folder).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
            pass  # one line per scrape would drown the server's log

    return ThreadingHTTPServer((host, port), Handler)

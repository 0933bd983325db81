"""Replayed traffic of `kubeloop loop`: generated exams sent through the local gateway, then labeled.

The rows come from the dataset's own generator (`dataset.generator`) with a phase's params
(e.g. `scanners: {A: 0.5, B: 0.5}` once scanner B joins), so live traffic is what the project
would really see. Each request carries its request id (`meta.puid`), which the request logs
keep; the labels, which a screening programme learns weeks later, are written afterwards
under `labels/<model>/`, keyed by that id, where the monitor and the retraining run find them.
"""

from __future__ import annotations

import http.client
import importlib
import io
import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pandas as pd

from components.common.config import KubeloopConfig
from components.common.modalities.base import Modality
from components.common.store import Store

PROGRESS_EVERY = 0.25
"""Share of a replay after which a progress line is said."""


def generate_rows(config: KubeloopConfig, params: dict[str, Any], folder: Path) -> pd.DataFrame:
    """Rows from the dataset's generator with `params` over its configured ones, written to
    `folder` (an image manifest's files stay there, for the replay to send), read as the
    modality reads its dataset.

    Raises:
        ValueError: The config has no dataset.generator, or it cannot be imported.
    """
    generator = config.dataset.generator
    if generator is None:
        raise ValueError(
            "kubeloop loop replays traffic from dataset.generator; set one (module:function and params)"
        )
    module_name, _, function_name = generator.function.partition(":")
    try:
        function = getattr(importlib.import_module(module_name), function_name)
    except (ImportError, AttributeError) as exc:
        raise ValueError(
            f"dataset.generator.function '{generator.function}' cannot be imported: {exc}"
        ) from exc
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"rows{Path(config.dataset.path).suffix or '.parquet'}"
    function(path=path, **{**generator.params, **params})
    return config.dataset.make_modality().read(path)


@dataclass
class Replayed:
    """What a replay sent and what came back."""

    request_ids: list[str] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    served_by: Counter[str] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    rows: int = 0

    @property
    def requests(self) -> int:
        """Requests that got an answer."""
        return sum(self.statuses.values())

    def p50_ms(self) -> float:
        """Median latency seen by the client."""
        ordered = sorted(self.latencies_ms)
        return ordered[len(ordered) // 2] if ordered else float("nan")


class Replay:
    """Sends rows to the gateway from a few keep-alive connections."""

    def __init__(
        self, url: str, features: list[str], modality: Modality, concurrency: int = 2, timeout: float = 30.0
    ) -> None:
        """Args: the gateway's prediction URL, the model's features in order, the modality that
        writes a request's data, parallel connections."""
        parts = urlsplit(url)
        self.host, self.port, self.path = parts.hostname or "127.0.0.1", parts.port or 80, parts.path
        self.features, self.modality = features, modality
        self.concurrency, self.timeout = concurrency, timeout

    def body(self, request_id: str, rows: pd.DataFrame) -> bytes:
        """The Seldon request for `rows` as a client sends it, carrying the request id."""
        data = self.modality.request(rows, self.features)
        return json.dumps({"meta": {"puid": request_id}, **data}).encode()

    def send(
        self,
        frame: pd.DataFrame,
        prefix: str,
        rows_per_request: int = 1,
        stop: threading.Event | None = None,
        say: Callable[[str], None] | None = None,
    ) -> Replayed:
        """Send every row of `frame` (request ids `<prefix>-<n>`) unless `stop` is set first."""
        bodies = [
            (f"{prefix}-{n}", self.body(f"{prefix}-{n}", frame.iloc[start : start + rows_per_request]))
            for n, start in enumerate(range(0, len(frame), rows_per_request))
        ]
        out = Replayed()
        lock = threading.Lock()
        cursor = iter(range(len(bodies)))
        marks = {int(len(bodies) * share) for share in (0.25, 0.5, 0.75)} if say else set()

        def worker() -> None:
            connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                while not (stop and stop.is_set()):
                    with lock:
                        index = next(cursor, None)
                    if index is None:
                        return
                    request_id, body = bodies[index]
                    status, predictor, ms = self._post(connection, body)
                    with lock:
                        out.request_ids.append(request_id)
                        out.statuses[status] += 1
                        out.served_by[predictor] += 1
                        out.latencies_ms.append(ms)
                        out.rows += min(rows_per_request, len(frame) - index * rows_per_request)
                        if say and out.requests in marks:
                            say(f"{out.requests}/{len(bodies)} requests sent")
            finally:
                connection.close()

        threads = [threading.Thread(target=worker, daemon=True) for _ in range(self.concurrency)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return out

    def _post(self, connection: http.client.HTTPConnection, body: bytes) -> tuple[int, str, float]:
        started = time.perf_counter()
        try:
            connection.request("POST", self.path, body, {"Content-Type": "application/json"})
            reply = connection.getresponse()
            reply.read()
            status, predictor = reply.status, reply.getheader("X-Kubeloop-Predictor") or "?"
        except (OSError, http.client.HTTPException):
            connection.close()  # reconnects on the next request
            status, predictor = 599, "unreachable"
        return status, predictor, (time.perf_counter() - started) * 1000


def write_labels(
    store: Store,
    model: str,
    prefix: str,
    sent: Replayed,
    frame: pd.DataFrame,
    label: str,
    rows: int,
    known: list[str] | None = None,
) -> str:
    """The labels of the rows a replay sent under `prefix` (`rows` rows per request), as one CSV,
    with the `known` columns of each row (what the site records beside the label: the device)."""
    answered = set(sent.request_ids)
    known = [c for c in known or [] if c in frame.columns]
    records = []
    for n, start in enumerate(range(0, len(frame), rows)):
        request_id = f"{prefix}-{n}"
        if request_id not in answered:
            continue
        part = frame.iloc[start : start + rows]
        for row, (value, *extra) in enumerate(zip(part[label], *(part[c] for c in known), strict=True)):
            others = dict(zip(known, extra, strict=True))
            records.append({"request_id": request_id, "row": row, "label": value, **others})
    key = f"labels/{model}/{prefix}.csv"
    buffer = io.StringIO()
    pd.DataFrame(records, columns=["request_id", "row", "label", *known]).to_csv(buffer, index=False)
    store.write_bytes(key, buffer.getvalue().encode())
    return key

"""The local gateway: one address in front of local predictors, routed by a SeldonDeployment.

It reads the same SeldonDeployment the cluster applies: requests go to the non-shadow
predictors in proportion to their `traffic`, and a `shadow: true` predictor gets a copy of
each request after the caller has its answer, from a bounded background pool, so a slow or
failing shadow never touches a response or its latency. Every request gets a request id
(the caller's `meta.puid`, or a new one) that is passed to the predictors, so the request
logs of main and shadow pair up. A new deployment (weights) replaces the routing table in
one step; requests in flight finish where they started.

Standard library only: the gateway runs in either environment.
"""

from __future__ import annotations

import http.client
import json
import random
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

PREDICT_PATHS = ("/api/v1.0/predictions", "/api/v0.1/predictions")
MAX_BODY = 32 * 1024 * 1024
"""Largest request body accepted (413 above it)."""


@dataclass(frozen=True)
class Route:
    """Where requests go: weighted serving predictors and an optional shadow."""

    serving: tuple[tuple[str, str, int], ...]  # (predictor, base URL, traffic)
    shadow: tuple[str, str] | None

    @classmethod
    def from_deployment(cls, sdep: dict[str, Any], upstreams: dict[str, str]) -> Route:
        """Routing of a SeldonDeployment, given each predictor's local base URL.

        Raises:
            ValueError: A predictor has no upstream, or no predictor takes traffic.
        """
        serving, shadow = [], None
        for predictor in sdep["spec"]["predictors"]:
            name = predictor["name"]
            if name not in upstreams:
                raise ValueError(f"predictor {name!r} has no local upstream; known: {sorted(upstreams)}")
            if predictor.get("shadow"):
                shadow = (name, upstreams[name])
            else:
                serving.append((name, upstreams[name], int(predictor.get("traffic", 100))))
        if len(serving) == 1 and serving[0][2] == 0:
            serving[0] = (serving[0][0], serving[0][1], 100)  # a lone predictor takes everything
        if not any(weight for _, _, weight in serving):
            raise ValueError("no predictor takes traffic: the deployment would answer nobody")
        return cls(tuple(serving), shadow)


def _post(url: str, body: bytes, timeout: float) -> tuple[int, bytes]:
    """POST with http.client directly: urllib.request's opener and handler chain cost more per call."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=timeout)
    try:
        connection.request("POST", parts.path, body, {"Content-Type": "application/json"})
        reply = connection.getresponse()
        return reply.status, reply.read()
    finally:
        connection.close()


class Gateway:
    """Routing state and the shadow pool; `serve` puts an HTTP server in front of them."""

    def __init__(self, route: Route, timeout: float = 30.0, shadow_workers: int = 4, max_pending: int = 1000):
        self._route = route
        self._lock = threading.Lock()
        self._random = random.Random()
        self.timeout = timeout
        self._shadow_pool = ThreadPoolExecutor(max_workers=shadow_workers, thread_name_prefix="shadow")
        self._pending = threading.BoundedSemaphore(max_pending)
        self.shadow_dropped = 0
        self.shadow_failed = 0

    @property
    def route(self) -> Route:
        """The routing table in force."""
        return self._route

    def update(self, route: Route) -> None:
        """Swap the routing table (new weights, a new shadow) in one step."""
        with self._lock:
            self._route = route

    def pick(self, route: Route) -> tuple[str, str]:
        """A serving predictor, drawn in proportion to traffic."""
        with self._lock:
            names = [(name, url) for name, url, _ in route.serving]
            weights = [weight for _, _, weight in route.serving]
            return self._random.choices(names, weights=weights)[0]

    def handle(self, path: str, body: bytes) -> tuple[int, bytes, dict[str, str], Callable[[], None]]:
        """Answer one prediction request: (status, body, extra headers, then).

        `then` mirrors the request to the shadow; call it after the answer is sent.
        """
        route = self._route  # one table for the whole request, whatever changes meanwhile
        request_id, forwarded = _with_request_id(body)
        name, url = self.pick(route)
        try:
            status, reply = _post(f"{url}{path}", forwarded, self.timeout)
        except (OSError, http.client.HTTPException) as exc:  # refused, reset, timed out
            message = {"status": {"status": 1, "code": -1, "info": f"predictor {name} unreachable: {exc}"}}
            status, reply = 503, json.dumps(message).encode()
        headers = {"X-Kubeloop-Predictor": name, "X-Kubeloop-Request-Id": request_id}
        shadow = route.shadow

        def then() -> None:
            if shadow is not None:
                self._mirror(shadow[1] + path, forwarded)

        return status, reply, headers, then

    def _mirror(self, url: str, body: bytes) -> None:
        """Send a copy to the shadow in the background; drop it when too many are pending."""
        if not self._pending.acquire(blocking=False):
            self.shadow_dropped += 1
            return

        def send() -> None:
            try:
                _post(url, body, self.timeout)
            except Exception:  # noqa: BLE001 - a shadow's failure is its own; the caller never sees it
                self.shadow_failed += 1
            finally:
                self._pending.release()

        self._shadow_pool.submit(send)

    def close(self) -> None:
        """Stop the shadow pool (pending copies are still sent)."""
        self._shadow_pool.shutdown(wait=True)


def _with_request_id(body: bytes) -> tuple[str, bytes]:
    """The request id (meta.puid, or a new one) and the body carrying it to the predictors."""
    try:
        message = json.loads(body)
    except ValueError:
        return uuid.uuid4().hex, body  # the predictor answers the malformed body with a 400
    if not isinstance(message, dict):
        return uuid.uuid4().hex, body
    meta = message.setdefault("meta", {}) if isinstance(message.get("meta", {}), dict) else {}
    request_id = str(meta.get("puid") or uuid.uuid4().hex)
    meta["puid"] = request_id
    return request_id, json.dumps(message).encode()


def serve(gateway: Gateway, port: int, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    """An HTTP server for `gateway` (call serve_forever on it, shutdown to stop)."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body leave in two writes; with Nagle on, a keep-alive client's delayed
        # ACK holds the body back 40 ms.
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
            return  # the predictors' request logs are the record; no per-request stderr line

        def handle(self) -> None:
            try:
                super().handle()
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client hung up (a load generator stopping, a timeout): not our error

        def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            if self.path in ("/health/ping", "/health"):
                route = gateway.route
                state = {
                    "serving": [[n, w] for n, _, w in route.serving],
                    "shadow": route.shadow and route.shadow[0],
                }
                self._send(200, json.dumps(state).encode())
            else:
                self._send(404, b'{"status": {"info": "unknown path; POST /api/v1.0/predictions"}}')

        def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
            if self.path not in PREDICT_PATHS:
                self._send(404, b'{"status": {"info": "unknown path; POST /api/v1.0/predictions"}}')
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self._send(413, json.dumps({"status": {"info": f"body over {MAX_BODY} bytes"}}).encode())
                self.close_connection = True
                return
            status, body, headers, then = gateway.handle(self.path, self.rfile.read(length))
            self._send(status, body, headers)
            self.wfile.flush()
            then()  # the caller has its answer before the shadow gets its copy

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server

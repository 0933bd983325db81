"""The local gateway: one address in front of local predictors, routed by a SeldonDeployment.

It reads the same SeldonDeployment the cluster applies: requests go to the non-shadow
predictors in proportion to their `traffic`, and a `shadow: true` predictor gets a copy of
each request after the caller has its answer, from a bounded background pool, so a slow or
failing shadow never touches a response or its latency. Every request gets a request id
(the caller's `meta.puid`, or a new one) that is passed to the predictors, so the request
logs of main and shadow pair up. A new deployment (weights) replaces the routing table in
one step; requests in flight finish where they started.

HTTP on both sides goes through `http_wire` (raw sockets, one `sendall` an answer), not
http.server and http.client: their header parsing was most of the latency the gateway added.
Standard library only: the gateway runs in either environment.
"""

from __future__ import annotations

import json
import os
import random
import socket
import socketserver
import threading
import time
from bisect import bisect_right
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import accumulate
from typing import Any
from urllib.parse import urlsplit

from components.deploy.http_wire import HttpError, Reader, parse_head, post, read_body, response

PREDICT_PATHS = ("/api/v1.0/predictions", "/api/v0.1/predictions")
HEALTH_PATHS = ("/health/ping", "/health")
MAX_BODY = 64 * 1024 * 1024
"""Largest request body accepted (413 above it), and largest answer taken from a predictor: the
model server's default limit (deployment.serving.max_request_bytes), so a batch of images the
model accepts passes."""
IDLE_SECONDS = 75.0
"""A keep-alive connection with no request for this long is closed (its thread ends)."""
UNKNOWN_PATH = b'{"status": {"status": 1, "code": -1, "info": "unknown path; POST /api/v1.0/predictions"}}'
JSON = {"Content-Type": "application/json"}


@dataclass(frozen=True)
class Route:
    """Where requests go: weighted serving predictors and an optional shadow."""

    serving: tuple[tuple[str, str, int], ...]  # (predictor, base URL, traffic)
    shadow: tuple[str, str] | None
    _cumulative: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_cumulative", tuple(accumulate(weight for _, _, weight in self.serving)))

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

    def pick(self, draw: float) -> tuple[str, str]:
        """The serving predictor that a uniform draw in [0, 1) lands on, in proportion to traffic."""
        index = bisect_right(self._cumulative, draw * self._cumulative[-1])
        name, url, _ = self.serving[min(index, len(self.serving) - 1)]
        return name, url


@lru_cache(maxsize=64)
def _address(url: str) -> tuple[str, int]:
    """(host, port) of a predictor's base URL, parsed once."""
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 80


class Gateway:
    """Routing state and the shadow pool; `serve` puts an HTTP server in front of them."""

    def __init__(self, route: Route, timeout: float = 30.0, shadow_workers: int = 4, max_pending: int = 1000):
        self._route = route
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
        """Swap the routing table (new weights, a new shadow) in one step: Routes are immutable."""
        self._route = route

    def handle(
        self, path: str, body: bytes, content_type: str = "application/json"
    ) -> tuple[int, bytes, dict[str, str], Callable[[], None]]:
        """Answer one prediction request: (status, body, headers, then).

        `then` mirrors the request to the shadow; call it after the answer is sent.
        """
        route = self._route  # one table for the whole request, whatever changes meanwhile
        request_id, forwarded = _with_request_id(body)
        name, url = route.pick(self._random.random())
        try:
            status, reply_type, reply = post(
                _address(url), path, forwarded, content_type, self.timeout, MAX_BODY
            )
        except HttpError as exc:  # an answer that is not HTTP
            status, reply_type, reply = exc.status, "application/json", _status_body(exc.message)
        except OSError as exc:  # refused, reset, timed out
            status, reply_type = 503, "application/json"
            reply = _status_body(f"predictor {name} unreachable: {exc}")
        headers = {
            "Content-Type": reply_type,
            "X-Kubeloop-Predictor": name,
            "X-Kubeloop-Request-Id": request_id,
        }
        shadow = route.shadow

        def then() -> None:
            if shadow is not None:
                self._mirror(_address(shadow[1]), path, forwarded, content_type)

        return status, reply, headers, then

    def _mirror(self, address: tuple[str, int], path: str, body: bytes, content_type: str) -> None:
        """Send a copy to the shadow in the background; drop it when too many are pending."""
        if not self._pending.acquire(blocking=False):
            self.shadow_dropped += 1
            return

        def send() -> None:
            try:
                post(address, path, body, content_type, self.timeout, MAX_BODY)
            except Exception:  # noqa: BLE001 - a shadow's failure is its own; the caller never sees it
                self.shadow_failed += 1
            finally:
                self._pending.release()

        self._shadow_pool.submit(send)

    def close(self) -> None:
        """Stop the shadow pool (pending copies are still sent)."""
        self._shadow_pool.shutdown(wait=True)


def _status_body(info: str) -> bytes:
    """A Seldon-style failure body."""
    return json.dumps({"status": {"status": 1, "code": -1, "info": info}}).encode()


def _new_id() -> str:
    """A fresh request id: 32 hex digits (os.urandom, a tenth of uuid4's cost)."""
    return os.urandom(16).hex()


def _with_request_id(body: bytes) -> tuple[str, bytes]:
    """The request id (meta.puid, or a new one), and the body carrying it (still JSON if it was)."""
    start = body.lstrip()
    if start[:1] == b"{" and b'"meta"' not in body and b"\\u" not in body:
        # An object with no meta key (no escape could spell one): splice meta in rather than
        # parse and re-encode; a malformed body stays malformed and the predictor says why.
        request_id = _new_id()
        spliced = b'{"meta": {"puid": "%s"}' % request_id.encode()
        rest = start[1:].lstrip()
        return request_id, spliced + (rest if rest[:1] == b"}" else b", " + rest)
    try:
        message = json.loads(body)
    except ValueError:
        return _new_id(), body  # the predictor answers the malformed body with a 400
    if not isinstance(message, dict):
        return _new_id(), body
    meta = message.get("meta")
    if isinstance(meta, dict) and meta.get("puid"):
        return str(meta["puid"]), body  # already carried: forward the bytes as sent
    if meta is None:
        meta = message["meta"] = {}
    elif not isinstance(meta, dict):
        return _new_id(), body  # the predictor names the bad meta
    request_id = _new_id()
    meta["puid"] = request_id
    return request_id, json.dumps(message).encode()


class GatewayServer(socketserver.ThreadingTCPServer):
    """A thread per client connection; keep-alive connections are served until idle or closed."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, gateway: Gateway, address: tuple[str, int]):
        self.gateway = gateway
        super().__init__(address, _Connection)


class _Connection(socketserver.BaseRequestHandler):
    """One client connection: requests in order, each answered before the next is read."""

    server: GatewayServer

    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(IDLE_SECONDS)
        reader = Reader(sock)
        try:
            while self._one(sock, reader):
                pass
            _linger(sock)
        except OSError:
            pass  # the client hung up or went idle: not our error

    def _one(self, sock: socket.socket, reader: Reader) -> bool:
        """Answer the next request; False when the connection is done."""
        try:
            head = reader.head()
            if head is None:
                return False
            (method, target, version), headers = parse_head(head)
            keep = _keep_alive(version, headers.get("connection", ""))
            path = target.split("?", 1)[0]
            if method == "POST" and path in PREDICT_PATHS:
                if headers.get("expect", "").lower() == "100-continue":
                    _check_length(headers)
                    sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                body = read_body(reader, headers, MAX_BODY)
                content_type = headers.get("content-type", "application/json")
                status, reply, extra, then = self.server.gateway.handle(target, body, content_type)
                sock.sendall(response(status, reply, extra, not keep))
                then()  # the caller has its answer before the shadow gets its copy
                return keep
            if method == "GET" and path in HEALTH_PATHS:
                route = self.server.gateway.route
                state = {
                    "serving": [[n, w] for n, _, w in route.serving],
                    "shadow": route.shadow and route.shadow[0],
                }
                sock.sendall(response(200, json.dumps(state).encode(), JSON, not keep))
                return keep
            sock.sendall(response(404 if method in ("GET", "POST") else 405, UNKNOWN_PATH, JSON, True))
            return False  # its body, if any, was not read: the connection cannot go on
        except HttpError as exc:
            sock.sendall(response(exc.status, _status_body(exc.message), JSON, True))
            return False


def _linger(sock: socket.socket, seconds: float = 1.0, most: int = 1 << 20) -> None:
    """Close after reading what the client still sends, a bounded while.

    Closing with unread bytes makes the kernel send a reset, which can destroy the answer
    (a 413, a 431) before the client reads it.
    """
    sock.shutdown(socket.SHUT_WR)
    deadline, drained = time.monotonic() + seconds, 0
    while drained < most and (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        chunk = sock.recv(65536)
        if not chunk:
            return
        drained += len(chunk)


def _check_length(headers: dict[str, str]) -> None:
    """Refuse an oversized body before the client sends it (it waits for 100 Continue)."""
    length = headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_BODY:
        raise HttpError(413, f"body of {length} bytes is over the limit of {MAX_BODY}")


def _keep_alive(version: str, connection: str) -> bool:
    """HTTP/1.1 keeps the connection unless told to close; HTTP/1.0 only when asked to keep it."""
    tokens = {token.strip().lower() for token in connection.split(",")}
    if version == "HTTP/1.1":
        return "close" not in tokens
    return "keep-alive" in tokens


def serve(gateway: Gateway, port: int, host: str = "127.0.0.1") -> GatewayServer:
    """An HTTP server for `gateway` (call serve_forever on it, shutdown to stop)."""
    return GatewayServer(gateway, (host, port))

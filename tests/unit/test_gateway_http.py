"""The gateway's HTTP on real sockets: keep-alive, framing, request ids and refusals."""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from components.deploy.gateway import MAX_BODY, Gateway, Route, _with_request_id, serve
from components.deploy.http_wire import HttpError, Reader, parse_head
from tests.conftest import free_port

PATH = "/api/v1.0/predictions"


class Echo(BaseHTTPRequestHandler):
    """An upstream that answers with what it received: path, content type and body."""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        return

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        reply = json.dumps(
            {"path": self.path, "type": self.headers.get("Content-Type"), "body": body.decode()}
        ).encode()
        self.send_response(200 if b"fail" not in body else 400)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)


@contextlib.contextmanager
def running(server: Any) -> Iterator[int]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def gateway() -> Iterator[dict[str, Any]]:
    upstream = ThreadingHTTPServer(("127.0.0.1", free_port()), Echo)
    upstream.daemon_threads = True
    with running(upstream) as upstream_port:
        gate = Gateway(Route((("main", f"http://127.0.0.1:{upstream_port}", 100),), None), timeout=5)
        with running(serve(gate, free_port())) as port:
            yield {"port": port, "gateway": gate}
        gate.close()


def exchange(port: int, raw: bytes, answers: int = 1) -> list[tuple[int, dict[str, str], bytes]]:
    """Send raw bytes on one connection; read `answers` responses (a 100 Continue counts)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(raw)
        reader, out = Reader(sock), []
        for _ in range(answers):
            head = reader.head()
            assert head is not None, "the gateway closed without answering"
            start, headers = parse_head(head)
            status = int(start[1])
            body = b"" if status == 100 else reader.exactly(int(headers.get("content-length", "0")))
            out.append((status, headers, body))
        return out


def post_bytes(body: bytes, extra: str = "", version: str = "HTTP/1.1") -> bytes:
    return (
        f"POST {PATH} {version}\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n{extra}\r\n"
    ).encode() + body


def test_one_keep_alive_connection_carries_many_requests(gateway: dict[str, Any]) -> None:
    bodies = [json.dumps({"data": {"ndarray": [[i]]}}).encode() for i in range(5)]
    answers = exchange(gateway["port"], b"".join(post_bytes(b) for b in bodies), answers=5)
    for i, (status, headers, body) in enumerate(answers):
        assert status == 200 and headers["x-kubeloop-predictor"] == "main"
        forwarded = json.loads(json.loads(body)["body"])
        assert forwarded["data"]["ndarray"] == [[i]]  # in order, none mixed up
        assert forwarded["meta"]["puid"] == headers["x-kubeloop-request-id"]
        assert "connection" not in headers


def test_the_callers_puid_and_bytes_pass_through_unchanged(gateway: dict[str, Any]) -> None:
    body = b'{"meta": {"puid": "abc-1", "tags": {"k": 1}},   "data": {"ndarray": [[1]]}}'
    ((status, headers, reply),) = exchange(gateway["port"], post_bytes(body))
    assert status == 200 and headers["x-kubeloop-request-id"] == "abc-1"
    assert json.loads(reply)["body"].encode() == body


@pytest.mark.parametrize(
    "body",
    [
        b"{}",
        b"  { }  ",
        b'{"data": {"ndarray": [[1]]}}',
        b'{"meta": {"tags": {"a": 1}}, "data": 1}',
        b"[1, 2]",
    ],
)
def test_every_json_body_gets_one_request_id(body: bytes) -> None:
    request_id, forwarded = _with_request_id(body)
    message = json.loads(forwarded)
    if isinstance(message, dict):
        assert message["meta"]["puid"] == request_id and len(request_id) == 32
        assert {k: v for k, v in message.items() if k != "meta"} == {
            k: v for k, v in json.loads(body).items() if k != "meta"
        }
        assert message["meta"].get("tags") == json.loads(body).get("meta", {}).get("tags")
    else:
        assert forwarded == body  # not an object: the predictor refuses it, as sent


def test_a_malformed_body_reaches_the_predictor_and_its_4xx_comes_back(gateway: dict[str, Any]) -> None:
    ((status, _, reply),) = exchange(gateway["port"], post_bytes(b'{"data": "fail", '))
    assert status == 400 and "fail" in json.loads(reply)["body"]


def test_expect_100_continue_and_chunked_bodies(gateway: dict[str, Any]) -> None:
    body = b'{"data": {"ndarray": [[7]]}}'
    continued = exchange(gateway["port"], post_bytes(body, "Expect: 100-continue\r\n"), answers=2)
    assert [status for status, _, _ in continued] == [100, 200]
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:10], body[10:])) + b"0\r\n\r\n"
    raw = (
        f"POST {PATH} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        "Content-Type: application/json\r\n\r\n"
    ).encode() + chunks
    ((status, _, reply),) = exchange(gateway["port"], raw)
    assert status == 200 and json.loads(json.loads(reply)["body"])["data"]["ndarray"] == [[7]]


def test_close_and_http_1_0_end_the_connection(gateway: dict[str, Any]) -> None:
    body = b'{"data": {"ndarray": [[1]]}}'
    for raw in (post_bytes(body, "Connection: close\r\n"), post_bytes(body, version="HTTP/1.0")):
        with socket.create_connection(("127.0.0.1", gateway["port"]), timeout=10) as sock:
            sock.sendall(raw)
            data = b""
            while chunk := sock.recv(65536):  # returns only because the gateway closes
                data += chunk
        assert data.startswith(b"HTTP/1.1 200") and b"Connection: close" in data


@pytest.mark.parametrize(
    ("raw", "status", "says"),
    [
        (post_bytes(b"{}", f"Content-Length: {MAX_BODY + 1}\r\n"), 400, "conflicting Content-Length"),
        (
            f"POST {PATH} HTTP/1.1\r\nContent-Length: {MAX_BODY + 1}\r\nExpect: 100-continue\r\n\r\n".encode(),  # noqa: E501
            413,
            "over the limit",
        ),
        (f"POST {PATH} HTTP/1.1\r\nContent-Length: x1\r\n\r\n".encode(), 400, "is not a number"),
        (f"POST {PATH} HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n".encode(), 501, "not supported"),
        (
            f"POST {PATH} HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n".encode(),
            400,
            "send one",
        ),
        (f"POST {PATH} HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".encode(), 400, "chunk size"),
        (b"GARBAGE\r\n\r\n", 400, "malformed start line"),
        (f"POST {PATH} HTTP/1.1\r\nno colon here\r\n\r\n".encode(), 400, "malformed header"),
        (b"POST /nope HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 404, "POST /api/v1.0/predictions"),
        (f"DELETE {PATH} HTTP/1.1\r\n\r\n".encode(), 405, "POST /api/v1.0/predictions"),
        (b"GET / HTTP/1.1\r\nX: " + b"a" * (70 * 1024) + b"\r\n\r\n", 431, "head over"),
    ],
)
def test_bad_requests_get_a_4xx_that_says_why(
    gateway: dict[str, Any], raw: bytes, status: int, says: str
) -> None:
    ((got, headers, body),) = exchange(gateway["port"], raw)
    assert got == status and says in json.loads(body)["status"]["info"]
    assert headers["connection"] == "close"


def test_health_shows_the_routing(gateway: dict[str, Any]) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", gateway["port"], timeout=10)
    connection.request("GET", "/health")
    reply = connection.getresponse()
    assert reply.status == 200 and json.loads(reply.read()) == {"serving": [["main", 100]], "shadow": None}
    connection.close()


def test_an_unreachable_or_broken_predictor_is_a_5xx_that_names_it() -> None:
    dead = Gateway(Route((("gone", f"http://127.0.0.1:{free_port()}", 100),), None), timeout=2)
    status, body, headers, _ = dead.handle(PATH, b"{}")
    assert status == 503 and "predictor gone unreachable" in json.loads(body)["status"]["info"]
    with socket.socket() as listener:  # answers with something that is not HTTP
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)

        def garbage() -> None:
            conn, _ = listener.accept()
            conn.recv(65536)
            conn.sendall(b"SSH-2.0-OpenSSH\r\n\r\n")
            conn.close()

        threading.Thread(target=garbage, daemon=True).start()
        broken = Gateway(
            Route((("odd", f"http://127.0.0.1:{listener.getsockname()[1]}", 100),), None), timeout=5
        )
        status, body, headers, _ = broken.handle(PATH, b"{}")
    assert status == 502 and "not HTTP" in json.loads(body)["status"]["info"]
    assert headers["X-Kubeloop-Predictor"] == "odd"


def test_weights_pick_by_cumulative_traffic() -> None:
    route = Route((("a", "http://a", 10), ("b", "http://b", 0), ("c", "http://c", 90)), None)
    assert [route.pick(d)[0] for d in (0.0, 0.0999, 0.1, 0.5, 0.99999)] == ["a", "a", "c", "c", "c"]


def test_parse_head_refuses_what_it_cannot_read() -> None:
    with pytest.raises(HttpError, match="malformed header"):
        parse_head(b"POST / HTTP/1.1\r\n Folded: continuation")
    start, headers = parse_head(b"POST / HTTP/1.1\r\nAccept: a\r\naccept: b\r\nContent-Length: 2")
    assert start == ["POST", "/", "HTTP/1.1"] and headers == {"accept": "a, b", "content-length": "2"}

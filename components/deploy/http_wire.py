"""Just enough HTTP/1.1 on raw sockets for the gateway's hot path.

http.server and http.client parse every header through the email package and cost the
gateway about 0.8 ms of CPU a request on this machine, which was the whole of the latency it
added. This module reads a head up to the blank line, splits it once, and reads a body by
Content-Length or chunked coding; a response goes out in one `sendall`. It covers what a
client of a prediction API sends (keep-alive, `Expect: 100-continue`, chunked bodies) and
refuses the rest with a 4xx that says why.

Standard library only: the gateway runs in either environment.
"""

from __future__ import annotations

import socket
from http import HTTPStatus

MAX_HEAD = 64 * 1024
"""Largest request or response head (431 above it)."""

_REASONS = {status.value: status.phrase.encode() for status in HTTPStatus}


class HttpError(Exception):
    """A request the gateway refuses, with the status and a message for the caller."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class Reader:
    """Buffered reads from one socket: heads, exact lengths, lines and the rest."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buffer = b""

    def _fill(self) -> bool:
        chunk = self.sock.recv(65536)
        if not chunk:
            return False
        self.buffer += chunk
        return True

    def head(self) -> bytes | None:
        """The next head without its blank line; None if the peer closed between messages.

        Raises:
            HttpError: 431, the head is over MAX_HEAD bytes.
            ConnectionError: The peer closed in the middle of a head.
        """
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end > MAX_HEAD:
                raise HttpError(431, f"request head over {MAX_HEAD} bytes")
            if end >= 0:
                head, self.buffer = self.buffer[:end], self.buffer[end + 4 :]
                return head
            if len(self.buffer) > MAX_HEAD:
                raise HttpError(431, f"request head over {MAX_HEAD} bytes")
            if not self._fill():
                if self.buffer.strip():
                    raise ConnectionError("the peer closed in the middle of a message head")
                return None

    def exactly(self, size: int) -> bytes:
        """The next `size` bytes.

        Raises:
            ConnectionError: The peer closed before sending them.
        """
        while len(self.buffer) < size:
            if not self._fill():
                raise ConnectionError(f"the peer closed after {len(self.buffer)} of {size} body bytes")
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def line(self) -> bytes:
        """The next CRLF-terminated line, without the CRLF (chunk sizes and trailers)."""
        while (end := self.buffer.find(b"\r\n")) < 0:
            if len(self.buffer) > MAX_HEAD or not self._fill():
                raise ConnectionError("a chunked body ended without its line")
        line, self.buffer = self.buffer[:end], self.buffer[end + 2 :]
        return line

    def rest(self, limit: int) -> bytes:
        """Everything until the peer closes (a response with neither length nor chunks)."""
        while self._fill():
            if len(self.buffer) > limit:
                raise HttpError(502, f"upstream response over {limit} bytes")
        data, self.buffer = self.buffer, b""
        return data

    def chunked(self, limit: int) -> bytes:
        """A chunked body, decoded; trailers are read and dropped.

        Raises:
            HttpError: 400 for a malformed chunk size, 413 over `limit` bytes.
        """
        parts: list[bytes] = []
        total = 0
        while True:
            size_field = self.line().split(b";", 1)[0].strip()
            try:
                size = int(size_field, 16)
            except ValueError:
                raise HttpError(400, f"malformed chunk size {size_field[:20]!r}") from None
            if size == 0:
                while self.line():  # trailers, up to the blank line
                    pass
                return b"".join(parts)
            total += size
            if total > limit:
                raise HttpError(413, f"body over {limit} bytes")
            parts.append(self.exactly(size))
            if self.exactly(2) != b"\r\n":
                raise HttpError(400, "a chunk does not end with CRLF")


def parse_head(head: bytes) -> tuple[list[str], dict[str, str]]:
    """The start line's three fields, and the headers by lower-case name.

    Raises:
        HttpError: 400 for a malformed start line, header line or conflicting Content-Length.
    """
    lines = head.split(b"\r\n")
    start = lines[0].decode("latin-1").split(" ", 2)
    if len(start) != 3:
        raise HttpError(400, f"malformed start line {lines[0][:100]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not name or name != name.strip():
            raise HttpError(400, f"malformed header line {line[:100]!r}")
        key, text = name.decode("latin-1").lower(), value.strip().decode("latin-1")
        if key in headers:
            if key == "content-length" and headers[key] != text:
                raise HttpError(400, "conflicting Content-Length headers")
            text = headers[key] if key == "content-length" else f"{headers[key]}, {text}"
        headers[key] = text
    return start, headers


def read_body(reader: Reader, headers: dict[str, str], limit: int, to_close: bool = False) -> bytes:
    """A message body by Content-Length or chunked coding; with `to_close`, else up to EOF.

    Raises:
        HttpError: 400 for a bad length or both framings at once, 411 for neither (requests),
            413 over `limit` bytes.
    """
    coding = headers.get("transfer-encoding")
    length = headers.get("content-length")
    if coding is not None:
        if length is not None:
            raise HttpError(400, "both Transfer-Encoding and Content-Length: send one")
        if coding.lower() != "chunked":
            raise HttpError(501, f"Transfer-Encoding {coding!r} is not supported; send chunked or a length")
        return reader.chunked(limit)
    if length is None:
        if to_close:
            return reader.rest(limit)
        return b""
    if not length.isdigit():
        raise HttpError(400, f"Content-Length {length[:20]!r} is not a number")
    size = int(length)
    if size > limit:
        raise HttpError(413, f"body of {size} bytes is over the limit of {limit}")
    return reader.exactly(size)


def response(status: int, body: bytes, headers: dict[str, str], close: bool) -> bytes:
    """A whole HTTP/1.1 response, head and body, for one `sendall`."""
    lines = [b"HTTP/1.1 %d %s" % (status, _REASONS.get(status, b"Unknown"))]
    lines += [f"{k}: {v}".encode("latin-1") for k, v in headers.items()]
    lines.append(b"Content-Length: %d" % len(body))
    if close:
        lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def post(
    address: tuple[str, int], path: str, body: bytes, content_type: str, timeout: float, limit: int
) -> tuple[int, str, bytes]:
    """POST `body` on a new connection; (status, content type, body) of the answer.

    One connection per request: Seldon's gunicorn sync workers close after every answer.

    Raises:
        OSError: Refused, reset or timed out.
        HttpError: 502 for an answer that is not HTTP.
    """
    with socket.create_connection(address, timeout=timeout) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        host = f"{address[0]}:{address[1]}".encode("latin-1")
        sock.sendall(
            b"POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n"
            b"Connection: close\r\n\r\n%s"
            % (path.encode("latin-1"), host, content_type.encode("latin-1"), len(body), body)
        )
        reader = Reader(sock)
        while True:
            head = reader.head()
            if head is None:
                raise ConnectionError("the upstream closed without answering")
            try:
                start, headers = parse_head(head)
                status = int(start[1])
            except (HttpError, ValueError):
                raise HttpError(502, f"the upstream's answer is not HTTP: {head[:100]!r}") from None
            if status >= 200:
                break  # a 1xx is followed by the real answer
        return (
            status,
            headers.get("content-type", "application/json"),
            read_body(reader, headers, limit, True),
        )

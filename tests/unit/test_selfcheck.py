"""operators.selfcheck (what `helm test` runs): a real process against a health server and S3."""

from __future__ import annotations

import http.server
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

from components.common.store import open_store
from tests.conftest import REPO


class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.send_response(200 if self.path == "/healthz" else 404)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def health_url() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/healthz"
    finally:
        server.shutdown()
        server.server_close()


def selfcheck(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "operators.selfcheck", *args],
        cwd=REPO,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_healthy_operator_and_a_writable_store_pass_and_leave_nothing_behind(
    health_url: str, s3_server: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    result = selfcheck(s3_server, f"--operator-url={health_url}", "--store=s3://selfcheck")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("ok    operator:") and lines[1].startswith("ok    store:")
    assert lines[-1] == "2/2 checks passed"
    for key, value in s3_server.items():
        monkeypatch.setenv(key, value)
    assert open_store("s3://selfcheck").list(".kubeloop-selfcheck") == []


def test_a_missing_operator_and_wrong_store_keys_fail_with_what_to_look_at(s3_server: dict[str, str]) -> None:
    url = f"http://127.0.0.1:{free_port()}/healthz"
    wrong = {**s3_server, "AWS_SECRET_ACCESS_KEY": ""}
    result = selfcheck(wrong, f"--operator-url={url}", "--store=s3://selfcheck", "--wait=1")
    assert result.returncode == 1
    assert f"FAIL  operator: {url} did not answer within 1 s" in result.stdout
    assert "is the operator pod Ready" in result.stdout
    assert "FAIL  store:" in result.stdout  # each check reports, one failing does not hide the other
    assert result.stdout.splitlines()[-1] == "0/2 checks passed"

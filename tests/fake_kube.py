"""A recording stand-in for the Kubernetes API's custom-object endpoints, on 127.0.0.1.

It answers as the API server does for one resource type: GET (404 Status when absent),
POST (201, 409 AlreadyExists), merge PATCH (RFC 7386; 409 when the patch carries a stale
metadata.resourceVersion), every write validated against the shared CRD's schema and
admission rules (422 Invalid), and resourceVersion bumped per write. Tests read `requests`.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from components.deploy.seldondeployment import admission_errors
from tests.k8s import load_crds, validate_object

PREFIX = "/apis/machinelearning.seldon.io/v1/namespaces/"


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


class FakeKube:
    """State and request log of the fake API server."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.requests: list[dict[str, Any]] = []
        self.version = 0
        self.crds = load_crds()
        self.forbid = False
        self.before_write: Callable[[FakeKube, str], None] | None = None  # e.g. a racing writer
        self.lock = threading.Lock()

    def bump(self, obj: dict[str, Any]) -> dict[str, Any]:
        self.version += 1
        obj.setdefault("metadata", {})["resourceVersion"] = str(self.version)
        obj["metadata"].setdefault("uid", f"uid-{self.version}")
        obj["metadata"]["generation"] = int(obj["metadata"].get("generation", 0)) + 1
        return obj

    def invalid(self, obj: dict[str, Any]) -> str | None:
        try:
            validate_object(obj, self.crds)
        except Exception as exc:  # noqa: BLE001 - any schema failure is a 422 here
            return str(exc)[:300]
        errors = admission_errors(obj)
        return "; ".join(errors) if errors else None


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "reason": reason,
        "message": message,
        "code": code,
    }


def _handler(kube: FakeKube) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
            return

        def _reply(self, code: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _route(self) -> tuple[str, str | None]:
            rest = self.path.split("?")[0][len(PREFIX) :].split("/")
            return rest[0], rest[2] if len(rest) > 2 else None

        def _handle(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            kube.requests.append(
                {
                    "method": method,
                    "path": self.path,
                    "content_type": self.headers.get("Content-Type"),
                    "authorization": self.headers.get("Authorization"),
                    "body": body,
                }
            )
            if kube.forbid:
                return self._reply(403, _status(403, "Forbidden", "seldondeployments is forbidden"))
            if not self.path.startswith(PREFIX):
                return self._reply(404, _status(404, "NotFound", "the server could not find the resource"))
            namespace, name = self._route()
            if method in ("POST", "PATCH") and kube.before_write is not None:
                kube.before_write(kube, method)
            with kube.lock:
                if method == "GET":
                    if (namespace, name) not in kube.objects:
                        return self._reply(
                            404, _status(404, "NotFound", f'seldondeployments "{name}" not found')
                        )
                    return self._reply(200, kube.objects[(namespace, name)])
                if method == "POST":
                    key = (namespace, body["metadata"]["name"])
                    if key in kube.objects:
                        return self._reply(409, _status(409, "AlreadyExists", "already exists"))
                    problem = kube.invalid(body)
                    if problem:
                        return self._reply(422, _status(422, "Invalid", problem))
                    kube.objects[key] = kube.bump(body)
                    return self._reply(201, kube.objects[key])
                if method == "PATCH":
                    live = kube.objects.get((namespace, name))
                    if live is None:
                        return self._reply(404, _status(404, "NotFound", "not found"))
                    wanted = (body.get("metadata") or {}).get("resourceVersion")
                    if wanted is not None and wanted != live["metadata"]["resourceVersion"]:
                        return self._reply(
                            409,
                            _status(
                                409, "Conflict", "the object has been modified; apply your changes again"
                            ),
                        )
                    patched = merge_patch(live, body)
                    problem = kube.invalid(patched)
                    if problem:
                        return self._reply(422, _status(422, "Invalid", problem))
                    kube.objects[(namespace, name)] = kube.bump(patched)
                    return self._reply(200, patched)
            return self._reply(405, _status(405, "MethodNotAllowed", method))

        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            self._handle("GET")

        def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
            self._handle("POST")

        def do_PATCH(self) -> None:  # noqa: N802 - the stdlib's name
            self._handle("PATCH")

    return Handler


@contextlib.contextmanager
def fake_kube() -> Iterator[tuple[FakeKube, Any]]:
    """(state, a CustomObjectsApi talking to it) for the duration of the block."""
    from kubernetes import client

    kube = FakeKube()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(kube))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    configuration = client.Configuration()
    configuration.host = f"http://127.0.0.1:{server.server_address[1]}"
    api_client = client.ApiClient(configuration)
    try:
        yield kube, client.CustomObjectsApi(api_client)
    finally:
        api_client.close()
        server.shutdown()
        server.server_close()


def use_kubeconfig(api: Any, folder: Path, monkeypatch: Any, token: str = "t0k3n") -> None:
    """Point KUBECONFIG at a kubeconfig for the fake server (token auth) and leave the pod's env."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": api.api_client.configuration.host}}],
        "users": [{"name": "u", "user": {"token": token}}],
        "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "ctx",
    }
    path = folder / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    monkeypatch.setenv("KUBECONFIG", str(path))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)


def store_with_versions(folder: Path, count: int) -> Path:
    """A local store whose registry holds `count` stub versions of screening."""
    from components.common.registry import Registry
    from components.common.store import LocalStore

    registry = Registry(LocalStore(folder))
    for _ in range(count):
        registry.register("screening", {"model.onnx": b"weights"}, {"run_id": "r"})
    return folder

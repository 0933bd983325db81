"""A Kubeflow Pipelines v2beta1 REST API on 127.0.0.1 for tests: it records every request and
keeps pipelines, versions, experiments, runs and recurring runs the way the API server does.

No KFP backend runs here. This answers the subset of the API that kfp.Client (2.x) calls for
what kubeloop does (healthz, list/get by display-name filter, create experiment, create run,
create recurring run, upload pipeline and version), with the API's JSON field names
(snake_case, as grpc-gateway writes them), its filter syntax and its 404/409 errors, so that
tests drive the real client end to end and assert the requests it sent.
"""

from __future__ import annotations

import email.parser
import email.policy
import itertools
import json
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

PREFIX = "/apis/v2beta1"
START = datetime(2026, 1, 1, tzinfo=UTC)
OPERATIONS = {1: "EQUALS", 2: "NOT_EQUALS", 8: "IN", 9: "IS_SUBSTRING"}
"""Filter operations by number (api/v2beta1/filter.proto)."""


@dataclass
class Recorded:
    """One request as the server saw it."""

    method: str
    path: str
    query: dict[str, str]
    body: Any
    headers: dict[str, str]  # names lower-cased


@dataclass
class State:
    """What the API server holds."""

    pipelines: dict[str, dict[str, Any]] = field(default_factory=dict)
    versions: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    experiments: dict[str, dict[str, Any]] = field(default_factory=dict)
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    recurring_runs: dict[str, dict[str, Any]] = field(default_factory=dict)


class ApiError(Exception):
    """An error answered as the API does: an HTTP status and a google.rpc.Status body."""

    CODES = {400: 3, 404: 5, 409: 6, 503: 14}

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message

    def body(self) -> dict[str, Any]:
        return {"code": self.CODES.get(self.status, 2), "message": self.message, "details": []}


def _matches(item: dict[str, Any], filter_json: str) -> bool:
    if not filter_json:
        return True
    try:
        predicates = json.loads(filter_json).get("predicates", [])
    except json.JSONDecodeError as exc:
        raise ApiError(400, f"invalid filter: {exc}") from exc
    for predicate in predicates:
        # protojson takes an enum by name or by number; kfp.Client sends numbers.
        operation = OPERATIONS.get(predicate.get("operation"), predicate.get("operation"))
        if operation not in ("EQUALS", "IS_SUBSTRING"):
            raise ApiError(400, f"filter operation {operation!r} is not supported here")
        value = predicate.get("stringValue", predicate.get("string_value"))
        actual = str(item.get(predicate.get("key"), ""))
        if operation == "EQUALS" and actual != value or operation == "IS_SUBSTRING" and value not in actual:
            return False
    return True


def _check_parameters(spec: dict[str, Any], parameters: dict[str, Any]) -> None:
    """Run parameters against the version's root inputs, as the API server does when it compiles the run."""
    if not spec:
        return
    declared = spec.get("root", {}).get("inputDefinitions", {}).get("parameters", {})
    unknown = sorted(set(parameters) - set(declared))
    if unknown:
        raise ApiError(400, f"Failed to create a run: parameters {unknown} are not inputs of the pipeline")
    missing = sorted(
        name for name, p in declared.items() if not p.get("isOptional") and name not in parameters
    )
    if missing:
        raise ApiError(400, f"Failed to create a run: required parameters {missing} are missing")


def _page(items: list[dict[str, Any]], query: dict[str, str], key: str) -> dict[str, Any]:
    """Filtered, sorted, one page: the list responses' shape (an empty list is left out, as the API does)."""
    found = [item for item in items if _matches(item, query.get("filter", ""))]
    sort_by = query.get("sort_by", "")
    if sort_by:
        column, _, order = sort_by.partition(" ")
        found.sort(key=lambda item: str(item.get(column, "")), reverse=order == "desc")
    start = int(query.get("page_token") or 0)
    size = int(query.get("page_size") or 0) or len(found)
    page = found[start : start + size]
    body: dict[str, Any] = {"total_size": len(found)}
    if page:
        body[key] = page
    if start + size < len(found):
        body["next_page_token"] = str(start + size)
    return body


class FakeKfpApi:
    """The server: `with FakeKfpApi() as api: kfp.Client(host=api.url)`; `api.requests` afterwards."""

    def __init__(self) -> None:
        self.state = State()
        self.requests: list[Recorded] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._failures: list[tuple[str, str, int]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> FakeKfpApi:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    # what a test sets up or inspects

    def _new_id(self, kind: str) -> str:
        return f"{kind}-{next(self._ids):04d}"

    def _now(self) -> str:
        # A strictly increasing clock, so that "created_at desc" is well defined.
        return (START + timedelta(seconds=next(self._ids))).strftime("%Y-%m-%dT%H:%M:%SZ")

    def add_pipeline(self, name: str, versions: int = 1) -> tuple[str, list[str]]:
        """Register a pipeline with `versions` versions; (pipeline id, version ids oldest first)."""
        with self._lock:
            pipeline = self._create_pipeline(name, "")
            ids = [
                self._create_version(pipeline["pipeline_id"], f"{name}-v{n}", {})["pipeline_version_id"]
                for n in range(1, versions + 1)
            ]
        return pipeline["pipeline_id"], ids

    def fail(self, method: str, path: str, status: int = 503, times: int = 1) -> None:
        """Answer the next `times` requests to `path` (after /apis/v2beta1) with `status`."""
        with self._lock:
            self._failures.extend([(method, PREFIX + path, status)] * times)

    def set_run_state(self, run_id: str, state: str) -> None:
        """Move a run (by KFP run id) to a runtime state such as SUCCEEDED or FAILED."""
        with self._lock:
            self.state.runs[run_id]["state"] = state

    def called(self, method: str, path: str) -> list[Recorded]:
        """The recorded requests with this method and path (after /apis/v2beta1)."""
        return [r for r in self.requests if r.method == method and r.path == PREFIX + path]

    # the API

    def _create_pipeline(self, name: str, description: str) -> dict[str, Any]:
        if any(p["display_name"] == name for p in self.state.pipelines.values()):
            raise ApiError(409, f"Failed to create a pipeline: pipeline with name {name!r} already exists")
        pipeline = {
            "pipeline_id": self._new_id("pipeline"),
            "display_name": name,
            "name": name,
            "description": description,
            "created_at": self._now(),
        }
        self.state.pipelines[pipeline["pipeline_id"]] = pipeline
        self.state.versions[pipeline["pipeline_id"]] = []
        return pipeline

    def _create_version(self, pipeline_id: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        if pipeline_id not in self.state.pipelines:
            raise ApiError(404, f"Pipeline {pipeline_id} not found")
        if any(v["display_name"] == name for v in self.state.versions[pipeline_id]):
            raise ApiError(409, f"pipeline version with name {name!r} already exists")
        version = {
            "pipeline_id": pipeline_id,
            "pipeline_version_id": self._new_id("version"),
            "display_name": name,
            "name": name,
            "created_at": self._now(),
            "pipeline_spec": spec,
        }
        self.state.versions[pipeline_id].append(version)
        return version

    def _experiment(self, experiment_id: str) -> dict[str, Any]:
        if experiment_id not in self.state.experiments:
            raise ApiError(404, f"Experiment {experiment_id} not found")
        return self.state.experiments[experiment_id]

    def _check_reference(self, body: dict[str, Any]) -> None:
        self._experiment(str(body.get("experiment_id") or ""))
        reference = body.get("pipeline_version_reference") or {}
        pipeline_id, version_id = reference.get("pipeline_id"), reference.get("pipeline_version_id")
        parameters = (body.get("runtime_config") or {}).get("parameters") or {}
        inline = body.get("pipeline_spec")
        if inline:  # a run that carries its spec: {pipeline_spec, platform_spec} when it has both
            _check_parameters(inline.get("pipeline_spec", inline), parameters)
            return
        if pipeline_id not in self.state.versions:
            raise ApiError(404, f"Pipeline {pipeline_id} not found")
        found = [v for v in self.state.versions[pipeline_id] if v["pipeline_version_id"] == version_id]
        if not found:
            raise ApiError(404, f"Pipeline version {version_id} not found")
        _check_parameters(found[0]["pipeline_spec"], parameters)

    def dispatch(self, method: str, path: str, query: dict[str, str], body: Any) -> Any:
        """The answer to one request, or ApiError."""
        for failure in self._failures:
            if failure[:2] == (method, path):
                self._failures.remove(failure)
                raise ApiError(failure[2], "injected failure: the API server is unavailable")
        parts = path.removeprefix(PREFIX).strip("/").split("/")
        s = self.state
        match method, parts:
            case "GET", ["healthz"]:
                return {"multi_user": False, "pipeline_store": "database"}
            case "GET", ["pipelines"]:
                return _page(list(s.pipelines.values()), query, "pipelines")
            case "GET", ["pipelines", pipeline_id]:
                if pipeline_id not in s.pipelines:
                    raise ApiError(404, f"Pipeline {pipeline_id} not found")
                return s.pipelines[pipeline_id]
            case "GET", ["pipelines", pipeline_id, "versions"]:
                if pipeline_id not in s.versions:
                    raise ApiError(404, f"Pipeline {pipeline_id} not found")
                return _page(s.versions[pipeline_id], query, "pipeline_versions")
            case "POST", ["pipelines", "upload"]:
                name = query.get("display_name") or query.get("name") or query.get("filename", "")
                pipeline = self._create_pipeline(name, query.get("description", ""))
                self._create_version(pipeline["pipeline_id"], name, body)
                return pipeline
            case "POST", ["pipelines", "upload_version"]:
                name = query.get("display_name") or query.get("name") or query.get("filename", "")
                version = self._create_version(query.get("pipelineid", ""), name, body)
                version["description"] = query.get("description", "")
                return version
            case "GET", ["experiments"]:
                return _page(list(s.experiments.values()), query, "experiments")
            case "GET", ["experiments", experiment_id]:
                return self._experiment(experiment_id)
            case "POST", ["experiments"]:
                name = body.get("display_name") or ""
                if not name:
                    raise ApiError(400, "Experiment name is empty. Please specify a valid experiment name")
                if any(e["display_name"] == name for e in s.experiments.values()):
                    raise ApiError(409, f"Experiment with name {name!r} already exists")
                experiment = {**body, "experiment_id": self._new_id("experiment"), "created_at": self._now()}
                s.experiments[experiment["experiment_id"]] = experiment
                return experiment
            case "GET", ["runs"]:
                return _page(list(s.runs.values()), query, "runs")
            case "GET", ["runs", run_id]:
                if run_id not in s.runs:
                    raise ApiError(404, f"Run {run_id} not found")
                return s.runs[run_id]
            case "POST", ["runs"]:
                self._check_reference(body)
                run = {**body, "run_id": self._new_id("run"), "state": "PENDING", "created_at": self._now()}
                s.runs[run["run_id"]] = run
                return run
            case "POST", ["recurringruns"]:
                self._check_reference(body)
                if not (body.get("trigger") or {}):
                    raise ApiError(400, "Recurring run has no trigger")
                job = {
                    **body,
                    "recurring_run_id": self._new_id("recurring"),
                    "status": "ENABLED" if body.get("mode") == "ENABLE" else "DISABLED",
                    "created_at": self._now(),
                }
                s.recurring_runs[job["recurring_run_id"]] = job
                return job
            case "GET", ["recurringruns"]:
                return _page(list(s.recurring_runs.values()), query, "recurringRuns")
            case "DELETE", ["recurringruns", job_id]:
                if s.recurring_runs.pop(job_id, None) is None:
                    raise ApiError(404, f"RecurringRun {job_id} not found")
                return {}
        raise ApiError(404, f"Not Found: {method} {path}")

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self, method: str) -> None:
                url = urlsplit(self.path)
                query = {k: v[-1] for k, v in parse_qs(url.query).items()}
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                with api._lock:
                    try:
                        body = _body(raw, self.headers.get("Content-Type", ""), query)
                    except ApiError as exc:
                        body, status, answer = raw.decode(errors="replace"), exc.status, exc.body()
                    else:
                        status, answer = 200, {}
                    api.requests.append(
                        Recorded(
                            method, url.path, query, body, {k.lower(): v for k, v in self.headers.items()}
                        )
                    )
                    if status == 200:
                        try:
                            answer = api.dispatch(method, url.path, query, body)
                        except ApiError as exc:
                            status, answer = exc.status, exc.body()
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                self._serve("GET")

            def do_POST(self) -> None:  # noqa: N802
                self._serve("POST")

            def do_DELETE(self) -> None:  # noqa: N802
                self._serve("DELETE")

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
                pass

        return Handler


def _body(raw: bytes, content_type: str, query: dict[str, str]) -> Any:
    """JSON bodies as dicts; a multipart upload as the uploaded file's YAML (its name into `query`)."""
    if not raw:
        return {}
    if content_type.startswith("multipart/form-data"):
        import yaml

        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + raw
        )
        for part in message.iter_parts():
            if part.get_param("name", header="content-disposition") == "uploadfile":
                query.setdefault("filename", part.get_filename() or "")
                documents = list(yaml.safe_load_all(part.get_payload(decode=True)))
                return documents[0] if documents else {}
        raise ApiError(400, "no uploadfile in the multipart body")
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ApiError(400, f"invalid JSON body: {exc}") from exc

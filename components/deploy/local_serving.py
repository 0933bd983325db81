"""Local mode of a SeldonDeployment: one `seldon-core-microservice` per predictor, and the gateway.

`LocalServing.apply(sdep)` makes the processes on 127.0.0.1 match a SeldonDeployment, as
Seldon's controller makes pods match it on a cluster: each predictor runs the model class its
container names (`MODEL_NAME`) with its graph parameters and `GUNICORN_WORKERS`. A change of
weights only swaps the gateway's routing table. A predictor whose version (or any other
parameter) changes gets a new process, which must answer its readiness check before it takes
traffic; the old one stops after a drain delay (SIGTERM: its request log is flushed). If a new
process cannot start, the routing stays as it was and the error names the process's log.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.deploy.gateway import Gateway, GatewayServer, Route, serve
from components.deploy.seldondeployment import MODEL_CLASS, WORKER_THREADS_ENV

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class PredictorSpec:
    """What one predictor's process runs; two specs with the same key share a process."""

    name: str
    model_class: str
    parameters: str  # the graph parameters as JSON, as seldon-core-microservice takes them
    workers: int

    @classmethod
    def of(cls, name: str, model_class: str, parameters: dict[str, Any], workers: int = 1) -> PredictorSpec:
        """A spec from plain values, typed as Seldon's --parameters want them (STRING, INT, FLOAT)."""
        kinds = {str: "STRING", int: "INT", float: "FLOAT"}
        typed = [{"name": k, "value": str(v), "type": kinds[type(v)]} for k, v in parameters.items()]
        return cls(name, model_class, json.dumps(typed, sort_keys=True), workers)

    @property
    def key(self) -> tuple[str, str, str, int]:
        """Identity of the process: any change means a new one."""
        return (self.name, self.model_class, self.parameters, self.workers)

    @property
    def version(self) -> str:
        """The registered version the predictor serves (its `model_version` parameter)."""
        values = {p["name"]: p["value"] for p in json.loads(self.parameters)}
        return str(values.get("model_version", "?"))


def predictor_specs(sdep: dict[str, Any]) -> list[PredictorSpec]:
    """The process each predictor of a SeldonDeployment needs.

    Raises:
        ValueError: A predictor's graph has no container of its name, or children (a local
            predictor is one model process).
    """
    specs = []
    for predictor in sdep["spec"]["predictors"]:
        graph = predictor["graph"]
        if graph.get("children"):
            raise ValueError(f"predictor {predictor['name']}: local mode serves single-model graphs only")
        containers = [
            c
            for spec in predictor.get("componentSpecs", [])
            for c in spec["spec"]["containers"]
            if c["name"] == graph["name"]
        ]
        if not containers:
            raise ValueError(f"predictor {predictor['name']}: no container named {graph['name']!r}")
        env = {e["name"]: e.get("value", "") for e in containers[0].get("env", [])}
        if not env.get("MODEL_NAME"):
            raise ValueError(f"predictor {predictor['name']}: container sets no MODEL_NAME (the model class)")
        specs.append(
            PredictorSpec(
                name=predictor["name"],
                model_class=env["MODEL_NAME"],
                parameters=json.dumps(graph.get("parameters", []), sort_keys=True),
                workers=int(env.get("GUNICORN_WORKERS", "1")),
            )
        )
    return specs


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass
class Upstream:
    """A running predictor process."""

    spec: PredictorSpec
    process: subprocess.Popen[bytes]
    base: str
    metrics: str  # Seldon's metrics server
    log: Path
    model_metrics: str = ""  # kubeloop's /metrics of the model (KubeloopModel only)

    def log_tail(self, chars: int = 2000) -> str:
        """The end of the process's output, for error messages."""
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def serving_bin() -> Path:
    """The serving environment's bin folder (KUBELOOP_SERVING_BIN, else .venv-serving/bin).

    Raises:
        FileNotFoundError: No seldon-core-microservice there.
    """
    folder = Path(os.environ.get("KUBELOOP_SERVING_BIN") or REPO / ".venv-serving" / "bin")
    if not (folder / "seldon-core-microservice").exists():
        raise FileNotFoundError(
            f"no seldon-core-microservice in {folder}: run `make setup` (it builds .venv-serving, "
            "Python 3.12), or set KUBELOOP_SERVING_BIN to a bin folder that has it"
        )
    return folder


def stop_process(process: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """SIGTERM a predictor's process group, wait for its serving workers, then SIGKILL the rest.

    gunicorn passes the SIGTERM on and its workers flush their request logs as they exit. Seldon's
    own main process and its helpers ignore it for a minute or more, so the wait is for the
    workers (the leader's grandchildren) only, at most `grace` seconds.
    """
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and _workers_alive(process.pid):
        process.poll()
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)


def _workers_alive(group: int) -> bool:
    """Whether a process of the group still runs below the leader's children (from /proc)."""
    if not Path("/proc/self/stat").exists():  # no /proc: wait for the whole group instead
        return _group_alive(group)
    members: dict[int, int] = {}  # pid -> parent pid
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        state, parent, pgrp = fields[0], int(fields[1]), int(fields[2])
        if pgrp == group and state != "Z":
            members[int(stat.parent.name)] = parent
    return any(parent != group and pid != group for pid, parent in members.items())


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


def launch(spec: PredictorSpec, bin_dir: Path, log_dir: Path, host: str = "127.0.0.1") -> Upstream:
    """Start `seldon-core-microservice` for `spec` in its own process group (not yet ready).

    kubeloop's model class also gets a free port and this host for its own /metrics.
    """
    http, grpc, metrics = (free_port(host) for _ in range(3))
    log = log_dir / f"{spec.name}-v{spec.version}-{http}.log"
    parameters, model_metrics = spec.parameters, ""
    if spec.model_class == MODEL_CLASS:
        port = free_port(host)
        local = {"metrics_port": (str(port), "INT"), "metrics_host": (host, "STRING")}
        given = [p for p in json.loads(parameters) if p["name"] not in local]
        extra = [{"name": k, "value": v, "type": t} for k, (v, t) in local.items()]
        parameters, model_metrics = json.dumps(given + extra), f"http://{host}:{port}/metrics"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                str(bin_dir / "seldon-core-microservice"),
                spec.model_class,
                *("--service-type", "MODEL", "--workers", str(spec.workers)),
                *("--http-port", str(http), "--grpc-port", str(grpc), "--metrics-port", str(metrics)),
                *("--parameters", parameters),
            ],
            cwd=REPO,
            env={
                **os.environ,
                "PYTHONPATH": str(REPO),
                "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}",
                "PREDICTOR_ID": spec.name,
                **WORKER_THREADS_ENV,
            },
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own group: gunicorn workers stop with it
        )
    return Upstream(spec, process, f"http://{host}:{http}", f"http://{host}:{metrics}", log, model_metrics)


def wait_ready(upstream: Upstream, timeout: float = 120.0) -> None:
    """Wait for /health/status (the model scores a row) to answer 200.

    Raises:
        RuntimeError: The process exited or was not ready in time; the message ends with its log.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if upstream.process.poll() is not None:
            break
        try:
            with urllib.request.urlopen(f"{upstream.base}/health/status", timeout=5) as reply:
                if reply.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    state = "exited" if upstream.process.poll() is not None else "was not ready in time"
    raise RuntimeError(
        f"predictor {upstream.spec.name} v{upstream.spec.version} {state}; "
        f"its log ({upstream.log}) ends:\n{upstream.log_tail()}"
    )


class LocalServing:
    """Predictor processes and the gateway in front of them, kept in line with a SeldonDeployment."""

    def __init__(
        self,
        log_dir: Path,
        port: int = 8080,
        host: str = "127.0.0.1",
        start_timeout: float = 120.0,
        drain_seconds: float = 2.0,
        say: Callable[[str], None] = print,
        bin_dir: Path | None = None,
    ) -> None:
        self.bin = bin_dir or serving_bin()
        self.log_dir = log_dir
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.host, self.port = host, port
        self.start_timeout, self.drain_seconds = start_timeout, drain_seconds
        self.say = say
        self.gateway: Gateway | None = None
        self._server: GatewayServer | None = None
        self._running: dict[tuple[str, str, str, int], Upstream] = {}
        self._specs: list[PredictorSpec] = []
        self._draining: list[threading.Thread] = []

    @property
    def url(self) -> str:
        """The gateway's prediction endpoint."""
        return f"http://{self.host}:{self.port}/api/v1.0/predictions"

    def apply(self, sdep: dict[str, Any]) -> None:
        """Make the processes and the routing match `sdep`.

        Raises:
            ValueError: The deployment cannot be served locally (see predictor_specs, Route).
            RuntimeError: A new predictor process did not become ready; nothing was switched.
        """
        specs = predictor_specs(sdep)
        new = [spec for spec in specs if spec.key not in self._running]
        started = [launch(spec, self.bin, self.log_dir, self.host) for spec in new]  # they load in parallel
        available = {**self._running, **{u.spec.key: u for u in started}}
        try:
            for upstream in started:
                wait_ready(upstream, self.start_timeout)
            route = Route.from_deployment(sdep, {spec.name: available[spec.key].base for spec in specs})
        except (RuntimeError, ValueError):
            for upstream in started:  # nothing switched: the new processes go, the old ones stay
                stop_process(upstream.process)
            raise
        for upstream in started:
            self._running[upstream.spec.key] = upstream
            self.say(
                f"  started predictor {upstream.spec.name} v{upstream.spec.version} at {upstream.base} "
                f"(pid {upstream.process.pid}, log {upstream.log})"
            )
        if self.gateway is None:
            self.gateway = Gateway(route)
            self._server = serve(self.gateway, self.port, self.host)
            threading.Thread(target=self._server.serve_forever, name="gateway", daemon=True).start()
            self.say(f"  gateway: {self.url}")
        else:
            self.gateway.update(route)
        self._specs = specs
        wanted = {spec.key for spec in specs}
        for key in [k for k in self._running if k not in wanted]:
            self._drain(self._running.pop(key))

    def _drain(self, upstream: Upstream) -> None:
        """Stop a process the routing no longer uses, after requests sent to it have finished."""

        def later() -> None:
            time.sleep(self.drain_seconds)
            stop_process(upstream.process)

        spec = upstream.spec
        self.say(f"  stopping predictor {spec.name} v{spec.version} (pid {upstream.process.pid})")
        thread = threading.Thread(target=later, name=f"drain-{upstream.process.pid}", daemon=True)
        thread.start()
        self._draining.append(thread)

    def state(self) -> dict[str, Any]:
        """What runs now: the gateway and each predictor (version, weight, URL, pid)."""
        route = self.gateway.route if self.gateway else None
        weights = {name: weight for name, _, weight in route.serving} if route else {}
        return {
            "gateway": self.url if self.gateway else None,
            "predictors": [
                {
                    "name": spec.name,
                    "version": spec.version,
                    "traffic": weights.get(spec.name, 0),
                    "shadow": bool(route and route.shadow and route.shadow[0] == spec.name),
                    "url": self._running[spec.key].base,
                    "metrics": self._running[spec.key].model_metrics or self._running[spec.key].metrics,
                    "pid": self._running[spec.key].process.pid,
                }
                for spec in self._specs
            ],
        }

    def close(self) -> None:
        """Stop the gateway, then every predictor (each flushes its request log)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self.gateway is not None:
            self.gateway.close()
        stopping = [
            threading.Thread(target=stop_process, args=(u.process,), daemon=True)
            for u in self._running.values()
        ]
        for thread in stopping:
            thread.start()
        for thread in stopping:
            thread.join(timeout=60)
        self._running.clear()
        for thread in self._draining:
            thread.join(timeout=30)

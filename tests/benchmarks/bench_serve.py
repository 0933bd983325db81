"""make bench-serve: the kubeloop model server against the bare seldon-core-microservice, under wrk.

Three servers on 127.0.0.1, each seldon-core-microservice with 2 gunicorn workers:
- baseline: a trivial numpy model (tests/benchmarks/trivial_model.py), no checks, no logs;
- kubeloop: a registered version behind KubeloopModel, request logging on (JSONL to a store);
- gateway: the same kubeloop server behind the local gateway (`kubeloop serve`'s front door).

wrk (Debian's package) sends single-row requests over 1 and 4 keep-alive connections for
DURATION seconds per measure; rounds alternate the servers, and ratios are taken within a
round (servers measured back to back), then the median round is reported. Targets (issue 6):
at 4 connections, throughput >= 0.8x the baseline's and p99 <= 1.25x; the gateway adds
<= 1 ms at p50 (1 connection).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from components.deploy.gateway import Gateway, Route, serve  # noqa: E402
from components.deploy.local_serving import (  # noqa: E402
    PredictorSpec,
    Upstream,
    free_port,
    launch,
    serving_bin,
    stop_process,
    wait_ready,
)

DURATION = float(os.environ.get("BENCH_SERVE_SECONDS", "8"))
ROUNDS = int(os.environ.get("BENCH_SERVE_ROUNDS", "5"))
WORKERS = 2


def start(name: str, model_class: str, parameters: dict[str, Any], folder: Path) -> Upstream:
    """A seldon-core-microservice with WORKERS workers, ready (as `kubeloop serve` starts them)."""
    upstream = launch(PredictorSpec.of(name, model_class, parameters, WORKERS), serving_bin(), folder)
    try:
        wait_ready(upstream)
    except RuntimeError as exc:
        stop_process(upstream.process)
        raise SystemExit(str(exc)) from None
    return upstream


def wrk(url: str, body: dict[str, Any], connections: int, folder: Path) -> dict[str, float]:
    """rps, p50 and p99 (ms) of `connections` keep-alive connections posting `body` to `url`."""
    script = folder / "post.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(json.dumps(body))}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
    )
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{DURATION:g}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        raise SystemExit(f"requests failed under load:\n{out}")
    unit = {"us": 1e-3, "ms": 1.0, "s": 1e3}

    def percentile(p: int) -> float:
        match = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if match is None:
            raise SystemExit(f"no p{p} in wrk's output:\n{out}")
        return float(match.group(1)) * unit[match.group(2)]

    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if rps is None:
        raise SystemExit(f"no Requests/sec in wrk's output:\n{out}")
    return {"rps": float(rps.group(1)), "p50": percentile(50), "p99": percentile(99)}


def main() -> None:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk not found: `sudo apt-get install wrk` (make bench-serve installs it as root)")
    from tests.serving import registered_version

    folder = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    data = registered_version(folder / "screening" / "1")
    row = {k: (v.item() if hasattr(v, "item") else v) for k, v in data["frame"].iloc[0].to_dict().items()}
    kubeloop_body = {"data": {"names": list(row), "ndarray": [list(row.values())]}}
    numbers = [float(v) for v in row.values() if isinstance(v, (int, float))]
    baseline_body = {"data": {"ndarray": [numbers]}}
    servers: list[subprocess.Popen[bytes]] = []
    gateway_server = None
    try:
        baseline = start("baseline", "tests.benchmarks.trivial_model.TrivialModel", {}, folder)
        servers.append(baseline.process)
        parameters = {"model_dir": str(folder / "screening" / "1"), "log_uri": str(folder / "store")}
        ours = start("kubeloop", "components.deploy.seldon_model.KubeloopModel", parameters, folder)
        servers.append(ours.process)
        baseline_url, ours_url = baseline.base, ours.base
        gateway = Gateway(Route((("main", ours_url, 100),), None))
        port = free_port()
        gateway_server = serve(gateway, port)
        threading.Thread(target=gateway_server.serve_forever, daemon=True).start()
        gateway_url = f"http://127.0.0.1:{port}"
        path = "/api/v1.0/predictions"
        plan = [
            ("baseline", baseline_url, baseline_body),
            ("kubeloop", ours_url, kubeloop_body),
            ("gateway", gateway_url, kubeloop_body),
        ]
        for name, url, body in plan:  # check each server answers before measuring
            request = urllib.request.Request(
                url + path, json.dumps(body).encode(), {"Content-Type": "application/json"}
            )
            with urllib.request.urlopen(request, timeout=10) as reply:
                assert reply.status == 200, name
        results: dict[tuple[str, int], list[dict[str, float]]] = {}
        print(f"{'server':<10}{'conns':>6}{'round':>6}{'rps':>9}{'p50 ms':>9}{'p99 ms':>9}", flush=True)
        for round_ in range(ROUNDS):
            order = plan if round_ % 2 == 0 else plan[::-1]
            for connections in (1, 4):
                for name, url, body in order:
                    result = wrk(url + path, body, connections, folder)
                    print(
                        f"{name:<10}{connections:>6}{round_ + 1:>6}{result['rps']:>9.0f}"
                        f"{result['p50']:>9.2f}{result['p99']:>9.2f}",
                        flush=True,
                    )
                    results.setdefault((name, connections), []).append(result)
    finally:
        if gateway_server is not None:
            gateway_server.shutdown()
        for process in servers:
            stop_process(process)
    logged = sum(1 for path_ in (folder / "store").rglob("*.jsonl") for _ in path_.open())

    # Ratios within a round (the servers measured minutes apart at most), then the median
    # round: this VM's speed drifts by a quarter between rounds, which best-of would mix in.
    def median(values: list[float]) -> float:
        return float(statistics.median(values))

    base4, ours4 = results[("baseline", 4)], results[("kubeloop", 4)]
    throughput = median([o["rps"] / b["rps"] for o, b in zip(ours4, base4, strict=True)])
    p99_ratio = median([o["p99"] / b["p99"] for o, b in zip(ours4, base4, strict=True)])
    added = median(
        [g["p50"] - o["p50"] for g, o in zip(results[("gateway", 1)], results[("kubeloop", 1)], strict=True)]
    )
    rps, p99 = median([o["rps"] for o in ours4]), median([o["p99"] for o in ours4])
    print(f"rows logged by the kubeloop server: {logged} (every request, flushed on SIGTERM)")
    print(
        f"median of {ROUNDS} rounds at 4 connections: baseline {median([b['rps'] for b in base4]):.0f} rps "
        f"p99 {median([b['p99'] for b in base4]):.2f} ms; kubeloop {rps:.0f} rps p99 {p99:.2f} ms"
    )
    print(f"throughput ratio {throughput:.2f} (target >= 0.8): {'met' if throughput >= 0.8 else 'MISSED'}")
    print(f"p99 ratio {p99_ratio:.2f} (target <= 1.25): {'met' if p99_ratio <= 1.25 else 'MISSED'}")
    verdict = "met" if added <= 1 else "MISSED"
    print(f"gateway adds {added:.2f} ms at p50, 1 connection (target <= 1 ms): {verdict}")
    print(
        f"serve: {rps:.0f} rps, p99 {p99:.2f} ms at 4 connections with logging; "
        f"{throughput:.2f}x the bare seldon-core-microservice's throughput, p99 {p99_ratio:.2f}x; "
        f"gateway +{added:.2f} ms p50"
    )
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()

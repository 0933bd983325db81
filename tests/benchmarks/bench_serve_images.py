"""make bench-serve-images: serving 128 x 128 PNG images, kubeloop's model server against a bare
seldon-core-microservice running the same ONNX model (issue 26).

Two servers on 127.0.0.1, each seldon-core-microservice with 2 gunicorn workers, each sent the
same `{"binData": <base64 PNG>}` request by wrk over 4 keep-alive connections:
- baseline: tests/benchmarks/plain_image_model.py, the model behind a plainly written decode
  (Pillow), resize and normalise; no checks, no logs;
- kubeloop: a registered image version (the small CNN at 64 x 64, grey) behind KubeloopModel,
  with request logging on: each row's image properties (as the gate measures them), content
  hash, embedding, scores and decision; the file checked against the version's bounds before
  it is decoded.

kubeloop's workers skip Seldon's per-request custom-metrics update when it has nothing to
record (components/deploy/seldon_metrics.py). A third server, the baseline with that same
change (`same server`), shows what kubeloop's own checks and logs cost with the server equal
on both sides; the targets are judged against the bare baseline.

Rounds alternate the servers; ratios are taken within a round, then the median round is
reported (this VM's speed drifts between rounds). Targets: throughput >= 0.9x the
baseline's, p99 <= 1.25x. BENCH_SERVE_SECONDS and BENCH_SERVE_ROUNDS change the length.
"""

from __future__ import annotations

import base64
import io
import json
import shutil
import statistics
import sys
import tempfile
import urllib.request
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from components.common.onnx_outputs import decode_embedding  # noqa: E402
from components.deploy.local_serving import stop_process  # noqa: E402
from tests.benchmarks.bench_serve import ROUNDS, start, wrk  # noqa: E402

SIDE = 128
MODEL_SIZE = (64, 64)
PATH = "/api/v1.0/predictions"


def request_png() -> bytes:
    """A 128 x 128 8-bit grey PNG: smooth anatomy-like shading with noise (compresses as X-rays do)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:SIDE, 0:SIDE] / SIDE
    pixels = 120 + 80 * np.exp(-((x - 0.5) ** 2 + (y - 0.6) ** 2) / 0.08) + rng.normal(0, 6, (SIDE, SIDE))
    buffer = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def main() -> None:
    if shutil.which("wrk") is None:
        raise SystemExit(
            "wrk not found: `sudo apt-get install wrk` (make bench-serve-images installs it as root)"
        )
    from tests.serving import registered_image_version

    folder = Path(tempfile.mkdtemp(prefix="bench-serve-images-"))
    model_dir = folder / "screening-images" / "1"
    registered_image_version(model_dir, size=MODEL_SIZE, widths=(16, 32, 64))
    data = request_png()
    body = {"binData": base64.b64encode(data).decode()}
    servers = []
    try:
        plain = {"model_dir": str(model_dir)}
        parameters = {"model_dir": str(model_dir), "log_uri": str(folder / "store")}
        plan = []
        for name, model_class, options in (
            ("baseline", "tests.benchmarks.plain_image_model.PlainImageModel", plain),
            ("same server", "tests.benchmarks.plain_image_model.PlainImageModelSkippingMetrics", plain),
            ("kubeloop", "components.deploy.seldon_model.KubeloopModel", parameters),
        ):
            upstream = start(name, model_class, options, folder)
            servers.append(upstream.process)
            plan.append((name, upstream.base))
        answers = {}
        for name, url in plan:  # each answers, and both give the same probability
            request = urllib.request.Request(
                url + PATH, json.dumps(body).encode(), {"Content-Type": "application/json"}
            )
            with urllib.request.urlopen(request, timeout=10) as reply:
                answers[name] = json.loads(reply.read())
        ours_p = answers["kubeloop"]["jsonData"]["predictions"][0]["probability"]
        base_p = float(answers["baseline"]["data"]["tensor"]["values"][0])  # Seldon answers bytes in a tensor
        print(f"one {len(data):,}-byte PNG: kubeloop probability {ours_p:.6f}, baseline {base_p:.6f}")
        results: dict[str, list[dict[str, float]]] = {}
        print(f"{'server':<12}{'round':>6}{'rps':>9}{'p50 ms':>9}{'p99 ms':>9}", flush=True)
        for round_ in range(ROUNDS):
            for name, url in plan if round_ % 2 == 0 else plan[::-1]:
                result = wrk(url + PATH, body, 4, folder)
                figures = f"{result['rps']:>9.0f}{result['p50']:>9.2f}{result['p99']:>9.2f}"
                print(f"{name:<12}{round_ + 1:>6}{figures}", flush=True)
                results.setdefault(name, []).append(result)
    finally:
        for process in servers:
            stop_process(process)
    rows = [json.loads(line) for path in (folder / "store").rglob("*.jsonl") for line in path.open()]
    served = [r for r in rows if r.get("status") == 200]
    sample = served[0] if served else {}
    properties = len(sample.get("features", {}))
    width = len(decode_embedding(sample["embedding"])) if "embedding" in sample else 0
    print(
        f"rows logged by the kubeloop server: {len(served)} answered, each with {properties} image "
        f"properties and a {width}-wide embedding"
    )

    def median(values: list[float]) -> float:
        return float(statistics.median(values))

    base, ours_results = results["baseline"], results["kubeloop"]
    throughput = median([o["rps"] / b["rps"] for o, b in zip(ours_results, base, strict=True)])
    p99_ratio = median([o["p99"] / b["p99"] for o, b in zip(ours_results, base, strict=True)])
    rps, p99 = median([o["rps"] for o in ours_results]), median([o["p99"] for o in ours_results])
    print(
        f"median of {ROUNDS} rounds at 4 connections: baseline {median([b['rps'] for b in base]):.0f} rps "
        f"p99 {median([b['p99'] for b in base]):.2f} ms; kubeloop {rps:.0f} rps p99 {p99:.2f} ms"
    )
    same_server = median(
        [o["rps"] / b["rps"] for o, b in zip(ours_results, results["same server"], strict=True)]
    )
    print(
        f"against the baseline with the same server (Seldon's empty metrics update skipped too): "
        f"throughput ratio {same_server:.2f}"
    )
    print(f"throughput ratio {throughput:.2f} (target >= 0.9): {'met' if throughput >= 0.9 else 'MISSED'}")
    print(f"p99 ratio {p99_ratio:.2f} (target <= 1.25): {'met' if p99_ratio <= 1.25 else 'MISSED'}")
    shutil.rmtree(folder, ignore_errors=True)
    print(
        f"serve-images: {rps:.0f} rps at 4 connections with logging (p99 {p99:.2f} ms, {p99_ratio:.2f}x); "
        f"ratio {throughput:.2f} vs the bare seldon-core-microservice"
    )


if __name__ == "__main__":
    main()

"""make bench-drift-images: embedding drift, kubeloop's against Evidently's (issue 26).

100,000 current against 100,000 reference embeddings of 128 dimensions (float32, as the request
log keeps them) with the default method (the domain classifier: Evidently's default, no
bootstrap at this size), kubeloop's components/monitor/embedding_drift.py against Evidently's
ModelDriftMethod on the same arrays; then both on every case of tests/embedding_cases.py (no
shift, brightness, resolution, blur, a new device, a class-prior shift) at 3,000 reference and
1,500 current rows, 128 dimensions, with each of the four methods. Targets: <= 5 s here, >= 20x
faster than Evidently, the same verdicts on the matrix.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from components.monitor.embedding_drift import METHODS, embedding_drift  # noqa: E402
from tests.embedding_cases import CASES, window  # noqa: E402

ROWS, DIM = 100_000, 128


def main() -> None:
    from evidently.legacy.metrics.data_drift import embedding_drift_methods as evidently

    reference = window("", ROWS, dim=DIM, seed=1, reference=True)
    current = window("brightness", ROWS, dim=DIM, seed=2)
    times = []
    for _ in range(3):
        started = time.perf_counter()
        ours = embedding_drift(reference, current)
        times.append(time.perf_counter() - started)
    seconds = statistics.median(times)
    started = time.perf_counter()
    theirs = evidently.model(bootstrap=False)(pd.DataFrame(current), pd.DataFrame(reference))
    evidently_seconds = time.perf_counter() - started
    print(f"{ROWS:,} x {DIM} against {ROWS:,} x {DIM}, brightness shift, default method (model):")
    print(f"  kubeloop: ROC AUC {ours.score:.4f}, drifted {ours.drifted}, {seconds:.3f} s (median of 3)")
    print(f"  Evidently: ROC AUC {theirs[0]:.4f}, drifted {theirs[1]}, {evidently_seconds:.2f} s")

    small_ref = window("", 3000, dim=DIM, seed=3, reference=True)
    agree, total = 0, 0
    print(f"{'case':<12}" + "".join(f"{m:>20}" for m in METHODS))
    for case in CASES:
        cur = window(case, 1500, dim=DIM, seed=4)
        cells = []
        for method in METHODS:
            mine = embedding_drift(small_ref, cur, method)
            other = {
                "model": evidently.model,
                "mmd": evidently.mmd,
                "distance": evidently.distance,
                "ratio": evidently.ratio,
            }[method]()(pd.DataFrame(cur), pd.DataFrame(small_ref))
            same = mine.drifted == bool(other[1])
            agree += same
            total += 1
            cells.append(f"{int(mine.drifted)}/{int(other[1])} {'=' if same else 'DIFF'}")
        print(f"{case:<12}" + "".join(f"{c:>20}" for c in cells))
    speedup = evidently_seconds / seconds
    met = seconds <= 5 and speedup >= 20 and agree == total
    print(f"verdicts (kubeloop/Evidently) agreeing: {agree}/{total}")
    print(f"targets (<= 5 s, >= 20x, every verdict equal): {'met' if met else 'MISSED'}")
    print(
        f"drift-images: {seconds:.3f} s on {ROWS:,} x {DIM} embeddings a side; "
        f"ratio {seconds / evidently_seconds:.3f} vs Evidently's embedding drift ({speedup:.0f}x faster)"
    )


if __name__ == "__main__":
    main()

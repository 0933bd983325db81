"""Benchmark: wall time of a local training run against the time its steps spend working.

The ratio is the orchestration overhead of kfp.local (one Python process per step, imports,
artifact hand-over); the steps' own seconds come from their status records.
Last line: `pipeline: FIGURE s; ratio R vs step work`.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from components.common.store import LocalStore  # noqa: E402
from pipelines.local import read_statuses  # noqa: E402


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "store"
        started = time.monotonic()
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "cli",
                "run",
                "--config",
                str(REPO / "examples/breast_cancer/config.yaml"),
                "--store",
                str(store),
                f"dataset.path={Path(tmp) / 'bc.csv'}",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        wall = time.monotonic() - started
        if result.returncode != 0:
            print(result.stdout[-2000:], result.stderr[-2000:])
            raise SystemExit("benchmark run failed")
        run_id = next((store / "runs").iterdir()).name
        steps = read_statuses(LocalStore(store), run_id)
    work = sum(s["seconds"] for s in steps)
    for step in steps:
        print(f"  {step['step']:<14} {step['seconds']:6.2f} s")
    print(f"  steps total    {work:6.2f} s, wall {wall:.2f} s")
    print(f"pipeline: {wall:.2f} s; ratio {wall / work:.2f} vs step work")


if __name__ == "__main__":
    main()

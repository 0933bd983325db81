"""Benchmark: the data gate on 1,000,000 rows x 20 numeric columns + a label.

Baseline: a naive Great Expectations suite of 41 row-level expectations (not-null and
between for every column, label in set), as issue 3 describes it. Candidate: kubeloop's
gate with the same checks declared (null share, min/max, label) plus its standard ones
(schema, dtypes, row count, constant columns, binary label, prevalence) and the full profiled
suite (a profile of a 100,000-row reference sample: nulls, dtypes, ranges, prevalence). Each runs in its
own process so peak memory (ru_maxrss) is its own; times start after GE is imported and
the data loaded (a pipeline step pays the ~3 s import once, whatever the suite).
Last line: `validate: FIGURE s; ratio R vs naive row-level suite`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ROWS, COLUMNS = 1_000_000, 20

MAKE_DATA = f"""
import numpy as np, pandas as pd, sys
rng = np.random.default_rng(0)
frame = pd.DataFrame({{f"f{{i}}": rng.normal(0, 1, {ROWS}) for i in range({COLUMNS})}})
frame["label"] = (rng.random(len(frame)) < 0.05).astype(int)
frame.to_parquet(sys.argv[1], index=False)
"""

NAIVE = """
import json, resource, sys, time
import pandas as pd
import great_expectations as gx
import great_expectations.expectations as gxe
from great_expectations.data_context.types.base import ProgressBarsConfig
frame = pd.read_parquet(sys.argv[1])
started = time.perf_counter()
context = gx.get_context(mode="ephemeral")
context.variables.progress_bars = ProgressBarsConfig(globally=False)
source = context.data_sources.add_pandas("p")
batch = source.add_dataframe_asset("a").add_batch_definition_whole_dataframe("b")
suite = context.suites.add(gx.ExpectationSuite(name="naive"))
for column in [c for c in frame.columns if c != "label"]:
    suite.add_expectation(gxe.ExpectColumnValuesToNotBeNull(column=column))
    suite.add_expectation(gxe.ExpectColumnValuesToBeBetween(column=column, min_value=-10, max_value=10))
suite.add_expectation(gxe.ExpectColumnValuesToBeInSet(column="label", value_set=[0, 1]))
definition = context.validation_definitions.add(gx.ValidationDefinition(name="v", data=batch, suite=suite))
result = definition.run(batch_parameters={"dataframe": frame})
seconds = time.perf_counter() - started
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": seconds, "checks": len(result.results), "success": result.success,
                  "peak_mb": peak_mb}))
"""

KUBELOOP = """
import json, resource, sys, time
import pandas as pd
import great_expectations
from components.common.config import DatasetConfig, ValidationConfig
from components.validate_data.checks import validate_frame
from components.validate_data.profile import build_profile
frame = pd.read_parquet(sys.argv[1])
dataset = DatasetConfig(path=sys.argv[1], label="label")
features = [c for c in frame.columns if c != "label"]
profile = build_profile(frame.sample(100_000, random_state=0), dataset, features, "reference sample")
started = time.perf_counter()
rules = ValidationConfig(columns={c: {"min": -10, "max": 10} for c in features},
                         prevalence={"min": 0.01, "max": 0.1}, profile={"range_margin": 0.5})
results, _ = validate_frame(frame, dataset, rules, profile)
seconds = time.perf_counter() - started
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": seconds, "checks": len(results), "success": all(r.passed for r in results),
                  "peak_mb": peak_mb}))
"""


def run(code: str, data: Path) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", code, str(data)], cwd=REPO, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "bench.parquet"
        subprocess.run([sys.executable, "-c", MAKE_DATA, str(data)], check=True)
        print(f"data: {ROWS:,} rows x {COLUMNS} numeric columns + label")
        naive = run(NAIVE, data)
        print(
            f"  naive row-level suite: {naive['checks']} checks, {naive['seconds']:.2f} s, "
            f"peak {naive['peak_mb']:.0f} MB, success={naive['success']}"
        )
        ours = run(KUBELOOP, data)
        print(
            f"  kubeloop gate:         {ours['checks']} checks, {ours['seconds']:.2f} s, "
            f"peak {ours['peak_mb']:.0f} MB, success={ours['success']}"
        )
    ratio = ours["seconds"] / naive["seconds"]
    print(f"validate: {ours['seconds']:.2f} s; ratio {ratio:.2f} vs naive row-level suite")


if __name__ == "__main__":
    main()

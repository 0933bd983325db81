"""A table as a CRM exports it: a text id, ISO dates, text categories with gaps, numbers with
gaps (integers read as floats), integer codes, and a yes/no label that the columns predict."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def messy_table(rows: int = 1500, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    plan = rng.choice(["basic", "pro", "team"], rows, p=[0.5, 0.3, 0.2])
    region = rng.choice(["north", "south", "east", "west"], rows).astype(object)
    region[rng.random(rows) < 0.05] = None
    age = rng.integers(18, 90, rows).astype(float)
    age[rng.random(rows) < 0.03] = np.nan
    spend = np.round(rng.gamma(2.0, 30.0, rows), 2)
    spend[rng.random(rows) < 0.04] = np.nan
    calls = rng.poisson(1.5, rows).clip(0, 7)
    logit = -2.0 + 0.6 * calls + (plan == "basic") * 1.0 - 0.01 * np.nan_to_num(spend, nan=60.0)
    churned = np.where(rng.random(rows) < 1 / (1 + np.exp(-logit)), "yes", "no")
    signup = (np.datetime64("2024-01-01") + rng.integers(0, 700, rows).astype("timedelta64[D]")).astype(str)
    return pd.DataFrame(
        {
            "customer_ref": [f"C{i:05d}" for i in range(rows)],
            "signup": signup,
            "plan": plan,
            "region": region,
            "age": age,
            "monthly_spend": spend,
            "support_calls": calls,
            "y": churned,
        }
    )


def write_messy_table(path: Path, rows: int = 1500, seed: int = 3) -> Path:
    messy_table(rows, seed).to_csv(path, index=False)
    return path

"""A churn table as teams export them: text categories, gaps, an id, a signup date, labels yes/no.

Seeded and synthetic (nothing is downloaded). Churn is more likely on the basic plan, with
short tenure, high charges and many support calls; 3% of monthly_charges are missing, and a
few rows repeat exactly (a coarse table has some).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from components.common.data import write_table


def generate(rows: int = 4000, seed: int = 0, missing_share: float = 0.03) -> pd.DataFrame:
    """The table, one customer per row (a few repeated exactly)."""
    rng = np.random.default_rng(seed)
    plan = rng.choice(["basic", "plus", "premium"], size=rows, p=[0.5, 0.3, 0.2])
    region = rng.choice(["north", "south", "east", "west"], size=rows)
    tenure = rng.integers(1, 72, size=rows)
    charges = np.round(rng.normal(60, 20, size=rows).clip(10, 150), 2)
    calls = rng.poisson(1.5, size=rows).clip(0, 9)
    signup = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 700, size=rows), unit="D")
    logit = (
        -1.2
        + 0.9 * (plan == "basic")
        - 0.4 * (plan == "premium")
        - 0.035 * tenure
        + 0.02 * (charges - 60)
        + 0.45 * calls
        + 0.2 * (region == "south")
    )
    churned = np.where(rng.random(rows) < 1 / (1 + np.exp(-logit)), "yes", "no")
    frame = pd.DataFrame(
        {
            "customer_id": [f"C{i:06d}" for i in range(rows)],
            "signup_date": signup.strftime("%Y-%m-%d"),
            "plan": plan,
            "region": region,
            "tenure_months": tenure,
            "monthly_charges": charges,
            "support_calls": calls,
            "churned": churned,
        }
    )
    frame.loc[rng.random(rows) < missing_share, "monthly_charges"] = np.nan
    repeats = frame.sample(3, random_state=seed).drop(columns="customer_id")
    repeats.insert(0, "customer_id", [f"C{rows + i:06d}" for i in range(len(repeats))])
    return pd.concat([frame, repeats], ignore_index=True)


def write(path: str | Path, rows: int = 4000, seed: int = 0) -> Path:
    """Write the table to `path` (.csv or .parquet)."""
    return write_table(generate(rows, seed), path)

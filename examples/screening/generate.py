"""Generator of a synthetic, imbalanced medical-screening dataset with several scanner types.

Each row is one screening exam. The latent disease signal drives lesion size, margin,
shape and texture; scanners differ in how they render intensity and texture (so a new
scanner shifts feature distributions without changing the disease), which is what drives
the drift and canary scenarios of later examples. Prevalence is hit exactly in expectation
by solving for the logistic intercept; label noise flips a share of labels.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import brentq
from scipy.special import expit

from components.common.data import write_table


@dataclass(frozen=True)
class ScannerProfile:
    """How one scanner model renders an exam."""

    intensity_shift: float
    intensity_scale: float
    contrast_scale: float
    noise: float


SCANNERS: dict[str, ScannerProfile] = {
    "A": ScannerProfile(intensity_shift=0.0, intensity_scale=1.0, contrast_scale=1.0, noise=1.0),
    "B": ScannerProfile(intensity_shift=18.0, intensity_scale=1.35, contrast_scale=1.6, noise=1.5),
    "C": ScannerProfile(intensity_shift=-10.0, intensity_scale=0.8, contrast_scale=0.7, noise=0.8),
}
FEATURES = [
    "age",
    "breast_density",
    "lesion_size_mm",
    "margin_irregularity",
    "shape_eccentricity",
    "intensity_mean",
    "intensity_std",
    "texture_contrast",
    "texture_entropy",
    "prior_exams",
    "scanner",
]


def _intercept_for(prevalence: float, risk: np.ndarray) -> float:
    """Intercept b such that mean(sigmoid(risk + b)) equals the prevalence."""
    return float(brentq(lambda b: float(expit(risk + b).mean()) - prevalence, -40.0, 40.0))


def generate(
    rows: int = 20_000,
    prevalence: float = 0.02,
    scanners: dict[str, float] | None = None,
    label_noise: float = 0.01,
    seed: int = 0,
    start: str = "2025-01-01",
    days: int = 365,
    sites: int = 12,
) -> pd.DataFrame:
    """Build the dataset.

    Args:
        rows: Number of exams.
        prevalence: Share of diseased exams before label noise (e.g. 0.02 in screening).
        scanners: Scanner name -> share of exams (names from SCANNERS). Default all on A.
        label_noise: Share of labels flipped at random (reader disagreement).
        seed: Random seed; the same arguments always give the same table.
        start: First exam date.
        days: Span of exam dates.
        sites: Number of screening sites (groups for the group split).
    """
    if not 0 < prevalence < 1:
        raise ValueError(f"prevalence {prevalence} must be between 0 and 1")
    if not 0 <= label_noise < 0.5:
        raise ValueError(f"label_noise {label_noise} must be in [0, 0.5)")
    shares = scanners or {"A": 1.0}
    unknown = set(shares) - set(SCANNERS)
    if unknown:
        raise ValueError(f"unknown scanners {sorted(unknown)}; known: {sorted(SCANNERS)}")
    rng = np.random.default_rng(seed)
    names = list(shares)
    weights = np.array([shares[n] for n in names], dtype=float)
    scanner = rng.choice(names, size=rows, p=weights / weights.sum())

    age = np.clip(rng.normal(56, 9, rows), 40, 80)
    density = rng.integers(1, 5, rows)
    prior = rng.poisson(2.0, rows)
    # Latent disease risk: older age and dense tissue raise it.
    risk = 0.045 * (age - 56) + 0.25 * (density - 2.5) + rng.normal(0, 0.3, rows)
    disease = rng.random(rows) < expit(risk + _intercept_for(prevalence, risk))

    d = disease.astype(float)
    lesion = np.clip(rng.gamma(2.0, 3.0, rows) + d * rng.normal(7.0, 2.5, rows), 0.5, None)
    margin = np.clip(rng.beta(2, 5, rows) + 0.25 * d, 0, 1)
    eccentricity = np.clip(rng.beta(2, 3, rows) + 0.15 * d, 0, 1)
    true_intensity = 100 + 12 * d + 2.0 * (density - 2.5) + rng.normal(0, 8, rows)
    true_contrast = 1.0 + 0.45 * d + rng.normal(0, 0.25, rows)
    entropy = 4.5 + 0.5 * d + 0.1 * density + rng.normal(0, 0.35, rows)

    profile = [SCANNERS[s] for s in scanner]
    shift = np.array([p.intensity_shift for p in profile])
    scale = np.array([p.intensity_scale for p in profile])
    contrast_scale = np.array([p.contrast_scale for p in profile])
    noise = np.array([p.noise for p in profile])
    intensity_mean = true_intensity * scale + shift + rng.normal(0, 3, rows) * noise
    intensity_std = np.abs(10 * scale + rng.normal(0, 1.5, rows) * noise + 2 * d)
    contrast = np.clip(true_contrast * contrast_scale + rng.normal(0, 0.1, rows) * noise, 0, None)

    flip = rng.random(rows) < label_noise
    label = np.where(flip, ~disease, disease).astype(int)
    offsets = np.sort(rng.integers(0, days * 86400, rows))
    times = pd.Timestamp(start) + pd.to_timedelta(offsets, unit="s")
    return pd.DataFrame(
        {
            "exam_id": np.arange(rows),
            "exam_time": times,
            "site_id": rng.integers(0, sites, rows),
            "age": age.round(1),
            "breast_density": density,
            "lesion_size_mm": lesion.round(2),
            "margin_irregularity": margin.round(4),
            "shape_eccentricity": eccentricity.round(4),
            "intensity_mean": intensity_mean.round(3),
            "intensity_std": intensity_std.round(3),
            "texture_contrast": contrast.round(4),
            "texture_entropy": entropy.round(4),
            "prior_exams": prior,
            "scanner": scanner,
            "label": label,
        }
    )


def write(path: str | Path, **params: object) -> Path:
    """Generate and write to `path` (.csv or .parquet), atomically."""
    return write_table(generate(**params), path)  # type: ignore[arg-type]


def main() -> None:
    """CLI: python -m examples.screening.generate OUT [--rows N] [--prevalence P] ..."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--prevalence", type=float, default=0.02)
    parser.add_argument("--scanners", default="A=1", help="e.g. A=0.7,B=0.3")
    parser.add_argument("--label-noise", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    shares = {k: float(v) for k, v in (item.split("=") for item in args.scanners.split(","))}
    path = write(
        args.out,
        rows=args.rows,
        prevalence=args.prevalence,
        scanners=shares,
        label_noise=args.label_noise,
        seed=args.seed,
    )
    print(f"wrote {args.rows} exams to {path}")


if __name__ == "__main__":
    main()

"""Generator of a synthetic screening image set: small greyscale mammograms from two scanners.

The image twin of `examples.screening`. Each patient has one visit with `views` images
(craniocaudal and mediolateral-oblique views of one breast, then of the other). A diseased
breast (probability `prevalence`) shows the same finding, a mass or a calcification cluster,
in each of its views. Scanners differ as devices do: field of view and pixel grid, gamma and
contrast, noise, detector blur and bit depth (`render.SCANNERS`). Label noise flips a share of
the labels (reader disagreement); the `lesion` column keeps the truth.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from examples.image_sets import images_folder, write_image_set
from examples.screening_images.render import (
    SCANNERS,
    acquire,
    add_calcifications,
    add_mass,
    anatomy,
    lesion_site,
)

VIEWS = ("CC", "MLO")
"""Views taken of each breast, in order."""
CHUNK = 256
"""Images rendered per batch; bounds memory (changing it changes the random draws)."""


def plan(
    rows: int,
    prevalence: float,
    scanners: dict[str, float],
    label_noise: float,
    views: int,
    rng: np.random.Generator,
    start: str,
    days: int,
) -> pd.DataFrame:
    """The manifest without images: one row per image, in time order, with the truth (`lesion`)."""
    patients = -(-rows // views)
    names = list(scanners)
    weights = np.array([scanners[n] for n in names], dtype=float)
    scanner = rng.choice(names, size=patients, p=weights / weights.sum())
    density = rng.choice([1, 2, 3, 4], size=patients, p=[0.1, 0.4, 0.4, 0.1])
    first_side = rng.choice(["R", "L"], size=patients)
    visit = np.sort(rng.integers(0, days * 86400, patients))
    diseased = rng.random((patients, 2)) < prevalence  # per breast: first side, other side
    kind = np.where(rng.random((patients, 2)) < 0.6, "mass", "calcification")
    patient = np.repeat(np.arange(patients), views)[:rows]
    index = np.tile(np.arange(views), patients)[:rows]
    side = index // 2
    other = np.where(first_side == "R", "L", "R")
    truth = diseased[patient, side]
    flip = rng.random(rows) < label_noise
    frame = pd.DataFrame(
        {
            "label": np.where(flip, ~truth, truth).astype(int),
            "patient_id": [f"P{p:05d}" for p in patient],
            "exam_time": pd.Timestamp(start) + pd.to_timedelta(visit[patient] + 90 * index, unit="s"),
            "scanner": scanner[patient],
            "view": [VIEWS[i % 2] for i in index],
            "laterality": np.where(side == 0, first_side[patient], other[patient]),
            "density": density[patient],
            "lesion": np.where(truth, kind[patient, side], "none"),
        }
    )
    frame = frame.sort_values("exam_time", kind="stable").reset_index(drop=True)
    frame.insert(1, "exam_id", np.arange(rows))
    frame.insert(2, "breast", patient * 2 + side)  # dropped later; ties the views of one lesion
    return frame


def draw(frame: pd.DataFrame, rng: np.random.Generator, scale: float) -> list[np.ndarray]:
    """Render every row of the plan as its scanner stores it."""
    images: list[np.ndarray] = [np.empty(0)] * len(frame)
    breasts = frame["breast"].unique()
    # Per breast: the finding's size and conspicuity, shared by its views.
    size = dict(zip(breasts, rng.uniform(0.03, 0.065, len(breasts)), strict=True))
    contrast = dict(zip(breasts, rng.uniform(0.12, 0.32, len(breasts)), strict=True))
    for name, profile in SCANNERS.items():
        height, width = max(16, round(profile.height * scale)), max(16, round(profile.width * scale))
        positions = np.flatnonzero(frame["scanner"].to_numpy() == name)
        for begin in range(0, len(positions), CHUNK):
            chunk = positions[begin : begin + CHUNK]
            rows = frame.iloc[chunk]
            mlo = (rows["view"] == "MLO").to_numpy()
            attenuation, centre, shape = anatomy(rng, mlo, rows["density"].to_numpy(), height, width)
            for i, (lesion, breast) in enumerate(zip(rows["lesion"], rows["breast"], strict=True)):
                if lesion == "none":
                    continue
                row, column = lesion_site(rng, centre[i], shape[i], height)
                if lesion == "mass":
                    add_mass(rng, attenuation[i], row, column, size[breast] * height, contrast[breast])
                else:
                    spread = 0.8 * size[breast] * height
                    add_calcifications(rng, attenuation[i], row, column, spread, height / 100)
            stored = acquire(rng, attenuation, profile)
            mirror = (rows["laterality"] == "L").to_numpy()
            for i, position in enumerate(chunk):
                images[position] = stored[i, :, ::-1] if mirror[i] else stored[i]
    return images


def generate(
    rows: int = 6000,
    prevalence: float = 0.03,
    scanners: dict[str, float] | None = None,
    label_noise: float = 0.005,
    seed: int = 0,
    views: int = 2,
    scale: float = 1.0,
    start: str = "2025-01-01",
    days: int = 365,
) -> tuple[pd.DataFrame, list[np.ndarray]]:
    """Build the image set in memory.

    Args:
        rows: Number of images.
        prevalence: Share of diseased breasts (so of images) before label noise.
        scanners: Scanner name -> share of patients (names from render.SCANNERS). Default all A.
        label_noise: Share of labels flipped at random (reader disagreement).
        seed: Random seed; the same arguments always give the same images and manifest.
        views: Images per patient, 1 to 4: CC and MLO of one breast, then of the other.
        scale: Multiplies every scanner's pixel grid (e.g. 0.5 for quick tests).
        start: First visit date.
        days: Span of visit dates.

    Returns:
        The manifest without its `image` column, and one 2-D array per row (uint8 for 8-bit
        scanners, uint16 for 16-bit ones).
    """
    if rows < 1:
        raise ValueError(f"rows {rows} must be at least 1")
    if not 0 < prevalence < 1:
        raise ValueError(f"prevalence {prevalence} must be between 0 and 1")
    if not 0 <= label_noise < 0.5:
        raise ValueError(f"label_noise {label_noise} must be in [0, 0.5)")
    if not 1 <= views <= 4:
        raise ValueError(f"views {views} must be 1 to 4 (two views of each breast)")
    if not 0.2 <= scale <= 4:
        raise ValueError(f"scale {scale} must be between 0.2 and 4")
    shares = scanners or {"A": 1.0}
    unknown = set(shares) - set(SCANNERS)
    if unknown:
        raise ValueError(f"unknown scanners {sorted(unknown)}; known: {sorted(SCANNERS)}")
    rng = np.random.default_rng(seed)
    frame = plan(rows, prevalence, shares, label_noise, views, rng, start, days)
    images = draw(frame, rng, scale)
    return frame.drop(columns="breast"), images


def write(path: str | Path, **params: object) -> Path:
    """Generate and write the manifest to `path` (.csv or .parquet), the images beside it (PNG,
    or DICOM for a scanner that stores DICOM)."""
    frame, images = generate(**params)  # type: ignore[arg-type]
    scale = float(params.get("scale", 1.0))  # type: ignore[arg-type]
    names, tags = [], []
    columns = (frame["exam_id"], frame["scanner"], frame["patient_id"])
    for exam_id, scanner, patient in zip(*columns, strict=True):
        profile = SCANNERS[scanner]
        if profile.format == "dicom":
            names.append(f"{exam_id:06d}.dcm")
            spacing = [round(v / scale, 4) for v in profile.spacing_mm]
            tags.append(
                {
                    "Manufacturer": profile.manufacturer,
                    "PixelSpacing": spacing,
                    "PatientID": str(patient),
                    "BitsStored": profile.bits,
                }
            )
        else:
            names.append(f"{exam_id:06d}.png")
            tags.append({})
    return write_image_set(path, frame, images, names, tags)


def main() -> None:
    """CLI: python -m examples.screening_images.generate OUT [--rows N] [--scanners A=0.6,B=0.4] ..."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--rows", type=int, default=6000)
    parser.add_argument("--prevalence", type=float, default=0.03)
    parser.add_argument("--scanners", default="A=1", help="e.g. A=0.6,B=0.4")
    parser.add_argument("--label-noise", type=float, default=0.005)
    parser.add_argument("--views", type=int, default=2)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    shares = {k: float(v) for k, v in (item.split("=") for item in args.scanners.split(","))}
    path = write(
        args.out,
        rows=args.rows,
        prevalence=args.prevalence,
        scanners=shares,
        label_noise=args.label_noise,
        views=args.views,
        scale=args.scale,
        seed=args.seed,
    )
    print(f"wrote {args.rows} images to {path} and {images_folder(path)}/")


if __name__ == "__main__":
    main()

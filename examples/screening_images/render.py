"""Draws synthetic greyscale mammograms: breast anatomy, lesions, and each scanner's rendering.

Anatomy is drawn in physical units (fractions of the detector's height), so one breast or one
lesion covers fewer pixels on a coarser scanner. The pipeline is: attenuation (breast
thickness, fibroglandular texture, the pectoral muscle on MLO views) -> optional lesion ->
the scanner's acquisition (detector blur, gamma and contrast, signal-dependent noise, bit
depth). Every chest wall is on the left; the caller mirrors left breasts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

DENSITY_BIAS = {1: -1.6, 2: -0.7, 3: 0.1, 4: 0.9}
"""Glandular-tissue bias per BI-RADS density category (1 fatty ... 4 extremely dense)."""


@dataclass(frozen=True)
class ScannerProfile:
    """How one detector model samples and renders an exam.

    Attributes:
        height: Pixel rows at scale 1.
        width: Pixel columns at scale 1 (the field of view's aspect follows).
        gamma: Exponent of the display transfer curve (below 1 brightens and flattens).
        offset: Grey level of air (fraction of full scale).
        gain: Grey-level span of the tissue (fraction of full scale).
        noise: Standard deviation of the quantum noise at mid grey (fraction of full scale).
        blur: Detector blur in pixels (Gaussian sigma; 0 is a sharp detector).
        bits: Stored bit depth: 8 or 16 (PNG), 12 (DICOM's BitsStored in 16 allocated).
        format: How the scanner stores an image: "png", or "dicom" (uncompressed, with its
            Manufacturer and PixelSpacing).
        manufacturer: The DICOM Manufacturer tag.
        spacing_mm: The DICOM PixelSpacing (between rows, between columns) at scale 1.
    """

    height: int
    width: int
    gamma: float
    offset: float
    gain: float
    noise: float
    blur: float
    bits: int
    format: str = "png"
    manufacturer: str = ""
    spacing_mm: tuple[float, float] = (0.1, 0.1)


SCANNERS: dict[str, ScannerProfile] = {
    "A": ScannerProfile(
        height=96, width=64, gamma=1.0, offset=0.03, gain=0.92, noise=0.025, blur=0.0, bits=8
    ),
    "B": ScannerProfile(
        height=80, width=80, gamma=0.7, offset=0.08, gain=0.80, noise=0.035, blur=0.5, bits=16
    ),
    "C": ScannerProfile(
        height=112,
        width=88,
        gamma=1.25,
        offset=0.05,
        gain=0.85,
        noise=0.03,
        blur=0.8,
        bits=12,
        format="dicom",
        manufacturer="Synthetic Imaging C",
        spacing_mm=(0.085, 0.085),
    ),
}


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int, int], sigma_px: float) -> np.ndarray:
    """White noise low-passed per image to a correlation length of `sigma_px`, unit std."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape, dtype=np.float32), (0, sigma_px, sigma_px))
    return field / field.std(axis=(1, 2), keepdims=True)


def _per_image(values: object) -> np.ndarray:
    """Per-image values shaped (n, 1, 1), to broadcast over a batch of images."""
    return np.asarray(values, dtype=np.float32)[:, None, None]


def anatomy(
    rng: np.random.Generator, mlo: np.ndarray, density: np.ndarray, height: int, width: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Attenuation images of breasts, chest wall on the left.

    Args:
        rng: Random generator.
        mlo: Per image, True for a mediolateral-oblique view (tilted, with the pectoral muscle).
        density: Per image, BI-RADS density category 1..4.
        height: Pixel rows.
        width: Pixel columns.

    Returns:
        The attenuation images (n, height, width), and per image the breast's centre row and
        the ellipse's (depth, half-height, tilt) as an (n, 3) array, both in height units.
    """
    n, col = len(mlo), _per_image
    grid = (n, height, width)
    u = ((np.arange(height, dtype=np.float32) + 0.5) / height)[None, :, None]
    v = ((np.arange(width, dtype=np.float32) + 0.5) / height)[None, None, :]
    centre = np.where(mlo, rng.uniform(0.50, 0.58, n), rng.uniform(0.45, 0.55, n))
    depth = rng.uniform(0.42, 0.60, n)
    half = np.where(mlo, rng.uniform(0.38, 0.46, n), rng.uniform(0.30, 0.40, n))
    tilt = np.where(mlo, rng.uniform(0.15, 0.35, n), 0.0)
    du, dv = u - col(centre), v
    along = dv * np.cos(col(tilt)) - du * np.sin(col(tilt))
    across = dv * np.sin(col(tilt)) + du * np.cos(col(tilt))
    r2 = (along / col(depth)) ** 2 + (across / col(half)) ** 2
    r2 = r2 * (1 + 0.04 * _smooth_noise(rng, grid, 0.08 * height))  # uneven skin line
    thickness = np.clip(1 - r2, 0, 1) ** 0.35
    texture = (
        0.25 * _smooth_noise(rng, grid, 0.012 * height)
        + 0.6 * _smooth_noise(rng, grid, 0.025 * height)
        + _smooth_noise(rng, grid, 0.07 * height)
    )
    bias = col([DENSITY_BIAS[int(d)] for d in density])
    glandular = 1 / (1 + np.exp(-1.4 * (texture + bias + 0.8 - 2.2 * r2)))
    attenuation = thickness * (0.34 + 0.34 * glandular)
    reach = col(rng.uniform(0.15, 0.28, n))  # pectoral muscle: a bright triangle at the top left
    drop = col(rng.uniform(0.40, 0.65, n))
    muscle = np.clip((1 - v / reach - u / drop) * 25, 0, 1) * col(mlo)
    attenuation = np.maximum(attenuation, muscle * (0.72 + 0.05 * texture))
    return attenuation.astype(np.float32), centre, np.stack([depth, half, tilt], axis=1)


def lesion_site(
    rng: np.random.Generator, centre: float, shape: np.ndarray, height: int
) -> tuple[float, float]:
    """A (row, column) in pixels well inside the breast, behind the nipple."""
    depth, half, tilt = shape
    rho, phi = rng.uniform(0.15, 0.7), rng.uniform(-1.0, 1.0)
    along, across = depth * rho * np.cos(phi), half * rho * np.sin(phi)
    du = -along * np.sin(tilt) + across * np.cos(tilt)
    dv = along * np.cos(tilt) + across * np.sin(tilt)
    return (centre + du) * height - 0.5, dv * height - 0.5


def add_mass(
    rng: np.random.Generator, image: np.ndarray, row: float, column: float, radius: float, contrast: float
) -> None:
    """Add, in place, a dense blob with a lobulated edge and (often) spicules radiating from it.

    Args:
        rng: Random generator.
        image: One attenuation image (height, width).
        row: Centre row in pixels.
        column: Centre column in pixels.
        radius: Mean radius in pixels.
        contrast: Added attenuation at the centre.
    """
    rows, cols = np.indices(image.shape, dtype=np.float32)
    dy, dx = rows - row, cols - column
    rho, theta = np.hypot(dy, dx), np.arctan2(dy, dx)
    edge = np.full_like(rho, radius)
    for k in range(2, 6):
        edge += radius * rng.uniform(0, 0.14) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    blob = (1 + 0.6 * np.clip(1 - rho / edge, 0, 1)) / (1 + np.exp((rho - edge) / 0.6))  # a dome
    spicules = np.zeros_like(rho)
    for _ in range(int(rng.integers(0, 9))):
        angle, length = rng.uniform(0, 2 * np.pi), radius * rng.uniform(1.6, 2.6)
        along = dx * np.cos(angle) + dy * np.sin(angle)
        across = -dx * np.sin(angle) + dy * np.cos(angle)
        ray = np.exp(-(across**2) / 0.5) * np.clip(1 - along / length, 0, 1) * (along > 0)
        spicules = np.maximum(spicules, ray)
    image += contrast * np.maximum(blob, 0.55 * spicules) * (image > 0.05)


def add_calcifications(
    rng: np.random.Generator, image: np.ndarray, row: float, column: float, spread: float, scale: float
) -> None:
    """Add, in place, a cluster of 4-10 tiny bright specks.

    Args:
        rng: Random generator.
        image: One attenuation image (height, width).
        row: Cluster centre row in pixels.
        column: Cluster centre column in pixels.
        spread: Cluster radius in pixels.
        scale: Pixels per 1% of the detector's height (a speck's physical size is fixed, so a
            coarser detector averages it over its pixel and shows it dimmer).
    """
    rows, cols = np.indices(image.shape, dtype=np.float32)
    sigma_true = 0.5 * scale  # physical size of a speck, in pixels
    sigma = max(sigma_true, 0.55)
    brightness = (sigma_true / sigma) ** 2  # the same deposited signal spread over a bigger spot
    for _ in range(int(rng.integers(4, 11))):
        r = spread * np.sqrt(rng.uniform(0, 1))
        a = rng.uniform(0, 2 * np.pi)
        dy, dx = rows - row - r * np.sin(a), cols - column - r * np.cos(a)
        spot = np.exp(-(dy**2 + dx**2) / (2 * sigma**2))
        image += rng.uniform(0.3, 0.6) * brightness * spot


def acquire(rng: np.random.Generator, attenuation: np.ndarray, profile: ScannerProfile) -> np.ndarray:
    """Render attenuation images as the scanner stores them (uint8 for 8 bits, else uint16)."""
    signal = np.clip(attenuation / 1.1, 0, 1)
    if profile.blur > 0:
        signal = ndimage.gaussian_filter(signal, (0, profile.blur, profile.blur))
    grey = profile.offset + profile.gain * signal**profile.gamma
    grey += profile.noise * np.sqrt(0.25 + grey) * rng.standard_normal(grey.shape, dtype=np.float32)
    top = 2**profile.bits - 1
    stored = np.rint(np.clip(grey, 0, 1) * top)
    return stored.astype(np.uint8 if profile.bits == 8 else np.uint16)

"""Embedding windows whose truth is known, for the embedding drift tests and `make bench-drift-images`.

Embeddings of a screening model's images are simulated as a mixture of two classes (finding,
no finding) in D dimensions, each image's features its class mean plus device-specific noise.
The cases follow what happens to served images: nothing; brighter exposure (a shift along the
features that respond to intensity); another resolution (features spread wider: a scale
change); blur (features shrink towards their mean, and the edge features shift); a new device
for 40% of the traffic (its own offset); and more findings (a class-prior shift, 5% -> 40%).
"""

from __future__ import annotations

import numpy as np

CASES = ("no shift", "brightness", "resolution", "blur", "new device", "class prior")
DRIFTED = {
    "no shift": False,
    "brightness": True,
    "resolution": True,
    "blur": True,
    "new device": True,
    "class prior": True,
}
"""Which cases are a real change of the served images."""


def window(case: str, rows: int, dim: int = 32, seed: int = 0, reference: bool = False) -> np.ndarray:
    """`rows` embeddings of the reference (`reference=True`) or of a window under `case`."""
    rng = np.random.default_rng(seed)
    layout = np.random.default_rng(12345)  # the model: the same class means and directions for every window
    class_mean = layout.normal(0.0, 1.0, (2, dim))
    intensity = layout.normal(0.0, 1.0, dim)
    intensity /= np.linalg.norm(intensity)
    device = layout.normal(0.0, 1.0, dim)
    device /= np.linalg.norm(device)
    prevalence = 0.05 if reference or case != "class prior" else 0.40
    labels = (rng.random(rows) < prevalence).astype(int)
    out = class_mean[labels] * 0.6 + rng.normal(0.0, 1.0, (rows, dim))
    if reference:
        return out.astype(np.float32)
    if case == "brightness":
        out += 0.8 * intensity
    elif case == "resolution":
        out = out.mean(axis=0) + (out - out.mean(axis=0)) * 1.6
    elif case == "blur":
        out = out.mean(axis=0) + (out - out.mean(axis=0)) * 0.6 - 0.5 * intensity
    elif case == "new device":
        new = rng.random(rows) < 0.4
        out[new] += 2.5 * device
    elif case not in ("no shift", "class prior"):
        raise ValueError(f"unknown case {case!r}")
    return out.astype(np.float32)

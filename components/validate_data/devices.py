"""Per-device distributions: each acquisition device's share, its modes and the spread of its
measured properties, summarised for the profile and compared with the reference's.

Devices differ (3600x2400 against 3600x3600, another gamma, more noise), so one pooled range
check hides a device that changed: a new scanner, a firmware update that moves a device's
intensities, or a device that starts sending a new size. Each is reported by device and name.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from components.common.config import ProfileTolerances
from components.validate_data.checks import CheckResult

MIN_MODE_SHARE = 0.02
"""A mode holds at least this share of its device's rows (stray images are the bounds' job)."""
QUANTILES = (0.05, 0.5, 0.95)
MISSING = "(missing)"
"""The device of rows whose device column is empty."""


def device_summary(
    frame: pd.DataFrame,
    device_column: str | None,
    modes: pd.Series | None,
    scalar_columns: list[str],
) -> dict[str, dict[str, Any]]:
    """Per device: rows, share, its modes (with their shares) and the 5/50/95% quantiles of
    each measured property. Without a device column every row is device "all"; without modes
    and a device column there is nothing to tell apart (empty)."""
    if device_column is None and modes is None:
        return {}
    devices = device_labels(frame, device_column)
    numeric = [c for c in scalar_columns if c in frame.columns and pd.api.types.is_numeric_dtype(frame[c])]
    out: dict[str, dict[str, Any]] = {}
    for name, rows in sorted(devices.groupby(devices).indices.items(), key=lambda item: str(item[0])):
        part = frame.iloc[rows]
        entry: dict[str, Any] = {"rows": len(rows), "share": round(len(rows) / max(len(frame), 1), 6)}
        if modes is not None:
            shares = modes.iloc[rows].value_counts() / len(rows)  # unreadable rows have none
            entry["modes"] = {str(m): round(float(s), 6) for m, s in shares.items() if s >= MIN_MODE_SHARE}
        entry["properties"] = {
            column: [float(v) for v in part[column].quantile(list(QUANTILES)).to_numpy()]
            for column in numeric
            if part[column].notna().any()
        }
        out[str(name)] = entry
    return out


def device_checks(
    current: dict[str, dict[str, Any]],
    reference: dict[str, dict[str, Any]] | None,
    device_column: str | None,
    tol: ProfileTolerances,
    source: str,
) -> list[CheckResult]:
    """New devices, new modes of a known device, and known devices whose median of a measured
    property moved more than `tol.device_shift` of the reference device's 5-95% width."""
    if not current or not reference:
        return []
    label = device_column or "device"
    unseen = {name: entry for name, entry in current.items() if name not in reference}
    results = [
        CheckResult(
            check="device_unseen",
            column=device_column,
            passed=not unseen,
            observed=(
                "new: " + ", ".join(f"{n} ({e['rows']} rows, {e['share']:.1%})" for n, e in unseen.items())
                if unseen
                else f"{len(current)} device(s), all known"
            ),
            expected=f"devices of {source}: {sorted(reference)[:10]}",
            severity=tol.unseen_categories,
            expectation="kubeloop.device_unseen",
        )
    ]
    for name, entry in current.items():
        known = reference.get(name)
        if known is None:
            continue
        if "modes" in entry and "modes" in known:
            new = {m: s for m, s in entry["modes"].items() if m not in known["modes"]}
            results.append(
                CheckResult(
                    check="device_modes",
                    column=f"{label}={name}",
                    passed=not new,
                    observed=(
                        "new mode(s): " + "; ".join(f"{m} ({s:.1%})" for m, s in new.items())
                        if new
                        else "; ".join(f"{m} ({s:.1%})" for m, s in entry["modes"].items())
                    ),
                    expected=f"modes of {source}: " + "; ".join(known["modes"]),
                    severity=tol.range_severity,
                    expectation="kubeloop.device_modes",
                )
            )
        moved = _shifts(entry.get("properties", {}), known.get("properties", {}), tol.device_shift)
        results.append(
            CheckResult(
                check="device_shift",
                column=f"{label}={name}",
                passed=not moved,
                observed="; ".join(moved) if moved else "medians within the band",
                expected=f"each property's median within {tol.device_shift:g} x {source}'s 5-95% width",
                severity=tol.range_severity,
                expectation="kubeloop.device_shift",
            )
        )
    return results


def _shifts(current: dict[str, list[float]], reference: dict[str, list[float]], share: float) -> list[str]:
    """'column median a (reference b ± band)' for each property whose median left the band."""
    moved = []
    for column, (low, median, high) in reference.items():
        if column not in current:
            continue
        band = share * (high - low)
        now = current[column][1]
        if not np.isclose(now, median) and abs(now - median) > band:
            moved.append(f"{column} median {now:.4g} ({median:.4g} ± {band:.3g})")
    return moved


def device_table(summary: dict[str, dict[str, Any]], device_column: str | None, columns: list[str]) -> str:
    """Markdown: one row per device with its share, modes and the medians of a few properties."""
    if not summary:
        return ""
    # Properties constant within each device (size, where modes show it) say nothing more.
    shown = [
        c
        for c in columns
        if any(
            c in e.get("properties", {}) and e["properties"][c][0] != e["properties"][c][2]
            for e in summary.values()
        )
    ][:5]
    header = [device_column or "device", "rows", "share", "modes", *(f"median {c}" for c in shown)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, entry in summary.items():
        modes = "; ".join(f"{m} ({s:.0%})" for m, s in entry.get("modes", {}).items()) or "-"
        medians = [
            f"{entry['properties'][c][1]:.4g}" if c in entry.get("properties", {}) else "-" for c in shown
        ]
        lines.append(
            f"| {name} | {entry['rows']} | {entry['share']:.1%} | {modes} | " + " | ".join(medians) + " |"
        )
    return "\n".join(lines)


def device_labels(frame: pd.DataFrame, device_column: str | None) -> pd.Series:
    """Each row's device ("all" without a device column, MISSING where empty)."""
    if device_column is None:
        return pd.Series("all", index=frame.index)
    return frame[device_column].astype("string").fillna(MISSING)


def unexpected_rows(
    frame: pd.DataFrame,
    device_column: str | None,
    modes: pd.Series | None,
    reference: dict[str, dict[str, Any]] | None,
) -> pd.Series | None:
    """Per row, "device=C (new device)" or "device=A: mode (new mode)" where the reference
    lacks the device or that device's mode; None elsewhere (and without a reference)."""
    if not reference or (device_column is None and modes is None):
        return None
    devices = device_labels(frame, device_column)
    label = device_column or "device"
    out = pd.Series(None, index=frame.index, dtype="object")
    known = devices.isin(list(reference))
    out[~known] = label + "=" + devices[~known].astype(str) + " (new device)"
    if modes is not None:
        for name, entry in reference.items():
            if "modes" not in entry:
                continue
            new = (devices == name) & modes.notna() & ~modes.isin(list(entry["modes"]))
            out[new] = f"{label}={name}: " + modes[new].astype(str) + " (new mode)"
    return out

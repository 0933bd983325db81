"""Per-device distributions: a new scanner, a new size mode of a known one, and a known scanner
whose intensities moved are each reported by device; data like the reference passes."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from components.common.config import DatasetConfig, ProfileTolerances
from components.validate_data.devices import device_checks, device_summary, device_table
from examples.screening_images.generate import write

TOLERANCES = ProfileTolerances()


def _gate_table(folder: Path, **params: object) -> tuple[pd.DataFrame, pd.Series, list[str]]:
    """The screening images written to `folder`, measured as the gate measures them."""
    manifest = write(folder / "set.csv", rows=160, prevalence=0.1, scale=0.5, **params)
    modality = DatasetConfig(
        path=str(manifest), label="label", modality="images", device_column="scanner"
    ).make_modality()
    frame = modality.gate_table(modality.read(manifest))
    return frame, modality.modes(frame), modality.scalar_columns(["image"])  # type: ignore[return-value]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict:
    frame, modes, scalar = _gate_table(tmp_path_factory.mktemp("reference"), scanners={"A": 1.0}, seed=1)
    return device_summary(frame, "scanner", modes, scalar)


def _checks(frame: pd.DataFrame, modes: pd.Series, scalar: list[str], reference: dict) -> dict:
    summary = device_summary(frame, "scanner", modes, scalar)
    results = device_checks(summary, reference, "scanner", TOLERANCES, "v1")
    return {(r.check, r.column): r for r in results}


def test_the_summary_holds_each_device_s_modes_and_property_quantiles(reference: dict) -> None:
    (name,) = reference
    assert name == "A" and reference["A"]["rows"] == 160 and reference["A"]["share"] == 1.0
    assert reference["A"]["modes"] == {"32x48, 8-bit, 1 channel": 1.0}  # scanner A: 96x64 at scale 0.5
    low, median, high = reference["A"]["properties"]["image_mean"]
    assert 0 < low < median < high < 1


def test_data_like_the_reference_passes(reference: dict, tmp_path: Path) -> None:
    checks = _checks(*_gate_table(tmp_path, scanners={"A": 1.0}, seed=2), reference)
    failed = [r for r in checks.values() if not r.passed]
    assert not failed, failed
    assert set(checks) == {
        ("device_unseen", "scanner"),
        ("device_modes", "scanner=A"),
        ("device_shift", "scanner=A"),
    }


def test_a_new_scanner_is_reported_with_its_rows(reference: dict, tmp_path: Path) -> None:
    checks = _checks(*_gate_table(tmp_path, scanners={"A": 0.5, "B": 0.5}, seed=3), reference)
    unseen = checks[("device_unseen", "scanner")]
    assert not unseen.passed and unseen.severity == "warning" and not unseen.blocking
    assert unseen.observed.startswith("new: B (") and "rows" in unseen.observed
    assert checks[("device_modes", "scanner=A")].passed  # A itself did not change


def test_a_new_mode_and_moved_intensities_of_a_known_scanner_are_reported(
    reference: dict, tmp_path: Path
) -> None:
    frame, modes, scalar = _gate_table(tmp_path, scanners={"A": 1.0}, seed=4)
    resized = frame.index[:40]  # a quarter of A's images arrive at another size
    frame.loc[resized, ["image_width", "image_height"]] = [40, 40]
    from components.common.modalities.image_gate import modes as measured_modes

    frame["image_mean"] = frame["image_mean"] * 1.5  # a firmware update brightens every image
    checks = _checks(frame, measured_modes(frame), scalar, reference)
    mode = checks[("device_modes", "scanner=A")]
    assert not mode.passed and "new mode(s): 40x40, 8-bit, 1 channel (25.0%)" == mode.observed
    shift = checks[("device_shift", "scanner=A")]
    assert not shift.passed and "image_mean median" in shift.observed
    assert "image_std" not in shift.observed  # what did not move is not named


def test_without_a_reference_nothing_is_checked_but_the_table_shows_each_device(reference: dict) -> None:
    assert device_checks(reference, None, "scanner", TOLERANCES, "v1") == []
    table = device_table(reference, "scanner", ["image_mean", "image_width"])
    # The width is the same in every image of the device: the modes say it, the table skips it.
    assert table.splitlines()[0] == "| scanner | rows | share | modes | median image_mean |"
    assert "| A | 160 | 100.0% | 32x48, 8-bit, 1 channel (100%) |" in table


def test_a_table_without_device_column_or_modes_has_no_devices() -> None:
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0]})
    assert device_summary(frame, None, None, ["x"]) == {}
    by_site = device_summary(frame.assign(site=["a", "a", None]), "site", None, ["x"])
    assert set(by_site) == {"a", "(missing)"} and "modes" not in by_site["a"]

"""Example image sets: the synthetic screening mammograms and scikit-learn's digits as PNG files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy import ndimage
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import cross_val_predict, train_test_split

from examples.digits_images.data import write as write_digits
from examples.image_sets import images_folder
from examples.screening_images.generate import generate, plan, write


def unit(pixels: np.ndarray) -> np.ndarray:
    """Grey levels scaled to [0, 1] by the stored bit depth."""
    return pixels.astype(np.float32) / np.iinfo(pixels.dtype).max


def spots(pixels: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """Median, 99th percentile, maximum and spread of small bright structures inside the breast.

    A white top-hat keeps what is brighter than its surroundings and smaller than a mass's
    neighbourhood; the skin line and the pectoral edge are steps, which it removes.
    """
    smooth = ndimage.gaussian_filter(unit(pixels), 0.7)
    inside = ndimage.binary_erosion(smooth > 0.2, iterations=2)
    hat = ndimage.white_tophat(smooth, size=max(3, round(10 * scale)) | 1)[inside]
    return np.r_[np.quantile(hat, [0.5, 0.99, 1.0]), hat.std()]


@pytest.fixture(scope="module")
def screening() -> tuple[pd.DataFrame, list[np.ndarray]]:
    """600 full-size images from both scanners, a quarter with a lesion, no label noise."""
    return generate(rows=600, prevalence=0.25, scanners={"A": 0.5, "B": 0.5}, label_noise=0.0, seed=2)


def test_same_seed_same_bytes_and_other_seed_differs(tmp_path: Path) -> None:
    params = {"rows": 40, "prevalence": 0.3, "scanners": {"A": 0.5, "B": 0.5}, "scale": 0.5}
    first = write(tmp_path / "one" / "set.csv", seed=3, **params)
    second = write(tmp_path / "two" / "set.csv", seed=3, **params)
    other = write(tmp_path / "three" / "set.csv", seed=4, **params)
    assert first.read_bytes() == second.read_bytes() != other.read_bytes()
    names = sorted(p.name for p in images_folder(first).iterdir())
    assert names == sorted(p.name for p in images_folder(second).iterdir()) and len(names) == 40
    for name in names:
        assert (images_folder(first) / name).read_bytes() == (images_folder(second) / name).read_bytes()
    assert any(
        (images_folder(first) / n).read_bytes() != (images_folder(other) / n).read_bytes() for n in names
    )


def test_prevalence_and_label_noise() -> None:
    def labels(label_noise: float) -> pd.DataFrame:
        rng = np.random.default_rng(1)
        return plan(40_000, 0.03, {"A": 1.0}, label_noise, 2, rng, "2025-01-01", 365)

    clean = labels(0.0)
    assert len(clean) == 40_000
    assert clean["label"].mean() == pytest.approx(0.03, abs=0.004)
    assert (clean["label"] == (clean["lesion"] != "none")).all()
    # Flipping 2% of labels: 0.03 * 0.98 + 0.97 * 0.02 = 0.0488.
    assert labels(0.02)["label"].mean() == pytest.approx(0.0488, abs=0.004)


def test_manifest_files_exist_and_decode(tmp_path: Path) -> None:
    path = write(tmp_path / "data" / "screening.parquet", rows=31, scanners={"A": 0.5, "B": 0.5}, seed=1)
    frame = pd.read_parquet(path)
    assert list(frame.columns) == [
        "image",
        "label",
        "exam_id",
        "patient_id",
        "exam_time",
        "scanner",
        "view",
        "laterality",
        "density",
        "lesion",
    ]
    assert len(frame) == 31 and frame["exam_id"].is_unique
    assert frame["exam_time"].is_monotonic_increasing
    for relative, scanner in zip(frame["image"], frame["scanner"], strict=True):
        with Image.open(path.parent / relative) as image:
            image.load()
            assert image.mode == {"A": "L", "B": "I;16"}[scanner]
            assert image.size == {"A": (64, 96), "B": (80, 80)}[scanner]  # (width, height)


def test_scanner_c_stores_12_bit_dicom_that_the_gate_reads_with_its_tags(tmp_path: Path) -> None:
    import pydicom

    from components.common.modalities.image_io import decode, grey_image, read_header
    from components.common.modalities.image_prep import decode_scaled

    _, images = generate(rows=12, scanners={"C": 1.0}, seed=3)
    path = write(tmp_path / "set.csv", rows=12, scanners={"C": 1.0}, seed=3)
    manifest = pd.read_csv(path)
    assert manifest["image"].str.endswith(".dcm").all()
    for relative, patient, pixels in zip(manifest["image"], manifest["patient_id"], images, strict=True):
        ds = pydicom.dcmread(path.parent / relative)
        assert (ds.Manufacturer, ds.BitsStored, ds.BitsAllocated, ds.PatientID) == (
            "Synthetic Imaging C",
            12,
            16,
            patient,
        )
        assert [float(v) for v in ds.PixelSpacing] == [0.085, 0.085] and (ds.Rows, ds.Columns) == (112, 88)
        np.testing.assert_array_equal(ds.pixel_array, pixels)  # stored as generated
        assert pixels.max() <= 4095
        data = (path.parent / relative).read_bytes()
        header = read_header(data, relative)
        assert (header.format, header.bit_depth, header.metadata["manufacturer"]) == (
            "dicom",
            12,
            "Synthetic Imaging C",
        )
        np.testing.assert_array_equal(decode(data, relative), pixels)
        # Training and serving scale by the 12 bits stored, as the gate's statistics do.
        grey = grey_image(data, relative)
        unit = decode_scaled(data, relative, 10**8)
        assert grey.full == 4095 and unit.max() == pytest.approx(pixels.max() / 4095)
        np.testing.assert_allclose(unit, grey.pixels / grey.full, rtol=1e-6)


def test_patients_have_both_views_of_a_breast_and_lesions_follow_the_breast() -> None:
    frame = plan(4_000, 0.2, {"A": 1.0}, 0.0, 4, np.random.default_rng(0), "2025-01-01", 30)
    per_patient = frame.groupby("patient_id")
    assert (per_patient.size() == 4).all()
    assert (per_patient["scanner"].nunique() == 1).all() and (per_patient["laterality"].nunique() == 2).all()
    breast = frame.groupby(["patient_id", "laterality"])
    assert breast["view"].agg(lambda views: sorted(views) == ["CC", "MLO"]).all()
    assert (breast["lesion"].nunique() == 1).all()  # a finding shows in both views of its breast
    assert set(frame["lesion"]) == {"none", "mass", "calcification"}


def test_scanners_differ_as_devices_do(screening: tuple[pd.DataFrame, list[np.ndarray]]) -> None:
    frame, images = screening
    by = {name: [images[i] for i in np.flatnonzero(frame["scanner"] == name)] for name in ("A", "B")}
    assert {(im.shape, im.dtype.name) for im in by["A"]} == {((96, 64), "uint8")}  # 3:2, 8-bit
    assert {(im.shape, im.dtype.name) for im in by["B"]} == {((80, 80), "uint16")}  # square, 16-bit

    def tissue(im: np.ndarray) -> float:
        grey = unit(im)
        return float(grey[grey > 0.25].mean())

    def air_noise(im: np.ndarray) -> float:  # the corner far from the chest wall holds only air
        grey = unit(im)
        corner = grey[:8, -8:] if grey[:8, -8:].mean() < grey[:8, :8].mean() else grey[:8, :8]
        return float(corner.std())

    assert np.mean([tissue(im) for im in by["B"]]) > np.mean([tissue(im) for im in by["A"]]) + 0.03
    assert np.median([air_noise(im) for im in by["B"]]) > 1.2 * np.median([air_noise(im) for im in by["A"]])


def test_lesions_are_brighter_small_structures(screening: tuple[pd.DataFrame, list[np.ndarray]]) -> None:
    frame, images = screening
    peak = np.array([spots(im)[2] for im in images])
    for name, floor in (("A", 0.8), ("B", 0.65)):
        rows = (frame["scanner"] == name).to_numpy()
        assert roc_auc_score(frame["label"][rows], peak[rows]) > floor, name


def test_a_simple_model_learns_the_screening_images() -> None:
    frame, images = generate(rows=800, prevalence=0.25, scanners={"A": 0.5, "B": 0.5}, seed=5, scale=0.5)
    features = np.c_[np.array([spots(im, scale=0.5) for im in images]), frame["scanner"] == "B"]
    model = LogisticRegression(max_iter=2000)
    scores = cross_val_predict(model, features, frame["label"], cv=4, method="predict_proba")[:, 1]
    assert roc_auc_score(frame["label"], scores) > 0.7


def test_bad_parameters_are_named() -> None:
    with pytest.raises(ValueError, match="unknown scanners"):
        generate(rows=10, scanners={"Z": 1.0})
    with pytest.raises(ValueError, match="prevalence"):
        generate(rows=10, prevalence=1.5)
    with pytest.raises(ValueError, match="views"):
        generate(rows=10, views=5)


def test_a_rewrite_replaces_the_folder_and_a_crash_leaves_no_manifest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path / "s.csv", rows=12, scale=0.3)
    write(path, rows=5, scale=0.3)
    assert len(pd.read_csv(path)) == 5 and len(list(images_folder(path).iterdir())) == 5

    def broken(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken)
    with pytest.raises(OSError, match="disk full"):
        write(path, rows=5, scale=0.3)
    assert not path.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["s_images"]  # no temporary folder left


def test_digits_are_scikit_learns_images(tmp_path: Path) -> None:
    path = write_digits(tmp_path / "digits.csv")
    frame = pd.read_csv(path)
    bunch = load_digits()
    assert len(frame) == 1797 and sorted(frame["digit"].unique()) == list(range(10))
    assert (frame["digit"] == bunch.target).all() and frame["digit_id"].is_unique
    stored = np.stack([np.asarray(Image.open(path.parent / relative)) for relative in frame["image"]])
    assert stored.shape == (1797, 32, 32) and stored.dtype == np.uint8
    np.testing.assert_array_equal(np.rint(stored[:, ::4, ::4] / 255 * 16), bunch.images)
    train, test = train_test_split(np.arange(1797), test_size=0.25, stratify=bunch.target, random_state=0)
    pixels = stored[:, ::4, ::4].reshape(1797, -1) / 255
    model = LogisticRegression(max_iter=2000).fit(pixels[train], bunch.target[train])
    assert model.score(pixels[test], bunch.target[test]) > 0.9


def test_digits_size_is_checked(tmp_path: Path) -> None:
    assert Image.open(images_folder(write_digits(tmp_path / "d.csv", size=8)) / "0000.png").size == (8, 8)
    with pytest.raises(ValueError, match="multiple of 8"):
        write_digits(tmp_path / "d.csv", size=20)

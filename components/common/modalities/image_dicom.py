"""DICOM files through pydicom: the header (device metadata included) and the stored pixels.

Imported lazily by `image_io`, so pydicom loads only where a DICOM file is read. Read: single-
frame, unsigned, 8- or 16-bit-allocated MONOCHROME1/MONOCHROME2 and 8-bit RGB (pydicom turns
YBR into RGB), in the uncompressed transfer syntaxes and any compressed one a pydicom pixel
plugin on the machine can decode (none is installed by default: a compressed file is refused
as `unsupported`).

Decisions: pixel values are the stored ones. RescaleSlope/Intercept are not applied: they map
to output units (Hounsfield for CT; identity or absent for most mammography and radiography)
and would turn the integers into floats, while the model and the property table should see
what the device stored. VOI LUT windowing is not applied either. MONOCHROME1 (bright means
low) is inverted to MONOCHROME2 so that every grey image has the same polarity.
"""

from __future__ import annotations

import io
import struct
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from components.common.modalities.image_io import ImageError, ImageHeader, check_pixels

PHOTOMETRIC = ("MONOCHROME1", "MONOCHROME2", "RGB", "YBR_FULL", "YBR_FULL_422")
"""Photometric interpretations read."""
_FIX = "re-export the study from the archive; a partial copy or transfer also reads this way"


def _dataset(data: bytes, name: str, pixels: bool) -> Any:
    """The parsed dataset (pydicom's FileDataset), without the pixel data when `pixels` is False."""
    import pydicom
    from pydicom.errors import BytesLengthException, InvalidDicomError

    try:
        with warnings.catch_warnings(action="ignore"):
            return pydicom.dcmread(io.BytesIO(data), stop_before_pixels=not pixels)
    except InvalidDicomError as error:
        raise ImageError("unreadable", name, f"not a DICOM file ({error})", _FIX) from None
    except (EOFError, struct.error, BytesLengthException) as error:
        raise ImageError("truncated", name, f"the DICOM data ends mid-element ({error})", _FIX) from None
    except (ValueError, TypeError, KeyError, AttributeError, OSError) as error:
        raise ImageError("unreadable", name, f"the DICOM header cannot be parsed ({error})", _FIX) from None


def _header(ds: Any, name: str, max_pixels: int) -> ImageHeader:
    """The image header of a parsed dataset; unsupported layouts and oversized images refused."""
    meta = getattr(ds, "file_meta", None)
    if meta is None or "TransferSyntaxUID" not in meta:
        raise ImageError("truncated", name, "the DICOM file meta header has no transfer syntax", _FIX)
    if "Rows" not in ds or "Columns" not in ds:
        raise ImageError(
            "unsupported",
            name,
            "no image in this DICOM file (no Rows/Columns; a file cut off before them reads this way too)",
            "list only image instances (e.g. Modality MG, DX, CR) in the manifest",
        )
    samples = int(ds.get("SamplesPerPixel", 1))
    allocated = int(ds.get("BitsAllocated", 16))
    stored = int(ds.get("BitsStored", allocated))
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip()
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    problem = None
    if photometric not in PHOTOMETRIC:
        problem = f"photometric interpretation {photometric} is not read"
    elif int(ds.get("PixelRepresentation", 0)) != 0:
        problem = "signed pixel data is not read"
    elif allocated not in (8, 16) or not 1 <= stored <= allocated or (samples == 3 and allocated != 8):
        problem = f"{stored} bits stored in {allocated} allocated ({samples} samples) is not read"
    elif samples not in (1, 3) or (samples == 3) != (photometric not in PHOTOMETRIC[:2]):
        problem = f"{samples} samples per pixel with {photometric} is not read"
    elif frames != 1:
        problem = f"{frames} frames (multi-frame images are not read)"
    if problem:
        raise ImageError(
            "unsupported", name, problem, "export single-frame unsigned MONOCHROME2 (or 8-bit RGB) images"
        )
    spacing = ds.get("PixelSpacing")
    metadata = {
        "manufacturer": str(ds.get("Manufacturer", "") or "") or None,
        "rows": int(ds.Rows),
        "columns": int(ds.Columns),
        "pixel_spacing": (float(spacing[0]), float(spacing[1])) if spacing and len(spacing) == 2 else None,
        "photometric": photometric,
    }
    mode = "RGB" if samples == 3 else ("L" if allocated == 8 else "I;16")
    header = ImageHeader("dicom", int(ds.Columns), int(ds.Rows), mode, samples, stored, frames, metadata)
    check_pixels(header, name, max_pixels)
    return header


def read_header(data: bytes, name: str, max_pixels: int) -> ImageHeader:
    """The header of a DICOM file, the pixel data not read (see `image_io.read_header`)."""
    return _header(_dataset(data, name, pixels=False), name, max_pixels)


def decode(
    data: bytes, name: str, max_pixels: int, check: Callable[[ImageHeader], None] | None = None
) -> tuple[ImageHeader, np.ndarray]:
    """The header and the stored pixels (uint8 or uint16; MONOCHROME1 inverted); `check` sees
    the header before the pixel data is decoded.

    Raises:
        ImageError: As `image_io.decode`.
    """
    ds = _dataset(data, name, pixels=True)
    header = _header(ds, name, max_pixels)
    if check is not None:
        check(header)
    syntax = ds.file_meta.TransferSyntaxUID
    if "PixelData" not in ds:
        raise ImageError("truncated", name, "the DICOM file has image attributes but no pixel data", _FIX)
    samples = 2 if header.metadata["photometric"] == "YBR_FULL_422" else header.channels
    expected = header.pixels * samples * int(ds.BitsAllocated) // 8
    if not syntax.is_compressed and len(ds.PixelData) < expected:
        raise ImageError(
            "truncated",
            name,
            f"the DICOM pixel data has {len(ds.PixelData):,} of the {expected:,} bytes its header promises",
            _FIX,
        )
    try:
        with warnings.catch_warnings(action="ignore"):
            pixels = ds.pixel_array
    except (NotImplementedError, RuntimeError) as error:
        raise ImageError(
            "unsupported",
            name,
            f"the transfer syntax {syntax.name} cannot be decoded here ({str(error).splitlines()[0]})",
            "store uncompressed DICOM (e.g. `gdcmconv --raw`) or PNG",
        ) from None
    except (ValueError, TypeError, KeyError, AttributeError, OSError, EOFError) as error:
        problem = f"the DICOM pixel data cannot be decoded ({error})"
        raise ImageError("unreadable", name, problem, _FIX) from None
    dtype = np.uint8 if int(ds.BitsAllocated) == 8 or header.mode == "RGB" else np.uint16
    pixels = np.asarray(pixels).astype(dtype, copy=False)
    if header.metadata["photometric"] == "MONOCHROME1":
        top = 2**header.bit_depth - 1
        pixels = (top - np.minimum(pixels, top)).astype(dtype, copy=False)
    return header, pixels

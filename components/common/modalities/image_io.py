"""Reading image files: format from the magic bytes, the header without decoding, then the pixels.

PNG and JPEG go through Pillow's format plugins, constructed directly so that the header is
parsed and nothing is decoded until our own pixel limit has been checked (Pillow's
`Image.open` bomb check and its `MAX_IMAGE_PIXELS` are never on this path, so they neither
protect nor refuse). DICOM goes through pydicom (`image_dicom`, imported lazily). Pillow's
`ImageFile.LOAD_TRUNCATED_IMAGES` is left False, and a PNG must also reach its IEND chunk, so a
cut-off file is an error rather than a silently padded image. This module imports numpy and
Pillow only; the serving environment imports it too.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image, ImageFile, JpegImagePlugin, PngImagePlugin

DEFAULT_MAX_PIXELS = 64_000_000
"""Pixels (width x height x frames) a header may promise; an 8000 x 8000 image. Mammograms
(about 4000 x 5000) fit; raise it for whole-slide exports."""

SUPPORTED = ("png", "jpeg", "dicom")
"""The formats `decode` reads; `sniff_format` also names a few others so the error can say which."""

EXTENSIONS: dict[str, frozenset[str]] = {
    "png": frozenset({".png"}),
    "jpeg": frozenset({".jpg", ".jpeg", ".jpe", ".jfif"}),
    "dicom": frozenset({".dcm", ".dicom", ""}),
}
"""File extensions (lower case) that agree with each format; DICOM files often have none."""

CHECKS = ("missing", "empty", "truncated", "unreadable", "format_mismatch", "too_many_pixels", "unsupported")
"""The names an `ImageError.check` takes."""

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_PNG_END = b"IEND\xaeB`\x82"
_OTHER_MAGIC = (
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
    (b"BM", "bmp"),
    (b"GIF8", "gif"),
    (b"\x00\x00\x00\x0cjP  ", "jpeg2000"),
    (b"\xff\x4f\xff\x51", "jpeg2000"),
)
# Exceptions Pillow's plugins raise for a file they cannot read (UnidentifiedImageError is an OSError).
_PILLOW_ERRORS = (OSError, SyntaxError, ValueError, TypeError, EOFError, struct.error, zlib.error)


class ImageError(ValueError):
    """A file that cannot be used as an image; `check` names the failed check (one of `CHECKS`).

    Args:
        check: The failed check.
        name: The file (manifest name or path).
        problem: What is wrong with it.
        fix: What to do about it.
        header: The header, when it was read before the check failed.
    """

    def __init__(
        self, check: str, name: str, problem: str, fix: str, header: ImageHeader | None = None
    ) -> None:
        super().__init__(f"{name}: {problem}; {fix}")
        self.check = check
        self.name = name
        self.header = header
        """The header, where it was read before the check failed (e.g. `too_many_pixels`)."""


@dataclass(frozen=True)
class ImageHeader:
    """What a file's header says, read without decoding its pixels.

    Attributes:
        format: `png`, `jpeg` or `dicom`.
        width: Columns of pixels.
        height: Rows of pixels.
        mode: Pillow's mode name for the stored samples (`L`, `I;16`, `RGB`, `P`, ...); DICOM
            uses the same names (`L` for 8-bit grey, `I;16` for 16-bit grey, `RGB`).
        channels: Samples per pixel of the array `decode` returns (a palette expands to 3 or 4).
        bit_depth: Bits per sample in the file (PNG's IHDR depth, JPEG's precision, DICOM's
            BitsStored).
        frames: Frames in the file (1 for PNG and JPEG).
        metadata: Format-specific fields; for DICOM `manufacturer`, `rows`, `columns`,
            `pixel_spacing` (row, column in mm) and `photometric`.
    """

    format: str
    width: int
    height: int
    mode: str
    channels: int
    bit_depth: int
    frames: int = 1
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def pixels(self) -> int:
        """Pixels the header promises (width x height x frames)."""
        return self.width * self.height * self.frames


def sniff_format(head: bytes) -> str | None:
    """The format the magic bytes at the start of a file name, or None.

    Args:
        head: The file's first bytes (132 are enough for every format named).

    Returns:
        `png`, `jpeg` or `dicom` (the `DICM` prefix at offset 128) for the supported formats,
        `tiff`, `bmp`, `gif`, `webp` or `jpeg2000` for a few recognised others, else None.
    """
    if head.startswith(_PNG_MAGIC):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head[128:132] == b"DICM":
        return "dicom"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    return next((fmt for magic, fmt in _OTHER_MAGIC if head.startswith(magic)), None)


def extension_matches(fmt: str | None, extension: str) -> bool:
    """Whether a file extension (`.png`, lower case, or empty) agrees with a sniffed format.

    DICOM files are often named by their instance UID (`1.2.840....320`): a numeric suffix
    counts as no extension.
    """
    if fmt == "dicom" and extension[1:].isdigit():
        return True
    return fmt in EXTENSIONS and extension in EXTENSIONS[str(fmt)]


def check_format(data: bytes, name: str) -> str:
    """The supported format of `data`.

    Raises:
        ImageError: `empty`, `unsupported` (a recognised other format) or `unreadable`.
    """
    if not data:
        raise ImageError("empty", name, "the file is empty (0 bytes)", "re-export or re-copy it")
    fmt = sniff_format(data[:132])
    if fmt in SUPPORTED:
        return str(fmt)
    if fmt is not None:
        raise ImageError("unsupported", name, f"a {fmt.upper()} file", "convert it to PNG (or DICOM)")
    raise ImageError(
        "unreadable",
        name,
        f"not a PNG, JPEG or DICOM file (first bytes {data[:8]!r})",
        "check that the manifest points at an image; DICOM needs the 128-byte preamble and DICM prefix",
    )


def read_header(data: bytes, name: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageHeader:
    """The header of an image file, without decoding its pixels.

    Args:
        data: The whole file.
        name: The file's name, for messages.
        max_pixels: Most pixels a header may promise.

    Raises:
        ImageError: The file is empty, not a supported image, its header is broken
            (`truncated`/`unreadable`), or it promises more than `max_pixels` (`too_many_pixels`).
    """
    fmt = check_format(data, name)
    if fmt == "dicom":
        from components.common.modalities import image_dicom

        return image_dicom.read_header(data, name, max_pixels)
    return _pillow_open(data, fmt, name, max_pixels)[0]


def decode(data: bytes, name: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """The pixels of an image file, as stored.

    Grey images are (H, W), others (H, W, C); the dtype is uint8, or uint16 for 16-bit grey PNG
    and 9- to 16-bit DICOM. Palettes are expanded (RGB, or RGBA with transparency), 1-bit
    images become 0/255, CMYK JPEGs RGB; 16-bit colour PNGs come at 8 bits (Pillow reads them
    so; the header's bit_depth still says 16). DICOM: MONOCHROME1 is inverted to MONOCHROME2
    (`2**BitsStored - 1 - value`); RescaleSlope/Intercept and VOI windowing are not applied.

    Raises:
        ImageError: As `read_header`, and `truncated`/`unreadable` when the pixel data is cut
            off or corrupt.
    """
    return decode_with_header(data, name, max_pixels)[1]


def decode_with_header(
    data: bytes,
    name: str,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    check: Callable[[ImageHeader], None] | None = None,
) -> tuple[ImageHeader, np.ndarray]:
    """The header and the pixels as stored (see `decode`), from one read of the file.

    Args:
        data: The whole file.
        name: The file's name, for messages.
        max_pixels: Most pixels a header may promise.
        check: Called with the header before any pixel is decoded; what it raises stops there.

    Raises:
        ImageError: As `decode`.
    """
    fmt = check_format(data, name)
    if fmt == "dicom":
        from components.common.modalities import image_dicom

        return image_dicom.decode(data, name, max_pixels, check)
    header, image = _pillow_open(data, fmt, name, max_pixels)
    if check is not None:
        check(header)
    _pillow_load(image, header, data, name)
    if image.mode in ("L", "I;16", "LA", "RGB", "RGBA"):
        return header, np.asarray(image)
    if image.mode == "P":
        return header, np.asarray(image.convert("RGBA" if header.channels == 4 else "RGB"))
    return header, np.asarray(image.convert("L" if header.channels == 1 else "RGB"))


def full_scale(header: ImageHeader, stored: np.ndarray) -> int:
    """The stored value that means full intensity: DICOM's `2**BitsStored - 1`, else the array
    type's (255, or 65535 for 16-bit)."""
    if header.format == "dicom":
        return int(2**header.bit_depth - 1)
    return 65535 if stored.dtype == np.uint16 else 255


def grey_of(stored: np.ndarray) -> np.ndarray:
    """Grey intensities of stored pixels as the property table measures them: grey as is (the
    first channel of grey with alpha), colour as Pillow's ITU-R 601 luma (`convert("L")`)."""
    if stored.ndim == 2:
        return stored
    if stored.shape[2] <= 2:
        return stored[:, :, 0]
    return np.asarray(Image.fromarray(np.ascontiguousarray(stored[:, :, :3]), "RGB").convert("L"))


@dataclass(frozen=True)
class Grey:
    """One decoded image as grey intensities (what the property table measures).

    Attributes:
        header: The file's header.
        pixels: (H, W) uint8 or uint16 intensities.
        full: The full-scale value that maps to 1.
        image: The same pixels as a Pillow image (`L` or `I;16`), for resampling without a copy.
    """

    header: ImageHeader
    pixels: np.ndarray
    full: int
    image: Image.Image


def grey_image(data: bytes, name: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> Grey:
    """Decode once and give the grey intensities and their full-scale value.

    Grey is the image itself for grey modes, else Pillow's ITU-R 601 luma (`convert("L")`);
    alpha is ignored. The full-scale value divides intensities into [0, 1]: 255 for 8-bit
    arrays (Pillow scales 1-, 2- and 4-bit PNGs up to 0-255), 65535 for 16-bit PNG,
    `2**BitsStored - 1` for DICOM.

    Raises:
        ImageError: As `decode`.
    """
    fmt = check_format(data, name)
    if fmt == "dicom":
        from components.common.modalities import image_dicom

        header, pixels = image_dicom.decode(data, name, max_pixels)
        grey = grey_of(pixels)
        return Grey(header, grey, 2**header.bit_depth - 1, Image.fromarray(grey))
    header, image = _pillow_open(data, fmt, name, max_pixels)
    _pillow_load(image, header, data, name)
    grey_pil: Image.Image = image if image.mode in ("L", "I;16") else image.convert("L")
    pixels = np.asarray(grey_pil)
    return Grey(header, pixels, 65535 if pixels.dtype == np.uint16 else 255, grey_pil)


_PNG_MODES = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}
"""PNG colour type -> samples per pixel after palette expansion (without transparency)."""
_JPEG_CHANNELS = {"L": 1, "RGB": 3, "CMYK": 3, "YCbCr": 3}


def _pillow_open(
    data: bytes, fmt: str, name: str, max_pixels: int
) -> tuple[ImageHeader, ImageFile.ImageFile]:
    """Parse a PNG or JPEG header with Pillow's plugin (no pixels decoded) and check its size."""
    plugin = PngImagePlugin.PngImageFile if fmt == "png" else JpegImagePlugin.JpegImageFile
    try:
        image = plugin(io.BytesIO(data))
    except _PILLOW_ERRORS as error:
        text = str(error).lower()
        cut = "truncat" in text or "incomplete" in text or "unpack requires" in text
        raise ImageError(
            "truncated" if cut else "unreadable",
            name,
            f"the {fmt.upper()} header cannot be read ({error})",
            "re-export the image; a partial copy or download also reads this way",
        ) from None
    width, height = image.size
    if fmt == "png":
        bit_depth, colour = data[24], data[25]
        channels = _PNG_MODES.get(colour, 1)
        if colour == 3 and "transparency" in image.info:
            channels = 4
    else:
        bit_depth, channels = int(getattr(image, "bits", 8)), _JPEG_CHANNELS.get(image.mode, 3)
    header = ImageHeader(fmt, width, height, image.mode, channels, bit_depth)
    check_pixels(header, name, max_pixels)
    return header, image


def check_pixels(header: ImageHeader, name: str, max_pixels: int) -> None:
    """Refuse a header that promises more than `max_pixels` (before anything is decoded).

    Raises:
        ImageError: `too_many_pixels`.
    """
    if header.pixels > max_pixels:
        raise ImageError(
            "too_many_pixels",
            name,
            f"the header promises {header.width} x {header.height}"
            + (f" x {header.frames} frames" if header.frames > 1 else "")
            + f" = {header.pixels:,} pixels, more than the limit of {max_pixels:,} (a decompression bomb"
            " or an image far larger than the others)",
            "downscale it, or raise the pixel limit if such images are expected",
            header,
        )


def _pillow_load(image: ImageFile.ImageFile, header: ImageHeader, data: bytes, name: str) -> None:
    """Decode the pixels of an opened PNG or JPEG; a cut-off or corrupt file raises ImageError."""
    if header.mode not in ("1", "L", "I;16", "P", "LA", "PA", "RGB", "RGBA", "CMYK", "YCbCr"):
        raise ImageError(
            "unsupported",
            name,
            f"{header.format.upper()} mode {header.mode} ({header.bit_depth}-bit) is not read",
            "re-save it as 8- or 16-bit grey, RGB or RGBA",
        )
    try:
        image.load()
    except _PILLOW_ERRORS as error:
        cut = "truncat" in str(error).lower()
        raise ImageError(
            "truncated" if cut else "unreadable",
            name,
            f"the {header.format.upper()} pixel data cannot be decoded ({error})",
            "re-export the image; a partial copy or download also reads this way",
        ) from None
    if header.format == "png" and data.rfind(_PNG_END) < 0:
        raise ImageError(
            "truncated",
            name,
            "the PNG ends before its IEND chunk (the file is cut off)",
            "re-copy or re-export it",
        )

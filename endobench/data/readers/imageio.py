"""Decode image and mask files into numpy arrays, turning every failure into a `DataError`.

Pillow decodes by default because it reports truncated files as errors, where libjpeg through
OpenCV only prints a warning and returns a grey-filled image. Video frames are mostly JPEG, so
a complete 8-bit colour JPEG goes through OpenCV's libjpeg-turbo instead (same pixels, about
60% of Pillow's time): complete means it ends with the end-of-image marker, so a truncated file
still reaches Pillow and its error (see ``_decode_jpeg``).
"""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from endobench.data.errors import DataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


def _open_decoded(path: Path) -> Image.Image:
    """Open and fully decode ``path``; missing, unreadable or truncated files raise DataError."""
    try:
        im = Image.open(path)
        im.load()
    except FileNotFoundError:
        raise DataError(path, "file not found") from None
    except UnidentifiedImageError:
        raise DataError(path, "not a readable image (unknown or corrupt format)") from None
    except OSError as exc:
        # Pillow raises OSError("image file is truncated ...") for cut-off PNG/JPEG data.
        raise DataError(path, f"cannot decode image ({exc}); the file may be truncated") from None
    return im


# Start-of-frame markers OpenCV's decoder is trusted with: baseline, extended, progressive
# (Huffman coding); arithmetic-coded, lossless and hierarchical JPEGs go to Pillow.
_JPEG_SOF = {0xC0, 0xC1, 0xC2}
# Markers without a length field (TEM, RST0-7, SOI) that may precede the frame header.
_JPEG_BARE = {0x01, 0xD0, 0xD1, 0xD2, 0xD3, 0xD4, 0xD5, 0xD6, 0xD7, 0xD8}


def jpeg_frame_header(data: bytes) -> tuple[int, int, int] | None:
    """``(SOF marker, sample precision, components)`` of a JPEG's frame header, or None.

    None when ``data`` does not start with SOI or the header cannot be found before the scan.
    """
    if data[:2] != b"\xff\xd8":
        return None
    i, n = 2, len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in _JPEG_BARE:
            i += 2
            continue
        if marker == 0xDA:  # start of scan before any frame header
            return None
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if i + 10 > n:
                return None
            return marker, data[i + 4], data[i + 9]
        i += 2 + int.from_bytes(data[i + 2 : i + 4], "big")
    return None


def _decode_jpeg(path: Path, flags: int = cv2.IMREAD_COLOR_RGB) -> np.ndarray | None:
    """``path`` decoded by OpenCV when it is a complete 8-bit 3-component JPEG, else None.

    Complete: the file ends with the end-of-image marker (a truncated file does not; a file with
    bytes after the marker goes to Pillow too). The EXIF orientation is ignored, as Pillow does.
    Anything else (greyscale, CMYK, 12-bit, arithmetic coding, unreadable) returns None, and
    Pillow then decodes it or names the fault. ``flags``: ``cv2.IMREAD_COLOR_RGB`` (``H x W x 3``
    RGB) or ``cv2.IMREAD_GRAYSCALE`` (``H x W``: the decoder's luma, no colour planes).
    """
    try:
        data = path.read_bytes()
    except OSError:
        return None
    header = jpeg_frame_header(data) if data.endswith(b"\xff\xd9") else None
    if header is None or header[0] not in _JPEG_SOF or header[1:] != (8, 3):
        return None
    return cv2.imdecode(np.frombuffer(data, np.uint8), flags | cv2.IMREAD_IGNORE_ORIENTATION)


def read_rgb(path: str | Path) -> np.ndarray:
    """Read an image as ``H x W x 3`` uint8 RGB (grayscale and palette images are expanded)."""
    path = Path(path)
    if path.suffix.lower() in (".jpg", ".jpeg"):
        rgb = _decode_jpeg(path)
        if rgb is not None:
            return rgb
    with _open_decoded(path) as im:
        if im.mode != "RGB":
            im = im.convert("RGB")
        return np.asarray(im, dtype=np.uint8)


def read_luma(path: str | Path) -> np.ndarray:
    """Read an image's brightness as ``H x W`` uint8, for consumers of gray frames (flow).

    A complete colour JPEG is decoded to its luma plane only (about half the time of the RGB
    decode: no chroma planes, upsampling or colour conversion); its values may differ from
    ``read_rgb`` + ITU-R 601 conversion by the chroma upsampling's rounding (about 1% of pixels
    by a few levels). Any other image: ``read_rgb`` converted with ITU-R 601 luma (the same
    values as ``cv2.cvtColor(read_rgb(path), cv2.COLOR_RGB2GRAY)``).
    """
    path = Path(path)
    if path.suffix.lower() in (".jpg", ".jpeg"):
        gray = _decode_jpeg(path, cv2.IMREAD_GRAYSCALE)
        if gray is not None:
            return gray
    return cv2.cvtColor(read_rgb(path), cv2.COLOR_RGB2GRAY)


def read_gray(path: str | Path) -> np.ndarray:
    """Read a single-channel image as ``H x W`` uint8 (RGB is converted with ITU-R 601 luma)."""
    path = Path(path)
    with _open_decoded(path) as im:
        if im.mode == "P":
            im = im.convert("RGB")
        if im.mode != "L":
            im = im.convert("L")
        return np.asarray(im, dtype=np.uint8)


def read_raw(path: str | Path) -> tuple[np.ndarray, str]:
    """Read an image without any conversion: the array and Pillow's mode ('P', 'L', 'RGB', ...)."""
    path = Path(path)
    with _open_decoded(path) as im:
        return np.asarray(im), im.mode


def read_grey_levels(path: str | Path) -> np.ndarray:
    """Read a grey-level label image stored as 'L' or as RGB with three equal channels.

    Returns ``H x W`` uint8 grey values; colour images with unequal channels raise DataError.
    """
    arr, mode = read_raw(path)
    if mode == "P":
        raise DataError(path, "palette PNG found; expected grey-level values (mode L or RGB)")
    if arr.ndim == 3:
        arr = arr[..., :3]
        if not (
            np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 0], arr[..., 2])
        ):
            raise DataError(path, "colour mask with unequal channels; expected grey levels")
        arr = arr[..., 0]
    if arr.dtype != np.uint8:
        if arr.max(initial=0) > 255:
            raise DataError(path, "mask values above 255; expected 8-bit grey levels")
        arr = arr.astype(np.uint8)
    return np.ascontiguousarray(arr)


def image_size(path: str | Path) -> tuple[int, int]:
    """``(height, width)`` read from the file header only (nothing is decoded)."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            width, height = im.size
    except FileNotFoundError:
        raise DataError(path, "file not found") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise DataError(path, f"not a readable image ({exc})") from None
    return int(height), int(width)


def list_images(folder: Path, extensions: tuple[str, ...] = IMAGE_EXTENSIONS) -> list[Path]:
    """Image files directly inside ``folder`` (sorted by name; hidden files ignored)."""
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in extensions
    )


def natural_key(text: str) -> tuple:
    """Sort key that orders embedded integers numerically ('frame_2' < 'frame_10')."""
    return tuple(int(tok) if tok.isdigit() else tok for tok in re.split(r"(\d+)", text))

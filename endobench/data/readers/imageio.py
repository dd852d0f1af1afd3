"""Decode image and mask files into numpy arrays, turning every failure into a `DataError`.

Pillow is used rather than OpenCV because it reports truncated files as errors, where
libjpeg through OpenCV only prints a warning and returns a grey-filled image.
"""

from __future__ import annotations

import re
from pathlib import Path

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


def read_rgb(path: str | Path) -> np.ndarray:
    """Read an image as ``H x W x 3`` uint8 RGB (grayscale and palette images are expanded)."""
    path = Path(path)
    with _open_decoded(path) as im:
        if im.mode != "RGB":
            im = im.convert("RGB")
        return np.asarray(im, dtype=np.uint8)


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

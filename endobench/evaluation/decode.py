"""Decode label PNGs as :func:`endobench.data.label_png.read_label_png` does, only faster.

8-bit grey and palette PNGs (what DAVIS, ``endobench track`` and most tools write) go through
the small decoder of :mod:`endobench.evaluation.png` (about 2.5x faster than Pillow or
OpenCV); 8-bit RGB(A) PNGs through OpenCV (faster than Pillow; OpenCV cannot be used for
palettes, it expands them to colours and loses the indices). Anything else (16-bit, 1-4 bit,
grey+alpha, interlaced, non-PNG files) goes through ``read_label_png`` itself. The result is
the same array in every case (``tests/test_evaluation_decode.py``): palette index = label; grey
0/255-only masks become object 1; other grey values are the labels.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from endobench.evaluation.errors import EvaluationError
from endobench.evaluation.png import decode_samples, is_one_byte_sample, png_header

# PNG colour types (IHDR): RGB, palette, RGBA.
_RGB, _PALETTE, _RGBA = 2, 3, 6


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise EvaluationError(f"{path}: mask file not found") from None
    except IsADirectoryError:
        raise EvaluationError(f"{path}: is a directory, expected a mask PNG file") from None
    except OSError as exc:
        raise EvaluationError(f"{path}: cannot read mask file ({exc.strerror})") from None


def _fallback(path: Path) -> np.ndarray:
    from endobench.data.label_png import LabelPngError, read_label_png

    try:
        return read_label_png(path)
    except LabelPngError as exc:
        raise EvaluationError(str(exc)) from None


def _binary_as_object(grey: np.ndarray) -> np.ndarray:
    """A grey mask whose only values are 0 and 255 becomes 0/1; others are returned as is."""
    is_255 = grey == 255
    if np.count_nonzero(is_255) == np.count_nonzero(grey):
        return is_255.view(np.uint8)
    return grey


def read_mask(path: str | Path) -> np.ndarray:
    """A label PNG as an ``H x W`` uint8 label map, exactly as ``read_label_png(path)`` reads it.

    Raises :class:`EvaluationError` naming the file when it is missing, a directory or not a
    readable label image.
    """
    path = Path(path)
    data = _read_bytes(path)
    header = png_header(data)
    if header is None or header.bit_depth != 8:
        return _fallback(path)
    if is_one_byte_sample(header):
        samples = decode_samples(data, header)
        if samples is None:
            return _fallback(path)
        return samples if header.colour_type == _PALETTE else _binary_as_object(samples)
    if header.colour_type not in (_RGB, _RGBA):
        return _fallback(path)
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None or arr.dtype != np.uint8 or arr.ndim != 3:
        return _fallback(path)
    if not (np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 0], arr[..., 2])):
        raise EvaluationError(
            f"{path}: colour mask with unequal channels; expected a palette or grayscale label PNG"
        )
    return _binary_as_object(np.ascontiguousarray(arr[..., 0]))

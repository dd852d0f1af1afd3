"""float32 <-> float16 conversions, exact (round to nearest even) and fast.

numpy's ``astype(np.float16)`` runs a scalar loop on many builds (2.8 ms for a 480x854 plane
here, 1.4 ms back); OpenCV converts with SIMD in about 0.5 ms. Both give the same bits: checked
on every float16 value, on the rounding ties between them and on float32 values across [0, 1]
(``tests/test_propagation_half.py``).
"""

from __future__ import annotations

import cv2
import numpy as np


def _as_2d(x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x)
    return x.reshape(x.shape[0], -1) if x.ndim != 2 else x


def to_half(x: np.ndarray) -> np.ndarray:
    """float32 array -> float16 array of the same shape (``x.astype(np.float16)``)."""
    if x.dtype != np.float32:  # other widths: numpy's one rounding, not two
        return x.astype(np.float16)
    half = cv2.multiply(_as_2d(x), 1.0, dtype=cv2.CV_16F)  # type: ignore[call-overload, unused-ignore]  # the stubs want an array for the scalar
    return np.asarray(half).reshape(x.shape)


def from_half(x: np.ndarray) -> np.ndarray:
    """float16 array -> float32 array of the same shape (``x.astype(np.float32)``)."""
    if x.dtype != np.float16:
        return x.astype(np.float32)
    single = cv2.multiply(_as_2d(x), 1.0, dtype=cv2.CV_32F)  # type: ignore[call-overload, unused-ignore]  # the stubs want an array for the scalar
    return np.asarray(single).reshape(x.shape)

"""Input conversion shared by the metric functions: numpy or torch in, C-contiguous numpy out."""

from __future__ import annotations

from typing import Any

import numpy as np


def to_numpy(x: Any) -> np.ndarray:
    """``x`` as a numpy array; torch tensors are detached and moved to the CPU first."""
    if type(x).__module__.startswith("torch"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def as_mask(x: Any, name: str = "mask") -> np.ndarray:
    """An ``H x W`` boolean mask (nonzero = inside), C-contiguous so it can be viewed as uint8."""
    arr = to_numpy(x)
    if arr.ndim != 2:
        raise ValueError(f"{name}: expected an H x W mask, got shape {arr.shape}")
    if arr.dtype != np.bool_:
        arr = arr != 0
    return np.ascontiguousarray(arr)


def as_label_map(x: Any, name: str = "label map") -> np.ndarray:
    """An ``H x W`` uint8 label map (object ids); values outside 0..255 are an error."""
    arr = to_numpy(x)
    if arr.ndim != 2:
        raise ValueError(f"{name}: expected an H x W label map, got shape {arr.shape}")
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8)
    if arr.dtype != np.uint8:
        if arr.size and (arr.min() < 0 or arr.max() > 255):
            raise ValueError(f"{name}: label values must lie in 0..255")
        arr = arr.astype(np.uint8)
    return np.ascontiguousarray(arr)


def check_same_shape(a: np.ndarray, b: np.ndarray, what: str) -> None:
    """Raise a ValueError naming ``what`` when the two masks differ in size."""
    if a.shape != b.shape:
        raise ValueError(f"{what}: size mismatch, ground truth {a.shape} vs prediction {b.shape}")


def mask_pair(gt: Any, pred: Any, void: Any | None, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Both masks as C-contiguous bool arrays of one size, with void pixels set to background."""
    g = as_mask(gt, "gt")
    p = as_mask(pred, "pred")
    check_same_shape(g, p, what)
    if void is not None:
        keep = ~as_mask(void, "void")
        check_same_shape(g, keep, f"{what} void")
        g = np.ascontiguousarray(g & keep)
        p = np.ascontiguousarray(p & keep)
    return g, p

"""Hausdorff distance and its 95th percentile (HD95) between two binary masks, in pixels.

Surface of a mask = the mask XOR its erosion by the 4-connected cross, with zero outside the
image (so pixels on the image border are surface), as in medpy and MONAI. Distances are exact
Euclidean distances between surface pixels. Two published HD95 definitions differ:

- ``"monai"`` (MONAI ``compute_hausdorff_distance(percentile=95)``): the larger of the two
  directed 95th percentiles (linear interpolation), on float32 distances as in MONAI;
- ``"medpy"`` (medpy ``hd95``): the 95th percentile of both directions' distances pooled.

Empty masks: one empty -> Hausdorff = inf and HD95 = NaN (undefined); both empty -> NaN.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from scipy import ndimage

from endobench.metrics._arrays import as_mask, check_same_shape

HD95Definition = Literal["monai", "medpy"]
HD95_DEFINITIONS: tuple[str, ...] = ("monai", "medpy")


def surface(mask: Any) -> np.ndarray:
    """Surface pixels of an ``H x W`` mask: mask XOR erosion by the 4-connected cross."""
    m = as_mask(mask)
    eroded = m.copy()
    eroded[1:, :] &= m[:-1, :]
    eroded[:-1, :] &= m[1:, :]
    eroded[:, 1:] &= m[:, :-1]
    eroded[:, :-1] &= m[:, 1:]
    # Zero border: the pixels on the image edge have a background neighbour outside.
    eroded[0, :] = eroded[-1, :] = False
    eroded[:, 0] = eroded[:, -1] = False
    return m ^ eroded


def directed_surface_distances(a: Any, b: Any) -> tuple[np.ndarray, np.ndarray]:
    """Distances (float64 pixels) from each surface pixel of ``a`` to the surface of ``b``,
    and from ``b`` to ``a``. Both surfaces must be non-empty.

    The distance transform runs only in the bounding box of both surfaces: every nearest
    surface pixel lies inside it, so the values are those of the full-frame transform.
    """
    sa, sb = surface(a), surface(b)
    rows = np.flatnonzero(sa.any(axis=1) | sb.any(axis=1))
    cols = np.flatnonzero(sa.any(axis=0) | sb.any(axis=0))
    if rows.size == 0 or not sa.any() or not sb.any():
        raise ValueError("directed_surface_distances: both masks must be non-empty")
    box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    sa, sb = sa[box], sb[box]
    a_to_b = ndimage.distance_transform_edt(~sb)[sa]
    b_to_a = ndimage.distance_transform_edt(~sa)[sb]
    return a_to_b, b_to_a


def _check_pair(a: Any, b: Any) -> tuple[np.ndarray, np.ndarray, bool, bool]:
    m1, m2 = as_mask(a, "a"), as_mask(b, "b")
    check_same_shape(m1, m2, "hausdorff")
    return m1, m2, bool(m1.any()), bool(m2.any())


def hausdorff(a: Any, b: Any) -> float:
    """Symmetric Hausdorff distance (pixels) between the surfaces of two ``H x W`` masks.

    One mask empty: inf (MONAI's value); both empty: NaN.
    """
    m1, m2, any1, any2 = _check_pair(a, b)
    if not any1 and not any2:
        return float("nan")
    if not any1 or not any2:
        return float("inf")
    d12, d21 = directed_surface_distances(m1, m2)
    return float(max(d12.max(), d21.max()))


def hd95(a: Any, b: Any, definition: HD95Definition = "monai") -> float:
    """95th-percentile Hausdorff distance (pixels) between two ``H x W`` masks.

    ``definition``: ``"monai"`` (max of the directed percentiles, default) or ``"medpy"``
    (percentile of the pooled distances); they differ by a few pixels on real shapes, so name
    the one you report. Undefined (NaN) when either mask is empty.
    """
    if definition not in HD95_DEFINITIONS:
        raise ValueError(f"hd95: definition must be one of {HD95_DEFINITIONS}, got {definition!r}")
    m1, m2, any1, any2 = _check_pair(a, b)
    if not (any1 and any2):
        return float("nan")
    d12, d21 = directed_surface_distances(m1, m2)
    if definition == "monai":
        return float(max(_quantile_float32(d12, 0.95), _quantile_float32(d21, 0.95)))
    return float(np.percentile(np.concatenate([d12, d21]), 95))


def _quantile_float32(values: np.ndarray, q: float) -> float:
    """Linear-interpolation quantile of the distances cast to float32, as MONAI computes it
    (float32 surface distances); numpy's float32 interpolation rounds the same way."""
    return float(np.percentile(values.astype(np.float32), q * 100))

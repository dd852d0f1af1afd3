"""DAVIS-2016 temporal stability T: shape-context matching cost between consecutive masks.

T compares the outer contour of an object in two consecutive predicted masks. Each contour is
described by shape-context histograms; the cheapest monotone alignment of the two point sequences
gives a matching cost, and T for a sequence is ``5.0 * nanmean`` of that cost over consecutive
pairs of interior frames (lower is more stable). Definitions, constants and edge cases follow
``docs/METRICS.md`` ("T"); the numbers reproduce the DAVIS 2016 toolkit's to 1e-9, equal-cost
path ties included.

The reference's three algorithms, one module each (pure functions, usable on their own):

- :mod:`~endobench.metrics.stability.contours`: trace the boundary at pixel corners, simplify
  (Douglas-Peucker), orient, keep the longest contour, resample to segments of <= 3 px.
- :mod:`~endobench.metrics.stability.descriptors`: 12 x 5 log-polar shape-context histograms and
  the chi-square cost of all point pairs.
- :mod:`~endobench.metrics.stability.matching`: the monotone cheapest path through the cost grid
  (rolled so the path's cheapest node comes last) and the one-to-one pairs it keeps. The matching
  cost is the mean cost of the kept pairs.

The loops run as numba kernels that repeat the reference's floating-point operations, so the
numbers are equal bit for bit (see :mod:`~endobench.metrics.stability._jit`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from endobench.metrics.stability.contours import longest_contour, mask_to_polygons, upsample_contour
from endobench.metrics.stability.descriptors import chi2_cost_matrix, shape_context
from endobench.metrics.stability.matching import matching_pairs, one_to_one_pairs

#: T reports the mean matching cost times this factor (DAVIS 2016 convention).
T_SCALE = 5.0

__all__ = [
    "T_SCALE",
    "contour_descriptor",
    "descriptor_matching_cost",
    "temporal_stability_pairs",
    "temporal_stability_t",
]


def contour_descriptor(mask: np.ndarray) -> np.ndarray | None:
    """Shape-context histograms of a mask's longest contour, or None when it has no contour."""
    polygons = mask_to_polygons(mask)
    if not polygons:
        return None
    return shape_context(upsample_contour(longest_contour(polygons)))


def descriptor_matching_cost(h1: np.ndarray | None, h2: np.ndarray | None) -> float:
    """Mean chi-square cost of the one-to-one matched pairs; NaN if either side has no contour."""
    if h1 is None or h2 is None:
        return float("nan")
    cost = chi2_cost_matrix(h1, h2)
    pairs = one_to_one_pairs(matching_pairs(cost), cost)
    return float(np.average(cost[pairs[:, 0], pairs[:, 1]]))


def temporal_stability_pairs(masks: Sequence[np.ndarray]) -> np.ndarray:
    """Per-pair T values ``5 * cost(mask_t, mask_t+1)`` for ``t = 1 .. N - 3``.

    masks: ``N`` binary ``H x W`` masks of one object. Only interior frames ``1 .. N - 2`` take
    part (the reference skips the first and last frame); each frame's descriptor is computed once
    and serves both pairs it belongs to. NaN where either mask has no contour. Returns a float64
    array of length ``max(N - 3, 0)``.
    """
    n = len(masks)
    if n < 4:
        return np.zeros(0, dtype=np.float64)
    descriptors = [contour_descriptor(np.asarray(masks[t]) > 0) for t in range(1, n - 1)]
    return np.array(
        [
            T_SCALE * descriptor_matching_cost(a, b)
            for a, b in zip(descriptors[:-1], descriptors[1:], strict=True)
        ],
        dtype=np.float64,
    )


def temporal_stability_t(masks: Sequence[np.ndarray]) -> float:
    """DAVIS-2016 T of one object: nanmean of :func:`temporal_stability_pairs` (NaN if none)."""
    values = temporal_stability_pairs(masks)
    if values.size == 0 or np.all(np.isnan(values)):
        return float("nan")
    return float(np.nanmean(values))

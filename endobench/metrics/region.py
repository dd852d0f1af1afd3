"""Region overlap of two binary masks: Jaccard (DAVIS J, IoU) and Dice.

The counts come from two small numba kernels (compiled on first use, cached on disk):
:func:`union_box` finds the bounding box of the union in one vectorised pass, and
:func:`box_overlap_counts` counts ``|A & B|`` and ``|A | B|`` inside it only. Counts are
integers, so the values are exactly those of the plain numpy expressions.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

from endobench.metrics._arrays import as_mask, check_same_shape, mask_pair

# error_model="numpy": no zero-division checks, which lets the loops vectorise.
_njit = numba.njit(cache=True, nogil=True, error_model="numpy")


@_njit
def _nonzero_span(v):
    """``(first, last + 1)`` of the nonzero entries of ``v``; ``(0, 0)`` if there are none."""
    start, stop = 0, v.size
    while start < stop and not v[start]:
        start += 1
    while stop > start and not v[stop - 1]:
        stop -= 1
    return (start, stop) if start < stop else (0, 0)


@_njit
def union_box(a, b):
    """``(y0, y1, x0, x1)`` (exclusive ends) of the union of two ``H x W`` 0/1 uint8 masks.

    All four are 0 when both masks are empty.
    """
    h, w = a.shape
    rows = np.zeros(h, np.uint8)
    columns = np.zeros(w, np.uint8)
    for y in range(h):
        ra, rb = a[y], b[y]
        # Two branch-free loops vectorise; one loop doing both, or one that branches, does not.
        for x in range(w):
            columns[x] |= ra[x] | rb[x]
        row = 0
        for x in range(w):
            row |= ra[x] | rb[x]
        rows[y] = row
    return _nonzero_span(rows) + _nonzero_span(columns)


@_njit
def box_overlap_counts(a, b, y0, y1, x0, x1):
    """``(|A & B|, |A | B|)`` of two 0/1 uint8 masks that are zero outside ``[y0:y1, x0:x1]``."""
    inter = 0
    union = 0
    for y in range(y0, y1):
        ra, rb = a[y, x0:x1], b[y, x0:x1]
        for x in range(ra.size):  # indices from 0: numba knows they are >= 0 and vectorises
            inter += ra[x] & rb[x]
            union += ra[x] | rb[x]
    return inter, union


@_njit
def _overlap_counts(a, b):
    y0, y1, x0, x1 = union_box(a, b)
    return box_overlap_counts(a, b, y0, y1, x0, x1)


def overlap_counts(a: np.ndarray, b: np.ndarray) -> tuple[int, int]:
    """``(|A & B|, |A | B|)`` of two C-contiguous ``H x W`` bool masks."""
    inter, union = _overlap_counts(a.view(np.uint8), b.view(np.uint8))
    return int(inter), int(union)


def jaccard(gt: Any, pred: Any, void: Any | None = None) -> float:
    """DAVIS region similarity ``J = |(G & P) \\ V| / |(G | P) \\ V|``.

    ``gt``, ``pred``, ``void``: ``H x W`` masks (bool or nonzero = inside; numpy or torch).
    Both empty (union 0 outside void) scores 1.0, as in the DAVIS toolkits.
    """
    g, p = mask_pair(gt, pred, void, "jaccard")
    inter, union = overlap_counts(g, p)
    return 1.0 if union == 0 else inter / union


def dice(a: Any, b: Any, empty: float = 1.0) -> float:
    """Dice coefficient ``2 |A & B| / (|A| + |B|)`` of two ``H x W`` masks.

    ``empty``: the value when both masks are empty (medpy under numpy 1.x gives 1.0, MONAI's
    default and medpy under numpy 2 give NaN); state the convention with every table.
    """
    m1 = as_mask(a, "a")
    m2 = as_mask(b, "b")
    check_same_shape(m1, m2, "dice")
    inter, union = overlap_counts(m1, m2)
    total = inter + union  # |A| + |B|
    if total == 0:
        return float(empty)
    return 2.0 * inter / total

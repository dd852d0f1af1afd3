"""Region overlap of two binary masks: Jaccard (DAVIS J, IoU) and Dice.

The counts come from the numba kernel that J and F share
(:func:`endobench.metrics._boundary_kernels.overlap_counts`: both masks packed into bitsets by
64-pixel SIMD compares, then population counts). Counts are integers, so the values are exactly
those of the plain numpy expressions.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from endobench.metrics import _boundary_kernels
from endobench.metrics._arrays import as_mask, check_same_shape, mask_pair


def overlap_counts(a: np.ndarray, b: np.ndarray) -> tuple[int, int]:
    """``(|A & B|, |A | B|)`` of two C-contiguous ``H x W`` bool masks."""
    view = _boundary_kernels.kernel_view
    inter, union = _boundary_kernels.overlap_counts(view(a), view(b))
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

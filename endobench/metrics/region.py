"""Region overlap of two binary masks: Jaccard (DAVIS J, IoU) and Dice."""

from __future__ import annotations

from typing import Any

import numpy as np

from endobench.metrics._arrays import as_mask, check_same_shape


def jaccard(gt: Any, pred: Any, void: Any | None = None) -> float:
    """DAVIS region similarity ``J = |(G & P) \\ V| / |(G | P) \\ V|``.

    ``gt``, ``pred``, ``void``: ``H x W`` masks (bool or nonzero = inside; numpy or torch).
    Both empty (union 0 outside void) scores 1.0, as in the DAVIS toolkits.
    """
    g = as_mask(gt, "gt")
    p = as_mask(pred, "pred")
    check_same_shape(g, p, "jaccard")
    if void is not None:
        keep = ~as_mask(void, "void")
        check_same_shape(g, keep, "jaccard void")
        g = g & keep
        p = p & keep
    inter = np.count_nonzero(g & p)
    union = np.count_nonzero(g) + np.count_nonzero(p) - inter
    return 1.0 if union == 0 else inter / union


def dice(a: Any, b: Any, empty: float = 1.0) -> float:
    """Dice coefficient ``2 |A & B| / (|A| + |B|)`` of two ``H x W`` masks.

    ``empty``: the value when both masks are empty (medpy under numpy 1.x gives 1.0, MONAI's
    default and medpy under numpy 2 give NaN); state the convention with every table.
    """
    m1 = as_mask(a, "a")
    m2 = as_mask(b, "b")
    check_same_shape(m1, m2, "dice")
    total = np.count_nonzero(m1) + np.count_nonzero(m2)
    if total == 0:
        return float(empty)
    return 2.0 * np.count_nonzero(m1 & m2) / total

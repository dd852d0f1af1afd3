"""DAVIS boundary F-measure between two binary masks, computed on the boundary pixels only.

Definition (docs/METRICS.md, "F"): a pixel is boundary where it differs from its right, down or
down-right neighbour (zero outside the image; in the last row only the right neighbour counts,
in the last column only the down one, the bottom-right corner is never boundary). A boundary
pixel of one mask is matched when a boundary pixel of the other lies within the disk
``dx^2 + dy^2 <= bound_pix^2``. Precision = matched prediction pixels / prediction boundary
pixels, recall = matched ground-truth pixels / ground-truth boundary pixels.

Why it is fast (see ``bench/bench_metrics.py`` for same-run ratios against the DAVIS code as
shipped by ``vos-benchmark``): the reference dilates both full-frame boundary maps with the
disk, ``H x W x |disk|`` work (197 offsets at 480p, 1009 at 1080p). Boundaries are sparse, so
here, in one numba kernel call per pair (:mod:`~endobench.metrics._boundary_kernels`, compiled
on first use, cached on disk):

1. one pass packs both masks into bitsets, 64 pixels per SIMD compare (about the cost of
   reading the frame, which finding the objects' bounding box needs anyway); for label maps,
   :func:`jaccard_and_boundary_per_id` packs every id in that one pass (each row is read from
   memory once and compared with each id), instead of one frame pass per object;
2. inside the box only, 64 pixels per word: J's counts (population counts of AND / OR) and
   both boundary bitsets (XOR with the shifted right, down and down-right rows);
3. "is there a boundary pixel of the other mask within the disk" is asked per boundary word:
   its own row first, for 64 pixels at once (the other bitset's word dilated by the radius
   with doubling shifts; about 70% of the pixels of flow-carried masks match there), then the
   disk's bounding square the same way, for the words with pixels left only (the other
   bitset's ``2 * bound_pix + 1`` rows ORed around that word), which rules out the pixels with
   nothing near (most unmatched ones), then the disk's other rows, nearest first, pixel by
   pixel for the few left.

Everything is an integer count, so the values are bit-identical to the dilation's
(``tests/test_metrics_functions.py`` checks that against a literal full-frame dilation).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from endobench.metrics._arrays import as_label_map, as_mask, check_same_shape, mask_pair
from endobench.metrics._boundary_kernels import kernel_view, labels_pair_counts, pair_counts

#: DAVIS default tolerance as a fraction of the image diagonal.
DEFAULT_BOUND_TH = 0.008


def bound_pixels(shape: tuple[int, ...], bound_th: float = DEFAULT_BOUND_TH) -> int:
    """Disk radius in pixels: ``ceil(bound_th * hypot(H, W))``, or ``bound_th`` itself if >= 1."""
    if bound_th >= 1:
        return int(math.ceil(bound_th))
    height, width = shape[:2]
    # Exactly np.linalg.norm's sqrt of the (exact, integer) sum of squares.
    return int(math.ceil(bound_th * math.sqrt(height * height + width * width)))


def boundary_map(mask: Any) -> np.ndarray:
    """Boundary pixels of an ``H x W`` mask as a bool array, with DAVIS's neighbour rules."""
    seg = as_mask(mask)
    right = np.zeros_like(seg)
    down = np.zeros_like(seg)
    down_right = np.zeros_like(seg)
    right[:, :-1] = seg[:, 1:]
    down[:-1, :] = seg[1:, :]
    down_right[:-1, :-1] = seg[1:, 1:]
    b = (seg ^ right) | (seg ^ down) | (seg ^ down_right)
    b[-1, :] = seg[-1, :] ^ right[-1, :]
    b[:, -1] = seg[:, -1] ^ down[:, -1]
    b[-1, -1] = False
    return b


def disk(radius: int) -> np.ndarray:
    """``(2r+1) x (2r+1)`` bool disk: offsets with ``dx^2 + dy^2 <= r^2`` (197 pixels at r=8)."""
    d = np.arange(-radius, radius + 1)
    return (d[:, None] ** 2 + d[None, :] ** 2) <= radius * radius


@lru_cache(maxsize=64)
def _disk_half_widths(radius: int) -> np.ndarray:
    """``[isqrt(r^2 - dy^2) for dy in 0..r]``: row ``dy`` of the disk spans ``|dx| <= w[|dy|]``."""
    return np.array([math.isqrt(radius * radius - dy * dy) for dy in range(radius + 1)], np.int64)


def _pair_counts(g: np.ndarray, p: np.ndarray, radius: int) -> tuple[int, int, int, int, int, int]:
    """Integer counts behind J and F for two bool masks of one size (void already removed).

    Returns ``(intersection, union, n_pred_boundary, pred_matched, n_gt_boundary, gt_matched)``.
    """
    inter, union, n_pred, pred_matched, n_gt, gt_matched = pair_counts(
        kernel_view(np.ascontiguousarray(g)),
        kernel_view(np.ascontiguousarray(p)),
        _disk_half_widths(radius),
    )
    return int(inter), int(union), int(n_pred), int(pred_matched), int(n_gt), int(gt_matched)


def _prf(n_pred: int, pred_matched: int, n_gt: int, gt_matched: int) -> tuple[float, float, float]:
    """Precision, recall and F from boundary counts, with DAVIS's empty-boundary conventions."""
    if n_pred == 0 and n_gt > 0:
        precision, recall = 1.0, 0.0
    elif n_pred > 0 and n_gt == 0:
        precision, recall = 0.0, 1.0
    elif n_pred == 0 and n_gt == 0:
        precision, recall = 1.0, 1.0
    else:
        precision, recall = pred_matched / n_pred, gt_matched / n_gt
    f = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    return precision, recall, f


def boundary_prf(
    gt: Any, pred: Any, void: Any | None = None, bound_th: float = DEFAULT_BOUND_TH
) -> tuple[float, float, float]:
    """``(precision, recall, F)`` of the prediction's boundary against the ground truth's.

    ``gt``, ``pred``, ``void``: ``H x W`` masks of one object (bool or nonzero = inside; numpy
    or torch). With ``void``, both masks are multiplied by not-void first (unsupervised DAVIS).
    Empty boundaries: prediction only empty -> (1, 0); ground truth only -> (0, 1); both ->
    (1, 1). ``bound_th`` < 1 is a fraction of the diagonal, >= 1 pixels.
    """
    g, p = mask_pair(gt, pred, void, "boundary")
    _, _, n_pred, pred_matched, n_gt, gt_matched = _pair_counts(
        g, p, bound_pixels(g.shape, bound_th)
    )
    return _prf(n_pred, pred_matched, n_gt, gt_matched)


def boundary_f(
    gt: Any, pred: Any, void: Any | None = None, bound_th: float = DEFAULT_BOUND_TH
) -> float:
    """DAVIS boundary F-measure (see :func:`boundary_prf`), in [0, 1]."""
    return boundary_prf(gt, pred, void, bound_th)[2]


def jaccard_and_boundary(
    gt: Any, pred: Any, void: Any | None = None, bound_th: float = DEFAULT_BOUND_TH
) -> tuple[float, float, float, float]:
    """``(J, precision, recall, F)`` of one object in one frame, sharing the work of both.

    Same values as :func:`endobench.metrics.jaccard` and :func:`boundary_prf` (``J`` excludes
    void pixels, which is the same as scoring the void-stripped masks).
    """
    g, p = mask_pair(gt, pred, void, "boundary")
    inter, union, n_pred, pred_matched, n_gt, gt_matched = _pair_counts(
        g, p, bound_pixels(g.shape, bound_th)
    )
    j = 1.0 if union == 0 else inter / union
    return (j, *_prf(n_pred, pred_matched, n_gt, gt_matched))


#: Ids packed per kernel call: bounds each thread's scratch bitsets (2 bits per pixel and id,
#: 4.4 MB at 1080p) while a frame with more ids reads the maps once per group of ids.
_IDS_PER_CALL = 8
_scratch = threading.local()


def _scratch_bitsets(words: int) -> tuple[np.ndarray, np.ndarray]:
    """This thread's two scratch uint64 arrays of at least ``words`` words each (kept between
    calls and grown when too small: the packing kernel overwrites every word it uses)."""
    have = getattr(_scratch, "bits", None)
    if have is None or have.shape[1] < words:
        have = _scratch.bits = np.empty((2, words), np.uint64)
    return have[0], have[1]


def jaccard_and_boundary_per_id(
    gt: Any, pred: Any, ids: Sequence[int], bound_th: float = DEFAULT_BOUND_TH
) -> list[tuple[float, float, float, float]]:
    """:func:`jaccard_and_boundary` of ``gt == k`` against ``pred == k`` for each id ``k``.

    ``gt``, ``pred``: ``H x W`` label maps (values 0..255; numpy or torch); ``ids``: the ids to
    score, in 0..255. Same values as one :func:`jaccard_and_boundary` call per id, from one
    pass over both maps per 8 ids (each id's boundary work then stays inside its own box).
    """
    g = as_label_map(gt, "gt")
    p = as_label_map(pred, "pred")
    check_same_shape(g, p, "labels")
    wanted = np.asarray(ids, np.int64)
    bad = sorted({v for v in wanted.tolist() if not 0 <= v <= 255})
    if bad:
        raise ValueError(f"ids: expected values in 0..255, got {bad}")
    widths = _disk_half_widths(bound_pixels(g.shape, bound_th))
    gv, pv = kernel_view(g), kernel_view(p)
    height, width = g.shape
    out = []
    for start in range(0, wanted.size, _IDS_PER_CALL):
        group = wanted[start : start + _IDS_PER_CALL].astype(np.uint8)
        gbits, pbits = _scratch_bitsets(group.size * height * (width // 64 + 2))
        counts = labels_pair_counts(gv, pv, group, widths, gbits, pbits)
        for inter, union, n_pred, pred_matched, n_gt, gt_matched in counts.tolist():
            j = 1.0 if union == 0 else inter / union
            out.append((j, *_prf(n_pred, pred_matched, n_gt, gt_matched)))
    return out

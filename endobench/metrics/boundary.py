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
here, in numba kernels (compiled on first use, cached on disk):

1. one vectorised pass finds the bounding box of the two masks' union
   (:func:`~endobench.metrics.region.union_box`);
2. one pass over the box computes, row by row in vectorised loops, both masks' boundary bits
   and J's counts; the row is then skipped eight pixels at a time (as uint64 words) to collect
   the boundary pixels' columns, row by row, already sorted;
3. "is there a boundary pixel of the other mask within the disk" is asked of boundary pixels
   only: for each row ``dy`` of the disk (nearest first, stop at the first hit) a cursor walks
   the other mask's sorted columns in row ``y + dy``, moving only forward. A matched pixel
   costs a step or two, an unmatched one ``2 * bound_pix + 1`` rows.

Everything is an integer count, so the values are bit-identical to the dilation's
(``tests/test_metrics_functions.py`` checks that against a literal full-frame dilation).
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import numba
import numpy as np

from endobench.metrics._arrays import as_mask, mask_pair
from endobench.metrics.region import union_box

# error_model="numpy": no zero-division checks, which lets the loops vectorise.
_njit = numba.njit(cache=True, nogil=True, error_model="numpy")

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


@_njit
def _box_scan(g, p, y0, y1, x0, x1):
    """J's counts and both masks' boundary pixels, in one pass over the box ``[y0:y1, x0:x1]``
    of two 0/1 uint8 masks that are zero outside it.

    Returns ``(inter, union, gx, gstart, px, pstart)``: the columns of ground-truth boundary
    pixels in row ``y`` are ``gx[gstart[y] : gstart[y + 1]]``, ascending (likewise ``px``).
    """
    h, w = g.shape
    # Boundary pixels lie in the box grown by one pixel up and left (a pixel whose right or
    # lower neighbour is inside). Columns xa..xb-1 have a right neighbour; the last image
    # column (when the box reaches it) is handled on its own. Counting J over the grown box
    # adds only zeros.
    ya, xa = max(y0 - 1, 0), max(x0 - 1, 0)
    xb = min(x1, w - 1)
    n = xb - xa
    words = np.zeros((n + 8) // 8, np.uint64)
    bits = words.view(np.uint8)  # zero padding past n stays zero
    # Room for the branch-free appends, which write up to 7 columns past the last pixel.
    size = (y1 - ya) * (x1 - xa) + 8
    gx = np.empty(size, np.int32)
    px = np.empty(size, np.int32)
    gstart = np.zeros(h + 1, np.int64)
    pstart = np.zeros(h + 1, np.int64)
    ng = npred = 0
    inter = union = 0
    for y in range(h):
        gstart[y], pstart[y] = ng, npred
        if y < ya or y >= y1:
            continue
        # Row slices indexed from 0: numba then knows the indices are >= 0 and vectorises.
        a, b = g[y, xa : xb + 1], p[y, xa : xb + 1]
        if y + 1 < h:
            c, d = g[y + 1, xa : xb + 1], p[y + 1, xa : xb + 1]
            for x in range(n):
                bg = (a[x] ^ a[x + 1]) | (a[x] ^ c[x]) | (a[x] ^ c[x + 1])
                bp = (b[x] ^ b[x + 1]) | (b[x] ^ d[x]) | (b[x] ^ d[x + 1])
                bits[x] = bg | (bp << 1)
        else:  # last image row: only the right neighbour counts
            for x in range(n):
                bits[x] = (a[x] ^ a[x + 1]) | ((b[x] ^ b[x + 1]) << 1)
        # J's counts in a loop of their own, with a narrow per-row accumulator: fused into
        # the loop above, or accumulated in int64, the loops no longer vectorise (3x slower).
        row_inter = row_union = np.uint32(0)
        for x in range(n):
            row_inter += np.uint32(a[x] & b[x])
            row_union += np.uint32(a[x] | b[x])
        inter += row_inter
        union += row_union
        # Boundaries are sparse: skip eight pixels at a time; within a word, append without
        # branches (write every column, advance the end only past boundary pixels).
        for k in range(words.size):
            if words[k]:
                for i in range(8 * k, 8 * k + 8):
                    gx[ng] = xa + i
                    px[npred] = xa + i
                    ng += bits[i] & 1
                    npred += bits[i] >> 1
        if x1 == w:  # last column: no right neighbour; only the lower one counts
            inter += a[n] & b[n]
            union += a[n] | b[n]
            if y + 1 < h:
                if a[n] != c[n]:
                    gx[ng] = w - 1
                    ng += 1
                if b[n] != d[n]:
                    px[npred] = w - 1
                    npred += 1
    gstart[h], pstart[h] = ng, npred
    return inter, union, gx, gstart, px, pstart


@_njit
def _matched_count(qx, qstart, tx, tstart, half_widths):
    """How many query boundary pixels have a target boundary pixel within the disk.

    Pixels come row by row (``qx[qstart[y] : qstart[y + 1]]``, ascending), and the disk row
    ``dy`` covers ``|dx| <= half_widths[|dy|]``. For each disk row, a cursor walks the target's
    sorted columns in row ``y + dy`` and only moves forward as the query column grows, so
    each target pixel is passed at most once per disk row; rows are tried nearest first
    (``dy = 0, 1, -1, 2, -2, ...``) and most pixels are matched in the first one or two.
    """
    h = qstart.size - 1
    radius = half_widths.size - 1
    dys = np.empty(2 * radius + 1, np.int64)
    for k in range(dys.size):
        dys[k] = (k + 1) // 2 if k % 2 else -(k // 2)
    cursor = np.empty(dys.size, np.int64)
    matched = 0
    for y in range(h):
        if qstart[y] == qstart[y + 1]:
            continue
        for k in range(dys.size):
            cursor[k] = tstart[min(max(y + dys[k], 0), h)]
        for i in range(qstart[y], qstart[y + 1]):
            x = qx[i]
            for k in range(dys.size):
                yy = y + dys[k]
                if yy < 0 or yy >= h:
                    continue
                end = tstart[yy + 1]
                half = half_widths[abs(dys[k])]
                j = cursor[k]
                while j < end and tx[j] < x - half:
                    j += 1
                cursor[k] = j
                if j < end and tx[j] <= x + half:
                    matched += 1
                    break
    return matched


@_njit
def _box_counts(g, p, y0, y1, x0, x1, half_widths):
    """``(inter, union, n_pred, pred_matched, n_gt, gt_matched)`` of masks zero outside the box."""
    inter, union, gx, gstart, px, pstart = _box_scan(g, p, y0, y1, x0, x1)
    n_gt, n_pred = gstart[-1], pstart[-1]
    pred_matched = gt_matched = 0
    if n_gt and n_pred:
        pred_matched = _matched_count(px, pstart, gx, gstart, half_widths)
        gt_matched = _matched_count(gx, gstart, px, pstart, half_widths)
    return inter, union, n_pred, pred_matched, n_gt, gt_matched


def _pair_counts(g: np.ndarray, p: np.ndarray, radius: int) -> tuple[int, int, int, int, int, int]:
    """Integer counts behind J and F for two C-contiguous bool masks (void already removed).

    Returns ``(intersection, union, n_pred_boundary, pred_matched, n_gt_boundary, gt_matched)``.
    """
    g8, p8 = g.view(np.uint8), p.view(np.uint8)
    # union_box (region.py) is called from here, not from a kernel of this module: numba's
    # disk cache would not notice when region.py changes under a caller compiled here.
    y0, y1, x0, x1 = union_box(g8, p8)
    if y1 == 0:
        return 0, 0, 0, 0, 0, 0
    inter, union, n_pred, pred_matched, n_gt, gt_matched = _box_counts(
        g8, p8, y0, y1, x0, x1, _disk_half_widths(radius)
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

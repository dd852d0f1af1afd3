"""DAVIS boundary F-measure between two binary masks, computed in the boundaries' bounding box.

Definition (docs/METRICS.md, "F"): a pixel is boundary where it differs from its right, down or
down-right neighbour (zero outside the image; in the last row only the right neighbour counts,
in the last column only the down one, the bottom-right corner is never boundary). A boundary
pixel of one mask is matched when a boundary pixel of the other lies within the disk
``dx^2 + dy^2 <= bound_pix^2``. Precision = matched prediction pixels / prediction boundary
pixels, recall = matched ground-truth pixels / ground-truth boundary pixels.

Why it is fast: the reference dilates both full-frame boundary maps with the disk (two
``H x W x |disk|`` passes). Boundaries are sparse, so here everything happens in the bounding
box of the two masks (plus a margin of ``bound_pix + 1``), both masks are packed in one uint8
(bit 0 = ground truth, bit 1 = prediction) so one pass of xor's yields both boundaries, and
"is there a boundary pixel of the other mask within the disk" is answered only at boundary
pixels, with an integral image of the other boundary and the disk written as a union of a few
centred rectangles (any rectangle with a nonzero count = matched). The counts are integers,
identical to the dilation's.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import cv2
import numpy as np

from endobench.metrics._arrays import as_mask, check_same_shape

#: DAVIS default tolerance as a fraction of the image diagonal.
DEFAULT_BOUND_TH = 0.008


def bound_pixels(shape: tuple[int, ...], bound_th: float = DEFAULT_BOUND_TH) -> int:
    """Disk radius in pixels: ``ceil(bound_th * hypot(H, W))``, or ``bound_th`` itself if >= 1."""
    if bound_th >= 1:
        return int(math.ceil(bound_th))
    return int(np.ceil(bound_th * np.linalg.norm(shape[:2])))


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
def _disk_rectangles(radius: int) -> tuple[tuple[int, int], ...]:
    """Half-sizes ``(h, w)`` of centred rectangles whose union is exactly ``disk(radius)``.

    Row ``dy`` of the disk spans ``|dx| <= isqrt(r^2 - dy^2)``; one rectangle per distinct
    half-width, as tall as the rows that reach it. Largest area first, so most matched pixels
    are settled by the first lookup.
    """
    widths = [math.isqrt(radius * radius - dy * dy) for dy in range(radius + 1)]
    rects = [(dy, w) for dy, w in enumerate(widths) if dy == radius or widths[dy + 1] != w]
    rects.sort(key=lambda hw: -(2 * hw[0] + 1) * (2 * hw[1] + 1))
    return tuple(rects)


@lru_cache(maxsize=256)
def _rectangle_offsets(radius: int, stride: int) -> tuple[tuple[int, int, int, int], ...]:
    """Flat offsets of the four integral-image corners of each disk rectangle.

    For a pixel at flat integral index ``k`` (row stride ``stride``), the count of the
    rectangle is ``I[k + a] - I[k + b] - I[k + c] + I[k + d]``.
    """
    return tuple(
        (
            (h + 1) * stride + w + 1,
            -h * stride + w + 1,
            (h + 1) * stride - w,
            -h * stride - w,
        )
        for h, w in _disk_rectangles(radius)
    )


def _count_matched(integral: np.ndarray, points: np.ndarray, offsets: tuple) -> int:
    """How many ``points`` (flat integral indices) have a nonzero count in some rectangle."""
    matched = 0
    for a, b, c, d in offsets:
        count = integral[points + a] - integral[points + b] - integral[points + c]
        count += integral[points + d]
        hit = count > 0
        n_hit = int(np.count_nonzero(hit))
        matched += n_hit
        if n_hit == points.size:
            break
        if n_hit:
            points = points[~hit]
    return matched


def _bbox_union(g8: np.ndarray, p8: np.ndarray) -> tuple[int, int, int, int] | None:
    """``(y0, y1, x0, x1)`` (exclusive ends) of the union of two uint8 masks; None if empty."""
    x, y, w, h = cv2.boundingRect(cv2.bitwise_or(g8, p8))
    if w == 0:
        return None
    return y, y + h, x, x + w


def _pair_counts(g: np.ndarray, p: np.ndarray, radius: int) -> tuple[int, int, int, int, int, int]:
    """Integer counts behind J and F for two C-contiguous bool masks (void already removed).

    Returns ``(intersection, union, n_pred_boundary, pred_matched, n_gt_boundary, gt_matched)``.
    """
    height, width = g.shape
    g8 = g.view(np.uint8)
    p8 = p.view(np.uint8)
    box = _bbox_union(g8, p8)
    if box is None:
        return 0, 0, 0, 0, 0, 0
    y0, y1, x0, x1 = box
    hc, wc = y1 - y0, x1 - x0
    m = radius + 1  # room for the 1-px boundary outside the box and for disk lookups
    hb, wb = hc + 2 * m, wc + 2 * m
    packed = np.zeros((hb, wb), np.uint8)
    inner = packed[m : m + hc, m : m + wc]
    p_crop = p8[y0:y1, x0:x1]
    np.add(p_crop, p_crop, out=inner)
    inner += g8[y0:y1, x0:x1]
    # Both masks are zero outside the box, so the box holds the whole union.
    inter = int(np.count_nonzero(inner == 3))
    union = int(np.count_nonzero(inner))
    # Replicating the last image row/column below/right makes the generic three-neighbour rule
    # reduce to DAVIS's "right only" / "down only" rule there (and 0 at the corner).
    if y1 == height:
        packed[m + hc, m : m + wc] = inner[-1]
    if x1 == width:
        packed[m : m + hc + 1, m + wc] = packed[m : m + hc + 1, m + wc - 1]
    flat = packed.ravel()
    n = flat.size - wb - 1
    bmap = np.zeros((hb, wb), np.uint8)
    bflat = bmap.ravel()
    head = flat[:n]
    np.bitwise_xor(head, flat[1 : n + 1], out=bflat[:n])
    bflat[:n] |= head ^ flat[wb : wb + n]
    bflat[:n] |= head ^ flat[wb + 1 : wb + 1 + n]
    # Pixels outside the image cannot be boundary.
    if y0 == 0:
        bmap[m - 1] = 0
    if x0 == 0:
        bmap[:, m - 1] = 0
    if y1 == height:
        bmap[m + hc :] = 0
    if x1 == width:
        bmap[:, m + wc :] = 0
    idx = np.flatnonzero(bmap != 0)
    bits = bflat[idx]
    # Pixel (y, x) as the flat index y * (wb + 1) + x in the (hb + 1) x (wb + 1) integral image,
    # the base the rectangle offsets are relative to.
    ipos = idx + idx // wb
    gt_pts = ipos[(bits & 1) != 0]
    pred_pts = ipos[bits > 1]
    n_gt, n_pred = gt_pts.size, pred_pts.size
    pred_matched = gt_matched = 0
    if n_gt and n_pred:
        offsets = _rectangle_offsets(radius, wb + 1)
        gt_integral = cv2.integral(bmap & 1).ravel()
        pred_integral = cv2.integral(bmap & 2).ravel()
        pred_matched = _count_matched(gt_integral, pred_pts, offsets)
        gt_matched = _count_matched(pred_integral, gt_pts, offsets)
    return inter, union, n_pred, pred_matched, n_gt, gt_matched


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


def _prepare(gt: Any, pred: Any, void: Any | None) -> tuple[np.ndarray, np.ndarray]:
    """Both masks as C-contiguous bool arrays with void pixels set to background."""
    g = as_mask(gt, "gt")
    p = as_mask(pred, "pred")
    check_same_shape(g, p, "boundary")
    if void is not None:
        keep = ~as_mask(void, "void")
        check_same_shape(g, keep, "boundary void")
        g = np.ascontiguousarray(g & keep)
        p = np.ascontiguousarray(p & keep)
    return g, p


def boundary_prf(
    gt: Any, pred: Any, void: Any | None = None, bound_th: float = DEFAULT_BOUND_TH
) -> tuple[float, float, float]:
    """``(precision, recall, F)`` of the prediction's boundary against the ground truth's.

    ``gt``, ``pred``, ``void``: ``H x W`` masks of one object (bool or nonzero = inside; numpy
    or torch). With ``void``, both masks are multiplied by not-void first (unsupervised DAVIS).
    Empty boundaries: prediction only empty -> (1, 0); ground truth only -> (0, 1); both ->
    (1, 1). ``bound_th`` < 1 is a fraction of the diagonal, >= 1 pixels.
    """
    g, p = _prepare(gt, pred, void)
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
    g, p = _prepare(gt, pred, void)
    inter, union, n_pred, pred_matched, n_gt, gt_matched = _pair_counts(
        g, p, bound_pixels(g.shape, bound_th)
    )
    j = 1.0 if union == 0 else inter / union
    return (j, *_prf(n_pred, pred_matched, n_gt, gt_matched))

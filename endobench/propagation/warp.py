"""Backward warping of label maps and class probabilities by a flow field, and flow confidence.

Backward warping: ``out(y, x) = src(y + flow[y, x, 1], x + flow[y, x, 0])``, so ``flow`` maps
each *target* pixel to its *source* position (the OpenCV flow from the target frame to the source
frame). Samples that fall outside the source image, or outside an optional source validity mask
(the endoscope's field of view), are not smeared from the border: they are reported invalid.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from endobench.errors import UserError


class WarpError(UserError, ValueError):
    """Inputs of a warp do not fit together; the message names the argument and the shapes."""


@lru_cache(maxsize=8)
def pixel_grid(height: int, width: int) -> np.ndarray:
    """``H x W x 2`` float32 pixel coordinates ``(x, y)`` (read-only, cached per size)."""
    xs, ys = np.meshgrid(
        np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32), indexing="xy"
    )
    grid = np.dstack((xs, ys))
    grid.flags.writeable = False
    return grid


def sampling_map(flow: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``H x W x 2`` float32 flow -> absolute source coordinates for ``cv2.remap``.

    ``out``: optional ``H x W x 2`` float32 array to write them into (returned).
    """
    flow = np.asarray(flow)
    if flow.ndim != 3 or flow.shape[2] != 2:
        raise WarpError(f"flow: expected H x W x 2, got shape {flow.shape}")
    grid = pixel_grid(flow.shape[0], flow.shape[1])
    return np.add(grid, flow.astype(np.float32, copy=False), out=out)


def remap_blocks(
    blocks: np.ndarray, coords: np.ndarray, coords_y: np.ndarray | None = None
) -> np.ndarray:
    """Bilinearly sample ``B x H x W x 4`` float32 channel blocks at absolute positions.

    Positions: ``coords`` ``H x W x 2`` (x, y), or ``coords`` = x and ``coords_y`` = y as two
    ``H x W`` float32 planes. cv2.remap is fastest on 4-channel float32 images, so multi-channel
    state is kept as blocks of 4 contiguous channels. Outside the image the blocks read as 0.
    """
    out = np.empty((blocks.shape[0], *coords.shape[:2], 4), dtype=np.float32)
    for b in range(blocks.shape[0]):
        cv2.remap(
            blocks[b],
            coords,
            coords_y,  # type: ignore[arg-type, unused-ignore]  # OpenCV's stubs reject map2=None (one 2-channel map)
            cv2.INTER_LINEAR,
            dst=out[b],
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=0,
        )
    return out


def to_blocks(stack: np.ndarray) -> np.ndarray:
    """``H x W x K`` -> ``ceil(K / 4) x H x W x 4`` float32 blocks (zero padded)."""
    h, w, k = stack.shape
    blocks = np.zeros((-(-k // 4), h, w, 4), dtype=np.float32)
    for b in range(blocks.shape[0]):
        part = stack[..., 4 * b : 4 * b + 4]
        blocks[b, ..., : part.shape[2]] = part
    return blocks


def remap_channels(stack: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """Bilinearly sample an ``H x W x K`` float32 stack at ``coords`` (absolute x, y).

    Outside the image the stack reads as 0 (constant border).
    """
    blocks = remap_blocks(to_blocks(stack), coords)
    k = stack.shape[2]
    return (
        np.concatenate(list(blocks), axis=2)[..., :k] if blocks.shape[0] > 1 else blocks[0, ..., :k]
    )


def _check_source(
    shape: tuple[int, int], flow: np.ndarray, source_valid: np.ndarray | None
) -> None:
    if flow.shape[:2] != shape:
        raise WarpError(f"flow: shape {flow.shape[:2]} differs from the source's {shape} (H x W)")
    if source_valid is not None and source_valid.shape != shape:
        raise WarpError(
            f"source_valid: shape {source_valid.shape} differs from the source's {shape}"
        )


def warp_labels(
    labels: np.ndarray, flow: np.ndarray, source_valid: np.ndarray | None = None, fill: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Nearest-neighbour backward warp of an ``H x W`` uint8 label map.

    Returns ``(warped, valid)``: ``warped`` ``H x W`` uint8, ``valid`` ``H x W`` bool, False where
    the nearest source pixel lies outside the image or outside ``source_valid`` (``H x W`` bool);
    invalid pixels hold ``fill``.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise WarpError(f"labels: expected an H x W label map, got shape {labels.shape}")
    _check_source(labels.shape, flow, source_valid)
    inside = (
        np.ones(labels.shape, np.uint8) if source_valid is None else source_valid.astype(np.uint8)
    )
    stack = np.dstack((labels.astype(np.uint8, copy=False), inside))
    warped = cv2.remap(  # type: ignore[call-overload, unused-ignore]  # OpenCV's stubs reject map2=None (one 2-channel map)
        stack,
        sampling_map(flow),
        None,
        cv2.INTER_NEAREST,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )
    valid = warped[..., 1].astype(bool)
    out = np.where(valid, warped[..., 0], np.uint8(fill)).astype(np.uint8)
    return out, valid


def warp_probs(
    probs: np.ndarray, flow: np.ndarray, source_valid: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Bilinear backward warp of ``C x H x W`` float32 class probabilities.

    Returns ``(warped, valid_fraction)``. Bilinear taps outside the image or outside
    ``source_valid`` contribute nothing (zero padding, never the border value), so
    ``warped.sum(0) == valid_fraction * probs_sum``; ``valid_fraction`` (``H x W`` float32 in
    [0, 1]) is the share of the bilinear weight that fell on valid source pixels (1 = fully valid,
    0 = sampled entirely from outside).
    """
    probs = np.asarray(probs, dtype=np.float32)
    if probs.ndim != 3:
        raise WarpError(f"probs: expected C x H x W, got shape {probs.shape}")
    _check_source(probs.shape[1:], flow, source_valid)
    inside = (
        np.ones(probs.shape[1:], np.float32)
        if source_valid is None
        else source_valid.astype(np.float32)
    )
    stack = np.concatenate((np.moveaxis(probs, 0, -1) * inside[..., None], inside[..., None]), 2)
    warped = remap_channels(stack, sampling_map(flow))
    return np.ascontiguousarray(np.moveaxis(warped[..., :-1], -1, 0)), warped[..., -1].copy()


def forward_backward_confidence(
    flow_fw: np.ndarray, flow_bw: np.ndarray, alpha1: float = 0.01, alpha2: float = 0.5
) -> np.ndarray:
    """Per-pixel forward-backward consistency of a flow pair, ``H x W`` float32 in [0, 1].

    ``flow_fw`` is the flow from frame A to frame B and ``flow_bw`` from B to A (OpenCV
    convention); the map lives on A's grid. Following A's pixel to ``p + fw(p)`` in B and back by
    ``bw`` should return to ``p``: with ``e = |fw(p) + bw(p + fw(p))|^2`` and the tolerance of
    Sundaram et al. (2010) ``tau = alpha1 * (|fw|^2 + |bw|^2) + alpha2`` (pixels^2), the
    confidence is ``exp(-e / tau)``: 1 for a consistent pair, 1/e at their occlusion threshold.
    Pixels whose target leaves B's image get 0.
    """
    flow_fw = np.asarray(flow_fw, dtype=np.float32)
    flow_bw = np.asarray(flow_bw, dtype=np.float32)
    if flow_fw.shape != flow_bw.shape or flow_fw.ndim != 3 or flow_fw.shape[2] != 2:
        raise WarpError(
            f"flow_fw {flow_fw.shape} and flow_bw {flow_bw.shape}: expected two H x W x 2 flows"
        )
    stack = np.ones((1, *flow_bw.shape[:2], 4), np.float32)
    stack[0, ..., :2] = flow_bw
    sampled = remap_blocks(stack, sampling_map(flow_fw))[0]
    fx, fy = cv2.split(flow_fw)
    bx, by, inside, _ = cv2.split(sampled)
    ex, ey = fx + bx, fy + by
    err = ex * ex + ey * ey
    tau = alpha1 * (fx * fx + fy * fy + bx * bx + by * by) + alpha2
    conf = np.exp(-err / tau)
    conf[inside < 0.999] = 0.0
    return conf

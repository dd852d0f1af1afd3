"""endobench's flow-warped temporal consistency (TC) and flicker rate of label-map sequences.

Not part of any reference toolkit; defined here (see ``docs/METRICS.md``).

Conventions
-----------
- ``masks``: sequence of ``N`` label maps ``H x W`` (uint8/int; 0 background, ``k > 0`` object k;
  bool masks are object 1).
- ``flows[t]`` (``t >= 1``): the backward flow of frame t, ``H x W x 2`` float, such that the
  content at pixel ``(x, y)`` of frame t was at ``(x + flows[t][y, x, 0], y + flows[t][y, x, 1])``
  in frame ``t - 1`` (the synthetic generator's ``backward_flow(t)``; OpenCV's
  ``calcOpticalFlowFarneback(frame_t, frame_t-1)``). ``flows[0]`` is ignored (may be None).
- Warping: ``W_t = warp(P_{t-1}, flows[t])`` takes for each pixel of frame t the label of
  ``P_{t-1}`` at the source position rounded to the nearest pixel (``floor(v + 0.5)``).
- Valid pixels ``V_t``: the source falls inside the image, and, when ``fov`` (``H x W`` bool) is
  given, both the pixel and its source lie inside the field of view.

Definitions
-----------
- ``TC_t = IoU(P_t, W_t)`` over valid pixels, for multi-label maps:
  ``|{p in V_t : P_t(p) = W_t(p) > 0}| / |{p in V_t : P_t(p) > 0 or W_t(p) > 0}|`` (a pixel counts
  as agreeing only if both carry the same object id), 1.0 when that union is empty.
- ``flicker_t = |{p in V_t : P_t(p) != W_t(p)}| / |V_t|`` (NaN when ``V_t`` is empty).

Both are defined for ``t = 1 .. N-1``; the returned arrays have length ``N - 1``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _labels(mask: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(mask)
    if arr.ndim != 2:
        raise ValueError(f"{name}: expected an H x W label map, got shape {arr.shape}")
    return arr.astype(np.int32) if arr.dtype == bool else arr


def warp_previous(
    previous: np.ndarray, flow: np.ndarray, fov: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Backward-warp the previous label map into the current frame with nearest sampling.

    previous: ``H x W`` labels of frame ``t - 1``; flow: ``H x W x 2`` backward flow of frame t
    (pixels); fov: optional ``H x W`` bool field of view. Returns ``(warped, valid)``: the warped
    ``H x W`` labels (0 where invalid) and the ``H x W`` bool validity mask defined in the module
    docstring.
    """
    h, w = previous.shape
    flow = np.asarray(flow, dtype=np.float64)
    if flow.shape != (h, w, 2):
        raise ValueError(f"flow: expected shape {(h, w, 2)}, got {flow.shape}")
    ys, xs = np.mgrid[0:h, 0:w]
    src_x = np.floor(xs + flow[..., 0] + 0.5)
    src_y = np.floor(ys + flow[..., 1] + 0.5)
    valid = (src_x >= 0) & (src_x <= w - 1) & (src_y >= 0) & (src_y <= h - 1)
    sx = np.where(valid, src_x, 0).astype(np.intp)
    sy = np.where(valid, src_y, 0).astype(np.intp)
    if fov is not None:
        fov = np.asarray(fov, dtype=bool)
        if fov.shape != (h, w):
            raise ValueError(f"fov: expected shape {(h, w)}, got {fov.shape}")
        valid &= fov & fov[sy, sx]
    warped = np.where(valid, previous[sy, sx], 0)
    return warped, valid


def _check(masks: Sequence[np.ndarray], flows: Sequence[np.ndarray | None]) -> None:
    if len(flows) != len(masks):
        raise ValueError(
            f"flows: expected one entry per mask ({len(masks)}, flows[0] unused), got {len(flows)}"
        )


def flow_warped_consistency(
    masks: Sequence[np.ndarray],
    flows: Sequence[np.ndarray | None],
    fov: np.ndarray | None = None,
) -> np.ndarray:
    """``TC_t = IoU(P_t, warp(P_{t-1}, flows[t]))`` for ``t = 1 .. N-1`` (float64, length N-1).

    Equal-label IoU over valid pixels as defined in the module docstring; 1.0 when neither map has
    foreground on valid pixels.
    """
    _check(masks, flows)
    out = np.empty(max(len(masks) - 1, 0), dtype=np.float64)
    for t in range(1, len(masks)):
        current = _labels(masks[t], f"masks[{t}]")
        warped, valid = warp_previous(_labels(masks[t - 1], f"masks[{t - 1}]"), flows[t], fov)
        inter = np.count_nonzero(valid & (current == warped) & (current > 0))
        union = np.count_nonzero(valid & ((current > 0) | (warped > 0)))
        out[t - 1] = inter / union if union else 1.0
    return out


def flicker_rate(
    masks: Sequence[np.ndarray],
    flows: Sequence[np.ndarray | None],
    fov: np.ndarray | None = None,
) -> np.ndarray:
    """Share of valid pixels whose label differs from the warped previous label, per ``t >= 1``.

    Float64 array of length N-1; NaN for a frame with no valid pixel.
    """
    _check(masks, flows)
    out = np.empty(max(len(masks) - 1, 0), dtype=np.float64)
    for t in range(1, len(masks)):
        current = _labels(masks[t], f"masks[{t}]")
        warped, valid = warp_previous(_labels(masks[t - 1], f"masks[{t - 1}]"), flows[t], fov)
        n_valid = np.count_nonzero(valid)
        out[t - 1] = np.count_nonzero(valid & (current != warped)) / n_valid if n_valid else np.nan
    return out


def temporal_consistency_summary(
    pred: Sequence[np.ndarray],
    gt: Sequence[np.ndarray],
    flows: Sequence[np.ndarray | None],
    fov: np.ndarray | None = None,
) -> dict[str, float]:
    """TC of prediction and ground truth with the same flows, their gap, and flicker rates.

    Returns ``{"TC-pred": mean TC_t of pred, "TC-gt": mean TC_t of gt, "TC-gap": TC-gt - TC-pred,
    "flicker-pred": mean flicker of pred, "flicker-gt": mean flicker of gt}`` (nan-means over
    ``t >= 1``). The ground truth's TC shows how far the flow itself explains the true motion, so
    the gap isolates the prediction's own instability.
    """
    if len(pred) != len(gt):
        raise ValueError(f"pred/gt: expected equal lengths, got {len(pred)} and {len(gt)}")
    tc_pred = flow_warped_consistency(pred, flows, fov)
    tc_gt = flow_warped_consistency(gt, flows, fov)

    def mean(values: np.ndarray) -> float:
        return (
            float(np.nanmean(values))
            if values.size and not np.all(np.isnan(values))
            else float("nan")
        )

    summary = {
        "TC-pred": mean(tc_pred),
        "TC-gt": mean(tc_gt),
        "flicker-pred": mean(flicker_rate(pred, flows, fov)),
        "flicker-gt": mean(flicker_rate(gt, flows, fov)),
    }
    summary["TC-gap"] = summary["TC-gt"] - summary["TC-pred"]
    return summary

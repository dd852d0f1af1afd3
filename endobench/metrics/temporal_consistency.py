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

import numba
import numpy as np

#: Label dtypes the kernels take as they are; others are converted to int64.
_KERNEL_DTYPES = (np.uint8, np.uint16, np.int32, np.int64)


def _labels(mask: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(mask)
    if arr.ndim != 2:
        raise ValueError(f"{name}: expected an H x W label map, got shape {arr.shape}")
    if arr.dtype == bool:
        return np.ascontiguousarray(arr).view(np.uint8)
    if arr.dtype.type not in _KERNEL_DTYPES:
        return arr.astype(np.int64)
    return np.ascontiguousarray(arr)


def _flow(flow: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    flow = np.asarray(flow)
    if flow.shape != (*shape, 2):
        raise ValueError(f"flow: expected shape {(*shape, 2)}, got {flow.shape}")
    if flow.dtype not in (np.float32, np.float64):
        flow = flow.astype(np.float64)
    return np.ascontiguousarray(flow)


def _fov(fov: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray:
    """The field of view as uint8 (all ones when None)."""
    if fov is None:
        return np.ones(shape, dtype=np.uint8)
    fov = np.asarray(fov, dtype=bool)
    if fov.shape != shape:
        raise ValueError(f"fov: expected shape {shape}, got {fov.shape}")
    return np.ascontiguousarray(fov).view(np.uint8)


@numba.njit(cache=True, nogil=True, inline="always")
def _source(flow: np.ndarray, y: int, x: int, h: int, w: int) -> tuple[int, int, bool]:
    """Nearest source pixel ``floor(v + 0.5)`` of ``(x, y)`` (float64) and whether it is inside."""
    sx = np.floor(np.float64(x) + np.float64(flow[y, x, 0]) + 0.5)
    sy = np.floor(np.float64(y) + np.float64(flow[y, x, 1]) + 0.5)
    inside = sx >= 0 and sx <= w - 1 and sy >= 0 and sy <= h - 1
    if not inside:
        return 0, 0, False
    return int(sy), int(sx), True


@numba.njit(cache=True, nogil=True)
def _warp_kernel(
    previous: np.ndarray, flow: np.ndarray, fov: np.ndarray, warped: np.ndarray, valid: np.ndarray
) -> None:
    """Fill ``warped`` (0 where invalid) and ``valid`` (uint8) as :func:`warp_previous` defines."""
    h, w = previous.shape
    for y in range(h):
        for x in range(w):
            sy, sx, inside = _source(flow, y, x, h, w)
            ok = inside and fov[y, x] != 0 and fov[sy, sx] != 0
            valid[y, x] = ok
            warped[y, x] = previous[sy, sx] if ok else 0


@numba.njit(cache=True, nogil=True)
def _agreement_kernel(
    current: np.ndarray, previous: np.ndarray, flow: np.ndarray, fov: np.ndarray
) -> tuple[int, int, int, int]:
    """Counts over valid pixels: (same object > 0, either > 0, valid, labels differ)."""
    h, w = current.shape
    inter = union = n_valid = n_diff = 0
    for y in range(h):
        for x in range(w):
            sy, sx, inside = _source(flow, y, x, h, w)
            if not (inside and fov[y, x] != 0 and fov[sy, sx] != 0):
                continue
            cur = np.int64(current[y, x])
            src = np.int64(previous[sy, sx])
            n_valid += 1
            if cur != src:
                n_diff += 1
            if cur > 0 or src > 0:
                union += 1
                if cur == src:
                    inter += 1
    return inter, union, n_valid, n_diff


def warp_previous(
    previous: np.ndarray, flow: np.ndarray, fov: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Backward-warp the previous label map into the current frame with nearest sampling.

    previous: ``H x W`` labels of frame ``t - 1``; flow: ``H x W x 2`` backward flow of frame t
    (pixels); fov: optional ``H x W`` bool field of view. Returns ``(warped, valid)``: the warped
    ``H x W`` labels (0 where invalid) and the ``H x W`` bool validity mask defined in the module
    docstring.
    """
    previous = np.asarray(previous)
    labels = _labels(previous, "previous")
    shape = labels.shape
    warped = np.empty(shape, dtype=labels.dtype)
    valid = np.empty(shape, dtype=np.uint8)
    _warp_kernel(labels, _flow(flow, shape), _fov(fov, shape), warped, valid)
    if previous.dtype == bool:
        warped = warped.view(bool)
    return warped, valid.view(bool)


def _agreement(
    masks: Sequence[np.ndarray], flows: Sequence[np.ndarray | None], fov: np.ndarray | None, t: int
) -> tuple[int, int, int, int]:
    current = _labels(masks[t], f"masks[{t}]")
    previous = _labels(masks[t - 1], f"masks[{t - 1}]")
    if previous.shape != current.shape:
        raise ValueError(
            f"masks[{t - 1}]: expected shape {current.shape} like masks[{t}], got {previous.shape}"
        )
    flow = flows[t]
    if flow is None:
        raise ValueError(f"flows[{t}]: expected the backward flow of frame {t}, got None")
    return _agreement_kernel(
        current, previous, _flow(flow, current.shape), _fov(fov, current.shape)
    )


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
        inter, union, _, _ = _agreement(masks, flows, fov, t)
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
        _, _, n_valid, n_diff = _agreement(masks, flows, fov, t)
        out[t - 1] = n_diff / n_valid if n_valid else np.nan
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

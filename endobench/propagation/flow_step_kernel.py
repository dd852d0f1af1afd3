"""The bookkeeping and keyframe sampling of one flow-propagation step, as one numba kernel (the
rules are those of ``flow_propagation``'s module docstring).

``lay_out_keyframe`` writes a keyframe once in the layout the steps read. At each step
``cv2.remap`` has already read each pixel's chained state through the flow (``tracked``); ``settle``
then, row by row, renormalises the positions over the valid bilinear taps, accumulates the
confidence, samples the keyframe's object probabilities where a position can reach an object and
labels those pixels. It makes one pass per row and releases the GIL, so the next frame's flow
runs on another thread meanwhile.

Keyframe sampling is OpenCV's bilinear sampling (5.x ``remap``, ``INTER_LINEAR``, zero border)
operation for operation: ``x0 = floor(x)``, ``a = x - x0`` and three fused multiply-adds,
``p0 = fma(a, s01 - s00, s00)``, ``p1 = fma(a, s11 - s10, s10)``, ``v = fma(b, p1 - p0, p0)``,
taps outside the image reading 0; so its values equal the ``cv2.remap`` calls it replaced, bit
for bit (``tests/test_propagation_flow_step_kernel.py``).
"""

from __future__ import annotations

import numba
import numpy as np
from numba import types
from numba.extending import intrinsic

_ONE = np.float32(1.0)
_ZERO = np.float32(0.0)
_HALF = np.float32(0.5)
_TINY = np.float32(1e-6)
_njit = numba.njit(cache=True, nogil=True, error_model="numpy")


@intrinsic
def _fma(typingctx, a, b, c):
    """``a * b + c`` in float32 with one rounding (LLVM ``llvm.fma.f32``)."""
    sig = types.float32(types.float32, types.float32, types.float32)

    def codegen(context, builder, signature, args):
        return builder.fma(*args)

    return sig, codegen


@numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def bilinear(s00, s01, s10, s11, a, b):
    """OpenCV's bilinear combination of four float32 taps, weights ``a`` (x) and ``b`` (y)."""
    p0 = _fma(a, s01 - s00, s00)
    p1 = _fma(a, s11 - s10, s10)
    return _fma(b, p1 - p0, p0)


@numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _floor_int(x):
    """``floor(x)`` of a finite float32 within the int64 range, as an integer."""
    i = int(x)  # truncates toward zero
    return i - 1 if np.float32(i) > x else i


@numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _settle_row(tr, fov, conf_in, conf_out, reach, box):
    """One row of the state, flat (``4 W``: x, y, confidence, validity per pixel), renormalised
    in place; ``reach[c]`` (uint8) tells whether column ``c``'s position is valid and lies in
    ``box`` (x0, x1, y0, y1). Returns how many do. Branch-free over a flat row, so LLVM
    vectorises it (the absent field of view and step confidence come as rows of ones)."""
    x0, x1, y0, y1 = box
    count = 0
    for c in range(conf_out.shape[0]):
        i = 4 * c
        v = tr[i + 3]
        ok = (v >= _HALF) & (fov[c] != 0)
        okf = _ONE if ok else _ZERO
        scale = okf / (v if v > _TINY else _TINY)
        cf = tr[i + 2] * (okf * conf_in[c])
        x = tr[i] * scale
        y = tr[i + 1] * scale
        tr[i] = x
        tr[i + 1] = y
        tr[i + 2] = cf
        tr[i + 3] = okf
        conf_out[c] = cf
        hit = ok & (x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)
        reach[c] = np.uint8(hit)
        count += np.int64(hit)
    return count


@_njit
def lay_out_keyframe(probs, fov, keys, state, extents):
    """Write a keyframe in the layout ``settle`` reads, in one pass.

    probs: ``C x H x W`` float32 keyframe probabilities (channel 0 = background). fov: ``H x W``
    uint8 field of view (``0 x 0``: none). Written: keys, ``(H + 2) x (W + 2) x (C - 1)``, the
    object probabilities times the field of view (1 inside, 0 outside) with a border of zeros;
    state, ``H x W x 4``, each pixel's own position, and the field of view as its confidence
    and validity; extents, ``(C - 1) x 4`` int64, the first and last column and row
    ``(c0, c1, r0, r1)`` where each object's keys are not 0 (``(W, -1, H, -1)``: nowhere).
    """
    h, w = state.shape[0], state.shape[1]
    count = keys.shape[2]
    use_fov = fov.shape[0] > 0
    keys[0] = _ZERO
    keys[h + 1] = _ZERO
    for k in range(count):
        extents[k, 0], extents[k, 1], extents[k, 2], extents[k, 3] = w, -1, h, -1
    for r in range(h):
        keys[r + 1, 0] = _ZERO
        keys[r + 1, w + 1] = _ZERO
        for c in range(w):
            v = _ONE if not use_fov or fov[r, c] != 0 else _ZERO
            state[r, c, 0] = np.float32(c)
            state[r, c, 1] = np.float32(r)
            state[r, c, 2] = v
            state[r, c, 3] = v
            for k in range(count):
                p = probs[k + 1, r, c] * v
                keys[r + 1, c + 1, k] = p
                if p != _ZERO:
                    extents[k, 0] = min(extents[k, 0], c)
                    extents[k, 1] = max(extents[k, 1], c)
                    extents[k, 2] = min(extents[k, 2], r)
                    extents[k, 3] = r


@_njit
def settle(tracked, fov, step_conf, keys, boxes, confidence, probs, labels):
    """Finish a step in place; returns the box ``(r0, r1, c0, c1)`` of the pixels that sampled
    an object (``(H, 0, W, 0)`` when none did).

    tracked: ``H x W x 4`` C-contiguous float32, the previous state (keyframe x, y, confidence, validity)
    bilinearly read at each pixel's flow position; it becomes the new state. fov: ``H x W``
    uint8 field of view (``0 x 0``: none). step_conf: ``H x W`` float32 trust of this step
    (``0 x 0``: none). keys: ``(H + 2) x (W + 2) x K`` float32 keyframe object probabilities
    with a border of zeros one pixel wide (so no tap needs a bounds test). boxes: ``K x 4``
    float64 ``(x0, x1, y0, y1)``, integers or infinities, of the positions whose samples can be
    non-zero for each object (an empty box for an object that is nowhere). Written: confidence
    (``H x W``) and probs (``(K + 1) x H x W``; channel 0 = 1 minus the objects in id order).
    """
    h, w = tracked.shape[0], tracked.shape[1]
    count = keys.shape[2]
    use_fov = fov.shape[0] > 0
    use_conf = step_conf.shape[0] > 0
    bx = boxes.astype(np.float32)
    union = (np.float32(np.inf), np.float32(-np.inf), np.float32(np.inf), np.float32(-np.inf))
    for k in range(count):
        union = (
            min(union[0], bx[k, 0]),
            max(union[1], bx[k, 1]),
            min(union[2], bx[k, 2]),
            max(union[3], bx[k, 3]),
        )
    reach = np.empty(w, np.uint8)
    ones_u8 = np.ones(w, np.uint8)
    ones_f = np.ones(w, np.float32)
    probs[0] = _ONE
    probs[1:] = _ZERO
    lim_x, lim_y = np.float32(w), np.float32(h)
    top, bottom, left, right = h, 0, w, 0
    for r in range(h):
        tr = tracked[r]
        fov_row = fov[r] if use_fov else ones_u8
        conf_row = step_conf[r] if use_conf else ones_f
        if _settle_row(tr.reshape(-1), fov_row, conf_row, confidence[r], reach, union) == 0:
            continue  # no position of this row can reach an object: it stays background
        row_left, row_right = w, 0
        for c in range(w):
            if not reach[c]:
                continue
            x, y = tr[c, 0], tr[c, 1]
            if not (x >= -1 and x < lim_x and y >= -1 and y < lim_y):
                continue  # every tap outside the image: all samples are 0
            jx, jy = _floor_int(x), _floor_int(y)
            a, b = x - np.float32(jx), y - np.float32(jy)
            i0, j0 = jy + 1, jx + 1  # padded: index + 1
            background = _ONE
            sampled = False
            for k in range(count):
                if x >= bx[k, 0] and x <= bx[k, 1] and y >= bx[k, 2] and y <= bx[k, 3]:
                    # (elsewhere this object's samples are exactly 0)
                    sampled = True
                    p = bilinear(
                        keys[i0, j0, k],
                        keys[i0, j0 + 1, k],
                        keys[i0 + 1, j0, k],
                        keys[i0 + 1, j0 + 1, k],
                        a,
                        b,
                    )
                    probs[k + 1, r, c] = p
                    background -= p
            if sampled:
                probs[0, r, c] = background
                label, best = 0, background
                for k in range(count):  # every object: an unsampled 0 may beat a negative
                    p = probs[k + 1, r, c]
                    if p > best:
                        label, best = k + 1, p
                labels[r, c] = label
                row_left = min(row_left, c)
                row_right = c + 1
        if row_right > 0:
            top, bottom = min(top, r), r + 1
            left, right = min(left, row_left), max(right, row_right)
    return top, bottom, left, right

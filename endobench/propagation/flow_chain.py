"""One pass over the chained state of flow propagation, as one numba kernel.

After ``FlowPropagator.step`` has bilinearly sampled the previous state (keyframe position x, y;
accumulated confidence; validity) at every pixel's source, each pixel is settled in place:
positions are averaged over the valid taps only (divided by the validity), a pixel with less than
half of its footprint valid (or outside the field of view) loses its source, and the confidence
takes this step's factor. The same float32 operations, in the same order, as the numpy
expressions they replace, so the values are bit-identical; one pass instead of a dozen, and the
per-row and per-column ranges of the positions (which keyframe objects a pixel can reach) come
with it.
"""

from __future__ import annotations

import numba
import numpy as np

# A pixel keeps its source when at least this share of its bilinear footprint was valid.
MIN_VALID = np.float32(0.5)
# Validity below this is treated as this when positions are divided by it (no division by 0).
VALID_FLOOR = np.float32(1e-6)


@numba.njit(cache=True, nogil=True, boundscheck=False)
def settle(  # pragma: no cover (numba)
    state: np.ndarray,
    fov: np.ndarray,
    step_conf: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    conf: np.ndarray,
    okf: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
) -> None:
    """Settle ``state`` (``H x W x 4`` float32: sampled x, y, confidence, validity) in place.

    ``fov``: ``H x W`` bool field of view, or a ``0 x 0`` array for none; ``step_conf``: ``H x W``
    float32 confidence of this step, or ``0 x 0`` for none (1). Outputs (``H x W`` float32): the
    settled positions ``x``, ``y``, the chained confidence ``conf`` and ``okf`` (1 where the pixel
    has a source, else 0); the state becomes ``(x, y, conf, okf)``. ``rows`` (``2 x H``) gets each
    row's lowest and highest ``y``, ``cols`` (``2 x W``) each column's lowest and highest ``x``.
    """
    h, w = x.shape
    has_fov = fov.shape[0] > 0
    has_conf = step_conf.shape[0] > 0
    one, zero = np.float32(1.0), np.float32(0.0)
    col_low, col_high = cols[0], cols[1]
    for c in range(w):
        col_low[c] = np.inf
        col_high[c] = -np.inf
    for r in range(h):
        # Row views: one index per access inside the loop (about 1.5x faster than 2-D indexing).
        s, xr, yr, cr, okr = state[r], x[r], y[r], conf[r], okf[r]
        low, high = np.float32(np.inf), np.float32(-np.inf)
        for c in range(w):
            valid = s[c, 3]
            ok = valid >= MIN_VALID
            if has_fov:
                ok = ok and fov[r, c]
            o = one if ok else zero
            scale = o / max(valid, VALID_FLOOR)
            px = s[c, 0] * scale
            py = s[c, 1] * scale
            weight = o * step_conf[r, c] if has_conf else o
            pc = s[c, 2] * weight
            s[c, 0], s[c, 1], s[c, 2], s[c, 3] = px, py, pc, o
            xr[c], yr[c], cr[c], okr[c] = px, py, pc, o
            low = min(low, py)
            high = max(high, py)
            col_low[c] = min(col_low[c], px)
            col_high[c] = max(col_high[c], px)
        rows[0, r] = low
        rows[1, r] = high

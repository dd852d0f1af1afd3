"""The top-k step of feature-affinity propagation on one block of queries, as one numba kernel.

Input: the block's similarities ``n_ctx x nq x ns`` to the rectangle of sources its windows reach
(one plain product per context frame, no mask). Per query the kernel reads only the sources of its
own square window in every frame, keeps the k largest affinities ``exp(cos / T)`` jointly over all
frames (ties with the k-th included, as the reference does), normalises them to sum to one and
mixes the sources' soft labels. Nothing dense is built: one pass over the window (the k largest
similarities and the few sources near them), then the affinities of the k-or-so near the k-th.
"""

from __future__ import annotations

import math

import numba
import numpy as np


def tie_tolerance(temperature: float) -> float:
    """Similarities closer than this to the k-th may round to the same float32 affinity.

    ``exp(x / T)`` as computed (division and exp each within ~1 ulp, 1.2e-7 relative, for
    ``|x| <= 1``) is strictly smaller for ``x`` than for ``y`` when ``(y - x) / T`` exceeds
    ``2.4e-7 + 1.2e-7 / T``; ``1e-6 * (1 + T)`` leaves a margin of 4x at least. Products computed
    in another order differ from the reference's by about 1e-7 as well: well inside it.
    """
    return 1e-6 * (1.0 + temperature)


@numba.njit(inline="always", cache=True, nogil=True)
def _insert(best: np.ndarray, topk: int, v: float) -> None:  # pragma: no cover (numba)
    """Insert ``v`` into the descending ``best[:topk]``, dropping its last entry."""
    j = topk - 1
    while j > 0 and best[j - 1] < v:
        best[j] = best[j - 1]
        j -= 1
    best[j] = v


@numba.njit(cache=True, nogil=True, error_model="numpy")
def mix_block(  # pragma: no cover (numba)
    sim: np.ndarray,
    queries: np.ndarray,
    grid_width: int,
    rect: tuple[int, int, int, int],
    radius: int,
    topk: int,
    temperature: float,
    tolerance: float,
    labels: np.ndarray,
    grid_size: int,
    out_labels: np.ndarray,
    out_sim: np.ndarray,
    scratch: np.ndarray,
    sources: np.ndarray,
) -> None:
    """Propagate onto one block of queries.

    sim: ``n_ctx x nq x ns`` float32, row-major over the rectangle ``rect = (ya, yb, xa, xb)``
    (grid rows ``ya:yb`` x columns ``xa:xb``) that holds every query's clipped window.
    queries: ``nq`` grid indices (``y * grid_width + x``). labels: ``(n_ctx * grid_size) x C``
    float32, frame-major. Writes row ``q`` of ``out_labels`` (``grid_size x C``) and ``out_sim``
    (mean similarity of the kept sources) for every query ``q`` of the block.
    scratch (``2 x n`` float32), sources (``n`` int64): room for ``n >= n_ctx * (2 * radius + 1) ** 2``
    sources.
    """
    n_ctx, nq = sim.shape[0], sim.shape[1]
    ya, yb, xa, xb = rect
    width = xb - xa
    n_classes = labels.shape[1]
    t = np.float32(temperature)
    values, affinities = scratch[0], scratch[1]
    best = np.empty(topk, np.float32)
    mix = np.empty(n_classes, np.float64)
    for i in range(nq):
        q = queries[i]
        qy, qx = q // grid_width, q % grid_width
        y0, y1 = max(qy - radius, ya), min(qy + radius + 1, yb)
        x0, x1 = max(qx - radius, xa), min(qx + radius + 1, xb)
        n_window = n_ctx * (y1 - y0) * (x1 - x0)
        # One pass: the k largest similarities so far (a sorted list of k) and every source that
        # may still tie with the final k-th (at least the running k-th less the tolerance: the
        # running k-th only rises, so none is missed; see tie_tolerance).
        best[:] = -np.inf
        n = 0
        for c in range(n_ctx):
            for y in range(y0, y1):
                row = (y - ya) * width - xa
                src = c * grid_size + y * grid_width
                for x in range(x0, x1):
                    v = sim[c, i, row + x]
                    if v >= best[topk - 1] - tolerance:
                        values[n] = v
                        sources[n] = src + x
                        n += 1
                        if v > best[topk - 1]:
                            _insert(best, topk, v)
        near = best[topk - 1] - tolerance if n_window > topk else -np.inf
        kept = 0
        for j in range(n):
            if values[j] >= near:
                values[kept] = values[j]
                sources[kept] = sources[j]
                kept += 1
        n = kept
        # the k-th largest affinity among them; fewer sources than k keep them all
        best[:] = -np.inf
        for j in range(n):
            a = np.float32(math.exp(values[j] / t))
            affinities[j] = a
            if a > best[topk - 1]:
                _insert(best, topk, a)
        kth = best[topk - 1] if n_window > topk else np.float32(0.0)
        # sums in float64: hundreds of exact ties (a uniform field of view) must not drift
        total = 0.0
        for j in range(n):
            if affinities[j] >= kth:
                total += affinities[j]
        mix[:] = 0.0
        mean_sim = 0.0
        for j in range(n):
            if affinities[j] >= kth:
                weight = affinities[j] / total
                mean_sim += weight * values[j]
                for ch in range(n_classes):
                    mix[ch] += weight * labels[sources[j], ch]
        for ch in range(n_classes):
            out_labels[q, ch] = mix[ch]
        out_sim[q] = mean_sim

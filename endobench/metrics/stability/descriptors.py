"""Shape-context descriptors for T: log-polar histograms of contour points, chi-square costs."""

from __future__ import annotations

import numpy as np

from endobench.metrics.stability._jit import njit

N_THETA_BINS = 12
N_R_BINS = 5
R_INNER = 1.0 / 8.0
R_OUTER = 2.0
#: The reference's epsilon for normalising histograms and the chi-square denominator.
HIST_EPS = 2.2204e-16

_TWO_PI = 2 * np.pi
#: numpy's pairwise summation works in blocks of 8 partial sums (``pairwise_sum`` in numpy).
_PAIRWISE_UNROLL = 8
_PAIRWISE_BLOCK = 128


@njit
def _offsets_kernel(pts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``dx[i, j] = x_j - x_i``, ``dy`` likewise and the distances, ``(n, n)`` float64 each."""
    n = len(pts)
    dx = np.empty((n, n))
    dy = np.empty((n, n))
    dist = np.empty((n, n))
    for i in range(n):
        for j in range(n):
            ddx = pts[j, 0] - pts[i, 0]
            ddy = pts[j, 1] - pts[i, 1]
            dx[i, j] = ddx
            dy[i, j] = ddy
            dist[i, j] = np.sqrt(ddx * ddx + ddy * ddy)
    return dx, dy, dist


@njit
def _histogram_kernel(
    dist: np.ndarray, theta: np.ndarray, mean_dist: float, edges: np.ndarray, bin_width: float
) -> np.ndarray:
    """Log-polar counts ``(n, n_theta * n_r)`` from distances and angles; see shape_context.

    The reference's angle wrap ``fmod(fmod(theta, 2 pi) + 2 pi, 2 pi)`` is computed as
    ``theta + 2 pi``, minus ``2 pi`` if that reaches ``2 pi``: for ``theta`` in ``[-pi, pi]``
    (arctan2's range) the inner fmod is the identity and the outer one an exact subtraction
    (Sterbenz), so the bits are the same.
    """
    n = dist.shape[0]
    n_bins = N_THETA_BINS * N_R_BINS
    e0, e1, e2, e3, e4 = edges[0], edges[1], edges[2], edges[3], edges[4]
    # One spare row: an angle bin of 12 would spill past the last row (as the reference's flat
    # bincount would); it cannot happen for finite points, and is reported if it ever does.
    flat = np.zeros((n + 1) * n_bins, dtype=np.int64)
    index = np.empty(n, dtype=np.int64)
    for i in range(n):
        for j in range(n):  # vectorised: bin index per point, < 0 beyond the outer ring
            r = dist[i, j] / mean_dist
            # number of edges above the distance: 5 for the nearest ring, 0 beyond the outer
            r_q = np.int64(r < e0) + np.int64(r < e1) + np.int64(r < e2)
            r_q += np.int64(r < e3) + np.int64(r < e4)
            t = theta[i, j] + _TWO_PI
            t = t - _TWO_PI if t >= _TWO_PI else t
            t_q = np.int64(np.floor(t / bin_width))
            index[j] = (r_q - 1) * N_THETA_BINS + t_q if r_q > 0 else -1
        row = i * n_bins
        for j in range(n):
            if index[j] >= 0:
                flat[row + index[j]] += 1
    if flat[n * n_bins :].any():
        raise ValueError("shape context: an angle bin fell outside [0, 12)")
    return flat[: n * n_bins].reshape(n, n_bins)


def shape_context(points: np.ndarray) -> np.ndarray:
    """Log-polar shape-context histograms of a point set.

    points: ``(n, 2)`` coordinates ``(x, y)``. For each point, every point of the set (itself
    included) is binned by absolute angle (12 bins over [0, 2 pi)) and by distance normalised by
    the mean pairwise distance into 5 bins with edges ``logspace(log10(1/8), log10(2), 5)``;
    points at normalised distance >= 2 are ignored. Returns ``(n, 60)`` int64 counts, column
    ``r_bin * 12 + theta_bin`` with ``r_bin`` 0 the outermost ring.
    """
    pts = np.ascontiguousarray(points, dtype=np.float64)
    dx, dy, dist = _offsets_kernel(pts)
    # numpy's mean (pairwise summation) and arctan2 (SIMD on some CPUs) fix the bits; numba's
    # own versions could differ in the last place.
    mean_dist = float(np.mean(dist))
    theta = np.arctan2(dy, dx)
    edges = np.logspace(np.log10(R_INNER), np.log10(R_OUTER), N_R_BINS)
    return _histogram_kernel(dist, theta, mean_dist, edges, _TWO_PI / N_THETA_BINS)


@njit
def _chi2_kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``0.5 * sum_k (a_ik - b_jk)^2 / (a_ik + b_jk + eps)`` for normalised rows ``a``, ``b``.

    Each entry is summed like numpy's ``np.sum`` over a contiguous axis of 8 <= K <= 128
    elements (``pairwise_sum``): 8 running partial sums over the full blocks of 8, combined as
    ``((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))``, then the rest added in order.
    Histograms are sparse: where ``a_ik == 0`` the term is ``b^2 / (b + eps)``, the same for
    every ``i``, so it is computed once per ``(k, j)``; divisions are only needed where
    ``a_ik > 0``. Each row ``i`` is computed for all ``j`` at once (vectorised over ``j``).
    """
    n1, k_bins = a.shape
    n2 = b.shape[0]
    full = k_bins - k_bins % _PAIRWISE_UNROLL
    bt = np.ascontiguousarray(b.T)  # (K, n2)
    zero_a = np.empty_like(bt)  # the term when a_ik == 0, computed by the same formula
    for k in range(k_bins):
        for j in range(n2):
            d = 0.0 - bt[k, j]
            zero_a[k, j] = d * d / (0.0 + bt[k, j] + HIST_EPS)
    out = np.empty((n1, n2))
    acc = np.empty((_PAIRWISE_UNROLL, n2))
    res = np.empty(n2)
    for i in range(n1):
        acc[:] = 0.0  # 0.0 + t == t, so starting from zero equals starting from the first term
        for k in range(k_bins):
            target = acc[k % _PAIRWISE_UNROLL] if k < full else res
            if k == full:
                for j in range(n2):
                    res[j] = ((acc[0, j] + acc[1, j]) + (acc[2, j] + acc[3, j])) + (
                        (acc[4, j] + acc[5, j]) + (acc[6, j] + acc[7, j])
                    )
            aik = a[i, k]
            if aik > 0:
                row = bt[k]
                for j in range(n2):
                    d = aik - row[j]
                    target[j] += d * d / (aik + row[j] + HIST_EPS)
            else:
                row = zero_a[k]
                for j in range(n2):
                    target[j] += row[j]
        if full == k_bins:
            for j in range(n2):
                res[j] = ((acc[0, j] + acc[1, j]) + (acc[2, j] + acc[3, j])) + (
                    (acc[4, j] + acc[5, j]) + (acc[6, j] + acc[7, j])
                )
        for j in range(n2):
            out[i, j] = 0.5 * res[j]
    return out


def chi2_cost_matrix(h1: np.ndarray, h2: np.ndarray) -> np.ndarray:
    """Chi-square cost between every pair of histograms.

    ``cost[i, j] = 0.5 * sum_k (a_ik - b_jk)^2 / (a_ik + b_jk + eps)`` with ``a``, ``b`` the
    L1-normalised rows of ``h1`` ``(n1, K)`` and ``h2`` ``(n2, K)``; float64 ``(n1, n2)``.
    """
    if not _PAIRWISE_UNROLL <= h1.shape[1] <= _PAIRWISE_BLOCK or h1.shape[1] != h2.shape[1]:
        raise ValueError(
            f"h1, h2: expected histograms with the same 8..128 bins, got {h1.shape} and {h2.shape}"
        )
    a = h1 / (h1.sum(axis=1, keepdims=True) + HIST_EPS)
    b = h2 / (h2.sum(axis=1, keepdims=True) + HIST_EPS)
    return _chi2_kernel(np.ascontiguousarray(a), np.ascontiguousarray(b))

"""DAVIS-2016 temporal stability T: shape-context matching cost between consecutive masks.

T compares the outer contour of an object in two consecutive predicted masks. Each contour is
described by shape-context histograms; the cheapest monotone alignment of the two point sequences
gives a matching cost, and T for a sequence is ``5.0 * nanmean`` of that cost over consecutive
pairs of interior frames (lower is more stable). Definitions, constants and edge cases follow
``docs/METRICS.md`` ("T"); the numbers reproduce the DAVIS 2016 toolkit's to 1e-9.

Pipeline for one mask (all pure functions below, usable on their own):

1. :func:`trace_contours` follows the boundary between foreground and background along pixel
   edges, so vertices lie on pixel corners. Work happens on a doubled lattice (corners at even,
   edge midpoints at odd coordinates). Where two foreground pixels touch only diagonally (a
   "4-junction") boundary pieces are stitched into closed curves by the reference's rule
   (never continue straight through a junction).
2. :func:`simplify_polyline` (Douglas-Peucker with a radial-distance pre-pass) runs twice:
   0.05 px, which drops collinear corners, then 1.5 px.
3. Curves are oriented (outer boundaries clockwise on screen, holes counter-clockwise), those
   with <= 3 vertices (closing vertex included) dropped, and :func:`longest_contour` keeps the
   one with the most vertices (ties: the later one in scan order).
4. :func:`upsample_contour` inserts points so no segment exceeds 3 px (float32, like the
   reference), :func:`shape_context` builds 12 x 5 log-polar histograms and
   :func:`chi2_cost_matrix` compares all point pairs.
5. :func:`min_cost_path` finds the monotone cheapest path through the cost grid; the grid is
   rolled so the path's cheapest node comes last, the path recomputed (:func:`matching_pairs`),
   and :func:`one_to_one_pairs` keeps the cheapest pair per index on each side. The matching
   cost is the mean cost of the kept pairs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: Douglas-Peucker tolerance of the reference, in pixels (it works in doubled units: 3.0).
SIMPLIFY_TOL_PX = 1.5
#: The reference first removes "straight" runs with this tolerance (0.1 doubled units).
PRESIMPLIFY_TOL_PX = 0.05
#: Longest allowed segment after resampling, in pixels.
MAX_SEGMENT_PX = 3.0
N_THETA_BINS = 12
N_R_BINS = 5
R_INNER = 1.0 / 8.0
R_OUTER = 2.0
#: The reference's epsilon for normalising histograms and the chi-square denominator.
HIST_EPS = 2.2204e-16
#: T reports the mean matching cost times this factor (DAVIS 2016 convention).
T_SCALE = 5.0
#: Elements per temporary block in :func:`chi2_cost_matrix` (keeps it in cache-sized pieces).
_CHI2_BLOCK_ELEMS = 1 << 18

# Moves on the doubled lattice: down, up, right, left (X = row, Y = column). The order is the
# reference's order of preference when a trace may continue in several directions.
_STEPS = ((1, 0), (-1, 0), (0, 1), (0, -1))


# --------------------------------------------------------------------------------------------
# 1. Contour tracing at pixel corners
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TracedContour:
    """One closed boundary curve.

    ``corners``: ``(n, 2)`` int64 array of doubled-lattice corner coordinates ``(X, Y)`` =
    ``(2 * row, 2 * col)``, first vertex repeated at the end. ``is_hole``: the curve bounds a
    background region enclosed by foreground.
    """

    corners: np.ndarray
    is_hole: bool


class _Lattice:
    """Boundary edges of a mask on the doubled lattice, with an offset of 1 for the border."""

    def __init__(self, mask: np.ndarray) -> None:
        rows, cols = mask.shape
        self.rows, self.cols = rows, cols
        # Positions are encoded as (X + 1) * stride + (Y + 1) so X, Y in [-1, 2 * size + 1].
        self.stride = 2 * cols + 3
        padded = np.zeros((rows + 2, cols + 2), dtype=bool)
        padded[1:-1, 1:-1] = mask
        vertical = padded[1:-1, :-1] != padded[1:-1, 1:]  # rows x (cols + 1)
        horizontal = padded[:-1, 1:-1] != padded[1:, 1:-1]  # (rows + 1) x cols
        vr, vc = np.nonzero(vertical)  # edge between column vc - 1 and vc: X = 2 vr + 1, Y = 2 vc
        hr, hc = np.nonzero(horizontal)  # edge between row hr - 1 and hr: X = 2 hr, Y = 2 hc + 1
        self.vertical_keys = (2 * vr + 2) * self.stride + (2 * vc + 1)
        horizontal_keys = (2 * hr + 1) * self.stride + (2 * hc + 2)
        self.is_edge = set(self.vertical_keys.tolist()) | set(horizontal_keys.tolist())
        # 4-junctions: corners where all four incident edges are boundary edges (2 x 2 checkerboard).
        a, b = padded[:-1, :-1], padded[:-1, 1:]
        c, d = padded[1:, :-1], padded[1:, 1:]
        checker = (a == d) & (b == c) & (a != b)
        checker[0, :] = checker[-1, :] = False  # junctions are searched inside the image only
        checker[:, 0] = checker[:, -1] = False
        jr, jc = np.nonzero(checker)  # corner (jr, jc) in pixel units, row-major order
        self.junction_keys = ((2 * jr + 1) * self.stride + (2 * jc + 1)).tolist()

    def decode(self, key: int) -> tuple[int, int]:
        return key // self.stride - 1, key % self.stride - 1


def _explore_piece(
    lattice: _Lattice,
    start_junction: int,
    first_edge: int,
    junction_id: dict[int, int],
    visited: set[int],
) -> tuple[list[int], int]:
    """Follow boundary edges from a junction until the next junction (reference's explore step).

    Returns the edge-midpoint keys of the piece in travel order and the id of the end junction.
    """
    stride = lattice.stride
    is_edge = lattice.is_edge
    piece: list[int] = []
    next_edge = first_edge
    corner = start_junction
    visited.add(start_junction)
    while True:
        edge = next_edge
        x_odd = (edge // stride - 1) % 2 == 1
        if x_odd:  # vertical edge: its ends are above and below
            end1, end2 = edge + stride, edge - stride
        else:  # horizontal edge: its ends are left and right
            end1, end2 = edge - 1, edge + 1
        if end1 not in visited:
            corner = end1
        elif end2 not in visited:
            corner = end2
        else:
            corner = end2 if end1 == corner else end1
        visited.add(edge)
        visited.add(corner)
        piece.append(edge)
        end_id = junction_id.get(corner, 0)
        if end_id > 0:
            return piece, end_id
        for dx, dy in _STEPS:
            candidate = corner + dx * stride + dy
            if candidate in is_edge and candidate not in visited:
                next_edge = candidate
                break
        else:  # pragma: no cover - a closed boundary always continues
            raise RuntimeError("contour tracing lost the boundary; please report this mask")


def _trace_pieces(lattice: _Lattice) -> tuple[list[tuple[int, int, list[int]]], list[int]]:
    """All boundary pieces ``(orig_junction_id, end_junction_id, edges)`` and junction positions."""
    stride = lattice.stride
    junction_pos: list[int] = list(lattice.junction_keys)
    junction_id = {key: i + 1 for i, key in enumerate(junction_pos)}
    visited: set[int] = set()
    pieces: list[tuple[int, int, list[int]]] = []
    # Pieces leaving real junctions, explored last-in first-out like the reference.
    to_explore = [
        (jid, key + dx * stride + dy)
        for jid, key in enumerate(junction_pos, start=1)
        for dx, dy in ((0, 1), (1, 0), (0, -1), (-1, 0))
    ]
    while to_explore:
        jid, edge = to_explore.pop()
        if edge in visited:
            continue
        edges, end_id = _explore_piece(lattice, junction_pos[jid - 1], edge, junction_id, visited)
        pieces.append((jid, end_id, edges))
    # Closed curves without a junction: start at the top corner of their first vertical edge in
    # raster order (an "artificial" junction, as in the reference).
    for edge in lattice.vertical_keys.tolist():
        if edge in visited:
            continue
        corner = edge - stride
        junction_pos.append(corner)
        jid = len(junction_pos)
        junction_id[corner] = jid
        edges, end_id = _explore_piece(lattice, corner, edge, junction_id, visited)
        pieces.append((jid, end_id, edges))
    return pieces, junction_pos


def _stitch_jordan_curves(
    pieces: list[tuple[int, int, list[int]]], n_junctions: int, stride: int
) -> list[tuple[int, list[int]]]:
    """Group pieces into closed curves ``(start_junction_id, edges)`` (reference's lines2jordan).

    The reference keeps the pieces still to explore in a hash map whose iteration starts at the
    most recently inserted junction id, i.e. the largest remaining one; that choice fixes which
    curve comes first and where each starts, so it is reproduced here.
    """
    remaining: dict[int, set[int]] = {jid: set() for jid in range(1, n_junctions + 1)}
    for index, (orig, end, _) in enumerate(pieces):
        remaining[orig].add(index)
        remaining[end].add(index)

    def other_end(index: int, junction: int) -> int:
        orig, end, _ = pieces[index]
        return end if junction == orig else orig

    def first_edge_from(index: int, junction: int) -> int:
        orig, _, edges = pieces[index]
        return edges[0] if orig == junction else edges[-1]

    def take(junction: int, index: int) -> None:
        remaining[junction].discard(index)
        if not remaining[junction]:
            del remaining[junction]

    curves: list[tuple[int, list[int]]] = []

    def close_cycle(cycle_junction: int, swept: list[tuple[int, int]], swept_set: set[int]) -> int:
        start = next(i for i, (junction, _) in enumerate(swept) if junction == cycle_junction)
        edges: list[int] = []
        for junction, index in swept[start:]:
            orig, end, piece_edges = pieces[index]
            edges.extend(piece_edges if orig == junction else piece_edges[::-1])
            swept_set.discard(junction)
        del swept[start:]
        curves.append((cycle_junction, edges))
        return swept[-1][1] if swept else -1

    while remaining:
        junction = max(remaining)
        index = min(remaining[junction])
        take(junction, index)
        end = other_end(index, junction)
        if end in remaining:
            take(end, index)
        swept: list[tuple[int, int]] = [(junction, index)]
        swept_set = {junction}
        next_junction = other_end(index, junction)
        if next_junction in swept_set:
            close_cycle(next_junction, swept, swept_set)
        while swept_set:
            junction = next_junction
            options = sorted(remaining[junction])
            choice = options[0]
            arriving = divmod(first_edge_from(index, junction), stride)
            leaving = divmod(first_edge_from(choice, junction), stride)
            # Never go straight through a junction: that would cross the other curve.
            if leaving[0] == arriving[0] or leaving[1] == arriving[1]:
                choice = options[1]
            index = choice
            take(junction, index)
            end = other_end(index, junction)
            if end in remaining:
                take(end, index)
            swept.append((junction, index))
            swept_set.add(junction)
            next_junction = end
            if next_junction in swept_set:
                index = close_cycle(next_junction, swept, swept_set)
    return curves


def trace_contours(mask: np.ndarray) -> list[TracedContour]:
    """Closed boundary curves of a binary mask, traced along pixel edges.

    mask: ``H x W`` bool (non-zero = foreground). Returns the curves in the reference's order
    (pieces are grouped from the last-found junction backwards), each as corner coordinates on the
    doubled lattice starting and ending at its start corner, in tracing order (not yet oriented).
    """
    mask = np.asarray(mask).astype(bool, copy=False)
    if mask.ndim != 2:
        raise ValueError(f"mask: expected a 2-D H x W array, got shape {mask.shape}")
    if not mask.any():
        return []
    lattice = _Lattice(mask)
    stride = lattice.stride
    pieces, junction_pos = _trace_pieces(lattice)
    curves = _stitch_jordan_curves(pieces, len(junction_pos), stride)
    result = []
    for start_id, edges in curves:
        mids = np.asarray(edges, dtype=np.int64)
        mx, my = mids // stride - 1, mids % stride - 1
        sx, sy = lattice.decode(junction_pos[start_id - 1])
        corners = _edges_to_corners(mx, my, sx, sy)
        result.append(TracedContour(corners=corners, is_hole=_encloses_background(corners, mask)))
    return result


def _edges_to_corners(mx: np.ndarray, my: np.ndarray, sx: int, sy: int) -> np.ndarray:
    """Corner sequence visited by a chain of edge midpoints starting at corner ``(sx, sy)``.

    Each edge has two ends at +-1 along its axis; the next corner is the end that is not the
    current one, i.e. ``corner_{k+1} = 2 * mid_k - corner_k``. The alternating sum is done with
    cumulative sums, so the whole chain is converted without a Python loop.
    """
    n = mx.size
    sign = np.where(np.arange(n) % 2 == 0, 1, -1)
    # corner_{k+1} = 2 mid_k - corner_k  =>  corner_{k+1} = 2 * sum_j (-1)^(k-j) mid_j + (-1)^(k+1) c_0
    acc_x = np.cumsum(sign * mx) * sign
    acc_y = np.cumsum(sign * my) * sign
    tail_sign = -sign  # (-1)^(k+1)
    cx = np.empty(n + 1, dtype=np.int64)
    cy = np.empty(n + 1, dtype=np.int64)
    cx[0], cy[0] = sx, sy
    cx[1:] = 2 * acc_x + tail_sign * sx
    cy[1:] = 2 * acc_y + tail_sign * sy
    if cx[-1] != sx or cy[-1] != sy:  # pragma: no cover - the chain is closed by construction
        raise RuntimeError("traced boundary curve does not close")
    return np.stack([cx, cy], axis=1)


def _encloses_background(corners: np.ndarray, mask: np.ndarray) -> bool:
    """Whether a closed corner curve is a hole boundary (foreground lies outside the curve)."""
    x = corners[:, 0].astype(np.float64)
    y = corners[:, 1].astype(np.float64)
    area2 = float(np.sum(x[:-1] * y[1:] - x[1:] * y[:-1]))  # > 0: counter-clockwise in (X, Y)
    # First edge of the curve and the pixel on its left in (X, Y) axes.
    (x0, y0), (x1, y1) = corners[0], corners[1]
    dx, dy = (x1 - x0) // 2, (y1 - y0) // 2
    # Pixel centre on the left of the travel direction: rotate (dx, dy) by +90 degrees.
    cx = (x0 + x1) // 2 + (-dy)
    cy = (y0 + y1) // 2 + dx
    row, col = (cx - 1) // 2, (cy - 1) // 2
    inside = 0 <= row < mask.shape[0] and 0 <= col < mask.shape[1] and bool(mask[row, col])
    left_is_interior = area2 > 0
    # Foreground on the interior side: an outer boundary; otherwise a hole.
    return inside != left_is_interior


# --------------------------------------------------------------------------------------------
# 2. Douglas-Peucker simplification (psimpl semantics)
# --------------------------------------------------------------------------------------------
def _segment_distance2(s1: np.ndarray, s2: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Squared distance of points ``(n, 2)`` to segment ``s1 s2`` as psimpl computes it.

    The projection fraction is a float32 ratio (as in psimpl); the result is float64.
    """
    v = s2 - s1
    w = pts - s1
    cw = w @ v
    cv = float(v @ v)
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = (cw.astype(np.float32) / np.float32(cv)).astype(np.float64)
    proj = s1[None, :] + frac[:, None] * v[None, :]
    d_proj = np.sum((pts - proj) ** 2, axis=1)
    d_s1 = np.sum((pts - s1) ** 2, axis=1)
    d_s2 = np.sum((pts - s2) ** 2, axis=1)
    return np.where(cw <= 0, d_s1, np.where(cv <= cw, d_s2, d_proj))


def _radial_distance(points: np.ndarray, tol: float) -> np.ndarray:
    """psimpl's radial-distance pre-pass: drop points closer than ``tol`` to the last kept one."""
    n = len(points)
    if n < 3:
        return points
    tol2 = tol * tol
    keep = [0]
    pts = points.tolist()
    kx, ky = pts[0]
    for i in range(1, n - 1):
        px, py = pts[i]
        if (kx - px) * (kx - px) + (ky - py) * (ky - py) < tol2:
            continue
        kx, ky = px, py
        keep.append(i)
    keep.append(n - 1)
    return points[keep]


def simplify_polyline(points: np.ndarray, tol: float) -> np.ndarray:
    """Douglas-Peucker simplification with psimpl's exact semantics.

    points: ``(n, 2)`` float64 polyline (first and last points always kept). A radial-distance
    pass first drops points within ``tol`` of the previous kept point; then the point farthest
    from the current segment (ties: the later point) is kept while its distance exceeds ``tol``.
    """
    points = np.asarray(points, dtype=np.float64)
    if len(points) < 3 or tol == 0:
        return points
    reduced = _radial_distance(points, tol)
    n = len(reduced)
    keys = np.zeros(n, dtype=bool)
    keys[0] = keys[-1] = True
    tol2 = tol * tol
    stack = [(0, n - 1)]
    while stack:
        first, last = stack.pop()
        if last - first < 2:
            continue
        d2 = _segment_distance2(reduced[first], reduced[last], reduced[first + 1 : last])
        # Ties go to the later point: take the last index of the maximum.
        local = len(d2) - 1 - int(np.argmax(d2[::-1]))
        if tol2 < d2[local]:
            index = first + 1 + local
            keys[index] = True
            stack.append((index, last))
            stack.append((first, index))
    return reduced[keys]


def _is_clockwise(corners: np.ndarray) -> bool:
    """The reference's orientation test on doubled coordinates (float32 accumulation)."""
    x = corners[:, 0]
    y = corners[:, 1]
    nxt = np.roll(np.arange(len(corners)), -1)
    terms = ((x[nxt] - x) * (y[nxt] + y)).astype(np.float32)
    return bool(np.cumsum(terms, dtype=np.float32)[-1] > 0)


def mask_to_polygons(mask: np.ndarray) -> list[np.ndarray]:
    """Simplified, oriented boundary polygons of a mask, as the DAVIS 2016 toolkit returns them.

    Returns a list of ``(n, 2)`` int64 arrays of pixel-corner coordinates ``(x=col, y=row)``,
    closed (first vertex repeated last), outer boundaries clockwise on screen and holes
    counter-clockwise; polygons with <= 3 vertices are dropped.
    """
    polygons = []
    for contour in trace_contours(mask):
        simplified = simplify_polyline(contour.corners.astype(np.float64), 2 * PRESIMPLIFY_TOL_PX)
        simplified = simplify_polyline(simplified, 2 * SIMPLIFY_TOL_PX)
        corners = simplified.astype(np.int64)
        if _is_clockwise(corners) == contour.is_hole:
            corners = corners[::-1]
        if len(corners) <= 3:
            continue
        polygons.append(np.ascontiguousarray((corners // 2)[:, ::-1]))
    return polygons


def longest_contour(polygons: Sequence[np.ndarray]) -> np.ndarray:
    """The polygon with the most vertices; ties go to the later one in scan order.

    ``polygons`` is in the reference's order, where scan order is reversed, so the first maximum
    is taken here.
    """
    if not polygons:
        raise ValueError("polygons: expected at least one polygon")
    lengths = [len(p) for p in polygons]
    return polygons[int(np.argmax(lengths))]


def upsample_contour(contour: np.ndarray, max_step: float = MAX_SEGMENT_PX) -> np.ndarray:
    """Insert points so that no segment is longer than ``max_step`` pixels.

    contour: ``(n, 2)`` vertices. A segment of length ``L > max_step`` is split into
    ``ceil(L / max_step)`` equal parts by accumulating the step vector from the start vertex.
    Arithmetic is float32 like the reference, so the points match it bit for bit. Returns an
    ``(m, 2)`` float32 array including all original vertices.
    """
    pts = np.asarray(contour, dtype=np.float32)
    if len(pts) < 2:
        return pts.copy()
    diff = pts[1:] - pts[:-1]
    length = np.sqrt(diff[:, 0] * diff[:, 0] + diff[:, 1] * diff[:, 1])
    step = np.float32(max_step)
    n_seg = np.where(length > step, np.ceil(length / step), np.float32(1)).astype(np.int64)
    # Original vertices are copied; a long segment gets start + vec, start + 2 vec, ... added
    # by sequential float32 accumulation (cumsum is sequential), as the reference does.
    pieces = [pts[:1]]
    prev_end = 0
    for i in np.nonzero(n_seg > 1)[0].tolist():
        pieces.append(pts[prev_end + 1 : i + 1])
        vec = diff[i] / np.float32(n_seg[i])
        k = int(n_seg[i]) - 1
        steps = np.broadcast_to(vec, (k, 2))
        acc = np.cumsum(np.vstack([pts[i : i + 1], steps]), axis=0, dtype=np.float32)[1:]
        pieces.append(acc)
        prev_end = i
    pieces.append(pts[prev_end + 1 :])
    return np.concatenate(pieces, axis=0)


# --------------------------------------------------------------------------------------------
# 3. Shape context and matching
# --------------------------------------------------------------------------------------------
def shape_context(points: np.ndarray) -> np.ndarray:
    """Log-polar shape-context histograms of a point set.

    points: ``(n, 2)`` coordinates ``(x, y)``. For each point, every point of the set (itself
    included) is binned by absolute angle (12 bins over [0, 2 pi)) and by distance normalised by
    the mean pairwise distance into 5 bins with edges ``logspace(log10(1/8), log10(2), 5)``;
    points at normalised distance >= 2 are ignored. Returns ``(n, 60)`` int64 counts, column
    ``r_bin * 12 + theta_bin`` with ``r_bin`` 0 the outermost ring.
    """
    pts = np.asarray(points, dtype=np.float64)
    n = len(pts)
    dx = pts[None, :, 0] - pts[:, None, 0]  # dx[i, j] = x_j - x_i
    dy = pts[None, :, 1] - pts[:, None, 1]
    dist = np.sqrt(dx * dx + dy * dy)
    mean_dist = np.mean(dist)
    r_norm = dist / mean_dist
    edges = np.logspace(np.log10(R_INNER), np.log10(R_OUTER), N_R_BINS)
    # Number of edges above the distance: 5 for the nearest ring, 0 beyond the outer edge.
    r_q = np.zeros((n, n), dtype=np.int64)
    for edge in edges:
        r_q += r_norm < edge
    theta = np.arctan2(dy, dx)
    two_pi = 2 * np.pi
    theta = np.fmod(np.fmod(theta, two_pi) + two_pi, two_pi)
    theta_q = np.floor(theta / (two_pi / N_THETA_BINS)).astype(np.int64)
    valid = r_q > 0
    rows = np.nonzero(valid)[0]
    flat = rows * (N_THETA_BINS * N_R_BINS) + (r_q[valid] - 1) * N_THETA_BINS + theta_q[valid]
    counts = np.bincount(flat, minlength=n * N_THETA_BINS * N_R_BINS)
    return counts.reshape(n, N_THETA_BINS * N_R_BINS)


def chi2_cost_matrix(h1: np.ndarray, h2: np.ndarray) -> np.ndarray:
    """Chi-square cost between every pair of histograms.

    ``cost[i, j] = 0.5 * sum_k (a_ik - b_jk)^2 / (a_ik + b_jk + eps)`` with ``a``, ``b`` the
    L1-normalised rows of ``h1`` ``(n1, K)`` and ``h2`` ``(n2, K)``; float64 ``(n1, n2)``.
    """
    a = h1 / (h1.sum(axis=1, keepdims=True) + HIST_EPS)
    b = h2 / (h2.sum(axis=1, keepdims=True) + HIST_EPS)
    out = np.empty((len(a), len(b)), dtype=np.float64)
    # Blocks of rows keep the n1 x n2 x K temporaries small; each entry is still summed over its
    # K contiguous bins exactly like the reference's single big array, so the bits agree.
    block = max(1, _CHI2_BLOCK_ELEMS // max(1, len(b) * a.shape[1]))
    for start in range(0, len(a), block):
        rows = a[start : start + block, None, :]
        diff = rows - b[None, :, :]
        diff *= diff
        diff /= rows + b[None, :, :] + HIST_EPS
        out[start : start + block] = 0.5 * np.sum(diff, axis=2)
    return out


def path_distances(cost: np.ndarray) -> np.ndarray:
    """Cheapest monotone-path cost from ``(0, 0)`` to every node (start node free).

    ``dist[i, j] = cost[i, j] + min(dist[i-1, j], dist[i, j-1], dist[i-1, j-1])``, evaluated in
    exactly this order so the values equal the reference's Dijkstra distances bit for bit. Cells on
    one anti-diagonal are independent, so the grid is skewed into anti-diagonal rows and each is
    computed with a few vectorised operations.
    """
    n1, n2 = cost.shape
    n_diag = n1 + n2 - 1
    # skew[k, i] = cost[i, k - i]; cells outside the grid are +inf so they never win a min.
    skew = np.full((n_diag, n1 + 1), np.inf)
    rows = np.arange(n1)
    for_k = rows[:, None] + np.arange(n2)[None, :]
    skew[for_k, rows[:, None] + 1] = cost
    dist = np.full((n_diag, n1 + 1), np.inf)
    dist[0, 1] = 0.0
    best = np.empty(n1, dtype=np.float64)
    for k in range(1, n_diag):
        prev = dist[k - 1]
        # up (i-1, j) sits at prev[i - 1 + 1], left (i, j-1) at prev[i + 1]
        np.minimum(prev[:-1], prev[1:], out=best)
        if k >= 2:
            np.minimum(best, dist[k - 2, :-1], out=best)  # diagonal (i-1, j-1)
        np.add(skew[k, 1:], best, out=dist[k, 1:])
    return dist[for_k, rows[:, None] + 1]


def min_cost_path(cost: np.ndarray, exact_ties: bool = True) -> tuple[np.ndarray, int, int]:
    """Cheapest monotone path from ``(0, 0)`` to ``(n1 - 1, n2 - 1)`` through a cost grid.

    Moves go right, down or diagonally; a path's cost is the sum of the costs of the nodes it
    enters (the start node is free). Returns the path as ``(m, 2)`` int64 ``(i, j)`` pairs from the
    end back to the start, and the node of the path (start excluded) with the lowest cost (ties:
    the one nearest the end).

    Equal-cost alternatives do occur (a closed contour repeats its first point, so two grid rows
    or columns are identical). The reference resolves them by the order in which Boost's Dijkstra
    (4-ary heap) settles nodes; with ``exact_ties`` such paths are recomputed with
    :func:`boost_dijkstra_path`, which replays that order (slow, only when a tie is met).
    Otherwise ties prefer the diagonal, then the move from above.
    """
    dist = path_distances(cost)
    path, tied = _backtrack(dist)
    if tied and exact_ties:
        path = boost_dijkstra_path(cost)
    on_path = path[:-1]
    values = cost[on_path[:, 0], on_path[:, 1]]
    best = int(np.argmin(values)) if len(values) else 0
    if not len(values):
        return path, 0, 0
    return path, int(on_path[best, 0]), int(on_path[best, 1])


def _backtrack(dist: np.ndarray) -> tuple[np.ndarray, bool]:
    """Follow cheapest predecessors from the last node; also report whether any choice was tied."""
    n1, n2 = dist.shape
    d = dist.tolist()
    i, j = n1 - 1, n2 - 1
    path = [(i, j)]
    tied = False
    while i > 0 or j > 0:
        if i > 0 and j > 0:
            diag, up, left = d[i - 1][j - 1], d[i - 1][j], d[i][j - 1]
            low = min(diag, up, left)
            tied = tied or (diag == low) + (up == low) + (left == low) > 1
            if diag == low:
                i, j = i - 1, j - 1
            elif up == low:
                i -= 1
            else:
                j -= 1
        elif i > 0:
            i -= 1
        else:
            j -= 1
        path.append((i, j))
    return np.asarray(path, dtype=np.int64), tied


def boost_dijkstra_path(cost: np.ndarray) -> np.ndarray:
    """The path the reference's Boost Dijkstra returns, equal-cost ties included.

    Replays Boost's ``dijkstra_shortest_paths`` on the grid graph (out-edges of node ``(i, j)`` in
    the order right, down, diagonal; a 4-ary indirect heap with strict comparisons; predecessors
    change only on a strict improvement). Pure Python, a few seconds for a 600 x 600 grid, so it is
    only used when the fast path finds a tie. Returns ``(m, 2)`` pairs from the end to the start.
    """
    n1, n2 = cost.shape
    c = cost.ravel().tolist()
    n = n1 * n2
    inf = float("inf")
    dist = [inf] * n
    pred = list(range(n))
    state = bytearray(n)  # 0 unseen, 1 in heap, 2 settled
    where = [-1] * n
    heap: list[int] = []

    def sift_up(index: int) -> None:
        node = heap[index]
        node_dist = dist[node]
        while index > 0:
            parent = (index - 1) >> 2
            parent_node = heap[parent]
            if node_dist < dist[parent_node]:
                heap[index] = parent_node
                where[parent_node] = index
                index = parent
            else:
                break
        heap[index] = node
        where[node] = index

    def sift_down() -> None:
        size = len(heap)
        index = 0
        node = heap[0]
        node_dist = dist[node]
        while True:
            child = 4 * index + 1
            if child >= size:
                break
            best, best_dist = child, dist[heap[child]]
            for other in range(child + 1, min(child + 4, size)):
                other_dist = dist[heap[other]]
                if other_dist < best_dist:
                    best, best_dist = other, other_dist
            if best_dist < node_dist:
                moved = heap[best]
                heap[index] = moved
                where[moved] = index
                index = best
            else:
                break
        heap[index] = node
        where[node] = index

    dist[0] = 0.0
    state[0] = 1
    heap.append(0)
    where[0] = 0
    while heap:
        u = heap[0]
        last = heap.pop()
        if heap:
            heap[0] = last
            where[last] = 0
            sift_down()
        row, col = divmod(u, n2)
        du = dist[u]
        targets = []
        if col + 1 < n2:
            targets.append(u + 1)
        if row + 1 < n1:
            targets.append(u + n2)
            if col + 1 < n2:
                targets.append(u + n2 + 1)
        for v in targets:
            candidate = du + c[v]
            if state[v] == 0:
                dist[v] = candidate
                pred[v] = u
                state[v] = 1
                heap.append(v)
                sift_up(len(heap) - 1)
            elif state[v] == 1 and candidate < dist[v]:
                dist[v] = candidate
                pred[v] = u
                sift_up(where[v])
        state[u] = 2
    node = n - 1
    path = [node]
    while node != 0:
        node = pred[node]
        path.append(node)
    return np.asarray([divmod(v, n2) for v in path], dtype=np.int64)


def one_to_one_pairs(pairs: np.ndarray, cost: np.ndarray) -> np.ndarray:
    """Keep, for each index on the left and then on the right, its cheapest pair (first on ties)."""
    pairs = _cheapest_per_index(pairs, cost, side=0)
    return _cheapest_per_index(pairs, cost, side=1)


def _cheapest_per_index(pairs: np.ndarray, cost: np.ndarray, side: int) -> np.ndarray:
    values = cost[pairs[:, 0], pairs[:, 1]]
    # Stable sort by (index, cost, original position) then keep the first row of each index.
    order = np.lexsort((np.arange(len(pairs)), values, pairs[:, side]))
    sorted_idx = pairs[order, side]
    first = np.ones(len(order), dtype=bool)
    first[1:] = sorted_idx[1:] != sorted_idx[:-1]
    return pairs[order[first]]


def matching_pairs(cost: np.ndarray, exact_ties: bool = True) -> np.ndarray:
    """Monotone matching of two closed contours' points, aligned at the cheapest node.

    The min-cost path is computed, the grid rolled so that its cheapest node becomes the last
    row/column, the path recomputed and mapped back; returns ``(m, 2)`` pairs ``(i, j)``.
    """
    _, min_i, min_j = min_cost_path(cost, exact_ties)
    n1, n2 = cost.shape
    rolled = np.roll(np.roll(cost, -(min_j + 1), axis=1), -(min_i + 1), axis=0)
    path, _, _ = min_cost_path(rolled, exact_ties)
    path = path.copy()
    path[:, 0] = (path[:, 0] + min_i + 1) % n1
    path[:, 1] = (path[:, 1] + min_j + 1) % n2
    return path


def contour_descriptor(mask: np.ndarray) -> np.ndarray | None:
    """Shape-context histograms of a mask's longest contour, or None when it has no contour."""
    polygons = mask_to_polygons(mask)
    if not polygons:
        return None
    return shape_context(upsample_contour(longest_contour(polygons)))


def descriptor_matching_cost(
    h1: np.ndarray | None, h2: np.ndarray | None, exact_ties: bool = True
) -> float:
    """Mean chi-square cost of the one-to-one matched pairs; NaN if either side has no contour."""
    if h1 is None or h2 is None:
        return float("nan")
    cost = chi2_cost_matrix(h1, h2)
    pairs = one_to_one_pairs(matching_pairs(cost, exact_ties), cost)
    return float(np.average(cost[pairs[:, 0], pairs[:, 1]]))


def temporal_stability_pairs(masks: Sequence[np.ndarray], exact_ties: bool = True) -> np.ndarray:
    """Per-pair T values ``5 * cost(mask_t, mask_t+1)`` for ``t = 1 .. N - 3``.

    masks: ``N`` binary ``H x W`` masks of one object. Only interior frames ``1 .. N - 2`` take
    part (the reference skips the first and last frame). NaN where either mask has no contour.
    Returns a float64 array of length ``max(N - 3, 0)``. ``exact_ties``: see
    :func:`min_cost_path` (False trades bit-exactness on tied paths for speed).
    """
    n = len(masks)
    if n < 4:
        return np.zeros(0, dtype=np.float64)
    descriptors = [contour_descriptor(np.asarray(masks[t]) > 0) for t in range(1, n - 1)]
    return np.array(
        [
            T_SCALE * descriptor_matching_cost(a, b, exact_ties)
            for a, b in zip(descriptors[:-1], descriptors[1:], strict=True)
        ],
        dtype=np.float64,
    )


def temporal_stability_t(masks: Sequence[np.ndarray], exact_ties: bool = True) -> float:
    """DAVIS-2016 T of one object: nanmean of :func:`temporal_stability_pairs` (NaN if none)."""
    values = temporal_stability_pairs(masks, exact_ties)
    if values.size == 0 or np.all(np.isnan(values)):
        return float("nan")
    return float(np.nanmean(values))

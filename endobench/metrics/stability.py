"""DAVIS-2016 temporal stability T: shape-context matching cost between consecutive masks.

T compares the outer contour of an object in two consecutive predicted masks. Each contour is
described by shape-context histograms; the cheapest monotone alignment of the two point sequences
gives a matching cost, and T for a sequence is ``5.0 * nanmean`` of that cost over consecutive
pairs of interior frames (lower is more stable). Definitions, constants and edge cases follow
``docs/METRICS.md`` ("T"); the numbers reproduce the DAVIS 2016 toolkit's to 1e-9, equal-cost
path ties included.

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

The loops run as numba kernels (``_*_kernel``; compiled on first use and cached on disk). They
repeat the reference's floating-point operations in the same order and precision (float32 where
it uses float32, numpy's pairwise summation where it sums with numpy), so the numbers are equal
bit for bit, not just close. Reductions whose order numba cannot reproduce (``np.mean`` of the
distance matrix, ``np.arctan2``) stay in numpy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numba
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

# Flags of a doubled-lattice position in the tracer's state array.
_EDGE = np.uint8(1)
_VISITED = np.uint8(2)
_TWO_PI = 2 * np.pi
#: numpy's pairwise summation works in blocks of 8 partial sums (``pairwise_sum`` in numpy).
_PAIRWISE_UNROLL = 8
_PAIRWISE_BLOCK = 128

# error_model="numpy": IEEE division (no zero checks), which lets the loops vectorise.
_njit = numba.njit(cache=True, nogil=True, error_model="numpy")


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


@_njit
def _lattice_kernel(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Boundary edges of a mask on the doubled lattice (offset 1 for the border).

    Positions are encoded as ``(X + 1) * stride + (Y + 1)`` with ``stride = 2 * cols + 3``.
    Returns the state array (``_EDGE`` set on boundary edge midpoints), the vertical edges' keys
    in raster order, the 4-junction corners' keys (all four incident edges are boundary edges,
    i.e. a 2 x 2 checkerboard) in raster order, and the number of boundary edges.
    """
    rows, cols = mask.shape
    stride = 2 * cols + 3
    state = np.zeros((2 * rows + 3) * stride, dtype=np.uint8)
    vertical = np.empty(rows * (cols + 1), dtype=np.int64)
    n_vertical = 0
    n_edges = 0
    for r in range(rows):  # edge between columns c - 1 and c: X = 2 r + 1, Y = 2 c
        left = False
        for c in range(cols + 1):
            right = c < cols and mask[r, c]
            if right != left:
                key = (2 * r + 2) * stride + 2 * c + 1
                state[key] = _EDGE
                vertical[n_vertical] = key
                n_vertical += 1
            left = right
    n_edges += n_vertical
    for r in range(rows + 1):  # edge between rows r - 1 and r: X = 2 r, Y = 2 c + 1
        for c in range(cols):
            above = r > 0 and mask[r - 1, c]
            below = r < rows and mask[r, c]
            if above != below:
                state[(2 * r + 1) * stride + 2 * c + 2] = _EDGE
                n_edges += 1
    n_junctions = 0
    junctions = np.empty(max(rows - 1, 0) * max(cols - 1, 0), dtype=np.int64)
    for jr in range(1, rows):  # corner (jr, jc) between pixels (jr - 1 .. jr, jc - 1 .. jc)
        for jc in range(1, cols):
            a, b = mask[jr - 1, jc - 1], mask[jr - 1, jc]
            c, d = mask[jr, jc - 1], mask[jr, jc]
            if a == d and b == c and a != b:
                junctions[n_junctions] = (2 * jr + 1) * stride + 2 * jc + 1
                n_junctions += 1
    return state, vertical[:n_vertical], junctions[:n_junctions], n_edges


@_njit
def _explore_piece_kernel(
    state: np.ndarray,
    junction_id: np.ndarray,
    stride: int,
    start_junction: int,
    first_edge: int,
    out: np.ndarray,
    n_out: int,
) -> tuple[int, int]:
    """Follow boundary edges from a junction until the next junction (reference's explore step).

    Appends the edge-midpoint keys of the piece in travel order to ``out`` from ``n_out`` on;
    returns the new fill count and the id of the end junction. Moves are tried in the
    reference's order of preference: down, up, right, left (X = row, Y = column).
    """
    steps = (stride, -stride, 1, -1)
    next_edge = first_edge
    corner = start_junction
    state[start_junction] |= _VISITED
    while True:
        edge = next_edge
        if (edge // stride - 1) % 2 == 1:  # vertical edge: its ends are above and below
            end1, end2 = edge + stride, edge - stride
        else:  # horizontal edge: its ends are left and right
            end1, end2 = edge - 1, edge + 1
        if not state[end1] & _VISITED:
            corner = end1
        elif not state[end2] & _VISITED:
            corner = end2
        else:
            corner = end2 if end1 == corner else end1
        state[edge] |= _VISITED
        state[corner] |= _VISITED
        out[n_out] = edge
        n_out += 1
        end_id = junction_id[corner]
        if end_id > 0:
            return n_out, end_id
        found = False
        for step in steps:
            candidate = corner + step
            if state[candidate] == _EDGE:  # a boundary edge not visited yet
                next_edge = candidate
                found = True
                break
        if not found:
            raise RuntimeError("contour tracing lost the boundary; please report this mask")


@_njit
def _trace_pieces_kernel(
    state: np.ndarray, vertical: np.ndarray, junctions: np.ndarray, n_edges: int, stride: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """All boundary pieces and junction positions.

    Returns ``(edges, bounds, orig, end, junction_pos)``: piece ``k`` is
    ``edges[bounds[k]:bounds[k + 1]]`` (midpoint keys in travel order) from junction id
    ``orig[k]`` to ``end[k]`` (ids are 1-based indices into ``junction_pos``).
    """
    n_real = len(junctions)
    junction_pos = np.empty(n_real + len(vertical), dtype=np.int64)
    junction_id = np.zeros(len(state), dtype=np.int32)
    for k in range(n_real):
        junction_pos[k] = junctions[k]
        junction_id[junctions[k]] = k + 1
    n_junctions = n_real
    edges = np.empty(n_edges, dtype=np.int64)
    bounds = np.zeros(n_edges + 1, dtype=np.int64)
    orig = np.empty(n_edges, dtype=np.int64)
    end = np.empty(n_edges, dtype=np.int64)
    n_out = 0
    n_pieces = 0
    # Pieces leaving real junctions (right, down, left, up from each), explored last-in
    # first-out like the reference.
    steps = (1, stride, -1, -stride)
    for index in range(4 * n_real - 1, -1, -1):
        jid = index // 4 + 1
        edge = junction_pos[jid - 1] + steps[index % 4]
        if state[edge] & _VISITED:
            continue
        n_out, end_id = _explore_piece_kernel(
            state, junction_id, stride, junction_pos[jid - 1], edge, edges, n_out
        )
        orig[n_pieces], end[n_pieces] = jid, end_id
        n_pieces += 1
        bounds[n_pieces] = n_out
    # Closed curves without a junction: start at the top corner of their first vertical edge in
    # raster order (an "artificial" junction, as in the reference).
    for edge in vertical:
        if state[edge] & _VISITED:
            continue
        corner = edge - stride
        junction_pos[n_junctions] = corner
        n_junctions += 1
        junction_id[corner] = n_junctions
        n_out, end_id = _explore_piece_kernel(
            state, junction_id, stride, corner, edge, edges, n_out
        )
        orig[n_pieces], end[n_pieces] = n_junctions, end_id
        n_pieces += 1
        bounds[n_pieces] = n_out
    return (
        edges[:n_out],
        bounds[: n_pieces + 1],
        orig[:n_pieces],
        end[:n_pieces],
        junction_pos[:n_junctions],
    )


def _stitch_jordan_curves(
    pieces: list[tuple[int, int, np.ndarray]], n_junctions: int, stride: int
) -> list[tuple[int, np.ndarray]]:
    """Group pieces into closed curves ``(start_junction_id, edges)`` (reference's lines2jordan).

    The reference keeps the pieces still to explore in a hash map whose iteration starts at the
    most recently inserted junction id, i.e. the largest remaining one; that choice fixes which
    curve comes first and where each starts, so it is reproduced here. Works on whole pieces
    (few), so it stays in Python.
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
        return int(edges[0] if orig == junction else edges[-1])

    def take(junction: int, index: int) -> None:
        remaining[junction].discard(index)
        if not remaining[junction]:
            del remaining[junction]

    curves: list[tuple[int, np.ndarray]] = []

    def close_cycle(cycle_junction: int, swept: list[tuple[int, int]], swept_set: set[int]) -> int:
        start = next(i for i, (junction, _) in enumerate(swept) if junction == cycle_junction)
        parts: list[np.ndarray] = []
        for junction, index in swept[start:]:
            orig, _, piece_edges = pieces[index]
            parts.append(piece_edges if orig == junction else piece_edges[::-1])
            swept_set.discard(junction)
        del swept[start:]
        curves.append((cycle_junction, np.concatenate(parts)))
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
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask: expected a 2-D H x W array, got shape {mask.shape}")
    mask = np.ascontiguousarray(mask.astype(bool, copy=False))
    if not mask.any():
        return []
    stride = 2 * mask.shape[1] + 3
    state, vertical, junctions, n_edges = _lattice_kernel(mask)
    edges, bounds, orig, end, junction_pos = _trace_pieces_kernel(
        state, vertical, junctions, n_edges, stride
    )
    pieces = [
        (int(orig[k]), int(end[k]), edges[bounds[k] : bounds[k + 1]]) for k in range(len(orig))
    ]
    result = []
    for start_id, curve_edges in _stitch_jordan_curves(pieces, len(junction_pos), stride):
        corners = _edges_to_corners_kernel(curve_edges, stride, int(junction_pos[start_id - 1]))
        result.append(TracedContour(corners=corners, is_hole=_encloses_background(corners, mask)))
    return result


@_njit
def _edges_to_corners_kernel(mids: np.ndarray, stride: int, start: int) -> np.ndarray:
    """Corner sequence ``(n + 1, 2)`` visited by a chain of edge midpoints from corner ``start``.

    Each edge has two ends at +-1 along its axis; the next corner is the end that is not the
    current one, i.e. ``corner_{k+1} = 2 * mid_k - corner_k``.
    """
    n = len(mids)
    out = np.empty((n + 1, 2), dtype=np.int64)
    cx, cy = start // stride - 1, start % stride - 1
    out[0, 0], out[0, 1] = cx, cy
    for k in range(n):
        cx = 2 * (mids[k] // stride - 1) - cx
        cy = 2 * (mids[k] % stride - 1) - cy
        out[k + 1, 0], out[k + 1, 1] = cx, cy
    if cx != out[0, 0] or cy != out[0, 1]:
        raise RuntimeError("traced boundary curve does not close")
    return out


def _encloses_background(corners: np.ndarray, mask: np.ndarray) -> bool:
    """Whether a closed corner curve is a hole boundary (foreground lies outside the curve)."""
    x = corners[:, 0].astype(np.float64)
    y = corners[:, 1].astype(np.float64)
    area2 = float(np.sum(x[:-1] * y[1:] - x[1:] * y[:-1]))  # > 0: counter-clockwise in (X, Y)
    # First edge of the curve and the pixel on its left in (X, Y) axes.
    (x0, y0), (x1, y1) = corners[0].tolist(), corners[1].tolist()
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
@_njit
def _simplify_kernel(points: np.ndarray, tol: float) -> np.ndarray:
    """psimpl's radial-distance pass then Douglas-Peucker on ``(n, 2)`` float64 points (n >= 3)."""
    n = len(points)
    tol2 = tol * tol
    # Radial distance: drop points closer than tol to the last kept one (ends always kept).
    keep = np.empty(n, dtype=np.int64)
    keep[0] = 0
    n_keep = 1
    kx, ky = points[0, 0], points[0, 1]
    for i in range(1, n - 1):
        px, py = points[i, 0], points[i, 1]
        if (kx - px) * (kx - px) + (ky - py) * (ky - py) < tol2:
            continue
        kx, ky = px, py
        keep[n_keep] = i
        n_keep += 1
    keep[n_keep] = n - 1
    n_keep += 1
    reduced = points[keep[:n_keep]]
    keys = np.zeros(n_keep, dtype=np.bool_)
    keys[0] = keys[n_keep - 1] = True
    stack = np.empty((n_keep + 1, 2), dtype=np.int64)
    stack[0, 0], stack[0, 1] = 0, n_keep - 1
    top = 1
    while top > 0:
        top -= 1
        first, last = stack[top, 0], stack[top, 1]
        if last - first < 2:
            continue
        s1x, s1y = reduced[first, 0], reduced[first, 1]
        s2x, s2y = reduced[last, 0], reduced[last, 1]
        vx, vy = s2x - s1x, s2y - s1y
        cv = vx * vx + vy * vy
        best = -1.0
        index = first + 1
        for k in range(first + 1, last):
            px, py = reduced[k, 0], reduced[k, 1]
            wx, wy = px - s1x, py - s1y
            cw = wx * vx + wy * vy
            if cw <= 0:
                d2 = (px - s1x) ** 2 + (py - s1y) ** 2
            elif cv <= cw:
                d2 = (px - s2x) ** 2 + (py - s2y) ** 2
            else:
                # psimpl divides in float32 here; the rest is float64.
                frac = np.float64(np.float32(cw) / np.float32(cv))
                d2 = (px - (s1x + frac * vx)) ** 2 + (py - (s1y + frac * vy)) ** 2
            if d2 >= best:  # ties go to the later point
                best = d2
                index = k
        if tol2 < best:
            keys[index] = True
            stack[top, 0], stack[top, 1] = index, last
            stack[top + 1, 0], stack[top + 1, 1] = first, index
            top += 2
    return reduced[keys]


def simplify_polyline(points: np.ndarray, tol: float) -> np.ndarray:
    """Douglas-Peucker simplification with psimpl's exact semantics.

    points: ``(n, 2)`` float64 polyline (first and last points always kept). A radial-distance
    pass first drops points within ``tol`` of the previous kept point; then the point farthest
    from the current segment (ties: the later point) is kept while its distance exceeds ``tol``.
    """
    points = np.ascontiguousarray(points, dtype=np.float64)
    if len(points) < 3 or tol == 0:
        return points
    return _simplify_kernel(points, float(tol))


@_njit
def _is_clockwise(corners: np.ndarray) -> bool:
    """The reference's orientation test on doubled coordinates (float32 accumulation)."""
    n = len(corners)
    acc = np.float32(0.0)
    for i in range(n):
        j = i + 1 if i + 1 < n else 0
        term = (corners[j, 0] - corners[i, 0]) * (corners[j, 1] + corners[i, 1])
        acc = acc + np.float32(term)
    return acc > 0


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


@_njit
def _upsample_kernel(pts: np.ndarray, step: np.float32) -> np.ndarray:
    """float32 resampling of ``(n, 2)`` float32 vertices; see :func:`upsample_contour`."""
    n = len(pts)
    counts = np.ones(n - 1, dtype=np.int64)
    total = 1
    for i in range(n - 1):
        dx = pts[i + 1, 0] - pts[i, 0]
        dy = pts[i + 1, 1] - pts[i, 1]
        length = np.sqrt(dx * dx + dy * dy)
        if length > step:
            counts[i] = int(np.ceil(length / step))
        total += counts[i]
    out = np.empty((total, 2), dtype=np.float32)
    out[0, 0], out[0, 1] = pts[0, 0], pts[0, 1]
    k = 1
    for i in range(n - 1):
        m = counts[i]
        if m > 1:
            # start + vec, start + 2 vec, ... by sequential float32 accumulation.
            vx = (pts[i + 1, 0] - pts[i, 0]) / np.float32(m)
            vy = (pts[i + 1, 1] - pts[i, 1]) / np.float32(m)
            ax, ay = pts[i, 0], pts[i, 1]
            for _ in range(m - 1):
                ax = ax + vx
                ay = ay + vy
                out[k, 0], out[k, 1] = ax, ay
                k += 1
        out[k, 0], out[k, 1] = pts[i + 1, 0], pts[i + 1, 1]
        k += 1
    return out


def upsample_contour(contour: np.ndarray, max_step: float = MAX_SEGMENT_PX) -> np.ndarray:
    """Insert points so that no segment is longer than ``max_step`` pixels.

    contour: ``(n, 2)`` vertices. A segment of length ``L > max_step`` is split into
    ``ceil(L / max_step)`` equal parts by accumulating the step vector from the start vertex.
    Arithmetic is float32 like the reference, so the points match it bit for bit. Returns an
    ``(m, 2)`` float32 array including all original vertices.
    """
    pts = np.ascontiguousarray(contour, dtype=np.float32)
    if len(pts) < 2:
        return pts.copy()
    return _upsample_kernel(pts, np.float32(max_step))


# --------------------------------------------------------------------------------------------
# 3. Shape context and matching
# --------------------------------------------------------------------------------------------
@_njit
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


@_njit
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


@_njit
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


@_njit
def path_distances(cost: np.ndarray) -> np.ndarray:
    """Cheapest monotone-path cost from ``(0, 0)`` to every node (start node free).

    ``dist[i, j] = cost[i, j] + min(dist[i-1, j], dist[i, j-1], dist[i-1, j-1])``; these are the
    reference's Dijkstra distances bit for bit (rounding is monotone, so the minimum of the
    candidate sums is the cost plus the minimum predecessor).
    """
    n1, n2 = cost.shape
    dist = np.empty((n1, n2))
    dist[0, 0] = 0.0
    for j in range(1, n2):
        dist[0, j] = cost[0, j] + dist[0, j - 1]
    for i in range(1, n1):
        dist[i, 0] = cost[i, 0] + dist[i - 1, 0]
        for j in range(1, n2):
            best = min(dist[i - 1, j], dist[i, j - 1])
            best = min(best, dist[i - 1, j - 1])
            dist[i, j] = cost[i, j] + best
    return dist


@_njit
def _backtrack(dist: np.ndarray) -> tuple[np.ndarray, bool]:
    """Follow cheapest predecessors from the last node (diagonal, then up, then left).

    Also reports whether any node on the way has two predecessors at the same minimum distance:
    only then can the reference's Dijkstra have taken another path. (Dijkstra settles nodes in
    order of distance, so among predecessors whose sums with the node's cost round to the same
    value, the one with the strictly smallest distance relaxes the node first and stays its
    predecessor, exactly as chosen here.)
    """
    n1, n2 = dist.shape
    path = np.empty((n1 + n2 - 1, 2), dtype=np.int64)
    i, j = n1 - 1, n2 - 1
    path[0, 0], path[0, 1] = i, j
    m = 1
    tied = False
    while i > 0 or j > 0:
        if i > 0 and j > 0:
            diag, up, left = dist[i - 1, j - 1], dist[i - 1, j], dist[i, j - 1]
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
        path[m, 0], path[m, 1] = i, j
        m += 1
    return path[:m].copy(), tied


@_njit
def boost_dijkstra_path(cost: np.ndarray) -> np.ndarray:
    """The path the reference's Boost Dijkstra returns, equal-cost ties included.

    Replays Boost's ``dijkstra_shortest_paths`` on the grid graph (out-edges of node ``(i, j)`` in
    the order right, down, diagonal; a 4-ary indirect heap with strict comparisons; predecessors
    change only on a strict improvement). Returns ``(m, 2)`` int64 pairs from the end to the start.
    """
    n1, n2 = cost.shape
    c = cost.ravel()
    n = n1 * n2
    dist = np.full(n, np.inf)
    pred = np.arange(n)
    state = np.zeros(n, dtype=np.uint8)  # 0 unseen, 1 in heap, 2 settled
    where = np.full(n, -1, dtype=np.int64)
    heap = np.empty(n, dtype=np.int64)
    targets = np.empty(3, dtype=np.int64)
    dist[0] = 0.0
    state[0] = 1
    heap[0] = 0
    where[0] = 0
    size = 1
    while size > 0:
        u = heap[0]
        size -= 1
        if size > 0:  # move the last entry to the root and sift it down
            node = heap[size]
            node_dist = dist[node]
            index = 0
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
        row, col = u // n2, u % n2
        du = dist[u]
        n_targets = 0
        if col + 1 < n2:
            targets[n_targets] = u + 1
            n_targets += 1
        if row + 1 < n1:
            targets[n_targets] = u + n2
            n_targets += 1
            if col + 1 < n2:
                targets[n_targets] = u + n2 + 1
                n_targets += 1
        for t in range(n_targets):
            v = targets[t]
            candidate = du + c[v]
            if state[v] == 0:
                dist[v] = candidate
                pred[v] = u
                state[v] = 1
                heap[size] = v
                index = size
                size += 1
            elif state[v] == 1 and candidate < dist[v]:
                dist[v] = candidate
                pred[v] = u
                index = where[v]
            else:
                continue
            # sift v up from heap position ``index``
            while index > 0:
                parent = (index - 1) >> 2
                parent_node = heap[parent]
                if candidate < dist[parent_node]:
                    heap[index] = parent_node
                    where[parent_node] = index
                    index = parent
                else:
                    break
            heap[index] = v
            where[v] = index
        state[u] = 2
    path = np.empty((n1 + n2 - 1, 2), dtype=np.int64)
    node = n - 1
    path[0, 0], path[0, 1] = node // n2, node % n2
    m = 1
    while node != 0:
        node = pred[node]
        path[m, 0], path[m, 1] = node // n2, node % n2
        m += 1
    return path[:m].copy()


def min_cost_path(cost: np.ndarray) -> tuple[np.ndarray, int, int]:
    """Cheapest monotone path from ``(0, 0)`` to ``(n1 - 1, n2 - 1)`` through a cost grid.

    Moves go right, down or diagonally; a path's cost is the sum of the costs of the nodes it
    enters (the start node is free). Returns the path as ``(m, 2)`` int64 ``(i, j)`` pairs from the
    end back to the start, and the node of the path (start excluded) with the lowest cost (ties:
    the one nearest the end).

    Equal-cost alternatives do occur (a closed contour repeats its first point, so two grid rows
    or columns are identical). The reference resolves them by the order in which Boost's Dijkstra
    (4-ary heap) settles nodes. The path is found by dynamic programming; only when a node on it
    has tied predecessors is it recomputed with :func:`boost_dijkstra_path`, which replays that
    order.
    """
    cost = np.ascontiguousarray(cost, dtype=np.float64)
    path, tied = _backtrack(path_distances(cost))
    if tied:
        path = boost_dijkstra_path(cost)
    on_path = path[:-1]
    if not len(on_path):
        return path, 0, 0
    best = int(np.argmin(cost[on_path[:, 0], on_path[:, 1]]))
    return path, int(on_path[best, 0]), int(on_path[best, 1])


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


def matching_pairs(cost: np.ndarray) -> np.ndarray:
    """Monotone matching of two closed contours' points, aligned at the cheapest node.

    The min-cost path is computed, the grid rolled so that its cheapest node becomes the last
    row/column, the path recomputed and mapped back; returns ``(m, 2)`` pairs ``(i, j)``.
    """
    _, min_i, min_j = min_cost_path(cost)
    n1, n2 = cost.shape
    rolled = np.roll(np.roll(cost, -(min_j + 1), axis=1), -(min_i + 1), axis=0)
    path, _, _ = min_cost_path(rolled)
    path[:, 0] = (path[:, 0] + min_i + 1) % n1
    path[:, 1] = (path[:, 1] + min_j + 1) % n2
    return path


def contour_descriptor(mask: np.ndarray) -> np.ndarray | None:
    """Shape-context histograms of a mask's longest contour, or None when it has no contour."""
    polygons = mask_to_polygons(mask)
    if not polygons:
        return None
    return shape_context(upsample_contour(longest_contour(polygons)))


def descriptor_matching_cost(h1: np.ndarray | None, h2: np.ndarray | None) -> float:
    """Mean chi-square cost of the one-to-one matched pairs; NaN if either side has no contour."""
    if h1 is None or h2 is None:
        return float("nan")
    cost = chi2_cost_matrix(h1, h2)
    pairs = one_to_one_pairs(matching_pairs(cost), cost)
    return float(np.average(cost[pairs[:, 0], pairs[:, 1]]))


def temporal_stability_pairs(masks: Sequence[np.ndarray]) -> np.ndarray:
    """Per-pair T values ``5 * cost(mask_t, mask_t+1)`` for ``t = 1 .. N - 3``.

    masks: ``N`` binary ``H x W`` masks of one object. Only interior frames ``1 .. N - 2`` take
    part (the reference skips the first and last frame); each frame's descriptor is computed once
    and serves both pairs it belongs to. NaN where either mask has no contour. Returns a float64
    array of length ``max(N - 3, 0)``.
    """
    n = len(masks)
    if n < 4:
        return np.zeros(0, dtype=np.float64)
    descriptors = [contour_descriptor(np.asarray(masks[t]) > 0) for t in range(1, n - 1)]
    return np.array(
        [
            T_SCALE * descriptor_matching_cost(a, b)
            for a, b in zip(descriptors[:-1], descriptors[1:], strict=True)
        ],
        dtype=np.float64,
    )


def temporal_stability_t(masks: Sequence[np.ndarray]) -> float:
    """DAVIS-2016 T of one object: nanmean of :func:`temporal_stability_pairs` (NaN if none)."""
    values = temporal_stability_pairs(masks)
    if values.size == 0 or np.all(np.isnan(values)):
        return float("nan")
    return float(np.nanmean(values))

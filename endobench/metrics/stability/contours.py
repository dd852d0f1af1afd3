"""Contour sampling for T: trace a mask's boundary at pixel corners, simplify, orient, resample.

1. :func:`trace_contours` follows the boundary between foreground and background along pixel
   edges, so vertices lie on pixel corners. Work happens on a doubled lattice (corners at even,
   edge midpoints at odd coordinates). Where two foreground pixels touch only diagonally (a
   "4-junction") boundary pieces are stitched into closed curves by the reference's rule
   (never continue straight through a junction).
2. :func:`simplify_polyline` (Douglas-Peucker with a radial-distance pre-pass) runs twice:
   0.05 px, which drops collinear corners, then 1.5 px.
3. :func:`mask_to_polygons` orients the curves (outer boundaries clockwise on screen, holes
   counter-clockwise) and drops those with <= 3 vertices (closing vertex included);
   :func:`longest_contour` keeps the one with the most vertices (ties: the later one in scan
   order).
4. :func:`upsample_contour` inserts points so no segment exceeds 3 px (float32, like the
   reference).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from endobench.metrics.stability._jit import njit

#: Douglas-Peucker tolerance of the reference, in pixels (it works in doubled units: 3.0).
SIMPLIFY_TOL_PX = 1.5
#: The reference first removes "straight" runs with this tolerance (0.1 doubled units).
PRESIMPLIFY_TOL_PX = 0.05
#: Longest allowed segment after resampling, in pixels.
MAX_SEGMENT_PX = 3.0

# Flags of a doubled-lattice position in the tracer's state array.
_EDGE = np.uint8(1)
_VISITED = np.uint8(2)


@dataclass(frozen=True)
class TracedContour:
    """One closed boundary curve.

    ``corners``: ``(n, 2)`` int64 array of doubled-lattice corner coordinates ``(X, Y)`` =
    ``(2 * row, 2 * col)``, first vertex repeated at the end. ``is_hole``: the curve bounds a
    background region enclosed by foreground.
    """

    corners: np.ndarray
    is_hole: bool


@njit
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


@njit
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


@njit
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
    n_out = np.int64(0)  # not the literal 0: that would compile _explore_piece_kernel twice
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


@njit
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


# Douglas-Peucker simplification (psimpl semantics)
@njit
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


@njit
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


@njit
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

"""Contour matching for T: the cheapest monotone alignment of two point sequences.

:func:`min_cost_path` finds the monotone cheapest path through the cost grid (dynamic
programming, replaying the reference's Boost Dijkstra only where equal-cost paths tie);
:func:`matching_pairs` rolls the grid so the path's cheapest node comes last and recomputes the
path; :func:`one_to_one_pairs` keeps the cheapest pair per index on each side.
"""

from __future__ import annotations

import numpy as np

from endobench.metrics.stability._jit import njit


@njit
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


@njit
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


@njit
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

"""DAVIS-2016 T against the reference's numbers, and endobench's flow-warped consistency."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from endobench.data.label_png import read_label_png
from endobench.metrics import stability as st
from endobench.metrics.stability import contours, descriptors, matching
from endobench.metrics.temporal_consistency import (
    flicker_rate,
    flow_warped_consistency,
    temporal_consistency_summary,
    warp_previous,
)

T_CASES = ["drift3", "empty_pred", "morph_disc_square", "shift5"]


def _load(folder: Path) -> list[np.ndarray]:
    return [read_label_png(p) == 1 for p in sorted(folder.glob("*.png"))]


def _expected(path: Path) -> tuple[np.ndarray, float]:
    obj = json.loads(path.read_text())["objects"]["1"]
    return np.array([np.nan if v is None else v for v in obj["T"]], dtype=float), obj["T-Mean"]


@pytest.mark.parametrize("case", T_CASES)
def test_t_matches_reference_synthetic(metric_vectors: Path, case: str) -> None:
    folder = metric_vectors / "synthetic" / case
    expected, expected_mean = _expected(folder / "expected-T.json")
    masks = _load(folder / "pred")
    got = st.temporal_stability_pairs(masks)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)
    assert abs(st.temporal_stability_t(masks) - expected_mean) < 1e-9


@pytest.fixture(scope="module")
def blackswan(metric_vectors: Path) -> tuple[list[np.ndarray], np.ndarray, float]:
    expected, mean = _expected(metric_vectors / "davis" / "dis" / "blackswan-T.json")
    return _load(metric_vectors / "davis" / "dis" / "blackswan"), expected, mean


def test_t_blackswan_all_pairs_match_reference(blackswan) -> None:
    """All 47 pairs at 480p, tied paths (pairs 22, 24, 35) included, to 1e-9."""
    masks, expected, expected_mean = blackswan
    got = st.temporal_stability_pairs(masks)
    assert got.shape == expected.shape == (47,)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)
    assert abs(np.mean(got) - expected_mean) < 1e-9


def _naive_matching_cost(h1: np.ndarray, h2: np.ndarray) -> float:
    """The matching cost with dynamic-programming paths only (ties: diagonal, up, left)."""
    cost = descriptors.chi2_cost_matrix(h1, h2)
    path, _ = matching._backtrack(matching.path_distances(cost))
    on_path = path[:-1]
    best = int(np.argmin(cost[on_path[:, 0], on_path[:, 1]]))
    mi, mj = on_path[best]
    rolled = np.ascontiguousarray(np.roll(np.roll(cost, -(mj + 1), axis=1), -(mi + 1), axis=0))
    path, _ = matching._backtrack(matching.path_distances(rolled))
    path[:, 0] = (path[:, 0] + mi + 1) % cost.shape[0]
    path[:, 1] = (path[:, 1] + mj + 1) % cost.shape[1]
    pairs = matching.one_to_one_pairs(path, cost)
    return st.T_SCALE * float(np.average(cost[pairs[:, 0], pairs[:, 1]]))


def test_t_blackswan_tied_pair_needs_boost_order(blackswan) -> None:
    """Pair 22 (frames 23/24) has equal-cost paths: only Boost's settling order gives its value."""
    masks, expected, _ = blackswan
    h1, h2 = st.contour_descriptor(masks[23]), st.contour_descriptor(masks[24])
    cost = descriptors.chi2_cost_matrix(h1, h2)
    _, mi, mj = matching.min_cost_path(cost)
    rolled = np.ascontiguousarray(np.roll(np.roll(cost, -(mj + 1), axis=1), -(mi + 1), axis=0))
    assert matching._backtrack(matching.path_distances(rolled))[1]  # the tie is detected
    assert abs(st.T_SCALE * st.descriptor_matching_cost(h1, h2) - expected[22]) < 1e-9
    assert abs(_naive_matching_cost(h1, h2) - expected[22]) > 1e-9  # the tie really matters


def _boost_dijkstra_oracle(cost: np.ndarray) -> list[tuple[int, int]]:
    """Plain-Python replay of Boost's Dijkstra (4-ary heap), the spec of the numba kernel."""
    n1, n2 = cost.shape
    c, n = cost.ravel().tolist(), cost.size
    dist, pred, state, where, heap = [np.inf] * n, list(range(n)), [0] * n, [-1] * n, [0]
    dist[0], state[0], where[0] = 0.0, 1, 0

    def place(index: int, node: int) -> None:
        heap[index], where[node] = node, index

    while heap:
        u, last = heap[0], heap.pop()
        if heap:  # sift the last entry down from the root
            index, node_dist = 0, dist[last]
            while 4 * index + 1 < len(heap):
                kids = range(4 * index + 1, min(4 * index + 5, len(heap)))
                best = min(kids, key=lambda k: (dist[heap[k]], k))  # first of equal minima
                if dist[heap[best]] >= node_dist:
                    break
                place(index, heap[best])
                index = best
            place(index, last)
        row, col = divmod(u, n2)
        targets = [u + 1] * (col + 1 < n2) + [u + n2] * (row + 1 < n1)
        targets += [u + n2 + 1] * (row + 1 < n1 and col + 1 < n2)
        for v in targets:
            candidate = dist[u] + c[v]
            if state[v] == 0:
                state[v] = 1
                heap.append(v)
                index = len(heap) - 1
            elif state[v] == 1 and candidate < dist[v]:
                index = where[v]
            else:
                continue
            dist[v], pred[v] = candidate, u
            while index > 0 and candidate < dist[heap[(index - 1) >> 2]]:
                place(index, heap[(index - 1) >> 2])
                index = (index - 1) >> 2
            place(index, v)
        state[u] = 2
    path = [n - 1]
    while path[-1] != 0:
        path.append(pred[path[-1]])
    return [divmod(v, n2) for v in path]


def test_boost_dijkstra_replays_heap_order_on_tied_grids() -> None:
    rng = np.random.default_rng(0)
    differs = 0
    for _ in range(200):
        cost = rng.integers(0, 3, rng.integers(1, 13, 2)).astype(float)  # many equal-cost paths
        path = matching.boost_dijkstra_path(cost)
        assert path.tolist() == [list(p) for p in _boost_dijkstra_oracle(cost)]
        assert path[0].tolist() == [cost.shape[0] - 1, cost.shape[1] - 1] and not path[-1].any()
        dp_path, _ = matching._backtrack(matching.path_distances(cost))
        differs += path.shape != dp_path.shape or (path != dp_path).any()
        # whichever path is returned, its cost is the minimum
        assert cost[path[:-1, 0], path[:-1, 1]].sum() == matching.path_distances(cost)[-1, -1]
    assert differs > 10  # the grids do exercise tie-breaking


def test_min_cost_path_without_ties_equals_boost_path() -> None:
    rng = np.random.default_rng(1)
    for _ in range(20):
        cost = rng.random(rng.integers(2, 40, 2))
        dp_path, tied = matching._backtrack(matching.path_distances(cost))
        assert not tied
        path, mi, mj = matching.min_cost_path(cost)
        np.testing.assert_array_equal(path, matching.boost_dijkstra_path(cost))
        np.testing.assert_array_equal(path, dp_path)
        values = cost[path[:-1, 0], path[:-1, 1]]
        assert cost[mi, mj] == values.min()


def test_t_identical_masks_is_zero_and_no_contour_is_nan() -> None:
    disc = _disc(64, 80, (30.0, 40.0), 15.0)
    assert st.temporal_stability_t([disc] * 6) == 0.0
    empty = np.zeros_like(disc)
    values = st.temporal_stability_pairs([disc, disc, empty, disc, disc])
    assert np.isnan(values).all() and values.shape == (2,)
    assert np.isnan(st.temporal_stability_t([empty] * 5))
    assert st.temporal_stability_pairs([disc] * 3).shape == (0,)


def test_trace_single_pixel_and_orientation() -> None:
    mask = np.zeros((4, 5), dtype=bool)
    mask[1, 2] = True
    (contour,) = contours.trace_contours(mask)
    assert not contour.is_hole
    assert contour.corners.tolist() == [[2, 4], [4, 4], [4, 6], [2, 6], [2, 4]]
    # A 3x3 ring: outer boundary plus a hole.
    ring = np.zeros((6, 6), dtype=bool)
    ring[1:4, 1:4] = True
    ring[2, 2] = False
    holes = sorted(c.is_hole for c in contours.trace_contours(ring))
    assert holes == [False, True]
    polys = contours.mask_to_polygons(ring)
    assert [p.tolist() for p in polys] == [[[1, 1], [4, 1], [4, 4], [1, 4], [1, 1]]]


def test_simplify_and_upsample() -> None:
    line = np.array([[0, 0], [2, 0], [4, 0], [6, 0], [6, 2]], dtype=float)
    np.testing.assert_array_equal(contours.simplify_polyline(line, 0.1), [[0, 0], [6, 0], [6, 2]])
    up = contours.upsample_contour(np.array([[0, 0], [7, 0]]))
    np.testing.assert_allclose(up, [[0, 0], [7 / 3, 0], [14 / 3, 0], [7, 0]], rtol=1e-6)
    assert up.dtype == np.float32


def test_shape_context_and_cost() -> None:
    pts = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    hist = descriptors.shape_context(pts)
    assert hist.shape == (3, 60) and hist.sum(axis=1).tolist() == [3, 3, 3]
    cost = descriptors.chi2_cost_matrix(hist, hist)
    assert np.allclose(np.diag(cost), 0.0) and (cost >= 0).all()


def _disc(h: int, w: int, centre: tuple[float, float], radius: float) -> np.ndarray:
    ys, xs = np.mgrid[0:h, 0:w]
    return (ys - centre[0]) ** 2 + (xs - centre[1]) ** 2 <= radius**2


def _translating_disc(n: int = 5, step: tuple[int, int] = (2, 3)):
    h, w = 60, 80
    masks = [
        _disc(h, w, (20 + step[0] * t, 20 + step[1] * t), 8).astype(np.uint8) for t in range(n)
    ]
    flow = np.zeros((h, w, 2), dtype=np.float32)
    flow[..., 0], flow[..., 1] = -step[1], -step[0]  # content at (x, y) came from (x-3, y-2)
    return masks, [None] + [flow] * (n - 1)


def test_tc_is_one_for_exact_flow_and_flicker_zero() -> None:
    masks, flows = _translating_disc()
    np.testing.assert_array_equal(flow_warped_consistency(masks, flows), np.ones(4))
    np.testing.assert_array_equal(flicker_rate(masks, flows), np.zeros(4))
    zero = [None] + [np.zeros_like(flows[1])] * 4
    assert (flow_warped_consistency(masks, zero) < 1).all()


def test_flicker_and_tc_hand_made_flip() -> None:
    a = np.zeros((4, 5), dtype=np.uint8)
    a[1:3, 1:3] = 1  # 4 pixels
    b = a.copy()
    b[1, 1] = 2  # one pixel flips to another object
    b[0, 0] = 1  # one background pixel turns foreground
    flows = [None, np.zeros((4, 5, 2), dtype=np.float32)]
    assert flicker_rate([a, b], flows)[0] == pytest.approx(2 / 20)
    assert flow_warped_consistency([a, b], flows)[0] == pytest.approx(3 / 5)
    fov = np.ones((4, 5), dtype=bool)
    fov[0, :] = False  # the new background pixel is outside the field of view
    assert flicker_rate([a, b], flows, fov)[0] == pytest.approx(1 / 15)  # 15 valid pixels, one flip


def test_warp_excludes_sources_outside_image() -> None:
    labels = np.arange(12, dtype=np.uint8).reshape(3, 4)
    flow = np.zeros((3, 4, 2), dtype=np.float32)
    flow[..., 0] = 1.0  # content came from one pixel to the right
    warped, valid = warp_previous(labels, flow)
    assert not valid[:, 3].any() and valid[:, :3].all()
    np.testing.assert_array_equal(warped[:, :3], labels[:, 1:])


def test_tc_on_synthetic_ground_truth_flow() -> None:
    synthetic = pytest.importorskip("endobench.data.synthetic")
    from endobench.data.synthetic_config import SyntheticConfig

    config = SyntheticConfig(height=96, width=128, num_frames=6, num_objects=2, occlusions=False)
    clip = synthetic.generate_clip(config, seed=3)
    masks = [clip.mask(i) for i in range(config.num_frames)]
    flows = [None] + [clip.backward_flow(i) for i in range(1, config.num_frames)]
    tc = flow_warped_consistency(masks, flows, clip.fov_mask)
    assert (tc > 0.93).all()  # only boundary rasterisation differs under the exact flow
    summary = temporal_consistency_summary(masks, masks, flows, clip.fov_mask)
    assert summary["TC-gap"] == 0.0 and summary["flicker-gt"] < 0.01

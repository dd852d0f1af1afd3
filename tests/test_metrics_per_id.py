"""J and F of every id of two label maps from one pass (``jaccard_and_boundary_per_id``):
bit-identical to one ``jaccard_and_boundary`` call per id and to the literal dilation."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest
from test_metrics_functions import _flow_error_pair, _literal_counts, _literal_j_prf

from endobench.metrics import jaccard_and_boundary, jaccard_and_boundary_per_id
from endobench.metrics._boundary_kernels import labels_pair_counts
from endobench.metrics.boundary import _disk_half_widths, _pair_counts


def _hard_label_maps(
    rng: np.random.Generator, h: int, w: int
) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Two label maps of overlapping flow-error objects with ids 1, 2, 7 and 255 (an id only
    the prediction has), 1-pixel specks of id 3 in the ground truth only, and 0 background."""
    gt, pred = np.zeros((h, w), np.uint8), np.zeros((h, w), np.uint8)
    for label in (1, 2, 7):
        g, p = _flow_error_pair(rng, h, w)
        gt[g], pred[p] = label, label
    pred[rng.random((h, w)) < 0.01] = 255
    gt[rng.random((h, w)) < 0.003] = 3
    gt[-1, rng.integers(0, w, size=2)] = 2  # the last row and column have their own rules
    pred[rng.integers(0, h, size=2), -1] = 7
    return gt, pred, [0, 1, 2, 3, 4, 7, 255]  # 4: in neither map


@pytest.mark.parametrize("radius", [1, 8, 18, 70])
def test_per_id_counts_equal_the_literal_dilation_of_each_id(radius: int) -> None:
    """Seeded hard maps on sizes around the 64-pixel words (the last row's tail packed byte by
    byte when its 64-byte load would pass the end), both tolerance radii of 480p and 1080p."""
    rng = np.random.default_rng(200 + radius)
    widths = _disk_half_widths(radius)
    for h, w in ((1, 1), (2, 63), (5, 64), (17, 65), (40, 127), (9, 128), (61, 203), (150, 1)):
        gt, pred, ids = _hard_label_maps(rng, h, w)
        dirty = np.full((2, len(ids) * h * (w // 64 + 2)), ~np.uint64(0))  # every word rewritten
        counts = labels_pair_counts(gt, pred, np.array(ids, np.uint8), widths, *dirty)
        for k, got in zip(ids, counts.tolist(), strict=True):
            assert tuple(got) == _literal_counts(gt == k, pred == k, radius), (h, w, k)
        scores = jaccard_and_boundary_per_id(gt, pred, ids, bound_th=radius)
        assert scores == [_literal_j_prf(gt == k, pred == k, radius) for k in ids]


def test_per_id_scores_equal_one_call_per_id_on_cholecseg8k(samples: Path) -> None:
    """Consecutive CholecSeg8k frames (7 classes, the benchmark's multi-class case), at 480p and
    at 1080p (nearest), DAVIS's default tolerance."""
    clip = samples / "CholecSeg8k/video48/video48_00561"
    gt, pred = (
        cv2.imread(str(clip / f"frame_{n}_endo_watershed_mask.png"), cv2.IMREAD_GRAYSCALE)
        for n in (570, 571)
    )
    ids = sorted(set(np.unique(gt).tolist()) | set(np.unique(pred).tolist()))
    assert ids == [11, 12, 13, 21, 22, 31, 50, 255]  # 13 and 22 in the ground truth only
    for size in ((854, 480), (1920, 1080)):
        g = cv2.resize(gt, size, interpolation=cv2.INTER_NEAREST)
        p = cv2.resize(pred, size, interpolation=cv2.INTER_NEAREST)
        want = [jaccard_and_boundary(g == k, p == k) for k in ids]
        assert jaccard_and_boundary_per_id(g, p, ids) == want
        assert [round(j, 2) for j, *_ in want] == [0.98, 0.88, 0, 0.82, 0, 0.73, 1.0, 1.0]
        assert want[1][3] < 0.9 and want[2][1:] == (1.0, 0.0, 0.0)  # imperfect; one map empty
        r = 18 if size[1] == 1080 else 8
        for k in ids[:2]:
            assert _pair_counts(g == k, p == k, r) == _literal_counts(g == k, p == k, r)


def test_per_id_scores_many_ids_in_groups_and_from_threads() -> None:
    """More ids than one kernel call packs (20: groups of 8), and two threads at once on maps of
    two sizes (each thread has its own scratch bitsets)."""
    rng = np.random.default_rng(11)
    maps = []
    for h, w in ((70, 130), (45, 200)):
        gt = np.repeat(np.repeat(rng.integers(0, 20, (h // 5 + 1, w // 10 + 1)), 5, 0), 10, 1)
        gt = np.ascontiguousarray(gt[:h, :w].astype(np.uint8))
        pred = np.roll(gt, (2, -3), axis=(0, 1))
        pred[rng.random((h, w)) < 0.02] = 19
        maps.append((gt, pred))
    ids = list(range(20))
    want = [[jaccard_and_boundary(g == k, p == k, bound_th=5) for k in ids] for g, p in maps]
    assert [jaccard_and_boundary_per_id(g, p, ids, bound_th=5) for g, p in maps] == want

    def score(pair: tuple[np.ndarray, np.ndarray]) -> list:
        return [jaccard_and_boundary_per_id(*pair, ids, bound_th=5) for _ in range(20)]

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(score, maps))
    assert results == [[w] * 20 for w in want]


def test_per_id_takes_any_label_map_type_through_one_compiled_kernel() -> None:
    rng = np.random.default_rng(9)
    gt, pred, ids = _hard_label_maps(rng, 33, 70)
    want = jaccard_and_boundary_per_id(gt, pred, ids, bound_th=4)
    frozen = pred.copy()
    frozen.flags.writeable = False
    assert jaccard_and_boundary_per_id(gt.astype(np.int64), frozen, ids, bound_th=4) == want
    assert jaccard_and_boundary_per_id(gt == 1, pred == 1, [0, 1], bound_th=4) == [
        jaccard_and_boundary(gt != 1, pred != 1, bound_th=4),
        jaccard_and_boundary(gt == 1, pred == 1, bound_th=4),
    ]
    assert jaccard_and_boundary_per_id(gt, pred, [], bound_th=4) == []
    assert len(labels_pair_counts.signatures) == 1


def test_per_id_rejects_bad_ids_and_sizes() -> None:
    a = np.zeros((4, 5), np.uint8)
    with pytest.raises(ValueError, match=r"ids: expected values in 0..255, got \[-1, 256\]"):
        jaccard_and_boundary_per_id(a, a, [1, -1, 256])
    with pytest.raises(ValueError, match="labels: size mismatch"):
        jaccard_and_boundary_per_id(a, np.zeros((5, 4), np.uint8), [1])

"""Hand-computed cases and properties of the metric functions."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from endobench.data.label_png import read_label_png
from endobench.metrics import (
    bound_pixels,
    boundary_f,
    boundary_map,
    boundary_prf,
    db_statistics,
    decay_bin_edges,
    dice,
    disk,
    evaluate_sequence,
    hausdorff,
    hd95,
    jaccard,
    jaccard_and_boundary,
    summarize,
    surface,
)
from endobench.metrics.boundary import _pair_counts


def _literal_counts(gt: np.ndarray, pred: np.ndarray, r: int) -> tuple[int, ...]:
    """The integers behind J and F by the book (full-frame disk dilations): ``(|G & P|,
    |G | P|, |B_P|, |B_P & dil(B_G)|, |B_G|, |B_G & dil(B_P)|)``."""
    bg, bp = boundary_map(gt), boundary_map(pred)
    kernel = disk(r).astype(np.uint8)
    dg = cv2.dilate(bg.astype(np.uint8), kernel, borderValue=0) > 0
    dp = cv2.dilate(bp.astype(np.uint8), kernel, borderValue=0) > 0
    counts = (gt & pred, gt | pred, bp, bp & dg, bg, bg & dp)
    return tuple(int(np.count_nonzero(c)) for c in counts)


def _literal_j_prf(gt: np.ndarray, pred: np.ndarray, r: int) -> tuple[float, ...]:
    """``(J, precision, recall, F)`` from :func:`_literal_counts`, with DAVIS's empty cases."""
    inter, union, npred, pred_hit, ng, gt_hit = _literal_counts(gt, pred, r)
    j = 1.0 if union == 0 else inter / union
    if npred == 0 and ng > 0:
        p, rc = 1.0, 0.0
    elif npred > 0 and ng == 0:
        p, rc = 0.0, 1.0
    elif npred == 0 and ng == 0:
        p, rc = 1.0, 1.0
    else:
        p, rc = pred_hit / npred, gt_hit / ng
    return j, p, rc, (0.0 if p + rc == 0 else 2 * p * rc / (p + rc))


def test_constants() -> None:
    assert bound_pixels((480, 854)) == 8
    assert bound_pixels((1080, 1920)) == 18
    assert bound_pixels((480, 854), 3) == 3
    assert disk(8).sum() == 197
    assert decay_bin_edges(10).tolist() == [0, 2, 5, 7, 9]


def test_jaccard_hand_cases() -> None:
    a = np.zeros((4, 4), bool)
    b = np.zeros((4, 4), bool)
    assert jaccard(a, b) == 1.0
    a[0, :2] = True
    b[0, 1:3] = True
    assert jaccard(a, b) == pytest.approx(1 / 3)
    void = np.zeros((4, 4), bool)
    void[0, 2] = True
    assert jaccard(a, b, void) == pytest.approx(1 / 2)
    assert dice(a, b) == pytest.approx(0.5)
    assert dice(a & False, b & False) == 1.0
    assert math.isnan(dice(a & False, b & False, empty=math.nan))
    # torch tensors in, same numbers out
    assert jaccard(torch.from_numpy(a), torch.from_numpy(b)) == pytest.approx(1 / 3)


def test_boundary_hand_cases() -> None:
    full = np.ones((20, 30), bool)
    empty = np.zeros((20, 30), bool)
    assert not boundary_map(full).any()  # the image border is never a boundary
    # full-frame GT, empty prediction: J = 0 but F = 1 (both boundaries empty)
    assert jaccard(full, empty) == 0.0
    assert boundary_prf(full, empty) == (1.0, 1.0, 1.0)
    square = np.zeros((20, 30), bool)
    square[5:10, 5:10] = True
    assert boundary_prf(square, empty) == (1.0, 0.0, 0.0)
    assert boundary_prf(empty, square) == (0.0, 1.0, 0.0)
    # square boundary: top-left neighbours (row 4, col 4..9 / col 4, rows 5..9) and the last
    # row/col of the square itself
    assert boundary_map(square).sum() == 20
    far = np.roll(square, 12, axis=1)
    assert boundary_f(square, far, bound_th=3) == 0.0
    assert boundary_f(square, np.roll(square, 1, axis=1), bound_th=1) == 1.0


def test_fast_boundary_equals_dilation_definition() -> None:
    rng = np.random.default_rng(7)
    for _ in range(300):
        h, w = rng.integers(1, 30, 2)
        gt = rng.random((h, w)) < rng.random()
        pred = rng.random((h, w)) < rng.random()
        if rng.random() < 0.5:
            gt = cv2.dilate(gt.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
        r = int(rng.integers(1, 10))
        assert boundary_prf(gt, pred, bound_th=r) == pytest.approx(
            _literal_j_prf(gt, pred, r)[1:], abs=0
        )


def test_jaccard_and_boundary_with_void_matches_parts() -> None:
    rng = np.random.default_rng(3)
    for _ in range(50):
        gt = rng.random((25, 31)) < 0.4
        pred = rng.random((25, 31)) < 0.4
        void = rng.random((25, 31)) < 0.1
        j, p, r, f = jaccard_and_boundary(gt, pred, void, bound_th=2)
        assert j == jaccard(gt, pred, void)
        assert (p, r, f) == boundary_prf(gt, pred, void, bound_th=2)
        assert (p, r, f) == pytest.approx(_literal_j_prf(gt & ~void, pred & ~void, 2)[1:], abs=0)


def test_hausdorff_hand_cases() -> None:
    a = np.zeros((30, 30), bool)
    a[10:15, 10:15] = True
    b = np.roll(a, 3, axis=1)
    assert surface(a).sum() == 16
    assert hausdorff(a, b) == 3.0
    assert hd95(a, b, "monai") == pytest.approx(3.0)
    assert hd95(a, b, "medpy") == pytest.approx(3.0)
    empty = np.zeros_like(a)
    assert hausdorff(a, empty) == math.inf
    assert math.isnan(hd95(a, empty))
    assert math.isnan(hausdorff(empty, empty))
    with pytest.raises(ValueError, match="definition"):
        hd95(a, b, "other")  # type: ignore[arg-type]


def test_db_statistics_hand_cases() -> None:
    v = np.array([1.0, 1.0, 1.0, 0.5, 0.4, 0.2, 0.2, 0.0, 0.0, 0.0])
    s = db_statistics(v)
    assert s["mean"] == pytest.approx(0.43)
    assert s["recall"] == pytest.approx(0.3)  # 0.5 is not > 0.5
    # bins [0:3], [2:6], [5:8], [7:10]
    assert s["decay"] == pytest.approx(1.0 - 0.0)
    assert db_statistics([0.7])["decay"] == 0.0
    assert math.isnan(db_statistics([])["mean"])


def test_decay_wide_integers_for_long_sequences() -> None:
    n = 300
    v = np.linspace(1.0, 0.0, n)
    edges = decay_bin_edges(n)
    assert edges.tolist() == [0, 75, 150, 224, 299]
    want = v[0:76].mean() - v[224:300].mean()
    assert db_statistics(v)["decay"] == pytest.approx(want, abs=1e-12)
    wrapped = edges.astype(np.uint8)  # what the reference's uint8 storage does
    assert wrapped.tolist() != edges.tolist()


def test_evaluate_sequence_errors_and_unsupervised_matching() -> None:
    gt = [np.zeros((20, 20), np.uint8) for _ in range(4)]
    for m in gt:
        m[2:8, 2:8] = 1
        m[10:18, 10:18] = 2
    swapped = [np.where(m == 1, 2, np.where(m == 2, 1, 0)).astype(np.uint8) for m in gt]
    df = evaluate_sequence(gt, swapped, "unsupervised")
    assert (df["J"] == 1.0).all()
    assert dict(zip(df["object"], df["pred_object"], strict=True)) == {1: 2, 2: 1}
    semi = evaluate_sequence(gt, swapped, "semi-supervised")
    assert (semi["J"] == 0.0).all() and len(semi) == 4  # frames 1, 2 x objects 1, 2
    bad = [m.copy() for m in gt]
    bad[1][0, 0] = 3
    with pytest.raises(ValueError, match=r"object id\(s\) \[3\]"):
        evaluate_sequence(gt, bad)
    small = [np.zeros((10, 20), np.uint8)] * 4
    with pytest.raises(ValueError, match="size mismatch"):
        evaluate_sequence(gt, small)
    with pytest.raises(ValueError, match="prediction missing"):
        evaluate_sequence(gt, [gt[0], None, gt[2], None])
    table = summarize(df)
    assert list(table.index) == ["sequence", "global"]
    assert table.loc["global", "J&F-Mean"] == 1.0


masks = arrays(np.bool_, st.tuples(st.integers(2, 24), st.integers(2, 24)))


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_properties_symmetry_order_range(data) -> None:
    a = data.draw(masks)
    b = data.draw(arrays(np.bool_, a.shape))
    assert jaccard(a, b) == jaccard(b, a)
    assert dice(a, b) == dice(b, a)
    assert jaccard(a, b) <= dice(a, b) + 1e-12
    p, r, f = boundary_prf(a, b, bound_th=2)
    assert 0.0 <= f <= 1.0 and 0.0 <= p <= 1.0 and 0.0 <= r <= 1.0
    assert boundary_prf(b, a, bound_th=2) == (r, p, f)


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_f_invariant_under_translation_away_from_borders(data) -> None:
    a = data.draw(arrays(np.bool_, (12, 12)))
    b = data.draw(arrays(np.bool_, (12, 12)))
    dy, dx = data.draw(st.integers(-8, 8)), data.draw(st.integers(-8, 8))
    canvas_a = np.zeros((40, 40), bool)
    canvas_b = np.zeros((40, 40), bool)
    canvas_a[14:26, 14:26], canvas_b[14:26, 14:26] = a, b
    moved_a = np.roll(canvas_a, (dy, dx), axis=(0, 1))
    moved_b = np.roll(canvas_b, (dy, dx), axis=(0, 1))
    assert boundary_prf(moved_a, moved_b, bound_th=3) == boundary_prf(
        canvas_a, canvas_b, bound_th=3
    )


@st.composite
def _blob_pairs(draw) -> tuple[np.ndarray, np.ndarray, int]:
    """Two masks made of ellipses whose centres may lie on or beyond the image border, the
    second either independent or a shifted copy of the first, and a disk radius."""
    h, w = draw(st.integers(1, 48)), draw(st.integers(1, 64))
    yy, xx = np.mgrid[:h, :w]

    def blobs() -> np.ndarray:
        m = np.zeros((h, w), bool)
        ellipses = st.tuples(
            st.integers(-3, h + 3), st.integers(-3, w + 3), st.integers(1, 30), st.integers(1, 30)
        )
        for cy, cx, ry, rx in draw(st.lists(ellipses, min_size=1, max_size=4)):
            m |= ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
        return m

    gt = blobs()
    if draw(st.booleans()):
        pred = blobs()
    else:
        dy, dx = draw(st.integers(-12, 12)), draw(st.integers(-12, 12))
        pred = np.pad(gt, 12)[12 - dy : 12 - dy + h, 12 - dx : 12 - dx + w]  # pred[y] = gt[y - dy]
    return gt, pred, draw(st.integers(1, 20))


@settings(max_examples=40, deadline=None)
@given(_blob_pairs())
def test_fast_j_and_f_equal_literal_dilation_on_blobs(case) -> None:
    gt, pred, r = case
    # The integer counts themselves, which ratios can hide (a lost boundary row that was
    # matched anyway leaves P and R at 1).
    assert _pair_counts(gt, pred, r) == _literal_counts(gt, pred, r)
    want = _literal_j_prf(gt, pred, r)
    assert jaccard_and_boundary(gt, pred, bound_th=r) == want  # bit-identical, not approx
    assert boundary_prf(gt, pred, bound_th=r) == want[1:]
    assert jaccard(gt, pred) == want[0]


def test_fast_j_and_f_equal_literal_dilation_at_1080p(samples: Path, metric_vectors: Path) -> None:
    """A real mask pair scaled to 1080x1920 (disk radius 18), the benchmark's case."""
    gt = read_label_png(samples / "DAVIS/Annotations/480p/blackswan/00025.png") == 1
    pred = read_label_png(metric_vectors / "davis/dis/blackswan/00025.png") == 1
    size = (1920, 1080)
    gt = cv2.resize(gt.view(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
    pred = cv2.resize(pred.view(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
    assert _pair_counts(gt, pred, 18) == _literal_counts(gt, pred, 18)
    want = _literal_j_prf(gt, pred, 18)
    assert 0.9 < want[1] < 1.0  # an imperfect prediction: some boundary pixels unmatched
    assert jaccard_and_boundary(gt, pred) == want
    assert jaccard_and_boundary(pred, gt) == (want[0], want[2], want[1], want[3])


@st.composite
def _noise_pairs(draw) -> tuple[np.ndarray, np.ndarray, int]:
    """Adversarial mask pairs: salt-and-pepper noise of any density (boundary almost
    everywhere, isolated 1-pixel specks, pixels on every border), frames from 1 x 1 up."""
    h, w = draw(st.integers(1, 40)), draw(st.integers(1, 70))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    dg, dp = draw(st.sampled_from([0.0, 0.002, 0.05, 0.5, 0.95, 1.0])), draw(st.floats(0, 1))
    return rng.random((h, w)) < dg, rng.random((h, w)) < dp, draw(st.integers(1, 20))


@settings(max_examples=60, deadline=None)
@given(_noise_pairs())
def test_fast_j_and_f_equal_literal_dilation_on_noise(case) -> None:
    gt, pred, r = case
    assert _pair_counts(gt, pred, r) == _literal_counts(gt, pred, r)
    assert _pair_counts(pred, gt, r) == _literal_counts(pred, gt, r)
    assert jaccard_and_boundary(gt, pred, bound_th=r) == _literal_j_prf(gt, pred, r)


def _edge_cases() -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Hand-made extremes: empty, full, single pixels in corners, 1-pixel lines on borders."""
    h, w = 23, 37
    empty, full = np.zeros((h, w), bool), np.ones((h, w), bool)
    cases = [("empty/empty", empty, empty), ("full/empty", full, empty), ("full/full", full, full)]
    for y, x in ((0, 0), (0, w - 1), (h - 1, 0), (h - 1, w - 1), (11, 18)):
        dot = empty.copy()
        dot[y, x] = True
        cases += [(f"dot{y},{x}/empty", dot, empty), (f"dot{y},{x}/full", dot, full)]
        cases.append((f"dot{y},{x}/dot", dot, np.roll(dot, (1, 1), axis=(0, 1))))
    for name, line in (
        ("top", np.s_[0, :]),
        ("bottom", np.s_[-1, :]),
        ("left", np.s_[:, 0]),
        ("right", np.s_[:, -1]),
        ("middle row", np.s_[11, 3:30]),
        ("middle column", np.s_[2:20, 18]),
    ):
        m = empty.copy()
        m[line] = True
        cases += [(f"{name}/full", m, full), (f"{name}/middle", m, np.roll(m, 9, axis=1))]
    checker = (np.add.outer(np.arange(h), np.arange(w)) % 2).astype(bool)
    cases += [("checker/full", checker, full), ("checker/shifted", checker, ~checker)]
    return cases


@pytest.mark.parametrize("radius", [1, 3, 18])
def test_fast_j_and_f_equal_literal_dilation_on_edge_cases(radius: int) -> None:
    for name, gt, pred in _edge_cases():
        for a, b in ((gt, pred), (pred, gt)):
            assert _pair_counts(a, b, radius) == _literal_counts(a, b, radius), name
            assert jaccard_and_boundary(a, b, bound_th=radius) == _literal_j_prf(a, b, radius)


def test_fast_j_and_f_equal_literal_dilation_per_object_of_a_label_map() -> None:
    """Several touching and nested objects of one label map, each scored as its own mask."""
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[:120, :200]
    gt = np.zeros((120, 200), np.uint8)
    for label, (cy, cx, ry, rx) in enumerate(
        [(60, 50, 40, 45), (60, 100, 30, 30), (5, 190, 20, 25)]
    ):
        gt[((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1] = label + 1
    gt[55:65, 40:60] = 4  # an object inside another
    pred = np.roll(gt, (3, -4), axis=(0, 1))
    pred[rng.random(gt.shape) < 0.01] = 2  # specks of a wrong label
    for obj in range(1, 5):
        g, p = gt == obj, pred == obj
        assert _pair_counts(g, p, 5) == _literal_counts(g, p, 5)
        assert jaccard_and_boundary(g, p, bound_th=5) == _literal_j_prf(g, p, 5)


def _flow_error_pair(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """A ground truth of ellipses (some cut by the border) and a prediction with the errors of
    a flow-carried mask: shifted, ragged along the boundary, a piece lost, specks elsewhere."""
    yy, xx = np.mgrid[:h, :w]
    gt = np.zeros((h, w), bool)
    for _ in range(int(rng.integers(1, 5))):
        cy, cx = rng.integers(-h // 4, h + h // 4 + 1), rng.integers(-w // 4, w + w // 4 + 1)
        ry, rx = rng.integers(2, max(3, h // 2)), rng.integers(2, max(3, w // 2))
        gt |= ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
    dy, dx = rng.integers(-6, 7, size=2)
    pred = np.pad(gt, 6)[6 - dy : 6 - dy + h, 6 - dx : 6 - dx + w].copy()
    band = cv2.dilate(boundary_map(pred).view(np.uint8), np.ones((5, 5), np.uint8)) > 0
    pred ^= band & (rng.random((h, w)) < 0.3)
    y0, x0 = rng.integers(0, h), rng.integers(0, w)
    pred[y0 : y0 + h // 5, x0 : x0 + w // 4] = False
    pred |= rng.random((h, w)) < 0.002
    return gt, pred


@pytest.mark.parametrize("radius", [1, 8, 18, 70])
def test_fast_j_and_f_equal_literal_dilation_on_flow_errors(radius: int) -> None:
    """Seeded hard masks on frames whose widths fall on, before and after the 64-column words
    of the boundary bitsets; radius 70 makes every disk row span several words."""
    rng = np.random.default_rng(radius)
    unmatched = 0
    for h, w in ((96, 203), (61, 128), (130, 127), (40, 321), (1, 150), (150, 1)):
        for _ in range(3):
            gt, pred = _flow_error_pair(rng, h, w)
            counts = _pair_counts(gt, pred, radius)
            assert counts == _literal_counts(gt, pred, radius)
            assert _pair_counts(pred, gt, radius) == _literal_counts(pred, gt, radius)
            unmatched += counts[2] - counts[3]
    assert unmatched > 0  # the cases reach the paths for pixels with no match


def test_fast_counts_on_wide_rows() -> None:
    """Rows of 4100 pixels (65 packing words, the last one partial), all foreground or random,
    count exactly."""
    rng = np.random.default_rng(3)
    full = np.ones((4, 4100), bool)
    noise = rng.random((4, 4100)) < 0.6
    for gt, pred in ((full, full), (full, noise), (noise, rng.random((4, 4100)) < 0.5)):
        assert _pair_counts(gt, pred, 8) == _literal_counts(gt, pred, 8)
    assert _pair_counts(full, full, 8)[:2] == (4 * 4100, 4 * 4100)


@pytest.mark.parametrize("radius", [1, 8, 18, 31, 32, 63])
def test_fast_counts_at_word_edges_and_the_last_rows_tail(radius: int) -> None:
    """Seeded hard masks whose widths fall one short of, on and one past the 64-pixel packing
    words (a tail whose 64-byte load would pass the mask's end is packed byte by byte),
    with foreground in the last row and the last column, where the edge rules differ; radii
    on both sides of the word-dilation's doubling steps (31, 32) and its largest (63)."""
    rng = np.random.default_rng(100 + radius)
    for h, w in ((2, 63), (3, 64), (5, 65), (17, 127), (9, 128), (12, 129), (4, 191), (1, 257)):
        for _ in range(2):
            gt, pred = _flow_error_pair(rng, h, w)
            gt[-1, rng.integers(0, w, size=3)] = True
            pred[rng.integers(0, h, size=3), -1] = True
            for a, b in ((gt, pred), (pred, gt)):
                assert _pair_counts(a, b, radius) == _literal_counts(a, b, radius), (h, w)
            assert jaccard(gt, pred) == np.count_nonzero(gt & pred) / np.count_nonzero(gt | pred)
            assert dice(gt, pred) == 2 * np.count_nonzero(gt & pred) / (gt.sum() + pred.sum())


def test_fast_counts_take_any_nonzero_mask_through_one_uint8_kernel() -> None:
    """uint8 masks of 0/255, read-only arrays and bool arrays give the same counts, through one
    compiled version of the kernel (bool masks reach it as uint8 views, read-only ones as
    copies: each other argument type would cost one more compile)."""
    from endobench.metrics._boundary_kernels import kernel_view, pair_counts

    rng = np.random.default_rng(5)
    gt, pred = _flow_error_pair(rng, 70, 150)
    want = _literal_counts(gt, pred, 8)
    frozen = pred.copy()
    frozen.flags.writeable = False
    widths = np.array([8, 7, 7, 7, 6, 6, 5, 3, 0], np.int64)  # isqrt(64 - dy^2), dy = 0..8
    assert _pair_counts(gt, pred, 8) == want
    assert _pair_counts(gt, frozen, 8) == want
    g255 = np.ascontiguousarray(gt.astype(np.uint8) * 255)
    assert tuple(int(c) for c in pair_counts(g255, kernel_view(pred), widths)) == want
    assert jaccard_and_boundary(g255, frozen, bound_th=8) == _literal_j_prf(gt, pred, 8)
    assert len(pair_counts.signatures) == 1

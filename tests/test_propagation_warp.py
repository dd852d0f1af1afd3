"""Backward warping of labels and probabilities, and forward-backward confidence, on hand cases."""

from __future__ import annotations

import numpy as np
import pytest

from endobench.propagation.warp import (
    WarpError,
    forward_backward_confidence,
    warp_labels,
    warp_probs,
)

H, W = 12, 16


def constant_flow(dx: float, dy: float, h: int = H, w: int = W) -> np.ndarray:
    flow = np.empty((h, w, 2), np.float32)
    flow[..., 0], flow[..., 1] = dx, dy
    return flow


@pytest.fixture(scope="module")
def labels() -> np.ndarray:
    return np.random.default_rng(0).integers(1, 6, (H, W)).astype(np.uint8)


def test_warp_labels_integer_shift_is_exact_and_marks_outside(labels):
    warped, valid = warp_labels(labels, constant_flow(3, -2))
    for y in range(H):
        for x in range(W):
            sx, sy = x + 3, y - 2
            inside = 0 <= sx < W and 0 <= sy < H
            assert valid[y, x] == inside
            assert warped[y, x] == (labels[sy, sx] if inside else 0)
    # No smearing: the 3 right columns and 2 top rows have no source.
    assert not valid[:, W - 3 :].any() and not valid[:2].any()
    assert valid[2:, : W - 3].all()


def test_warp_labels_source_valid_mask_and_fill(labels):
    fov = np.ones((H, W), bool)
    fov[:, :4] = False
    warped, valid = warp_labels(labels, constant_flow(-2, 0), source_valid=fov, fill=9)
    # Target x samples source x - 2: invalid when x - 2 < 4 (outside the fov) or < 0.
    assert not valid[:, :6].any() and valid[:, 6:].all()
    assert (warped[:, :6] == 9).all()
    np.testing.assert_array_equal(warped[:, 6:], labels[:, 4:-2])


def test_warp_probs_integer_shift_exact_with_zero_padding():
    rng = np.random.default_rng(1)
    probs = rng.random((3, H, W)).astype(np.float32)
    warped, frac = warp_probs(probs, constant_flow(0, 1))
    np.testing.assert_array_equal(warped[:, : H - 1], probs[:, 1:])
    # Last row samples row H (outside): zero, not a copy of the border row.
    assert (warped[:, H - 1] == 0).all()
    np.testing.assert_array_equal(frac[: H - 1], 1.0)
    np.testing.assert_array_equal(frac[H - 1], 0.0)


def test_warp_probs_half_pixel_is_bilinear_and_fraction_is_partial():
    probs = np.zeros((2, H, W), np.float32)
    probs[1, :, 5] = 1.0
    probs[0] = 1.0 - probs[1]
    warped, frac = warp_probs(probs, constant_flow(0.5, 0))
    # Target x samples x + 0.5: columns 4 and 5 see half of the object column.
    np.testing.assert_allclose(warped[1, :, 4], 0.5, atol=1e-6)
    np.testing.assert_allclose(warped[1, :, 5], 0.5, atol=1e-6)
    assert (warped[1, :, :4] == 0).all() and (warped[1, :, 6:] == 0).all()
    # Last column: half of its footprint is outside the image.
    np.testing.assert_allclose(frac[:, W - 1], 0.5, atol=1e-6)
    np.testing.assert_allclose(warped.sum(0), frac, atol=1e-6)


def test_zero_flow_is_identity(labels):
    warped, valid = warp_labels(labels, constant_flow(0, 0))
    np.testing.assert_array_equal(warped, labels)
    assert valid.all()


def test_shape_errors_name_the_argument(labels):
    with pytest.raises(WarpError, match="flow"):
        warp_labels(labels, constant_flow(0, 0, h=H + 1))
    with pytest.raises(WarpError, match="probs"):
        warp_probs(np.zeros((H, W), np.float32), constant_flow(0, 0))
    with pytest.raises(WarpError, match="source_valid"):
        warp_labels(labels, constant_flow(0, 0), source_valid=np.ones((2, 2), bool))


def test_forward_backward_consistent_pair_is_one_inside_zero_leaving():
    conf = forward_backward_confidence(constant_flow(2, 0), constant_flow(-2, 0))
    np.testing.assert_allclose(conf[:, : W - 2], 1.0)
    # Targets of the last two columns leave frame B: no way back, confidence 0.
    assert (conf[:, W - 2 :] == 0).all()


def test_forward_backward_inconsistent_pair_hand_value():
    # fw = (1, 0), bw = (0, 0): e = 1, tau = 0.01 * (1 + 0) + 0.5 = 0.51.
    conf = forward_backward_confidence(constant_flow(1, 0), constant_flow(0, 0))
    np.testing.assert_allclose(conf[:, : W - 1], np.exp(-1 / 0.51), rtol=1e-5)
    # Same error, looser alpha2: higher confidence.
    looser = forward_backward_confidence(constant_flow(1, 0), constant_flow(0, 0), alpha2=2.0)
    np.testing.assert_allclose(looser[:, : W - 1], np.exp(-1 / 2.01), rtol=1e-5)
    assert conf.dtype == np.float32 and conf.min() >= 0 and conf.max() <= 1

"""FlowPropagator on scripted flows (exact integer motion) and the copy-last baseline."""

from __future__ import annotations

import numpy as np
import pytest

from endobench.propagation import (
    CopyLastPropagator,
    FlowEstimator,
    FlowPropagator,
    Propagator,
    labels_from_probs,
    one_hot,
    warp_probs,
)

H, W = 20, 24


class ConstantFlow(FlowEstimator):
    """Scripted estimator: every call returns the same flow (the scene moves by -flow)."""

    name = "constant"

    def __init__(self, dx: float, dy: float) -> None:
        self.flow = np.empty((H, W, 2), np.float32)
        self.flow[..., 0], self.flow[..., 1] = dx, dy
        self.calls = 0

    def __call__(self, prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        self.calls += 1
        return self.flow.copy()


def frame() -> np.ndarray:
    return np.full((H, W, 3), 128, np.uint8)


def labels0() -> np.ndarray:
    lab = np.zeros((H, W), np.uint8)
    lab[4:10, 8:14] = 1
    lab[12:16, 2:6] = 2
    lab[12:18, 16:22] = 3
    return lab


def shifted(lab: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """Backward warp by hand: out(y, x) = lab(y + dy, x + dx), background outside."""
    out = np.zeros_like(lab)
    for y in range(H):
        for x in range(W):
            if 0 <= y + dy < H and 0 <= x + dx < W:
                out[y, x] = lab[y + dy, x + dx]
    return out


def test_is_a_propagator():
    assert isinstance(FlowPropagator(ConstantFlow(0, 0)), Propagator)
    assert isinstance(CopyLastPropagator(), Propagator)


def test_integer_motion_is_exact_over_several_steps_multi_object():
    est = ConstantFlow(2, -1)
    prop = FlowPropagator(est, confidence="none")
    lab = labels0()
    prop.reset(frame(), one_hot(lab, 4))
    for step in range(1, 4):
        out = prop.step(frame())
        assert out.probs.shape == (4, H, W) and out.confidence.shape == (H, W)
        np.testing.assert_allclose(out.probs.sum(0), 1.0, atol=1e-6)
        expected = shifted(lab, 2 * step, -step)
        np.testing.assert_array_equal(labels_from_probs(out.probs), expected)
        # Sourceless pixels (right columns, top rows): background with confidence 0.
        sourceless = np.zeros((H, W), bool)
        sourceless[:, W - 2 * step :] = True
        sourceless[:step] = True
        assert (out.confidence[sourceless] == 0).all()
        assert (out.confidence[~sourceless] == 1).all()
    assert est.calls == 3 and prop.timings["flow"] > 0


def test_fov_pixels_are_background_and_do_not_feed_targets():
    fov = np.ones((H, W), bool)
    fov[:, 20:] = False
    lab = np.zeros((H, W), np.uint8)
    lab[:, 18:] = 1  # object touching and crossing the fov border
    prop = FlowPropagator(ConstantFlow(1, 0), fov=fov, confidence="none")
    prop.reset(frame(), one_hot(lab, 2))
    out = prop.step(frame())
    got = labels_from_probs(out.probs)
    assert (got[:, 20:] == 0).all() and (out.confidence[:, 20:] == 0).all()
    # Column 19 samples column 20 (outside the fov in the keyframe): no source, background.
    assert (got[:, 19] == 0).all() and (out.confidence[:, 19] == 0).all()
    assert (got[:, 17:19] == 1).all() and (got[:, :17] == 0).all()


def test_photometric_confidence_drops_where_brightness_changes():
    prop = FlowPropagator(ConstantFlow(0, 0), confidence="photometric", photometric_sigma=30.0)
    prop.reset(frame(), one_hot(labels0(), 4))
    nxt = frame()
    nxt[:, :12] = 158  # +30 grey levels on the left half
    out = prop.step(nxt)
    np.testing.assert_allclose(out.confidence[:, :12], np.exp(-1.0), rtol=1e-5)
    np.testing.assert_allclose(out.confidence[:, 12:], 1.0)
    # Confidence accumulates: a second identical change multiplies again.
    out2 = prop.step(nxt)
    np.testing.assert_allclose(out2.confidence[:, :12], np.exp(-1.0), rtol=1e-5)


def test_soft_keyframe_probs_survive_and_stay_normalised():
    probs = np.zeros((2, H, W), np.float32)
    probs[1] = np.linspace(0, 1, W, dtype=np.float32)[None]
    probs[0] = 1 - probs[1]
    prop = FlowPropagator(ConstantFlow(0, 0), confidence="none")
    prop.reset(frame(), probs)
    out = prop.step(frame())
    np.testing.assert_allclose(out.probs, probs, atol=1e-6)


def test_errors_before_reset_and_on_bad_shapes():
    prop = FlowPropagator(ConstantFlow(0, 0))
    with pytest.raises(RuntimeError, match="reset"):
        prop.step(frame())
    with pytest.raises(ValueError, match="C x H x W"):
        prop.reset(frame(), np.zeros((2, H + 1, W), np.float32))
    with pytest.raises(ValueError, match="confidence"):
        FlowPropagator(ConstantFlow(0, 0), confidence="magic")  # type: ignore[arg-type]


def test_copy_last_returns_the_keyframe():
    prop = CopyLastPropagator()
    probs = one_hot(labels0(), 4)
    prop.reset(frame(), probs)
    out = prop.step(frame())
    np.testing.assert_array_equal(out.probs, probs)
    assert (out.confidence == 1).all()


def test_chaining_keeps_a_thin_structure_under_subpixel_motion():
    """Re-warping probabilities every step would blur a 2 px line away (a [0.5, 0.5] kernel per
    half-pixel step: after 20 steps its peak is about 0.36 < 0.5); sampling the keyframe once
    through chained positions keeps it."""
    lab = np.zeros((H, W), np.uint8)
    lab[:, 4:6] = 1
    prop = FlowPropagator(ConstantFlow(-0.5, 0), confidence="none")
    prop.reset(frame(), one_hot(lab, 2))
    for _ in range(20):
        out = prop.step(frame())
    # After 20 steps of 0.5 px the line sits at columns 14-15, still 2 px wide and near-certain
    # (cv2.remap quantises positions to 1/32 px, hence the small leak).
    got = labels_from_probs(out.probs)
    assert (got[:, 14:16] == 1).all() and got.sum() == 2 * H
    assert out.probs[1][:, 14:16].min() > 0.95
    # The alternative, re-warping the previous probabilities each step, loses the line.
    probs = one_hot(lab, 2)
    for _ in range(20):
        probs, _ = warp_probs(probs, ConstantFlow(-0.5, 0).flow)
    assert probs[1].max() < 0.5


def test_many_objects_and_held_results_survive_later_steps():
    """Six objects (two groups of channels) move exactly; a step's returned arrays are its own
    (the propagator reuses scratch buffers, never the arrays it hands out)."""
    lab = np.zeros((H, W), np.uint8)
    for k in range(1, 7):
        lab[2 * k : 2 * k + 2, 3 * k : 3 * k + 3] = k
    prop = FlowPropagator(ConstantFlow(1, 1), confidence="photometric")
    prop.reset(frame(), one_hot(lab, 7))
    first = prop.step(frame())
    held = (first.probs.copy(), first.confidence.copy())
    assert first.probs.shape == (7, H, W) and first.probs.flags.c_contiguous
    np.testing.assert_array_equal(labels_from_probs(first.probs), shifted(lab, 1, 1))
    np.testing.assert_allclose(first.probs.sum(0), 1.0, atol=1e-6)
    second = prop.step(frame())
    np.testing.assert_array_equal(labels_from_probs(second.probs), shifted(lab, 2, 2))
    prop.reset(frame(), one_hot(lab, 7))
    prop.step(frame())
    np.testing.assert_array_equal(first.probs, held[0])
    np.testing.assert_array_equal(first.confidence, held[1])


class FieldFlow(FlowEstimator):
    """Scripted estimator: returns one given (non-uniform) flow field."""

    name = "field"

    def __init__(self, flow: np.ndarray) -> None:
        self.flow = flow

    def __call__(self, prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        return self.flow


def test_photometric_confidence_from_the_relative_map_equals_the_absolute_map():
    """The step samples the previous gray through the flow as a relative map; its photometric
    confidence is that of remapping through ``sampling_map`` (pixel + flow), including sub-pixel
    positions and positions outside the frame (replicated border). After a keyframe the step's
    confidence is exactly that value wherever the whole bilinear footprint lies in the frame."""
    import cv2

    from endobench.propagation import sampling_map
    from endobench.propagation.flow_propagation import photometric_table

    rng = np.random.default_rng(11)
    h, w = 150, 97
    prev = cv2.GaussianBlur(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), (5, 5), 1.5)
    frame = cv2.GaussianBlur(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), (5, 5), 1.5)
    flow = cv2.GaussianBlur(rng.normal(0, 12, (h, w, 2)).astype(np.float32), (9, 9), 3)
    flow[:5] += np.float32(-40.0)  # rows that sample far outside the frame
    prop = FlowPropagator(FieldFlow(flow), photometric_sigma=20.0)
    motion = prop.prepare(prev, frame)
    np.testing.assert_array_equal(motion.flow, flow)
    assert motion.conf is None  # photometric confidence is the step's work, not the flow's
    gray, prev_gray = (cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in (frame, prev))
    positions = sampling_map(flow)
    warped = cv2.remap(
        prev_gray, positions, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    expected = photometric_table(20.0)[cv2.absdiff(gray, warped)]
    assert 0.0 < float(expected.min()) < float(expected.max()) <= 1.0
    np.testing.assert_array_equal(prop._photometric(prev_gray, gray, flow), expected)

    probs = np.zeros((2, h, w), np.float32)
    probs[1] = 1.0  # one object over the whole frame
    prop.reset(prev, probs)
    step = prop.step(frame, motion)
    x, y = positions[..., 0], positions[..., 1]
    inside = (x >= 0) & (y >= 0) & (np.floor(x) + 1 <= w - 1) & (np.floor(y) + 1 <= h - 1)
    assert 0.5 < inside.mean() < 1.0 and not inside[:5].any()
    np.testing.assert_array_equal(step.confidence[inside], expected[inside])
    assert not step.confidence[:5].any()  # no source in the frame: no trust

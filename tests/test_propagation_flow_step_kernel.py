"""FlowPropagator's step kernels (``flow_step_kernel.settle``, ``lay_out_keyframe``) against a
dense transcription of the step's rules: bit-identical probabilities, confidence, labels (the
argmax of the probabilities) and state on rough flows, several channel counts, objects at the
border or far apart, a field of view, step confidences and empty keyframes; the reach test (sampling only where a position can reach an object) changes no
value; the step's ``support`` box holds every pixel that is not exactly background, so labels
and the mean confidence computed inside it are those of the whole frame. The kernel's bilinear
sampling is OpenCV 5's ``remap`` operation for operation (checked against ``cv2.remap``)."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest

from endobench.propagation import FlowEstimator, FlowPropagator, labels_from_probs, one_hot
from endobench.propagation import flow_propagation as fp
from endobench.propagation.tracker import mean_inside, step_labels
from endobench.propagation.warp import pixel_grid

H, W = 150, 90


def fma(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """float32 ``a * b + c`` rounded once (the float64 product of two float32 is exact)."""
    return (a.astype(np.float64) * b + c).astype(np.float32)


def bilinear(image: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``image`` (``h x w``) sampled at float32 positions by the documented formula, taps
    outside the image reading 0."""
    h, w = image.shape
    x0, y0 = np.floor(x), np.floor(y)
    a, b = (x - x0).astype(np.float32), (y - y0).astype(np.float32)
    ix, iy = x0.astype(np.int64), y0.astype(np.int64)

    def tap(r: np.ndarray, c: np.ndarray) -> np.ndarray:
        inside = (r >= 0) & (r < h) & (c >= 0) & (c < w)
        return np.where(inside, image[r.clip(0, h - 1), c.clip(0, w - 1)], np.float32(0))

    s00, s01, s10, s11 = tap(iy, ix), tap(iy, ix + 1), tap(iy + 1, ix), tap(iy + 1, ix + 1)
    p0, p1 = fma(a, s01 - s00, s00), fma(a, s11 - s10, s10)
    return fma(b, p1 - p0, p0)


def reference_step(state, flow, fov, step_conf, objects):
    """The step's rules over the whole frame with array operations: returns the new state,
    the confidence and the probabilities."""
    tracked = cv2.remap(
        state, pixel_grid(H, W) + flow, None, cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT, borderValue=0,
    )  # fmt: skip
    x, y, conf, valid = (tracked[..., i].copy() for i in range(4))
    ok = valid >= np.float32(0.5)
    if fov is not None:
        ok &= fov
    okf = ok.astype(np.float32)
    scale = okf / np.maximum(valid, np.float32(1e-6))
    x, y = x * scale, y * scale
    conf = conf * (okf if step_conf is None else okf * step_conf)
    probs = np.empty((objects.shape[0] + 1, H, W), np.float32)
    probs[0] = 1.0
    for k, channel in enumerate(objects):
        probs[k + 1] = bilinear(channel, x, y) * okf
        probs[0] -= probs[k + 1]
    return np.dstack((x, y, conf, okf)), conf, probs


def photometric(prev_gray: np.ndarray, gray: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Brightness constancy of the warp: ``exp(-(|gray - warped prev| / 30) ^ 2)``."""
    warped = cv2.remap(
        prev_gray, pixel_grid(H, W) + flow, None, cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )  # fmt: skip
    d = cv2.absdiff(gray, warped).astype(np.float32)
    table = np.exp(-np.square(np.arange(256, dtype=np.float32) / np.float32(30.0)))
    return table.astype(np.float32)[d.astype(np.uint8)]


class RoughFlow(FlowEstimator):
    """Seeded flows: a drift of a few pixels plus per-pixel noise, different at every call."""

    name = "rough"

    def __init__(self, seed: int, drift: float) -> None:
        self.rng = np.random.default_rng(seed)
        self.drift = drift
        self.flows: list[np.ndarray] = []

    def __call__(self, prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        flow = self.rng.normal(0.0, 0.8, (H, W, 2)).astype(np.float32)
        flow[..., 0] += self.drift * self.rng.uniform(-1, 1)
        flow[..., 1] += self.drift * self.rng.uniform(-1, 1)
        self.flows.append(flow)
        return flow


def frames(seed: int, n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (H, W, 3), dtype=np.uint8) for _ in range(n)]


def blobs(classes: int, rows: slice, cols: slice) -> np.ndarray:
    """Labels 1..classes-1 in vertical bands inside ``rows`` x ``cols``."""
    lab = np.zeros((H, W), np.uint8)
    width = cols.stop - cols.start
    for k in range(1, classes):
        a = cols.start + (k - 1) * width // (classes - 1)
        b = cols.start + k * width // (classes - 1)
        lab[rows, a:b] = k
    return lab


def spread(classes: int) -> np.ndarray:
    """Labels 1..classes-1 as small squares far apart (each object its own box)."""
    lab = np.zeros((H, W), np.uint8)
    for k in range(1, classes):
        r, c = (17 * k) % (H - 8), (29 * k) % (W - 8)
        lab[r : r + 6, c : c + 6] = k
    return lab


def soft(labels: np.ndarray, classes: int) -> np.ndarray:
    """A soft keyframe: every object channel carries its own values."""
    probs = one_hot(labels, classes)
    probs[1:, labels > 0] *= 0.75
    probs[0] = 1.0 - probs[1:].sum(0)
    return probs


def run(labels, classes, seed, fov, drift, confidence="photometric"):
    """Seven frames propagated; returns the propagator and each step with what the dense
    reference gives for it."""
    estimator = RoughFlow(seed, drift)
    prop = FlowPropagator(estimator, fov=fov, confidence=confidence)
    clip = frames(seed, 7)
    probs = soft(labels, classes)
    prop.reset(clip[0], probs)
    objects = probs[1:] * (1.0 if fov is None else fov.astype(np.float32))
    state = prop._track.copy()
    out = []
    for frame in clip[1:]:
        prev_gray = prop._prev_gray
        motion = prop.prepare(prop._prev_frame, frame)
        step = prop.step(frame, motion)
        step_conf = motion.conf
        if confidence == "photometric":
            step_conf = photometric(prev_gray, motion.gray, motion.flow)
        state, conf, ref_probs = reference_step(state, motion.flow, fov, step_conf, objects)
        np.testing.assert_array_equal(prop._track, state)
        out.append((step, conf, ref_probs))
    return prop, out


def check_support(step) -> None:
    """The kernel's labels are the argmax of its probabilities; outside the step's support box
    the probabilities are exactly background, and labels and mean confidence computed inside it
    equal those of the whole frame."""
    labels = labels_from_probs(step.probs)
    np.testing.assert_array_equal(step.labels, labels)
    np.testing.assert_array_equal(step_labels(dataclasses.replace(step, labels=None)), labels)
    assert mean_inside(step.confidence, labels, step.support) == mean_inside(
        step.confidence, labels
    )
    if step.support is None:
        return
    r0, r1, c0, c1 = step.support
    outside = np.ones((H, W), bool)
    outside[r0:r1, c0:c1] = False
    assert np.all(step.probs[0][outside] == 1.0) and not step.probs[1:, outside].any()


LAYOUTS = [
    (slice(70, 84), slice(30, 50), 3.0),  # small, in the middle
    (slice(0, 12), slice(0, 16), 6.0),  # at the top-left corner, moving out
    (slice(140, 150), slice(70, 90), 2.0),  # at the bottom-right border
    (None, None, 3.0),  # objects far apart: each its own box
]


@pytest.mark.parametrize("classes", [2, 4, 6, 9])
@pytest.mark.parametrize(("rows", "cols", "drift"), LAYOUTS)
@pytest.mark.parametrize("reach", [True, False])  # boxes as planned / every position samples
def test_kernel_equals_the_dense_rules(monkeypatch, classes, rows, cols, drift, reach):
    labels = spread(classes) if rows is None else blobs(classes, rows, cols)
    fov = np.ones((H, W), bool)
    fov[:, :3] = False
    if not reach:
        monkeypatch.setattr(fp, "REACH_MAX_SHARE", 0.0)
    for use_fov in (None, fov):
        prop, steps = run(labels, classes, 7, use_fov, drift)
        live = prop._boxes[prop._boxes[:, 0] <= prop._boxes[:, 1]]  # (objects in the fov)
        assert len(live) and np.isfinite(live).all() == reach and np.isinf(live).all() != reach
        for step, conf, probs in steps:
            np.testing.assert_array_equal(step.probs, probs)
            np.testing.assert_array_equal(step.confidence, conf)
            check_support(step)
        assert steps[-1][0].probs[1:].max() > 0  # an object is still there to be sampled


@pytest.mark.parametrize("confidence", ["none", "forward_backward"])
def test_kernel_equals_the_dense_rules_for_each_confidence_mode(confidence):
    for step, conf, probs in run(
        blobs(4, slice(30, 90), slice(20, 70)), 4, 3, None, 2.0, confidence
    )[1]:
        np.testing.assert_array_equal(step.probs, probs)
        np.testing.assert_array_equal(step.confidence, conf)


def test_reach_boxes_are_the_objects_bounding_boxes_with_the_margin():
    extents = np.array([[29, 34, 17, 22], [58, 63, 34, 39], [W, -1, H, -1]])
    boxes = fp.reach_boxes(extents, (H, W))
    m = fp.REACH_MARGIN
    assert tuple(boxes[0]) == (29 - m, 34 + m, 17 - m, 22 + m)
    assert tuple(boxes[1]) == (58 - m, 63 + m, 34 - m, 39 + m)
    assert tuple(boxes[2]) == (np.inf, -np.inf, np.inf, -np.inf)  # an object that is nowhere
    large = fp.reach_boxes(np.array([[0, W - 1, 0, H - 1]]), (H, W))
    assert tuple(large[0]) == (-np.inf, np.inf, -np.inf, np.inf)


@pytest.mark.parametrize("use_fov", [False, True])
def test_the_keyframe_layout_is_the_objects_times_the_fov_with_a_zero_border(use_fov):
    from endobench.propagation.flow_step_kernel import lay_out_keyframe

    probs = one_hot(spread(4), 4)
    probs[:, 100:, 70:] = np.float32(0.25)  # soft probabilities in a corner
    probs[2] = 0.0  # an object that is nowhere
    fov = np.ones((H, W), bool)
    fov[:, :31] = False  # hides part of object 1 (columns 29..34)
    inside = (fov if use_fov else np.ones((H, W), bool)).astype(np.float32)
    keys = np.full((H + 2, W + 2, 3), np.nan, np.float32)
    state = np.full((H, W, 4), np.nan, np.float32)
    extents = np.zeros((3, 4), np.int64)
    plane = fov.view(np.uint8) if use_fov else np.zeros((0, 0), np.uint8)
    lay_out_keyframe(probs, plane, keys, state, extents)
    objects = probs[1:] * inside
    np.testing.assert_array_equal(keys[1:-1, 1:-1], objects.transpose(1, 2, 0))
    assert not keys[0].any() and not keys[-1].any()
    assert not keys[:, 0].any() and not keys[:, -1].any()
    np.testing.assert_array_equal(state[..., :2], pixel_grid(H, W))
    np.testing.assert_array_equal(state[..., 2], inside)
    np.testing.assert_array_equal(state[..., 3], inside)
    for k, channel in enumerate(objects):
        rows, cols = np.flatnonzero(channel.any(axis=1)), np.flatnonzero(channel.any(axis=0))
        if rows.size == 0:
            assert tuple(extents[k]) == (W, -1, H, -1)
        else:
            assert tuple(extents[k]) == (cols[0], cols[-1], rows[0], rows[-1])
    assert tuple(extents[0]) == ((31 if use_fov else 29), W - 1, 17, H - 1)


def test_no_object_gives_exact_background():
    prop = FlowPropagator(RoughFlow(1, 2.0))
    clip = frames(1, 3)
    prop.reset(clip[0], one_hot(np.zeros((H, W), np.uint8), 3))
    for frame in clip[1:]:
        step = prop.step(frame)
        assert step.support == (0, 0, 0, 0)
        assert np.all(step.probs[0] == 1.0) and not step.probs[1:].any()
        assert step.confidence.max() > 0


@pytest.mark.skipif(
    int(cv2.__version__.split(".")[0]) < 5, reason="OpenCV 4 rounds positions to 1/32 pixel"
)
@pytest.mark.parametrize("channels", [1, 4])
def test_the_bilinear_formula_is_opencv_remap(channels):
    rng = np.random.default_rng(channels)
    image = rng.random((40, 50, channels), dtype=np.float32)
    image[image < 0.3] = 0.0
    x = rng.uniform(-3, 53, (120, 200)).astype(np.float32)
    y = rng.uniform(-3, 43, (120, 200)).astype(np.float32)
    x[::7], y[::5] = np.round(x[::7]), np.round(y[::5])  # integer positions too
    out = cv2.remap(
        image if channels > 1 else image[..., 0], x, y, cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT, borderValue=0,
    ).reshape(120, 200, channels)  # fmt: skip
    for c in range(channels):
        np.testing.assert_array_equal(out[..., c], bilinear(image[..., c], x, y))

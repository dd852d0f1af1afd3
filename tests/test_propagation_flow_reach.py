"""FlowPropagator samples the keyframe only where a position can reach an object: the values are
bit-identical to sampling every pixel (the reach test switched off), on rough flows, several
stripes, both channel-group sizes, objects at the border, a field of view and empty keyframes;
the step's ``support`` box holds every pixel that is not exactly background, so labels and the
mean confidence computed inside it are the same as over the whole frame."""

from __future__ import annotations

import numpy as np
import pytest

from endobench.propagation import FlowEstimator, FlowPropagator, labels_from_probs, one_hot
from endobench.propagation import flow_propagation as fp
from endobench.propagation.tracker import mean_inside, step_labels

H, W = 150, 90  # three stripes of 64 rows (the last one short)


class RoughFlow(FlowEstimator):
    """Seeded flows: a drift of a few pixels plus per-pixel noise, different at every call."""

    name = "rough"

    def __init__(self, seed: int, drift: float) -> None:
        self.rng = np.random.default_rng(seed)
        self.drift = drift

    def __call__(self, prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        flow = self.rng.normal(0.0, 0.8, (H, W, 2)).astype(np.float32)
        flow[..., 0] += self.drift * self.rng.uniform(-1, 1)
        flow[..., 1] += self.drift * self.rng.uniform(-1, 1)
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


def run(labels: np.ndarray, classes: int, seed: int, fov: np.ndarray | None, drift: float):
    prop = FlowPropagator(RoughFlow(seed, drift), fov=fov, confidence="photometric")
    clip = frames(seed, 7)
    probs = one_hot(labels, classes)
    probs[1:, labels > 0] *= 0.75  # soft keyframe: every channel carries its own values
    probs[0] = 1.0 - probs[1:].sum(0)
    prop.reset(clip[0], probs)
    keys = prop._keys
    steps = [prop.step(f) for f in clip[1:]]
    check_support(steps)
    return keys, [(s.probs.copy(), s.confidence.copy()) for s in steps]


def check_support(steps) -> None:
    """Outside each step's support box the probabilities are exactly background, and labels and
    mean confidence inside it equal those of the whole frame."""
    for step in steps:
        labels = labels_from_probs(step.probs)
        np.testing.assert_array_equal(step_labels(step), labels)
        assert mean_inside(step.confidence, labels, step.support) == mean_inside(
            step.confidence, labels
        )
        if step.support is None:
            continue
        r0, r1, c0, c1 = step.support
        outside = np.ones((H, W), bool)
        outside[r0:r1, c0:c1] = False
        assert np.all(step.probs[0][outside] == 1.0) and not step.probs[1:, outside].any()


def spread(classes: int) -> np.ndarray:
    """Labels 1..classes-1 as small squares far apart (each object its own box)."""
    lab = np.zeros((H, W), np.uint8)
    for k in range(1, classes):
        r, c = (17 * k) % (H - 8), (29 * k) % (W - 8)
        lab[r : r + 6, c : c + 6] = k
    return lab


LAYOUTS = [
    (slice(70, 84), slice(30, 50), 3.0),  # small, in the middle stripe
    (slice(0, 12), slice(0, 16), 6.0),  # at the top-left corner, moving out
    (slice(140, 150), slice(70, 90), 2.0),  # in the short last stripe, at the border
    (None, None, 3.0),  # objects far apart: one key per object
]


@pytest.mark.parametrize("classes", [2, 4, 6, 9])  # groups of 1, 3, 4 + 1, 4 + 4
@pytest.mark.parametrize(("rows", "cols", "drift"), LAYOUTS)
@pytest.mark.parametrize("group_cost", [None, 0.0, 100.0])  # as planned, grouped, one by one
def test_reach_test_changes_no_value(monkeypatch, classes, rows, cols, drift, group_cost):
    labels = spread(classes) if rows is None else blobs(classes, rows, cols)
    fov = np.ones((H, W), bool)
    fov[:, :3] = False
    if group_cost is not None:
        monkeypatch.setattr(fp, "GROUP_COST", group_cost)
    for use_fov in (None, fov):
        keys, fast = run(labels, classes, 7, use_fov, drift)
        assert keys and all(key.reach is not None for key in keys)  # the reach test runs
        if group_cost == 100.0:
            assert all(key.count == 1 for key in keys)  # (objects outside the fov have none)
        with monkeypatch.context() as m:
            m.setattr(fp, "REACH_MAX_SHARE", 0.0)  # every pixel sampled
            off, full = run(labels, classes, 7, use_fov, drift)
        assert all(key.reach is None for key in off)
        for (p, c), (q, d) in zip(fast, full, strict=True):
            np.testing.assert_array_equal(p, q)
            np.testing.assert_array_equal(c, d)
        assert fast[-1][0][1:].max() > 0  # an object is still there to be sampled


def test_objects_far_apart_are_sampled_one_by_one_and_groups_are_padded():
    keys, _ = run(spread(6), 6, 3, None, 2.0)
    assert [(key.first, key.count, key.probs.shape[2]) for key in keys] == [
        (k, 1, 1) for k in range(1, 6)
    ]
    rows = np.zeros((H, W), np.uint8)  # six objects in alternate rows of one box: they overlap
    rows[20:120, 10:80] = (np.arange(20, 120) % 6 + 1)[:, None]
    keys, _ = run(rows, 7, 3, None, 2.0)
    assert [(key.first, key.count, key.probs.shape[2]) for key in keys] == [(1, 4, 4), (5, 2, 4)]
    assert not keys[1].probs[..., 2:].any()  # zero padding


def test_no_object_gives_exact_background_and_large_objects_skip_the_test():
    empty = np.zeros((H, W), np.uint8)
    prop = FlowPropagator(RoughFlow(1, 2.0))
    clip = frames(1, 3)
    prop.reset(clip[0], one_hot(empty, 3))
    assert [prop.step(f).support for f in clip[1:]] == [(0, 0, 0, 0)] * 2
    keys, steps = run(empty, 3, 1, None, 2.0)
    assert keys == []
    for probs, confidence in steps:
        assert np.all(probs[0] == 1.0) and not probs[1:].any()
        assert confidence.max() > 0
    large = blobs(2, slice(0, H), slice(0, W))
    keys, _ = run(large, 2, 1, None, 2.0)
    assert [key.reach for key in keys] == [None]

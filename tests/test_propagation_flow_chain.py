"""``flow_chain.settle``: hand-computed pixels (the validity threshold, the division by the
valid share, the field of view, the step confidence), the row and column ranges, and bit-identity
with the numpy expressions it replaced, on random states."""

from __future__ import annotations

import numpy as np
import pytest

from endobench.propagation.flow_chain import settle

NO_FOV, NO_CONF = np.zeros((0, 0), bool), np.zeros((0, 0), np.float32)


def run(state: np.ndarray, fov: np.ndarray = NO_FOV, step_conf: np.ndarray = NO_CONF):
    h, w = state.shape[:2]
    x, y, conf, okf = (np.full((h, w), np.nan, np.float32) for _ in range(4))
    rows, cols = np.full((2, h), np.nan, np.float32), np.full((2, w), np.nan, np.float32)
    settle(state, fov, step_conf, x, y, conf, okf, rows, cols)
    return x, y, conf, okf, rows, cols


def test_hand_computed_pixels() -> None:
    # (x, y, confidence, validity) as bilinear sampling leaves them
    state = np.array(
        [
            [[3.0, 4.0, 0.8, 1.0], [1.5, 2.0, 0.6, 0.5], [9.0, 9.0, 0.9, 0.49]],
            [[2.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0], [1.8, 0.6, 0.3, 0.6]],
        ],
        np.float32,
    )
    step_conf = np.array([[0.5, 1.0, 1.0], [0.25, 1.0, 0.5]], np.float32)
    fov = np.array([[True, True, True], [False, True, True]])
    x, y, conf, okf, rows, cols = run(state.copy(), fov, step_conf)
    np.testing.assert_array_equal(okf, [[1, 1, 0], [0, 0, 1]])  # 0.49 < 0.5; outside the fov
    np.testing.assert_allclose(x, [[3.0, 3.0, 0.0], [0.0, 0.0, 3.0]], rtol=1e-6)
    np.testing.assert_allclose(y, [[4.0, 4.0, 0.0], [0.0, 0.0, 1.0]], rtol=1e-6)
    np.testing.assert_allclose(conf, [[0.4, 0.6, 0.0], [0.0, 0.0, 0.15]], rtol=1e-6)
    np.testing.assert_allclose(rows, [[0.0, 0.0], [4.0, 1.0]], rtol=1e-6)  # lowest, highest y
    np.testing.assert_allclose(cols, [[0.0, 0.0, 0.0], [3.0, 3.0, 3.0]], rtol=1e-6)


def test_state_becomes_the_settled_planes() -> None:
    state = np.random.default_rng(0).uniform(0, 5, (7, 9, 4)).astype(np.float32)
    state[..., 3] = np.random.default_rng(1).uniform(0, 1, (7, 9))
    x, y, conf, okf, rows, cols = run(state)
    np.testing.assert_array_equal(state, np.stack([x, y, conf, okf], axis=-1))
    np.testing.assert_array_equal(rows, [y.min(axis=1), y.max(axis=1)])
    np.testing.assert_array_equal(cols, [x.min(axis=0), x.max(axis=0)])


def numpy_settle(state, fov, step_conf):
    """The expressions ``FlowPropagator.step`` used before ``settle`` (same float32 order)."""
    x, y, conf, valid = (state[..., i].copy() for i in range(4))
    ok = valid >= np.float32(0.5)
    if fov is not None:
        ok &= fov
    okf = ok.astype(np.float32)
    scale = np.divide(okf, np.maximum(valid, np.float32(1e-6)))
    x *= scale
    y *= scale
    weight = okf if step_conf is None else okf * step_conf
    return x, y, conf * weight, okf


@pytest.mark.parametrize("with_fov", [False, True])
@pytest.mark.parametrize("with_conf", [False, True])
def test_bit_identical_to_numpy(with_fov: bool, with_conf: bool) -> None:
    rng = np.random.default_rng(7)
    h, w = 33, 47
    state = rng.uniform(-3, 60, (h, w, 4)).astype(np.float32)
    shares = rng.choice([0.0, 1e-7, 0.3, 0.5, 0.7, 1.0], (h, w)) * rng.uniform(0.9, 1, (h, w))
    state[..., 3] = np.where(rng.random((h, w)) < 0.3, 0.5, shares)  # 0.5 exactly: kept
    fov = rng.random((h, w)) < 0.8 if with_fov else None
    step_conf = rng.random((h, w)).astype(np.float32) if with_conf else None
    expected = numpy_settle(state, fov, step_conf)
    got = run(
        state.copy(),
        NO_FOV if fov is None else fov,
        NO_CONF if step_conf is None else step_conf,
    )
    for e, g in zip(expected, got[:4], strict=True):
        np.testing.assert_array_equal(g, e)

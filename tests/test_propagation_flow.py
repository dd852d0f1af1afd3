"""Flow estimators behind one interface: convention, presets, RAFT plumbing (random init)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from endobench.propagation.flow import (
    PROPAGATION_DIS_ITERATIONS,
    DISFlow,
    FlowError,
    RAFTFlow,
    to_gray,
)
from endobench.registry import FLOW_ESTIMATORS, SpecError


@pytest.fixture(scope="module")
def shifted_pair() -> tuple[np.ndarray, np.ndarray]:
    """A smooth random texture and the same texture moved by (+3, +2) pixels."""
    rng = np.random.default_rng(0)
    base = cv2.GaussianBlur(rng.random((140, 180)).astype(np.float32), (0, 0), 2.0)
    base = cv2.normalize(base, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    prev = np.dstack([base] * 3)
    nxt = np.roll(prev, shift=(2, 3), axis=(0, 1))
    return prev, nxt


@pytest.mark.parametrize("method", ["dis:ultrafast", "dis:fast", "dis:medium", "farneback"])
def test_opencv_estimators_follow_the_opencv_convention(method, shifted_pair):
    prev, nxt = shifted_pair
    flow = FLOW_ESTIMATORS.build(method)(prev, nxt)
    assert flow.shape == (140, 180, 2) and flow.dtype == np.float32
    # prev(y, x) ~ next(y + fy, x + fx): content moved right 3, down 2.
    inner = flow[20:-20, 20:-20].reshape(-1, 2)
    np.testing.assert_allclose(np.median(inner, axis=0), [3.0, 2.0], atol=0.25)


def test_dis_alias_and_gray_input(shifted_pair):
    prev, nxt = shifted_pair
    est = FLOW_ESTIMATORS.build("dis")
    assert est.name == "dis:ultrafast"
    np.testing.assert_array_equal(est(prev, nxt), est(to_gray(prev), to_gray(nxt)))
    assert est.info()["source"].startswith("opencv")


def test_propagation_dis_runs_the_inverse_search_to_convergence():
    # A 10-pixel shift of a smooth texture: the ultrafast preset's 12 gradient-descent iterations
    # stop short on about half of the pixels; 32 iterations find it almost everywhere.
    rng = np.random.default_rng(0)
    base = cv2.GaussianBlur(rng.random((140, 180)).astype(np.float32), (0, 0), 2.0)
    base = cv2.normalize(base, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    nxt = np.roll(base, shift=10, axis=1)

    def share_found(estimator) -> float:
        inner = estimator(base, nxt)[20:-20, 20:-20]
        return float(np.mean((np.abs(inner[..., 0] - 10) < 0.5) & (np.abs(inner[..., 1]) < 0.5)))

    converged = FLOW_ESTIMATORS.build("dis")
    assert converged.iterations == PROPAGATION_DIS_ITERATIONS == 32
    assert converged.info()["iterations"] == 32
    preset = DISFlow("ultrafast")
    assert preset.iterations == 12  # the preset as OpenCV ships it
    assert share_found(converged) > 0.95
    assert share_found(preset) < 0.6
    assert DISFlow("fast").iterations == 16  # temporal consistency's flow is unchanged
    assert FLOW_ESTIMATORS.build("dis:preset=fast,iterations=5").iterations == 5
    for bad in (0, True, 2.5):
        with pytest.raises(FlowError, match="DIS iterations"):
            DISFlow("ultrafast", iterations=bad)


def test_build_errors_are_explicit():
    with pytest.raises(SpecError, match="raft_small"):
        FLOW_ESTIMATORS.build("pwcnet")
    with pytest.raises(SpecError, match="preset"):
        FLOW_ESTIMATORS.build("dis:turbo")
    with pytest.raises(FlowError, match="same size"):
        FLOW_ESTIMATORS.build("dis")(np.zeros((32, 32), np.uint8), np.zeros((32, 40), np.uint8))


@pytest.fixture(scope="module")
def raft() -> RAFTFlow:
    torch.manual_seed(0)
    return RAFTFlow("small", allow_random_init=True, device="cpu", num_flow_updates=2)


def test_raft_refuses_random_init_without_weights(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(FlowError, match="allow_random_init"):
        FLOW_ESTIMATORS.build("raft_small")


@pytest.mark.parametrize("shape", [(100, 150), (130, 201)])
def test_raft_pads_upsamples_and_crops_back(raft, shape):
    rng = np.random.default_rng(1)
    prev = rng.integers(0, 255, (*shape, 3), dtype=np.uint8)
    flow = raft(prev, np.roll(prev, 2, axis=1))
    assert flow.shape == (*shape, 2) and flow.dtype == np.float32
    assert np.isfinite(flow).all()
    assert raft.info()["sha256"] == "random-init"


def test_raft_small_input_flow_is_rescaled_to_input_pixels(raft):
    """A 64x80 pair is run at 128x160: the flow must equal the big flow resized and halved."""
    rng = np.random.default_rng(2)
    small = rng.integers(0, 255, (64, 80, 3), dtype=np.uint8)
    nxt = np.roll(small, 1, axis=0)
    flow = raft(small, nxt)
    big = raft(
        cv2.resize(small, (160, 128), interpolation=cv2.INTER_LINEAR),
        cv2.resize(nxt, (160, 128), interpolation=cv2.INTER_LINEAR),
    )
    expected = cv2.resize(big, (80, 64), interpolation=cv2.INTER_LINEAR) * 0.5
    np.testing.assert_allclose(flow, expected, rtol=1e-4, atol=1e-4)


def test_raft_loads_a_local_weights_file(raft, tmp_path):
    path = tmp_path / "raft_small.pth"
    torch.save(raft.model.state_dict(), path)
    loaded = FLOW_ESTIMATORS.build("raft_small", weights=path, device="cpu", num_flow_updates=2)
    assert loaded.info()["source"] == str(path) and len(loaded.info()["sha256"]) == 64
    rng = np.random.default_rng(3)
    a = rng.integers(0, 255, (128, 128, 3), dtype=np.uint8)
    np.testing.assert_allclose(loaded(a, a[::-1]), raft(a, a[::-1]), atol=1e-5)
    torch.save({"not": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(FlowError, match="bad.pth"):
        FLOW_ESTIMATORS.build("raft_small", weights=tmp_path / "bad.pth")

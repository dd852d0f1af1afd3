"""Gray frames: flow (and copy) from ground-truth keyframes get each frame's luma, which a JPEG
decodes without its colour planes; everything that looks at colour still gets RGB."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from endobench.data import Clip, open_dataset
from endobench.propagation import build_propagator, track
from endobench.propagation.base import PropagationStep
from endobench.propagation.flow_propagation import CopyLastPropagator
from endobench.registry import KEYFRAME_POLICIES


@pytest.fixture(scope="module")
def registry(samples: Path, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("luma") / "datasets.yaml"
    path.write_text(
        f"datasets:\n  davis:\n    format: davis\n    root: {samples / 'DAVIS'}\n"
        f"  chole:\n    format: cholecseg8k\n    root: {samples / 'CholecSeg8k'}\n"
    )
    return path


class Recording(CopyLastPropagator):
    """Copy propagation that records the shape of every frame it is given."""

    def __init__(self, gray_frames: bool) -> None:
        super().__init__()
        self.gray_frames = gray_frames
        self.shapes: list[tuple[int, ...]] = []

    def reset(self, frame: np.ndarray, probs: np.ndarray) -> None:
        self.shapes.append(np.asarray(frame).shape)
        super().reset(frame, probs)

    def step(self, frame: np.ndarray) -> PropagationStep:
        self.shapes.append(np.asarray(frame).shape)
        return super().step(frame)


def test_reader_clips_give_the_decoders_luma(registry: Path):
    davis = open_dataset("davis", registry=registry).clips()[0]
    for i in (0, 7):
        luma = davis.luma(i)
        assert luma.shape == davis.frame(i).shape[:2]
        gray = cv2.cvtColor(davis.frame(i), cv2.COLOR_RGB2GRAY)
        assert np.abs(luma.astype(int) - gray).mean() < 0.1
    chole = open_dataset("chole", registry=registry).clips()[0]  # PNG frames: exact 601 luma
    assert np.array_equal(chole.luma(3), cv2.cvtColor(chole.frame(3), cv2.COLOR_RGB2GRAY))


def test_a_clip_without_a_luma_loader_converts_its_rgb_frames():
    frames = [np.random.default_rng(i).integers(0, 256, (6, 9, 3), np.uint8) for i in range(2)]
    clip = Clip("c", ["a", "b"], frames.__getitem__, lambda i: None, [], {1: "x"})
    assert np.array_equal(clip.luma(1), cv2.cvtColor(frames[1], cv2.COLOR_RGB2GRAY))


@pytest.mark.parametrize("read_ahead", [0, 2])
def test_gray_propagators_get_luma_frames_and_others_rgb(registry: Path, read_ahead: int):
    clip = open_dataset("davis", registry=registry).clips()[0]
    policy = KEYFRAME_POLICIES.build("every:5")
    h, w = clip.frame(0).shape[:2]
    for gray, shape in ((True, (h, w)), (False, (h, w, 3))):
        forward, backward = Recording(gray), Recording(gray)
        result = track(
            clip, forward, policy, progress=False, backward=backward, read_ahead=read_ahead
        )
        assert result.num_frames == len(clip)
        assert set(forward.shapes) == {shape} and set(backward.shapes) == {shape}
    # One propagator that needs colour is enough for every one to get RGB.
    forward, backward = Recording(True), Recording(False)
    track(clip, forward, policy, progress=False, backward=backward, read_ahead=read_ahead)
    assert set(forward.shapes) == {(h, w, 3)}


def test_flow_on_luma_frames_tracks_as_well_as_on_rgb(registry: Path):
    """The same flow tracking from luma (the default path) and from RGB frames (forced through a
    clip without a luma loader): J&F within 1e-3 on a real DAVIS clip."""
    from endobench.metrics import evaluate_sequence, summarize

    clip = open_dataset("davis", registry=registry).clips()[0]
    rgb_only = Clip(
        clip.name, clip.frame_names, clip.frame, clip.mask, clip.annotated, clip.classes,
        clip.fps, clip.fov_mask, clip.meta, clip.void_id,
    )  # fmt: skip
    policy = KEYFRAME_POLICIES.build("every:10")
    scores = []
    for c in (clip, rgb_only):
        flow = build_propagator("flow:dis")
        assert flow.gray_frames
        result = track(c, flow, policy, progress=False, read_ahead=2)
        truth = [clip.mask(i) for i in range(len(clip))]
        scores.append(summarize(evaluate_sequence(truth, result.masks)).loc["global", "J&F-Mean"])
    print(f"J&F luma {scores[0]:.5f}, rgb {scores[1]:.5f}")
    assert scores[0] > 0.5 and abs(scores[0] - scores[1]) < 1e-3

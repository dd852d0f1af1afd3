"""Flow computed ahead on worker threads: the same results as the sequential loop, clear errors,
no hang, and an interrupted `endobench track` keeps what it wrote."""

from __future__ import annotations

import argparse
import json
import threading
from pathlib import Path

import numpy as np
import pytest

from endobench.commands import track as track_command
from endobench.data import Clip, open_dataset
from endobench.data.errors import DataError
from endobench.data.label_png import read_label_png
from endobench.propagation import build_propagator, track
from endobench.propagation.fusion import FusionConfig
from endobench.propagation.lookahead import Lookahead
from endobench.registry import KEYFRAME_POLICIES

WORKERS = ("read", "flow", "flow-back", "back")


def workers_alive() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(WORKERS)]


@pytest.fixture(scope="module")
def registry(samples: Path, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("lookahead") / "datasets.yaml"
    path.write_text(
        f"datasets:\n  chole:\n    format: cholecseg8k\n    root: {samples / 'CholecSeg8k'}\n"
        f"  davis:\n    format: davis\n    root: {samples / 'DAVIS'}\n"
    )
    return path


@pytest.fixture(scope="module")
def chole(registry: Path) -> Clip:
    """The first 16 frames of the real 13-class CholecSeg8k clip (three 4-channel key groups,
    void), decoded once."""
    clip = open_dataset("chole", registry=registry).clips()[0]
    frames = [clip.frame(i) for i in range(16)]
    masks = [clip.mask(i) for i in range(16)]
    return Clip(
        clip.name, clip.frame_names[:16], frames.__getitem__, masks.__getitem__, range(16),
        clip.classes, clip.fps, clip.fov_mask, clip.meta, clip.void_id,
    )  # fmt: skip


def run(
    clip: Clip,
    read_ahead: int,
    bidirectional: bool,
    confidence="photometric",
    policy="every:7",
    **options,
):
    def flow():
        return build_propagator("flow:dis", flow_confidence=confidence)

    return track(
        clip, flow(), KEYFRAME_POLICIES.build(policy), progress=False,
        backward=flow() if bidirectional else None, read_ahead=read_ahead, **options,
    )  # fmt: skip


@pytest.mark.parametrize(
    "bidirectional, confidence", [(False, "photometric"), (True, "forward_backward")]
)
def test_flow_ahead_equals_the_sequential_loop_on_a_real_clip(chole, bidirectional, confidence):
    sequential = run(chole, 0, bidirectional, confidence)
    ahead = run(chole, 3, bidirectional, confidence)
    assert ahead.keyframes == sequential.keyframes == [0, 7, 14]
    assert ahead.confidence == sequential.confidence  # exact floats
    for got, want in zip(ahead.masks, sequential.masks, strict=True):
        np.testing.assert_array_equal(got, want)
    # Real propagation happened: 12 classes in play, several of them carried between keyframes.
    assert len(np.unique(ahead.masks[3])) >= 5 and min(ahead.confidence) < 1.0
    assert not workers_alive()


def test_backward_worker_keeps_the_order_with_hysteresis_and_forward_only_frames(chole):
    # The labeller carries state from frame to frame and is reset at keyframes, and with
    # max_gap=4 frames leave forward only while their segment is open: the worker must produce
    # every output in stream order for the masks to match.
    options = {"fusion": FusionConfig(keep=0.3), "max_gap": 4, "policy": "every:7"}
    sequential = run(chole, 0, True, **options)
    ahead = run(chole, 3, True, **options)
    assert ahead.keyframes == sequential.keyframes == [0, 7, 14]
    assert ahead.confidence == sequential.confidence
    for got, want in zip(ahead.masks, sequential.masks, strict=True):
        np.testing.assert_array_equal(got, want)
    assert not workers_alive()


def fail_on_call(obj: object, method: str, call: int, message: str) -> None:
    """Make ``obj.method`` raise ``RuntimeError(message)`` on its ``call``-th call."""
    calls = []
    original = getattr(type(obj), method)

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == call:
            raise RuntimeError(message)
        return original(obj, *args, **kwargs)

    setattr(obj, method, failing)


def test_a_failing_backward_pass_surfaces_its_error_and_does_not_hang(chole):
    backward = build_propagator("flow:dis")
    fail_on_call(backward, "step", 3, "backward pass failed on purpose")
    with pytest.raises(RuntimeError, match="on purpose"):
        track(
            chole, build_propagator("flow:dis"), KEYFRAME_POLICIES.build("every:5"),
            progress=False, backward=backward, read_ahead=2,
        )  # fmt: skip
    assert not workers_alive()


class FailingClip(Clip):
    """Frames of ``clip``; frame ``bad`` raises ``error`` (as a corrupt file or Ctrl-C would)."""

    def __init__(self, clip: Clip, bad: int, error: BaseException) -> None:
        def frame(i: int) -> np.ndarray:
            if i == bad:
                raise error
            return clip.frame(i)

        super().__init__(
            clip.name, clip.frame_names, frame, clip.mask, clip.annotated, clip.classes,
            clip.fps, clip.fov_mask, clip.meta, clip.void_id,
        )  # fmt: skip


def test_a_failing_read_surfaces_at_its_frame_and_stops_the_workers(chole):
    clip = FailingClip(chole, 9, DataError(Path("frame_570_endo.png"), "cannot decode image"))
    seen: list[int] = []
    with pytest.raises(DataError, match="frame_570_endo.png"):
        track(
            clip, build_propagator("flow:dis"), KEYFRAME_POLICIES.build("every:5"),
            progress=False, sink=lambda t, mask: seen.append(t), read_ahead=3,
        )  # fmt: skip
    assert seen == list(range(9))  # every frame before the bad one was delivered, in order
    assert not workers_alive()


def test_a_failing_flow_worker_surfaces_its_error_and_does_not_hang(chole):
    propagator = build_propagator("flow:dis")
    fail_on_call(propagator, "prepare", 4, "flow worker failed on purpose")
    with pytest.raises(RuntimeError, match="on purpose"):
        track(chole, propagator, KEYFRAME_POLICIES.build("first"), progress=False, read_ahead=2)
    assert not workers_alive()


def test_motion_for_another_frame_pair_is_refused(chole):
    propagator = build_propagator("flow:dis")
    f0, f1, f2 = (chole.frame(i) for i in range(3))
    key = np.zeros((2, *f0.shape[:2]), np.float32)
    key[0] = 1.0
    propagator.reset(f0, key)
    with pytest.raises(ValueError, match="another frame pair"):
        propagator.step(f2, propagator.prepare(f1, f2))
    step = propagator.step(f1, propagator.prepare(f0, f1))
    np.testing.assert_array_equal(step.probs[0], 1.0)


def test_lookahead_keeps_at_most_depth_frames_in_flight():
    reads: list[int] = []

    def read(i: int) -> np.ndarray:
        reads.append(i)
        return np.full((2, 2, 3), i, np.uint8)

    with Lookahead(
        read, 10, depth=3, prepare=lambda a, b: int(b[0, 0, 0]) - int(a[0, 0, 0])
    ) as ahead:
        stream = iter(ahead)
        frame, motion = next(stream)
        ahead.io.submit(int).result()  # the reads queued before it are done
        assert motion is None and frame[0, 0, 0] == 0
        assert reads == [0, 1, 2, 3]  # 3 in flight after frame 0 was taken
        assert [m for _, m in stream] == [1] * 9
    with pytest.raises(ValueError, match="depth"):
        Lookahead(read, 10, depth=0)


def test_interrupted_track_keeps_the_finished_clip_and_leaves_no_half_clip(
    registry: Path, tmp_path: Path, monkeypatch
):
    davis = {c.name: c for c in open_dataset("davis", registry=registry).clips()}
    clips = [davis["car-shadow"], FailingClip(davis["blackswan"], 6, KeyboardInterrupt())]
    monkeypatch.setattr(track_command, "_open_clips", lambda args: clips)
    args = argparse.Namespace(
        dataset="davis", split=None, datasets=str(registry), sequence=None,
        propagation="flow:dis", keyframes="every:10", keyframe_source="gt",
        bidirectional=False, checkpoint=None, weights=None, random_init=False,
        flow_confidence="photometric", fusion=False, device=None, out=str(tmp_path / "out"),
        no_progress=True,
    )  # fmt: skip
    with pytest.raises(KeyboardInterrupt):
        track_command.run(args)
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["car-shadow", "track.json"]
    written = sorted((out / "car-shadow").glob("*.png"))
    assert len(written) == 40
    expected = run(davis["car-shadow"], 0, False, policy="every:10")
    for path, mask in zip(written, expected.masks, strict=True):
        np.testing.assert_array_equal(read_label_png(path, binary_as_object=False), mask)
    assert list(json.loads((out / "track.json").read_text())["clips"]) == ["car-shadow"]
    assert not workers_alive()

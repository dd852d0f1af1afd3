"""Streaming Tracker, bidirectional fusion, list keyframes, track_clips, on exact and real clips."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pandas as pd
import pytest
from test_tracker import MovingClip, SlideFlow, expected_propagation

from endobench.data import Clip, open_dataset
from endobench.errors import UserError
from endobench.metrics import evaluate_sequence, summarize
from endobench.propagation import (
    CopyLastPropagator,
    FlowEstimator,
    FlowPropagator,
    Tracker,
    build_propagator,
    fuse_bidirectional,
    track,
    track_clips,
)
from endobench.propagation.bidirectional import present_classes
from endobench.propagation.fusion import labels_from_probs
from endobench.registry import KEYFRAME_POLICIES, PROPAGATORS, SpecError


def test_fuse_bidirectional_hand_computed():
    # One pixel, 2 classes forward, 3 backward (class 2 appears at the later keyframe).
    fwd = np.array([[[0.2]], [[0.8]]], np.float32)
    bwd = np.array([[[0.1]], [[0.0]], [[0.9]]], np.float32)
    one = np.ones((1, 1), np.float32)
    # Equal confidence, t = k + 1 of a gap of 4: w_f = 3, w_b = 1 -> forward share 0.75.
    probs, conf = fuse_bidirectional(fwd, one, bwd, one, d_forward=1, d_backward=3)
    np.testing.assert_allclose(probs[:, 0, 0], [0.175, 0.6, 0.225], atol=1e-6)
    assert conf[0, 0] == pytest.approx(1.0)
    # No forward confidence: w_f = 0.05 * 3 = 0.15, w_b = 1 -> share 0.15 / 1.15.
    zero = np.zeros((1, 1), np.float32)
    probs, conf = fuse_bidirectional(fwd, zero, bwd, one, 1, 3)
    share = 0.15 / 1.15
    np.testing.assert_allclose(probs[1, 0, 0], 0.8 * share, rtol=1e-5)
    np.testing.assert_allclose(conf[0, 0], 1 - share, rtol=1e-5)
    np.testing.assert_allclose(probs.sum(0), 1.0, rtol=1e-5)
    with pytest.raises(ValueError, match="distances"):
        fuse_bidirectional(fwd, one, bwd, one, 0, 3)


def test_one_sided_object_is_carried_whole_by_the_nearer_keyframe_or_dropped():
    # Two pixels, 3 classes; class 2 is at the earlier keyframe only. Pixel a: the forward pass
    # is unsure (c_f = 0.1), the backward pass says background; pixel b: backward says class 1.
    fwd = np.array([[[0.0, 0.0]], [[0.0, 0.0]], [[1.0, 1.0]]], np.float32)
    bwd = np.array([[[1.0, 0.0]], [[0.0, 1.0]], [[0.0, 0.0]]], np.float32)
    c_f = np.array([[0.1, 1.0]], np.float32)
    c_b = np.ones((1, 2), np.float32)
    at_k = np.array([True, True, True])
    at_next = np.array([True, True, False])
    # Without presence (the per-pixel rule): pixel a fades to a fragment-making 0.303.
    old, _ = fuse_bidirectional(fwd, c_f, bwd, c_b, 1, 3)
    assert old[2, 0, 0] == pytest.approx(0.435 / 1.435, rel=1e-5)
    assert labels_from_probs(old).tolist() == [[0, 2]]
    # Nearer to the keyframe that has it (d_f = 1 < d_b = 3): carried whole from the forward
    # side (probability 1 on both pixels), which leaves nothing for the other classes.
    near, conf = fuse_bidirectional(fwd, c_f, bwd, c_b, 1, 3, present_forward=at_k,
                                    present_backward=at_next)  # fmt: skip
    np.testing.assert_allclose(near[:, 0, 0], [0.0, 0.0, 1.0], atol=1e-6)
    np.testing.assert_allclose(near[:, 0, 1], [0.0, 0.0, 1.0], atol=1e-6)
    np.testing.assert_allclose(conf, [[0.1 * 0.435 / 1.435 + (1 - 0.435 / 1.435), 1.0]], rtol=1e-5)
    assert labels_from_probs(near).tolist() == [[2, 2]]
    # Nearer to the keyframe without it, or at the midpoint: absent everywhere, and the other
    # classes fill the pixel in proportion to their blend: pixel a is all background (the only
    # other class there), pixel b all class 1 (its fused share 0.75 or 0.5 rescaled to 1; the
    # dropped mass does not go to background).
    for d_f, d_b in ((3, 1), (2, 2)):
        far, _ = fuse_bidirectional(fwd, c_f, bwd, c_b, d_f, d_b, present_forward=at_k,
                                    present_backward=at_next)  # fmt: skip
        np.testing.assert_allclose(far[:, 0, :], [[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]], atol=1e-6)
        assert labels_from_probs(far).tolist() == [[0, 1]]
    # The mirror case (at the later keyframe only) comes from the backward side.
    mirror, _ = fuse_bidirectional(bwd, c_b, fwd, c_f, 3, 1, present_forward=at_next,
                                   present_backward=at_k)  # fmt: skip
    np.testing.assert_allclose(mirror, near, atol=1e-6)
    # An object at both keyframes, or at neither, keeps the per-pixel rule.
    both, _ = fuse_bidirectional(fwd, c_f, bwd, c_b, 1, 3, present_forward=at_k,
                                 present_backward=at_k)  # fmt: skip
    np.testing.assert_array_equal(both, old)


def test_one_sided_rule_rescales_the_other_classes_instead_of_filling_background():
    # One pixel, 4 classes, confidence 1; class 3 is at the earlier keyframe only.
    one = np.ones((1, 1), np.float32)
    fwd = np.array([0.4, 0.0, 0.0, 0.6], np.float32).reshape(4, 1, 1)
    bwd = np.array([0.6, 0.2, 0.2, 0.0], np.float32).reshape(4, 1, 1)
    at_k, at_next = np.array([True, True, True, True]), np.array([True, True, True, False])

    def fused(d_f: int, d_b: int) -> np.ndarray:
        out, _ = fuse_bidirectional(fwd, one, bwd, one, d_f, d_b, present_forward=at_k,
                                    present_backward=at_next)  # fmt: skip
        return out[:, 0, 0]

    # d_f = 3, d_b = 1: forward share 0.25, so classes 0-2 blend to [0.55, 0.15, 0.15]; class 3
    # is dropped and they are rescaled to sum 1 (filling with background would give
    # [0.7, 0.15, 0.15]).
    np.testing.assert_allclose(fused(3, 1), [0.55 / 0.85, 0.15 / 0.85, 0.15 / 0.85, 0.0], atol=1e-6)
    # d_f = 1, d_b = 3: class 3 carried whole (0.6); classes 0-2 blend to [0.45, 0.05, 0.05]
    # and share the remaining 0.4 in those proportions.
    np.testing.assert_allclose(
        fused(1, 3), [0.4 * 0.45 / 0.55, 0.4 * 0.05 / 0.55, 0.4 * 0.05 / 0.55, 0.6], atol=1e-6
    )


def test_present_classes_counts_label_ids():
    labels = np.array([[0, 3], [3, 1]], np.uint8)
    assert present_classes(labels, 5).tolist() == [True, True, False, True, False]


def test_bidirectional_tracker_applies_presence_per_object_with_void():
    # Static 8 x 8 frames, keyframes 0 and 4, copy propagation (confidence 1): class 1 (rows
    # 0-1) at both keyframes; class 2 (rows 4-5) at keyframe 0 only; class 3 (rows 2-3) at
    # keyframe 4 only; rows 6-7 are void at keyframe 4 (no label: background).
    first = np.zeros((8, 8), np.uint8)
    first[0:2], first[4:6] = 1, 2
    last = np.zeros((8, 8), np.uint8)
    last[0:2], last[2:4], last[6:8] = 1, 3, 255
    masks = {0: first, 4: last}
    clip = Clip(
        "presence", [f"{t:05d}" for t in range(5)], lambda t: np.zeros((8, 8, 3), np.uint8),
        masks.get, [0, 4], {1: "a", 2: "b", 3: "c"},
    )  # fmt: skip
    policy = KEYFRAME_POLICIES.build("list:0,4")
    result = track(clip, CopyLastPropagator(), policy, progress=False,
                   backward=CopyLastPropagator())  # fmt: skip
    rows = [[int(result.masks[t][r, 0]) for r in range(0, 8, 2)] for t in range(5)]
    assert rows == [
        [1, 0, 2, 0],  # keyframe 0
        [1, 0, 2, 0],  # nearer keyframe 0: class 2 whole, class 3 absent
        [1, 0, 0, 0],  # midpoint: neither one-sided class
        [1, 3, 0, 0],  # nearer keyframe 4: class 3 whole
        [1, 3, 0, 0],  # keyframe 4 (void -> 0)
    ]
    assert all((m == m[:, :1]).all() for m in result.masks)  # whole rows, no fragments


def test_tracker_step_is_the_cutie_shape():
    clip = MovingClip(6)
    tracker = Tracker(
        FlowPropagator(SlideFlow(clip), confidence="none"), KEYFRAME_POLICIES.build("every:4"),
        class_ids=[1, 2, 3],
    )  # fmt: skip
    results = [tracker.step(clip.frame(t), clip.mask(t)) for t in range(6)]
    assert [r.is_keyframe for r in results] == [True, False, False, False, True, False]
    assert [r.index for r in results] == list(range(6))
    assert results[0].confidence == 1.0 and results[2].confidence == 1.0  # confidence "none"
    np.testing.assert_array_equal(results[3].labels, expected_propagation(clip, 3, 0))
    assert results[3].probs.shape == (4, 24, 32) and results[3].confidence_map.shape == (24, 32)


class ExactSlideFlow(FlowEstimator):
    """Exact flow of MovingClip in either direction: finds each frame's window in the world."""

    name = "exact-slide"

    def __init__(self, clip: MovingClip) -> None:
        self.clip = clip

    def _x0(self, frame: np.ndarray) -> int:
        world = self.clip.world[..., 0]  # FlowPropagator passes gray frames
        return next(x for x in range(64) if np.array_equal(world[:, x : x + self.clip.w], frame))

    def __call__(self, prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        flow = np.zeros((self.clip.h, self.clip.w, 2), np.float32)
        flow[..., 0] = self._x0(prev) - self._x0(nxt)
        return flow


def test_bidirectional_exact_fills_what_forward_cannot_see():
    # The window slides right: columns entering on the right have no forward source, columns on
    # the left none backward; fused, every pixel of every frame is exact.
    # Between keyframes 40 and 48 an object enters on the right (world columns 74-81).
    clip = MovingClip(49)
    policy = KEYFRAME_POLICIES.build("list:0,40,48")

    def prop():
        return FlowPropagator(ExactSlideFlow(clip), confidence="none")

    fwd = track(clip, prop(), policy, progress=False)
    bidi = track(clip, prop(), policy, progress=False, backward=prop())
    assert fwd.keyframes == bidi.keyframes == [0, 40, 48] and bidi.meta["bidirectional"]
    # A class absent at keyframe 40 is one-sided: it exists once keyframe 48 is the nearer one
    # (t >= 45, exact); before that it is dropped and everything else is exact.
    absent_at_40 = np.setdiff1d(np.unique(clip.mask(48)), np.unique(clip.mask(40)))
    assert absent_at_40.size
    for t in range(40, 49):
        truth = clip.mask(t)
        want = truth if t >= 45 else np.where(np.isin(truth, absent_at_40), 0, truth)
        np.testing.assert_array_equal(bidi.masks[t], want)
    for t in range(40, 48):
        np.testing.assert_array_equal(fwd.masks[t], expected_propagation(clip, t, 40))
    missed = sum(int((fwd.masks[t] != clip.mask(t)).sum()) for t in range(40, 48))
    assert missed >= 8 * 7  # forward alone misses the entering object (8 rows, 1-7 columns)


def test_bidirectional_streams_with_bounded_memory_and_flushes_forward_only():
    n = 1000
    clip = MovingClip(n)
    seen: list[int] = []
    tracemalloc.start()
    result = track(
        clip, FlowPropagator(SlideFlow(clip), confidence="none"), KEYFRAME_POLICIES.build("first"),
        progress=False, sink=lambda t, m: seen.append(t),
        backward=FlowPropagator(SlideFlow(clip), confidence="none"), max_gap=16,
    )  # fmt: skip
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert seen == list(range(n)) and result.keyframes == [0]
    assert peak < 1_000_000, peak  # 16 buffered frames of 24 x 32, not 1000


def test_list_spec_and_parse_errors_are_user_errors():
    policy = KEYFRAME_POLICIES.build("list:0,12,30")
    assert policy.spec == "list:0,12,30"
    assert [t for t in range(40) if policy.decide(t, None)] == [0, 12, 30]
    assert KEYFRAME_POLICIES.build("list:5").decide(0, None)  # frame 0 always
    for bad in ("list:", "list:3,2", "list:a,b", "list:-1", "every:0", 7):
        with pytest.raises(SpecError) as err:
            KEYFRAME_POLICIES.build(bad)
        assert isinstance(err.value, UserError) and "\n" not in str(err.value)
    assert build_propagator("flow:dis").name == "flow:dis:ultrafast"
    assert PROPAGATORS.parse("affinity:dinov2_vits14").options.backbone == "dinov2_vits14"
    for bad in ("flow:pwc", "flow:dis:turbo", "affinity:", "optical", "copy:x"):
        with pytest.raises(SpecError):
            PROPAGATORS.parse(bad)


def test_list_keyframes_deferred_to_annotated_frames():
    sparse = MovingClip(13, annotated=range(0, 13, 2))
    result = track(sparse, FlowPropagator(SlideFlow(sparse)), KEYFRAME_POLICIES.build("list:0,5,8"),
                   progress=False)  # fmt: skip
    assert result.keyframes == [0, 6, 8]


# ----- real data: CholecSeg8k, CVC-ClinicDB, DAVIS ------------------------------------------
def head(clip: Clip, n: int) -> Clip:
    """The first ``n`` frames of ``clip`` (still lazy)."""
    return Clip(
        clip.name, clip.frame_names[:n], clip.frame, clip.mask,
        [t for t in clip.annotated if t < n], clip.classes, clip.fps, clip.fov_mask,
        clip.meta, clip.void_id,
    )  # fmt: skip


def _jf(clips, spec, bidirectional) -> float:
    frames = []
    for clip, result in track_clips(
        clips, spec, "every:10", bidirectional=bidirectional, progress=False
    ):
        gts = [clip.mask(t) for t in clip.annotated]
        preds = [result.masks[t] for t in clip.annotated]
        frames.append(evaluate_sequence(gts, preds, sequence=clip.name))
    return float(summarize(pd.concat(frames, ignore_index=True)).loc["global", "J&F-Mean"])


@pytest.fixture(scope="module")
def real_scores() -> dict[tuple[str, str, bool], float]:
    sets = {
        "cholecseg8k": [head(open_dataset("cholecseg8k").clips()[0], 21)],
        "cvc-clinicdb": open_dataset("cvc-clinicdb").clips()[:5],
        "davis": [head(clip, 21) for clip in open_dataset("davis2017").clips()],
    }
    out = {}
    for name, clips in sets.items():
        for spec, bidi in (("copy", False), ("flow:dis", False), ("flow:dis", True)):
            out[name, spec, bidi] = _jf(clips, spec, bidi)
    print(out)
    return out


# Measured with flow:dis (DIS ultrafast, 32 iterations; the forward default, also used backward
# here: bidirectional's own default, DIS at half resolution, is scored by bench_tracking), GT
# keyframes every:10, on the
# first 21 frames of CholecSeg8k and of the 4 DAVIS clips and on CVC-ClinicDB sequences 1-5.
MEASURED = {
    "cholecseg8k": {"copy": 0.8055, "forward": 0.9143, "bidirectional": 0.8585},
    "cvc-clinicdb": {"copy": 0.1770, "forward": 0.2236, "bidirectional": 0.2592},
    "davis": {"copy": 0.5041, "forward": 0.8126, "bidirectional": 0.9267},
}


@pytest.mark.parametrize("dataset", sorted(MEASURED))
def test_real_clips_score_as_measured(real_scores, dataset):
    got = {
        "copy": real_scores[dataset, "copy", False],
        "forward": real_scores[dataset, "flow:dis", False],
        "bidirectional": real_scores[dataset, "flow:dis", True],
    }
    assert got == pytest.approx(MEASURED[dataset], abs=0.005)


def test_flow_beats_copy_on_every_real_dataset(real_scores):
    for name, margin in (("cholecseg8k", 0.1), ("cvc-clinicdb", 0.04), ("davis", 0.3)):
        assert real_scores[name, "flow:dis", False] > real_scores[name, "copy", False] + margin


def test_bidirectional_beats_forward_where_objects_persist(real_scores):
    # DAVIS objects and CVC polyps are present at every keyframe: the backward pass pays.
    assert real_scores["davis", "flow:dis", True] > real_scores["davis", "flow:dis", False] + 0.1
    assert (
        real_scores["cvc-clinicdb", "flow:dis", True]
        > real_scores["cvc-clinicdb", "flow:dis", False] + 0.03
    )
    # CholecSeg8k frames 561-581: GI tract and gallbladder have no label at keyframe 10 (frames
    # 571-577, back at 578-580), the L-hook has 46 px at keyframe 20 only. Classes at one
    # keyframe only are decided per object by the nearer keyframe (0.8585; blended per pixel
    # with "absent" it was 0.8175); it is still wrong where the labels flicker (frames 566-570,
    # and the L-hook on 577-580), a pattern that forward alone happens to match.
    assert (
        real_scores["cholecseg8k", "flow:dis", False] - 0.06
        < real_scores["cholecseg8k", "flow:dis", True]
        < real_scores["cholecseg8k", "flow:dis", False] - 0.05
    )

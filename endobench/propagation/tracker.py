"""The tracker: stream a clip frame by frame, segmenting keyframes and propagating in between.

Rules, stated once:

- Frame 0 is always a keyframe. A keyframe's labels come from the ground truth
  (``keyframe_source="gt"``, the semi-supervised VOS protocol) or from the segmenter
  (``"model"``, the deployable pipeline). With ``"gt"`` frame 0 must be annotated.
- ``"gt"`` and a keyframe requested at a frame without annotation: the request is deferred, the
  frame is propagated, and the next annotated frame becomes the keyframe (masks of later frames
  are never used early).
- Ground-truth void pixels (the clip's ``void_id``) carry no label: they propagate as "nothing"
  (background) and are background in the output.
- The number of classes at a ground-truth keyframe is ``max(class ids of the clip, ids in that
  mask) + 1``, so objects that appear later in multi-object clips are carried from their first
  annotated keyframe on.
- Per-frame confidence is the mean propagation confidence inside the output mask (over the whole
  frame when the mask is empty), 1.0 on keyframes.
- Bidirectional (``track(..., backward=PROPAGATOR)``): keyframes are chosen online exactly as
  forward; each frame between keyframes k and k' is then also propagated backward from k' and the
  two are fused (``bidirectional.fuse_bidirectional``); output is delayed until k' is known. The
  last segment (no later keyframe) and frames more than ``max_gap`` before the next keyframe are
  forward only, so memory stays bounded by ``max_gap`` frames whatever the clip length.

``Tracker`` is the streaming core (one ``step(frame, gt)`` per frame, the Cutie
``InferenceCore.step`` shape); ``track`` is a short loop over it.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal

import cv2
import numpy as np

from endobench.data.clip import VOID_ID, Clip
from endobench.propagation.base import PropagationStep, Propagator, Segmenter, one_hot
from endobench.propagation.fusion import FusionConfig, TemporalFusion, labels_from_probs
from endobench.propagation.keyframes import (
    BUDGET_WINDOW,
    KeyframePolicy,
    KeyframeState,
    appearance_drift,
    thumbnail,
)
from endobench.propagation.lookahead import Lookahead
from endobench.propagation.threads import opencv_threads_beside

KeyframeSource = Literal["gt", "model"]
MaskSink = Callable[[int, np.ndarray], None]
# Ground truth handed to ``Tracker.step``: a mask, None (not annotated), or a zero-argument
# callable returning either, called only when the tracker wants a keyframe (no wasted reads).
GroundTruth = np.ndarray | Callable[[], "np.ndarray | None"] | None

# Stages whose time counts as propagation cost (keyframe segmentation and I/O excluded).
PROPAGATION_STAGES = ("flow", "warp", "confidence", "fusion", "bidirectional")
# Frames buffered at most for the backward pass (bounds memory; see the module docstring).
DEFAULT_MAX_GAP = 64


@dataclass
class FrameResult:
    """Output of one ``Tracker.step``.

    labels: ``H x W`` uint8 label map. is_keyframe: segmented (not propagated). confidence: float
    in [0, 1] (module docstring). index: frame index in the stream. probs: ``C x H x W`` float32
    probabilities behind ``labels`` (propagated, or the keyframe's). confidence_map: ``H x W``
    float32 per-pixel propagation confidence (None on keyframes). segmented: the segmenter's
    ``C x H x W`` probabilities when it ran on a propagated frame (fusion), else None.
    """

    labels: np.ndarray
    is_keyframe: bool
    confidence: float
    index: int = 0
    probs: np.ndarray | None = None
    confidence_map: np.ndarray | None = None
    segmented: np.ndarray | None = None


@dataclass
class TrackResult:
    """Output of ``track``.

    masks: ``H x W`` uint8 label maps, one per frame (empty when a sink took them instead).
    keyframes: indices of the keyframes (segmented, not propagated).
    confidence: one float in [0, 1] per frame (see the module docstring).
    timings: seconds per stage: ``read``, ``flow``, ``warp``, ``confidence`` (the propagator's
        own breakdown when it reports one, forward and backward summed), ``propagate`` (all of the
        propagator's steps), ``segment`` (segmenter calls), ``keyframe`` (resets), ``fusion``
        (labelling), ``bidirectional`` (backward steps' bookkeeping and fusing), ``drift``,
        ``sink``, ``total``.
    keyframes_per_100: keyframes per 100 frames.
    """

    masks: list[np.ndarray]
    keyframes: list[int]
    confidence: list[float]
    timings: dict[str, float]
    keyframes_per_100: float
    num_frames: int = 0
    meta: dict[str, Any] = field(default_factory=dict)

    def propagation_fps(self) -> float:
        """Propagated frames per second over flow + warp + confidence + fusion (no keyframes)."""
        propagated = self.num_frames - len(self.keyframes)
        seconds = sum(self.timings.get(k, 0.0) for k in PROPAGATION_STAGES)
        if "flow" not in self.timings:  # a propagator without a breakdown: use its total
            seconds = self.timings.get("propagate", 0.0) + self.timings.get("fusion", 0.0)
        return propagated / seconds if seconds > 0 else float("inf")


def clip_class_ids(clip: Clip) -> list[int]:
    """The clip's declared class ids (void excluded), for ``Tracker(class_ids=...)``."""
    return [int(k) for k in clip.classes if int(k) != clip.void_id]


def mean_inside(
    confidence: np.ndarray, labels: np.ndarray, support: tuple[int, int, int, int] | None = None
) -> float:
    """Mean confidence over labelled (non-zero) pixels, over all pixels if there are none.

    ``support``: rows ``r0:r1``, columns ``c0:c1`` holding every labelled pixel (None: anywhere);
    the mean is the same (OpenCV adds the masked pixels in the same order), only cheaper.
    """
    inner = (
        (slice(None),) * 2
        if support is None
        else np.s_[support[0] : support[1], support[2] : support[3]]
    )
    if cv2.countNonZero(labels[inner]):
        return float(cv2.mean(confidence[inner], mask=labels[inner])[0])
    return float(confidence.mean())


def step_labels(step: PropagationStep) -> np.ndarray:
    """``labels_from_probs(step.probs)``: the step's own labels when it has them, else computed
    only inside ``step.support`` (same labels)."""
    if step.labels is not None:
        return step.labels
    if step.support is None:
        return labels_from_probs(step.probs)
    r0, r1, c0, c1 = step.support
    labels = np.zeros(step.probs.shape[1:], np.uint8)
    if r1 > r0 and c1 > c0:
        labels[r0:r1, c0:c1] = labels_from_probs(step.probs[:, r0:r1, c0:c1])
    return labels


class Tracker:
    """Streaming keyframe + propagation tracker: call ``step(frame, gt)`` once per frame, in order.

    ``class_ids``: the ids a ground-truth keyframe may hold (the probabilities get
    ``max(ids, ids in the mask) + 1`` channels); ``void_id``: the ignore value of the masks.
    ``timings`` holds seconds per stage (see ``TrackResult``) since construction.
    """

    def __init__(
        self,
        propagator: Propagator,
        policy: KeyframePolicy,
        segmenter: Segmenter | None = None,
        fusion: FusionConfig | None = None,
        keyframe_source: KeyframeSource = "gt",
        class_ids: list[int] | tuple[int, ...] = (1,),
        void_id: int = VOID_ID,
    ) -> None:
        if keyframe_source not in ("gt", "model"):
            raise ValueError(f"keyframe_source: expected 'gt' or 'model', got {keyframe_source!r}")
        if keyframe_source == "model" and segmenter is None:
            raise ValueError(
                "keyframe_source='model' needs a segmenter (e.g. a trained checkpoint)"
            )
        self.propagator, self.policy, self.segmenter = propagator, policy, segmenter
        self.keyframe_source: KeyframeSource = keyframe_source
        self.class_ids, self.void_id = [int(c) for c in class_ids], int(void_id)
        self.labeller = TemporalFusion(fusion) if fusion is not None else None
        self.segment_every_frame = segmenter is not None and fusion is not None
        self.timings = dict.fromkeys(("propagate", "segment", "keyframe", "fusion", "drift"), 0.0)
        self._t = 0
        self._recent: deque[int] = deque()
        self._last_key = 0
        self._pending = False
        self._key_thumb: np.ndarray | None = None

    @property
    def index(self) -> int:
        """Index of the next frame ``step`` will receive."""
        return self._t

    def _segment(self, frame: np.ndarray) -> np.ndarray:
        assert self.segmenter is not None
        t0 = time.perf_counter()
        probs = np.asarray(self.segmenter.predict_proba(frame[None])[0], dtype=np.float32)
        self.timings["segment"] += time.perf_counter() - t0
        return probs

    def _propagate(self, frame: np.ndarray, motion: Any = None):
        t0 = time.perf_counter()
        if motion is None:
            step = self.propagator.step(frame)
        else:  # prepared ahead by the propagator itself (``lookahead``)
            step = self.propagator.step(frame, motion)  # type: ignore[call-arg]
        self.timings["propagate"] += time.perf_counter() - t0
        return step

    def gt_probs(self, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Ground-truth mask -> (``C x H x W`` one-hot probs, ``H x W`` uint8 labels, void -> 0)."""
        gt = np.asarray(gt)
        if gt.dtype == np.uint8:  # a histogram instead of a sort (same ids)
            values = np.flatnonzero(np.bincount(gt.ravel(), minlength=256))
        else:
            values = np.unique(gt)
        values = values[values != self.void_id]
        classes = max([*self.class_ids, *(int(v) for v in values), 1]) + 1
        labels = np.where(gt == self.void_id, 0, gt).astype(np.uint8)
        return one_hot(gt, classes), labels

    def step(self, frame: np.ndarray, gt: GroundTruth = None, motion: Any = None) -> FrameResult:
        """Process the next frame (``H x W x 3`` uint8 RGB) and return its result.

        ``gt``: the frame's ground-truth mask (``H x W`` uint8), None, or a callable returning it;
        used only when ``keyframe_source="gt"`` and the policy asks for a keyframe here.
        ``motion``: ``propagator.prepare(previous frame, frame)`` computed ahead, or None.
        """
        t = self._t
        step = None
        if t == 0:
            want = True
        else:
            while self._recent and self._recent[0] <= t - BUDGET_WINDOW:
                self._recent.popleft()
            conf_now = drift = None
            if self.policy.needs_confidence:
                step = self._propagate(frame, motion)
                conf_now = mean_inside(step.confidence, step_labels(step), step.support)
            if self.policy.needs_drift and self._key_thumb is not None:
                t0 = time.perf_counter()
                drift = appearance_drift(self._key_thumb, thumbnail(frame))
                self.timings["drift"] += time.perf_counter() - t0
            state = KeyframeState(t - self._last_key, conf_now, drift, len(self._recent))
            want = self._pending or self.policy.decide(t, state)

        mask = None
        if want and self.keyframe_source == "gt":
            mask = gt() if callable(gt) else gt
            if mask is None and t == 0:
                raise ValueError(
                    "frame 0 has no ground-truth mask; keyframe_source='gt' needs the first frame "
                    "annotated (or use keyframe_source='model')"
                )
            self._pending = mask is None
        self._t += 1
        if want and not self._pending:
            return self._keyframe(t, frame, mask)
        if step is None:
            step = self._propagate(frame, motion)
        seg = self._segment(frame) if self.segment_every_frame else None
        t0 = time.perf_counter()
        if self.labeller is not None:
            labels = self.labeller(step.probs, step.confidence, seg)
            support = None
        else:
            labels, support = step_labels(step), step.support
        conf = mean_inside(step.confidence, labels, support)
        self.timings["fusion"] += time.perf_counter() - t0
        return FrameResult(labels, False, conf, t, step.probs, step.confidence, seg)

    def _keyframe(self, t: int, frame: np.ndarray, mask: np.ndarray | None) -> FrameResult:
        if mask is not None:
            t0 = time.perf_counter()
            probs, labels = self.gt_probs(mask)
        else:
            probs = self._segment(frame)
            t0 = time.perf_counter()
            labels = labels_from_probs(probs)
        self.propagator.reset(frame, probs)
        if self.labeller is not None:
            self.labeller.reset(labels)
        if self.policy.needs_drift:
            self._key_thumb = thumbnail(frame)
        self.timings["keyframe"] += time.perf_counter() - t0
        self._recent.append(t)
        self._last_key = t
        return FrameResult(labels, True, 1.0, t, probs)


def track(
    clip: Clip,
    propagator: Propagator,
    policy: KeyframePolicy,
    segmenter: Segmenter | None = None,
    fusion: FusionConfig | None = None,
    keyframe_source: KeyframeSource = "gt",
    progress: bool = True,
    sink: MaskSink | None = None,
    keep_masks: bool | None = None,
    backward: Propagator | None = None,
    max_gap: int = DEFAULT_MAX_GAP,
    read_ahead: int = 0,
) -> TrackResult:
    """Segment ``clip`` by keyframes + propagation, streaming one frame at a time.

    ``segmenter``: needed for ``keyframe_source="model"``; with ``fusion`` it also runs on every
    propagated frame and is blended in by confidence. ``fusion``: hysteresis (and blending)
    settings; None labels propagated frames by plain argmax. ``sink(t, mask)`` receives each
    ``H x W`` uint8 mask as soon as it is final; ``keep_masks`` (default: True without a sink)
    also collects them in ``TrackResult.masks``. ``backward``: a second propagator of the same
    kind turns on bidirectional propagation (module docstring), ``max_gap`` bounds its buffer.
    Frames reach the propagators as ``clip.luma`` (``H x W`` gray) when every propagator says
    ``gray_frames`` (flow with a gray estimator, copy), keyframes come from the ground truth and
    there is no segmenter; as ``clip.frame`` (RGB) otherwise.
    ``read_ahead``: decode that many frames ahead in a thread (all clip reads then go through
    that one thread) and, for a propagator with ``prepare`` (flow), compute each frame's flow
    ahead on another (``lookahead``; a backward propagator gets a third for its flows and a
    fourth for its pass over a segment while the forward one goes on); same results as
    ``read_ahead=0``. Memory is ``read_ahead`` frames plus the propagators' state (and,
    bidirectional, at most about ``3 * max_gap`` buffered frames), whatever the clip length,
    when masks are not kept.
    """
    from endobench.propagation.bidirectional import Bidirectional

    n = len(clip)
    if n == 0:
        raise ValueError(f"clip {clip.name!r} has no frames")
    tracker = Tracker(
        propagator, policy, segmenter, fusion, keyframe_source, clip_class_ids(clip), clip.void_id
    )
    prepare = getattr(propagator, "prepare", None) if read_ahead > 0 else None
    back_pools: list[ThreadPoolExecutor] = []
    if backward is not None and prepare is not None and hasattr(backward, "prepare"):
        back_pools = [ThreadPoolExecutor(1, thread_name_prefix=p) for p in ("flow-back", "back")]
    bidi = None
    if backward is not None:
        flows_back, worker = back_pools or (None, None)
        bidi = Bidirectional(tracker, backward, fusion, max_gap, ahead=flows_back, worker=worker)
    keep = sink is None if keep_masks is None else keep_masks
    inner = [getattr(p, "timings", None) for p in (propagator, backward)]
    inner_start = [dict(d) if isinstance(d, dict) else {} for d in inner]
    own = {"read": 0.0, "sink": 0.0}
    masks: list[np.ndarray] = []
    keyframes: list[int] = []
    confidences: list[float] = []
    start = time.perf_counter()

    def emit(result: FrameResult) -> None:
        if result.is_keyframe:
            keyframes.append(result.index)
        confidences.append(result.confidence)
        if sink is not None:
            t0 = time.perf_counter()
            sink(result.index, result.labels)
            own["sink"] += time.perf_counter() - t0
        if keep:
            masks.append(result.labels)

    # A flow (or copy) propagator from ground-truth keyframes never looks at colour: it gets
    # the frames' luma, which a JPEG decodes in about half the time of its RGB.
    gray = (
        keyframe_source == "gt"
        and segmenter is None
        and all(getattr(p, "gray_frames", False) for p in (propagator, backward) if p is not None)
    )
    read = clip.luma if gray else clip.frame
    ahead = Lookahead(read, n, read_ahead, prepare) if read_ahead > 0 else None
    # Pipelined: the caller steps, threads read and flow ahead (and 2 more work backward).
    threads = (
        opencv_threads_beside(2 + (ahead.flow is not None) + len(back_pools))
        if ahead is not None
        else nullcontext()
    )
    frames = iter(ahead) if ahead is not None else ((read(t), None) for t in range(n))

    def read_mask(t: int) -> np.ndarray | None:
        return clip.mask(t) if ahead is None else ahead.io.submit(clip.mask, t).result()

    try:
        with threads:
            # No bar object (nor tqdm import) without progress: it imports asyncio and its
            # lock imports multiprocessing, a tenth of a second of start-up.
            steps: Iterable[int] = range(n)
            if progress:
                from tqdm.auto import tqdm

                steps = tqdm(steps, desc=f"track {clip.name}", unit="frame")
            for t in steps:
                t0 = time.perf_counter()
                frame, motion = next(frames)
                own["read"] += time.perf_counter() - t0

                if t == 0 and keyframe_source == "gt":
                    truth: GroundTruth = read_mask(0)
                    if truth is None:
                        raise ValueError(
                            f"clip {clip.name!r}: frame 0 ({clip.frame_names[0]}) has no ground-truth "
                            "mask; keyframe_source='gt' needs the first frame annotated (or use "
                            "keyframe_source='model')"
                        )
                else:
                    truth = partial(read_mask, t)
                if bidi is None:
                    emit(tracker.step(frame, truth, motion))
                else:
                    for result in bidi.step(frame, truth, motion):
                        emit(result)
            if bidi is not None:
                for result in bidi.flush():
                    emit(result)
    finally:
        for pool in back_pools:
            pool.shutdown(wait=True, cancel_futures=True)
        if ahead is not None:
            ahead.close()

    timings = {**tracker.timings, **own}
    if bidi is not None:
        timings["bidirectional"] = bidi.seconds
    for d, d0 in zip(inner, inner_start, strict=True):
        if isinstance(d, dict):
            for key, value in d.items():
                timings[key] = timings.get(key, 0.0) + value - d0.get(key, 0.0)
    timings["total"] = time.perf_counter() - start
    return TrackResult(
        masks=masks,
        keyframes=keyframes,
        confidence=confidences,
        timings=timings,
        keyframes_per_100=100.0 * len(keyframes) / n,
        num_frames=n,
        meta={
            "clip": clip.name,
            "propagation": propagator.name,
            "keyframes": policy.spec,
            "keyframe_source": keyframe_source,
            "bidirectional": backward is not None,
            "fusion": None if fusion is None else fusion.model_dump(),
        },
    )

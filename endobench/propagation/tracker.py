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
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
from tqdm.auto import tqdm

from endobench.data.clip import Clip
from endobench.propagation.base import Propagator, Segmenter, one_hot
from endobench.propagation.flow import build_flow_estimator
from endobench.propagation.flow_propagation import (
    ConfidenceMode,
    CopyLastPropagator,
    FlowPropagator,
)
from endobench.propagation.fusion import FusionConfig, TemporalFusion, labels_from_probs
from endobench.propagation.keyframes import (
    BUDGET_WINDOW,
    KeyframePolicy,
    KeyframeState,
    appearance_drift,
    thumbnail,
)

KeyframeSource = Literal["gt", "model"]
MaskSink = Callable[[int, np.ndarray], None]

# Stages whose time counts as propagation cost (keyframe segmentation and I/O excluded).
PROPAGATION_STAGES = ("flow", "warp", "confidence", "fusion")


@dataclass
class TrackResult:
    """Output of ``track``.

    masks: ``H x W`` uint8 label maps, one per frame (empty when a sink took them instead).
    keyframes: indices of the keyframes (segmented, not propagated).
    confidence: one float in [0, 1] per frame (see the module docstring).
    timings: seconds per stage: ``read``, ``flow``, ``warp``, ``confidence`` (the propagator's
        own breakdown when it reports one), ``propagate`` (all of the propagator's steps),
        ``segment`` (segmenter calls), ``keyframe`` (resets), ``fusion`` (labelling),
        ``drift``, ``sink``, ``total``.
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


def build_propagator(
    spec: str,
    *,
    weights: str | Path | None = None,
    allow_random_init: bool = False,
    fov: np.ndarray | None = None,
    device: str | None = None,
    flow_confidence: ConfidenceMode = "photometric",
) -> Propagator:
    """Build a propagator from its spec.

    ``flow:dis`` (= ``flow:dis:ultrafast``), ``flow:dis:ultrafast|fast|medium``, ``flow:farneback``,
    ``flow:raft_small``, ``flow:raft_large``, ``affinity:BACKBONE`` (e.g.
    ``affinity:dinov2_vits14``) or ``copy`` (the copy-last-keyframe baseline). ``weights``: a
    local weights file (RAFT or the affinity backbone); ``allow_random_init``: permit untrained
    networks (plumbing tests only); ``fov``: ``H x W`` bool field of view for flow propagation.
    """
    kind, _, arg = spec.strip().partition(":")
    kind = kind.lower()
    if kind == "copy" and not arg:
        return CopyLastPropagator()
    if kind == "flow":
        method = arg or "dis"
        opts: dict[str, Any] = {}
        if method.startswith("raft"):
            opts = {"weights": weights, "allow_random_init": allow_random_init, "device": device}
        elif weights is not None:
            raise ValueError(f"propagation {spec!r}: --weights only applies to RAFT or affinity")
        return FlowPropagator(
            build_flow_estimator(method, **opts), fov=fov, confidence=flow_confidence
        )
    if kind == "affinity" and arg:
        from endobench.propagation.affinity import build_affinity_propagator

        pretrained = None if weights is not None else not allow_random_init
        return build_affinity_propagator(arg, pretrained=pretrained, weights=weights)
    raise ValueError(
        f"propagation {spec!r}: expected flow:dis | flow:dis:PRESET | flow:farneback | "
        "flow:raft_small | flow:raft_large | affinity:BACKBONE | copy"
    )


def describe_propagator(propagator: Propagator) -> dict[str, Any]:
    """Name and weights provenance of a propagator, for ``track.json``."""
    out: dict[str, Any] = {"name": propagator.name}
    estimator = getattr(propagator, "estimator", None)
    if estimator is not None and hasattr(estimator, "info"):
        out["weights"] = estimator.info()
    weights = getattr(propagator, "weights", None)
    if weights is not None:
        out["weights"] = weights.to_dict() if hasattr(weights, "to_dict") else weights
    return out


def _num_classes(clip: Clip, mask: np.ndarray) -> int:
    ids = [int(k) for k in clip.classes if int(k) != clip.void_id]
    values = np.unique(mask)
    values = values[values != clip.void_id]
    return max([*ids, *(int(v) for v in values), 1]) + 1


def _mean_inside(confidence: np.ndarray, labels: np.ndarray) -> float:
    """Mean confidence over labelled (non-zero) pixels, over all pixels if there are none."""
    if cv2.countNonZero(labels):
        return float(cv2.mean(confidence, mask=labels)[0])
    return float(confidence.mean())


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
) -> TrackResult:
    """Segment ``clip`` by keyframes + propagation, streaming one frame at a time.

    ``segmenter``: needed for ``keyframe_source="model"``; with ``fusion`` it also runs on every
    propagated frame and is blended in by confidence. ``fusion``: hysteresis (and blending)
    settings; None labels propagated frames by plain argmax. ``sink(t, mask)`` receives each
    ``H x W`` uint8 mask as soon as it is made; ``keep_masks`` (default: True without a sink)
    also collects them in ``TrackResult.masks``. Memory is one frame plus the propagator's state,
    whatever the clip length, when masks are not kept.
    """
    if keyframe_source not in ("gt", "model"):
        raise ValueError(f"keyframe_source: expected 'gt' or 'model', got {keyframe_source!r}")
    if keyframe_source == "model" and segmenter is None:
        raise ValueError("keyframe_source='model' needs a segmenter (e.g. a trained checkpoint)")
    n = len(clip)
    if n == 0:
        raise ValueError(f"clip {clip.name!r} has no frames")
    if keyframe_source == "gt" and clip.mask(0) is None:
        raise ValueError(
            f"clip {clip.name!r}: frame 0 ({clip.frame_names[0]}) has no ground-truth mask; "
            "keyframe_source='gt' needs the first frame annotated (or use keyframe_source='model')"
        )
    keep = sink is None if keep_masks is None else keep_masks
    labeller = TemporalFusion(fusion) if fusion is not None else None
    segment_every_frame = segmenter is not None and fusion is not None
    own = dict.fromkeys(
        ("read", "propagate", "segment", "keyframe", "fusion", "drift", "sink"), 0.0
    )
    inner = getattr(propagator, "timings", None)
    inner_start = dict(inner) if isinstance(inner, dict) else {}

    masks: list[np.ndarray] = []
    keyframes: list[int] = []
    confidences: list[float] = []
    recent: deque[int] = deque()
    last_key = 0
    pending = False
    key_thumb: np.ndarray | None = None
    start = time.perf_counter()

    def segment(frame: np.ndarray) -> np.ndarray:
        t0 = time.perf_counter()
        assert segmenter is not None
        probs = np.asarray(segmenter.predict_proba(frame[None])[0], dtype=np.float32)
        own["segment"] += time.perf_counter() - t0
        return probs

    for t in tqdm(range(n), disable=not progress, desc=f"track {clip.name}", unit="frame"):
        t0 = time.perf_counter()
        frame = clip.frame(t)
        own["read"] += time.perf_counter() - t0

        step = None
        if t == 0:
            want = True
        else:
            while recent and recent[0] <= t - BUDGET_WINDOW:
                recent.popleft()
            conf_now = drift = None
            if policy.needs_confidence:
                t0 = time.perf_counter()
                step = propagator.step(frame)
                own["propagate"] += time.perf_counter() - t0
                conf_now = _mean_inside(step.confidence, labels_from_probs(step.probs))
            if policy.needs_drift and key_thumb is not None:
                t0 = time.perf_counter()
                drift = appearance_drift(key_thumb, thumbnail(frame))
                own["drift"] += time.perf_counter() - t0
            state = KeyframeState(t - last_key, conf_now, drift, len(recent))
            want = pending or policy.decide(t, state)

        gt = None
        if want and keyframe_source == "gt":
            gt = clip.mask(t)
            pending = gt is None
        is_key = want and not pending

        if is_key:
            if gt is not None:
                t0 = time.perf_counter()
                probs = one_hot(gt, _num_classes(clip, gt))
                labels = np.where(gt == clip.void_id, 0, gt).astype(np.uint8)
            else:
                probs = segment(frame)
                t0 = time.perf_counter()
                labels = labels_from_probs(probs)
            propagator.reset(frame, probs)
            if labeller is not None:
                labeller.reset(labels)
            if policy.needs_drift:
                key_thumb = thumbnail(frame)
            own["keyframe"] += time.perf_counter() - t0
            keyframes.append(t)
            recent.append(t)
            last_key = t
            conf_value = 1.0
        else:
            if step is None:
                t0 = time.perf_counter()
                step = propagator.step(frame)
                own["propagate"] += time.perf_counter() - t0
            seg = segment(frame) if segment_every_frame else None
            t0 = time.perf_counter()
            if labeller is not None:
                labels = labeller(step.probs, step.confidence, seg)
            else:
                labels = labels_from_probs(step.probs)
            conf_value = _mean_inside(step.confidence, labels)
            own["fusion"] += time.perf_counter() - t0

        confidences.append(conf_value)
        if sink is not None:
            t0 = time.perf_counter()
            sink(t, labels)
            own["sink"] += time.perf_counter() - t0
        if keep:
            masks.append(labels)

    timings = dict(own)
    if isinstance(inner, dict):
        for key, value in inner.items():
            timings[key] = value - inner_start.get(key, 0.0)
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
            "fusion": None if fusion is None else fusion.model_dump(),
        },
    )

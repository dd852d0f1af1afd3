"""Mask propagation by optical flow: carry class probabilities from frame to frame.

At each step the flow from the new frame to the previous one is estimated, and each pixel's
position in the last keyframe is chained through it (bilinear backward warp of the position
map); the keyframe's probabilities are then sampled once at those positions. Sampling the
keyframe once, instead of re-warping the previous frame's probabilities, avoids the cumulative
blur that erodes thin structures over many steps. Rules at the edges, stated once:

- a pixel whose source lies outside the image (less than half of its bilinear footprint valid)
  has no source: it is background with confidence 0; a footprint partly outside takes its
  position from the valid taps only and its confidence is scaled by their share;
- outside the field of view (``fov``) there is no tissue: those pixels are background with
  confidence 0 in every output, and a source pixel there brings background and no trust;
- confidence accumulates along the motion path: it is the chained confidence of the previous
  frame times this step's confidence (``photometric``: brightness constancy of the warp,
  ``forward_backward``: consistency of the flow pair, at twice the flow cost; ``none``: 1),
  and restarts at 1 on every ``reset`` (keyframe).

The flow of a step depends on the two frames only, never on the propagation state, so a
pipeline may compute it ahead on another thread: ``prepare(prev, frame)`` returns a ``Motion``
that ``step(frame, motion)`` consumes (``endobench.propagation.lookahead``); the values are the
same as those of ``step(frame)`` alone.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from endobench.propagation.base import PropagationStep
from endobench.propagation.flow import FlowEstimator, to_gray
from endobench.propagation.flow_step_kernel import lay_out_keyframe, settle
from endobench.propagation.warp import (
    WarpError,
    forward_backward_confidence,
)

ConfidenceMode = Literal["photometric", "forward_backward", "none"]
CONFIDENCE_MODES = ("photometric", "forward_backward", "none")


@dataclass(frozen=True)
class Motion:
    """The state-free part of one step, as ``FlowPropagator.prepare`` computes it.

    prev / frame: the two frames it was prepared for (``step`` checks them by identity).
    gray: ``frame`` as ``H x W`` uint8 gray. flow: ``H x W x 2`` float32 displacement of every
    pixel of ``frame`` to its position in ``prev``. conf: ``H x W`` float32 forward-backward
    confidence of this step (module docstring); None for the other modes (``step`` computes the
    photometric one itself, on the stepping thread, which balances a pipeline's two busy threads
    for a few objects).
    seconds: time spent preparing it in flow, warp and confidence (``step`` adds them to the
    propagator's ``timings``, so only the thread that steps writes them).
    """

    prev: np.ndarray
    frame: np.ndarray
    gray: np.ndarray
    flow: np.ndarray
    conf: np.ndarray | None
    seconds: tuple[float, float, float]


def photometric_table(sigma: float) -> np.ndarray:
    """Lookup table ``256`` float32: absolute gray difference -> ``exp(-(d / sigma)^2)``."""
    d = np.arange(256, dtype=np.float32)
    return np.exp(-np.square(d / np.float32(sigma))).astype(np.float32)


def _check_probs(probs: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    probs = np.asarray(probs, dtype=np.float32)
    if probs.ndim != 3 or probs.shape[1:] != shape:
        raise ValueError(
            f"probs: expected C x H x W with H x W = {shape} (the frame's size), got {probs.shape}"
        )
    if probs.shape[0] < 2:
        raise ValueError(
            f"probs: expected at least 2 channels (background + object), got {probs.shape[0]}"
        )
    return probs


class FlowPropagator:
    """Propagator (see ``propagation.base.Propagator``) driven by a flow estimator.

    ``fov``: optional ``H x W`` bool field-of-view mask (True = image content). ``confidence``:
    how a step's trust is measured (see the module docstring); ``photometric_sigma`` is in gray
    levels, ``fb_alpha1``/``fb_alpha2`` are the forward-backward tolerances. ``timings`` holds the
    seconds spent in ``flow``, ``warp`` and ``confidence`` since construction. Input probabilities
    must sum to 1 over channels (channel 0 = background), as the protocol requires.
    """

    def __init__(
        self,
        estimator: FlowEstimator,
        fov: np.ndarray | None = None,
        confidence: ConfidenceMode = "photometric",
        photometric_sigma: float = 30.0,
        fb_alpha1: float = 0.01,
        fb_alpha2: float = 0.5,
    ) -> None:
        if confidence not in CONFIDENCE_MODES:
            raise ValueError(f"confidence: expected one of {CONFIDENCE_MODES}, got {confidence!r}")
        self.estimator = estimator
        self.name = f"flow:{estimator.name}"
        # Frames may be given as H x W gray (the tracker's luma frames) when the estimator
        # only needs gray: nothing else of a frame is used.
        self.gray_frames = estimator.grayscale
        self.fov = None if fov is None else np.asarray(fov, dtype=bool)
        self.confidence_mode = confidence
        self.fb_alpha1 = fb_alpha1
        self.fb_alpha2 = fb_alpha2
        self._table = photometric_table(photometric_sigma)
        self.timings = {"flow": 0.0, "warp": 0.0, "confidence": 0.0}
        self._prev_gray: np.ndarray | None = None
        self._prev_frame: np.ndarray | None = None  # previous frame as given (Motion check)
        self._prepared: tuple[np.ndarray, np.ndarray] | None = None  # (frame, gray) last prepared
        # Keyframe object probabilities, (H + 2) x (W + 2) x K (zero outside the field of view
        # and on a one-pixel border), and the box of positions that can reach each object.
        self._keys: np.ndarray | None = None
        self._boxes: np.ndarray | None = None
        self._fov_plane = (
            _NO_FOV if self.fov is None else np.ascontiguousarray(self.fov).view(np.uint8)
        )
        self._states: tuple[np.ndarray, np.ndarray] | None = None  # ping-pong H x W x 4 states
        self._classes = 0
        # H x W x 4 per current pixel: keyframe position x, y; accumulated confidence; validity.
        self._track: np.ndarray | None = None

    def reset(self, frame: np.ndarray, probs: np.ndarray) -> None:
        """Start from ``frame`` (``H x W x 3`` uint8 RGB, or ``H x W`` gray when
        ``gray_frames``) with ``probs`` (``C x H x W`` float32)."""
        frame = np.asarray(frame)
        shape = frame.shape[:2]
        probs = _check_probs(probs, shape)
        if self.fov is not None and self.fov.shape != shape:
            raise ValueError(
                f"fov: shape {self.fov.shape} differs from the frames' {shape} (H x W)"
            )
        self._classes = probs.shape[0]
        # Only the object channels are sampled (background is their complement), zero outside
        # the field of view, interleaved per pixel (one kernel read fetches all of a tap).
        layout = (shape[0] + 2, shape[1] + 2, self._classes - 1)
        keys = self._keys if self._keys is not None and self._keys.shape == layout else None
        keys = np.empty(layout, np.float32) if keys is None else keys
        extents = np.empty((self._classes - 1, 4), np.int64)
        if self._states is None or self._states[0].shape[:2] != shape:
            self._states = (np.empty((*shape, 4), np.float32), np.empty((*shape, 4), np.float32))
        track = self._states[0]
        lay_out_keyframe(np.ascontiguousarray(probs), self._fov_plane, keys, track, extents)
        self._keys, self._boxes = keys, reach_boxes(extents, shape)
        self._track = track
        self._prev_gray = to_gray(frame)
        self._prev_frame = frame

    def prepare(self, prev: np.ndarray, frame: np.ndarray) -> Motion:
        """Everything of the step ``prev`` -> ``frame`` (``H x W x 3`` uint8 RGB) that does not
        depend on the propagation state and costs the flow estimator's time: the flow, and with
        ``confidence="forward_backward"`` the reverse flow's confidence (see ``Motion``).

        So it may run ahead on another thread, but never on two threads at once for one
        propagator (its estimator is not thread-safe).
        """
        prev, frame = np.asarray(prev), np.asarray(frame)
        # In stream order ``prev`` is the frame prepared last time: its gray is reused.
        last = self._prepared
        prev_gray = last[1] if last is not None and last[0] is prev else to_gray(prev)
        motion = self._motion(prev, prev_gray, frame)
        self._prepared = (frame, motion.gray)
        return motion

    def _motion(self, prev: np.ndarray, prev_gray: np.ndarray, frame: np.ndarray) -> Motion:
        gray = to_gray(frame)
        cur, prev_input = (gray, prev_gray) if self.estimator.grayscale else (frame, prev)
        if cur.shape[:2] != prev_input.shape[:2]:
            raise ValueError(
                f"{self.name}: frame size {cur.shape[:2]} differs from the previous frame's "
                f"{prev_input.shape[:2]} (H x W)"
            )
        t0 = time.perf_counter()
        flow = self.estimator(cur, prev_input)  # target (new frame) -> source (previous frame)
        flow_rev = (
            self.estimator(prev_input, cur) if self.confidence_mode == "forward_backward" else None
        )
        t1 = time.perf_counter()
        flow = np.asarray(flow)
        if flow.shape != (*gray.shape, 2):
            raise WarpError(f"flow: expected H x W x 2 = {(*gray.shape, 2)}, got {flow.shape}")
        flow = flow.astype(np.float32, copy=False)
        t2 = time.perf_counter()
        conf = None
        if flow_rev is not None:
            conf = forward_backward_confidence(flow, flow_rev, self.fb_alpha1, self.fb_alpha2)
        t3 = time.perf_counter()
        return Motion(prev, frame, gray, flow, conf, (t1 - t0, t2 - t1, t3 - t2))

    def _photometric(self, prev_gray: np.ndarray, gray: np.ndarray, flow: np.ndarray) -> np.ndarray:
        """``H x W`` float32 brightness-constancy confidence of a step (module docstring)."""
        # A relative map: OpenCV adds each pixel's own position to its displacement, the same
        # float32 sum as ``sampling_map``, without building that map.
        warped = cv2.remap(  # type: ignore[call-overload, unused-ignore]  # OpenCV's stubs reject map2=None (one 2-channel map)
            prev_gray, flow, None, cv2.INTER_LINEAR | cv2.WARP_RELATIVE_MAP,
            borderMode=cv2.BORDER_REPLICATE,
        )  # fmt: skip
        cv2.absdiff(gray, warped, dst=warped)
        return cv2.LUT(warped, self._table)

    def step(self, frame: np.ndarray, motion: Motion | None = None) -> PropagationStep:
        """Propagate onto ``frame``; returns probs (``C x H x W``) and confidence (``H x W``).

        ``motion``: ``prepare(previous frame, frame)`` computed ahead (None: computed here).
        """
        if self._track is None or self._keys is None or self._prev_frame is None:
            raise RuntimeError(f"{self.name}: step() called before reset()")
        assert self._prev_gray is not None and self._states is not None
        frame = np.asarray(frame)
        if motion is None:
            motion = self._motion(self._prev_frame, self._prev_gray, frame)
        elif motion.frame is not frame or motion.prev is not self._prev_frame:
            raise ValueError(
                f"{self.name}: motion was prepared for another frame pair (expected "
                "prepare(previous frame, this frame), in stream order)"
            )
        gray = motion.gray
        h, w = gray.shape
        t0 = time.perf_counter()
        step_conf = motion.conf
        if self.confidence_mode == "photometric":
            # Here rather than in ``prepare``: see ``Motion``.
            step_conf = self._photometric(self._prev_gray, gray, motion.flow)
        t1 = time.perf_counter()
        # The state ping-pongs between two buffers: the old one is the kernel's source.
        source = self._track
        track = self._states[1] if source is self._states[0] else self._states[0]
        probs = np.empty((self._classes, h, w), np.float32)  # fresh: returned
        conf_out = np.empty((h, w), np.float32)  # fresh: returned
        labels = np.zeros((h, w), np.uint8)  # fresh: returned
        step_conf = _NO_PLANE if step_conf is None else np.ascontiguousarray(step_conf)
        # Each pixel's state read at its position in the previous frame (OpenCV adds the pixel's
        # own coordinates to the displacement), then renormalised and sampled by the kernel.
        cv2.remap(  # type: ignore[call-overload, unused-ignore]  # OpenCV's stubs reject map2=None (one 2-channel map)
            source, motion.flow, None, cv2.INTER_LINEAR | cv2.WARP_RELATIVE_MAP, dst=track,
            borderMode=cv2.BORDER_CONSTANT, borderValue=0,
        )  # fmt: skip
        top, bottom, left, right = settle(
            track, self._fov_plane, step_conf, self._keys, self._boxes, conf_out, probs, labels
        )
        self._track = track
        t4 = time.perf_counter()
        self._prev_gray, self._prev_frame = gray, frame
        flow_s, warp_s, conf_s = motion.seconds
        self.timings["flow"] += flow_s
        self.timings["warp"] += warp_s + t4 - t1
        self.timings["confidence"] += conf_s + t1 - t0
        support = (top, bottom, left, right) if bottom > top else (0, 0, 0, 0)
        return PropagationStep(
            probs=probs, confidence=conf_out,
            support=None if support == (0, h, 0, w) else support, labels=labels,
        )  # fmt: skip


# A bilinear sample at x reads columns floor(x) and floor(x) + 1, so a position more than this
# far outside an object's box reads only zeros (1 would do; 2 leaves room for rounding).
REACH_MARGIN = 2.0
# Positions are tested against an object's box only when it covers at most this share of the
# frame; a larger box would leave little to skip for the cost of the test.
REACH_MAX_SHARE = 0.5
# ``settle``'s stand-in for an absent plane (no field of view, no step confidence).
_NO_PLANE = np.zeros((0, 0), np.float32)
_NO_FOV = np.zeros((0, 0), np.uint8)


def reach_boxes(extents: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Objects' extents (``K x 4`` first and last column and row ``(c0, c1, r0, r1)`` of their
    non-zero pixels, ``c1 < c0`` for an object that is nowhere) in an ``H x W`` frame -> ``K x 4``
    float64 boxes ``(x0, x1, y0, y1)`` of the positions whose bilinear samples can touch them:
    the extent plus ``REACH_MARGIN``; every position (infinite box) when that covers more than
    ``REACH_MAX_SHARE`` of the frame; no position (an empty box) for an object that is nowhere.
    """
    boxes = np.empty((len(extents), 4), np.float64)
    for k, (c0, c1, r0, r1) in enumerate(np.asarray(extents).tolist()):
        if c1 < c0:
            boxes[k] = (np.inf, -np.inf, np.inf, -np.inf)
            continue
        box = (c0 - REACH_MARGIN, c1 + REACH_MARGIN, r0 - REACH_MARGIN, r1 + REACH_MARGIN)
        area = (box[1] - box[0]) * (box[3] - box[2])
        large = area > REACH_MAX_SHARE * shape[0] * shape[1]
        boxes[k] = (-np.inf, np.inf, -np.inf, np.inf) if large else box
    return boxes


class CopyLastPropagator:
    """The zero-motion baseline: every frame gets the last keyframe's probabilities unchanged.

    Confidence is 1 everywhere (it makes no claim). Used as the "copy the last keyframe mask"
    reference that any real propagation must beat.
    """

    name = "copy"
    gray_frames = True  # frames are only checked for their size

    def __init__(self) -> None:
        self._probs: np.ndarray | None = None
        self._conf: np.ndarray | None = None
        self.timings = {"flow": 0.0, "warp": 0.0, "confidence": 0.0}

    def reset(self, frame: np.ndarray, probs: np.ndarray) -> None:
        """Remember ``probs`` (``C x H x W``) of ``frame``."""
        shape = np.asarray(frame).shape[:2]
        self._probs = _check_probs(probs, shape).copy()
        self._conf = np.ones(shape, np.float32)

    def step(self, frame: np.ndarray) -> PropagationStep:
        """Return the remembered probabilities for ``frame``."""
        if self._probs is None or self._conf is None:
            raise RuntimeError("copy: step() called before reset()")
        if np.asarray(frame).shape[:2] != self._probs.shape[1:]:
            raise ValueError(
                f"copy: frame size {np.asarray(frame).shape[:2]} differs from the keyframe's "
                f"{self._probs.shape[1:]}"
            )
        return PropagationStep(probs=self._probs, confidence=self._conf)

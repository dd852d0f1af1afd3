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
from endobench.propagation.warp import (
    WarpError,
    forward_backward_confidence,
    pixel_grid,
)

ConfidenceMode = Literal["photometric", "forward_backward", "none"]
CONFIDENCE_MODES = ("photometric", "forward_backward", "none")
# Rows per stripe of a step: a stripe's temporaries (~20 planes of 64 x W) stay in the CPU
# cache; measured on 480 x 854: 64 rows cut the step's CPU time by about a fifth.
STRIPE_ROWS = 64


@dataclass(frozen=True)
class Motion:
    """The state-free part of one step, as ``FlowPropagator.prepare`` computes it.

    prev / frame: the two frames it was prepared for (``step`` checks them by identity).
    gray: ``frame`` as ``H x W`` uint8 gray. flow: ``H x W x 2`` float32 displacement of every
    pixel of ``frame`` to its position in ``prev`` (``step`` adds the pixel per stripe). conf:
    ``H x W`` float32 confidence of this step (module docstring), None for ``confidence="none"``.
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
        # Keyframe object probabilities as sampled (see ``_plan_keys``).
        self._keys: list[_Key] | None = None
        self._buffers: _StepBuffers | None = None
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
        inside = np.ones(shape, np.float32) if self.fov is None else self.fov.astype(np.float32)
        self._classes = probs.shape[0]
        # Only the object channels are sampled (background is their complement), zero outside
        # the field of view (``_plan_keys``).
        self._keys = _plan_keys(probs[1:] * inside)
        if self._buffers is None or self._buffers.shape != shape:
            self._buffers = _StepBuffers(shape)
        track = self._buffers.track[0]
        track[..., :2] = pixel_grid(*shape)
        track[..., 2] = inside
        track[..., 3] = inside
        self._track = track
        self._prev_gray = to_gray(frame)
        self._prev_frame = frame

    def prepare(self, prev: np.ndarray, frame: np.ndarray) -> Motion:
        """Everything of the step ``prev`` -> ``frame`` (``H x W x 3`` uint8 RGB) that does not
        depend on the propagation state: the flow, the sampling positions and the step's
        confidence (see ``Motion``).

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
        if self.confidence_mode == "photometric":
            # A relative map: OpenCV adds each pixel's own position to its displacement, the
            # same float32 sum as ``sampling_map``, without building that map on this thread.
            warped = cv2.remap(  # type: ignore[call-overload, unused-ignore]  # OpenCV's stubs reject map2=None (one 2-channel map)
                prev_gray,
                flow,
                None,
                cv2.INTER_LINEAR | cv2.WARP_RELATIVE_MAP,
                borderMode=cv2.BORDER_REPLICATE,
            )
            cv2.absdiff(gray, warped, dst=warped)
            conf = cv2.LUT(warped, self._table)
        elif flow_rev is not None:
            conf = forward_backward_confidence(flow, flow_rev, self.fb_alpha1, self.fb_alpha2)
        t3 = time.perf_counter()
        return Motion(prev, frame, gray, flow, conf, (t1 - t0, t2 - t1, t3 - t2))

    def step(self, frame: np.ndarray, motion: Motion | None = None) -> PropagationStep:
        """Propagate onto ``frame``; returns probs (``C x H x W``) and confidence (``H x W``).

        ``motion``: ``prepare(previous frame, frame)`` computed ahead (None: computed here).
        """
        if self._track is None or self._keys is None or self._prev_frame is None:
            raise RuntimeError(f"{self.name}: step() called before reset()")
        assert self._prev_gray is not None and self._buffers is not None
        frame = np.asarray(frame)
        if motion is None:
            motion = self._motion(self._prev_frame, self._prev_gray, frame)
        elif motion.frame is not frame or motion.prev is not self._prev_frame:
            raise ValueError(
                f"{self.name}: motion was prepared for another frame pair (expected "
                "prepare(previous frame, this frame), in stream order)"
            )
        gray = motion.gray
        buf = self._buffers
        h, w = gray.shape
        grid = pixel_grid(h, w)
        t1 = time.perf_counter()
        # The state ping-pongs between two buffers: the old one is the remaps' source.
        source = self._track
        track = buf.track[1] if source is buf.track[0] else buf.track[0]
        probs = np.empty((self._classes, h, w), np.float32)  # fresh: returned
        conf_out = np.empty((h, w), np.float32)  # fresh: returned
        top, bottom, left, right = h, 0, w, 0  # the union of the stripes' sampled rectangles
        # Every output pixel depends on the sources only, so the frame is done in stripes of
        # rows whose temporaries stay in the CPU cache (same values as one whole-frame pass).
        for r0 in range(0, h, buf.rows):
            r1 = min(h, r0 + buf.rows)
            n = r1 - r0
            coords = np.add(grid[r0:r1], motion.flow[r0:r1], out=buf.coords[:n])
            tracked = cv2.remap(  # type: ignore[call-overload, unused-ignore]  # OpenCV's stubs reject map2=None (one 2-channel map)
                source, coords, None, cv2.INTER_LINEAR, dst=track[r0:r1], **_ZERO_BORDER
            )
            step_conf = None if motion.conf is None else motion.conf[r0:r1]
            # Positions are averaged over the valid bilinear taps only (no smearing from
            # outside); a pixel needs at least half of its footprint valid to have a source.
            # Contiguous planes make this bookkeeping much cheaper than strided lanes.
            x, y, conf, valid = cv2.split(tracked, [plane[:n] for plane in buf.planes])
            ok = np.greater_equal(valid, np.float32(0.5), out=buf.ok[:n])
            if self.fov is not None:
                ok &= self.fov[r0:r1]
            okf = buf.okf[:n]
            okf[...] = ok
            scale = np.maximum(valid, np.float32(1e-6), out=buf.scale[:n])
            np.divide(okf, scale, out=scale)
            x *= scale
            y *= scale
            weight = okf if step_conf is None else np.multiply(okf, step_conf, out=scale)
            stripe_conf = np.multiply(conf, weight, out=conf_out[r0:r1])
            cv2.merge((x, y, stripe_conf, okf), tracked)
            # Only pixels whose position reaches a keyframe object can sample one; elsewhere
            # the samples are exactly 0 (zeros interpolated), so background is exactly 1.
            rects = _key_rects(x, y, self._keys, buf)
            stripe = probs[:, r0:r1]
            whole = sum(key.count for key, rect in rects if rect == (0, n, 0, w))
            if whole < self._classes - 1:  # some object channel is not sampled everywhere
                stripe[1:] = 0.0
                stripe[0] = 1.0
            if not rects:
                continue
            ra, rb = min(r[1][0] for r in rects), max(r[1][1] for r in rects)
            ca, cb = min(r[1][2] for r in rects), max(r[1][3] for r in rects)
            top, bottom = min(top, r0 + ra), max(bottom, r0 + rb)
            left, right = min(left, ca), max(right, cb)
            # Sample the keyframe once through the chained positions: no diffusion over steps.
            for key, (ka, kb, kc, kd) in rects:
                xs, ys = x[ka:kb, kc:kd], y[ka:kb, kc:kd]
                planes = list(stripe[key.first : key.first + key.count, ka:kb, kc:kd])
                if key.probs.shape[2] == 1:
                    cv2.remap(key.probs, xs, ys, cv2.INTER_LINEAR, dst=planes[0], **_ZERO_BORDER)
                else:
                    block = buf.block[: kb - ka, : kd - kc]
                    sampled = cv2.remap(
                        key.probs, xs, ys, cv2.INTER_LINEAR, dst=block, **_ZERO_BORDER
                    )
                    padding = [plane[: kb - ka, : kd - kc] for plane in buf.padding[key.count :]]
                    cv2.split(sampled, planes + padding)
                for plane in planes:
                    plane *= okf[ka:kb, kc:kd]
            roi = stripe[:, ra:rb, ca:cb]
            background = np.subtract(np.float32(1.0), roi[1], out=roi[0])
            for channel in roi[2:]:
                background -= channel
        self._track = track
        t4 = time.perf_counter()
        self._prev_gray, self._prev_frame = gray, frame
        flow_s, warp_s, conf_s = motion.seconds
        self.timings["flow"] += flow_s
        self.timings["warp"] += warp_s + t4 - t1
        self.timings["confidence"] += conf_s
        support = (top, bottom, left, right) if bottom > top else (0, 0, 0, 0)
        return PropagationStep(
            probs=probs, confidence=conf_out, support=None if support == (0, h, 0, w) else support
        )


_ZERO_BORDER = {"borderMode": cv2.BORDER_CONSTANT, "borderValue": 0}
# A bilinear sample at x reads columns floor(x) and floor(x) + 1 (OpenCV rounds x to 1/32 of a
# pixel first), so a position more than this far outside an object's box reads only zeros.
REACH_MARGIN = 2.0
# Positions are tested against the objects' box only when it covers at most this share of the
# frame; a larger box would leave little to skip for the cost of the test.
REACH_MAX_SHARE = 0.5

# Box (x0, x1, y0, y1) of the positions that can reach a key's objects: None for every position
# (the test is skipped).
_Box = tuple[float, float, float, float] | None
# Sampling one 4-channel group costs about this many single-channel samplings per pixel
# (cv2.remap + split, 480 x 854): objects are sampled one by one when that is cheaper.
GROUP_COST = 2.5


@dataclass(frozen=True)
class _Key:
    """Object channels ``first .. first + count - 1`` of the keyframe, as one remap samples them:
    ``probs`` ``H x W x 1`` or (2-4 channels, padded with zero channels) ``H x W x 4`` float32;
    ``reach``: the box of positions that can reach them."""

    first: int
    count: int
    probs: np.ndarray
    reach: _Box


def _plan_keys(objects: np.ndarray) -> list[_Key]:
    """``K x H x W`` object probabilities -> the keys ``step`` samples.

    Groups of 4 channels in id order (one 4-channel remap costs less than 2-4 single ones, and
    2 channels would take OpenCV's slower path, with weights rounded to 1/32 pixel), or one key
    per object when the objects' boxes are small enough that sampling each inside its own box
    is cheaper. Both give the same values: outside its box a key's samples are exactly 0, and
    channels no key holds (objects that are zero everywhere) stay 0.
    """
    count = objects.shape[0]
    shape = objects.shape[1:]
    boxes = [_support_box(channel) for channel in objects]
    groups = [
        (g, min(count, g + 4), _union(boxes[g : g + 4], shape))
        for g in range(0, count, 4)
        if any(box != "none" for box in boxes[g : g + 4])
    ]
    live = [k for k, box in enumerate(boxes) if box != "none"]
    one_by_one = sum(_area(boxes[k], shape) for k in live)
    grouped = sum(_area(box, shape) * (GROUP_COST if b - a > 1 else 1.0) for a, b, box in groups)
    if one_by_one < grouped:
        return [_Key(1 + k, 1, objects[k][..., None].copy(), boxes[k]) for k in live]  # type: ignore[arg-type]
    keys = []
    for a, b, box in groups:
        probs = np.zeros((*shape, 1 if b - a == 1 else 4), np.float32)
        for c in range(a, b):
            probs[..., c - a] = objects[c]
        keys.append(_Key(1 + a, b - a, probs, box))
    return keys


def _support_box(channel: np.ndarray) -> _Box | Literal["none"]:
    """The box of positions whose samples can touch the non-zero pixels of ``channel`` (``H x W``):
    its bounding box plus ``REACH_MARGIN``; "none" when it is zero everywhere."""
    rows = np.flatnonzero(channel.any(axis=1))
    if rows.size == 0:
        return "none"
    cols = np.flatnonzero(channel.any(axis=0))
    box = (
        float(cols[0] - REACH_MARGIN),
        float(cols[-1] + REACH_MARGIN),
        float(rows[0] - REACH_MARGIN),
        float(rows[-1] + REACH_MARGIN),
    )
    return None if _area(box, channel.shape) > REACH_MAX_SHARE * channel.size else box


def _union(boxes: list[_Box | Literal["none"]], shape: tuple[int, ...]) -> _Box:
    """The box holding ``boxes`` (None if one of them is None or it covers too much)."""
    real = [box for box in boxes if box != "none"]
    if any(box is None for box in real):
        return None
    x0, x1 = min(b[0] for b in real), max(b[1] for b in real)  # type: ignore[index]
    y0, y1 = min(b[2] for b in real), max(b[3] for b in real)  # type: ignore[index]
    box = (x0, x1, y0, y1)
    return None if _area(box, shape) > REACH_MAX_SHARE * shape[0] * shape[1] else box


def _area(box: _Box | Literal["none"], shape: tuple[int, ...]) -> float:
    if box == "none":
        return 0.0
    return float(shape[0] * shape[1]) if box is None else (box[1] - box[0]) * (box[3] - box[2])


def _key_rects(
    x: np.ndarray, y: np.ndarray, keys: list[_Key], buf: _StepBuffers
) -> list[tuple[_Key, tuple[int, int, int, int]]]:
    """Each key whose box a position of the stripe (planes ``x``, ``y``) can reach, with the
    rows ``ra:rb`` and columns ``ca:cb`` holding all such positions."""
    n, w = x.shape
    low, high = cv2.minMaxLoc(y)[:2]
    out = []
    bounds = None
    for key in keys:
        if key.reach is None:
            out.append((key, (0, n, 0, w)))
            continue
        x0, x1, y0, y1 = key.reach
        if high < y0 or low > y1:  # the common case for a small object: one pass, no mask
            continue
        if bounds is None:  # each row's and column's range of positions, for every key
            bounds = (y.min(axis=1), y.max(axis=1), x.min(axis=0), x.max(axis=0))
        rows = np.flatnonzero((bounds[1] >= y0) & (bounds[0] <= y1))
        cols = np.flatnonzero((bounds[3] >= x0) & (bounds[2] <= x1))
        if rows.size == 0 or cols.size == 0:
            continue
        ra, rb, ca, cb = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
        # Inside that candidate rectangle, the exact one: positions in the box.
        xs, ys = x[ra:rb, ca:cb], y[ra:rb, ca:cb]
        inside, scratch = buf.inside[: rb - ra, : cb - ca], buf.ok[: rb - ra, : cb - ca]
        np.greater_equal(xs, x0, out=inside)
        inside &= np.less_equal(xs, x1, out=scratch)
        inside &= np.greater_equal(ys, y0, out=scratch)
        inside &= np.less_equal(ys, y1, out=scratch)
        ka, kb, kw, kh = cv2.boundingRect(inside.view(np.uint8))
        if kw:
            out.append((key, (ra + kb, ra + kb + kh, ca + ka, ca + ka + kw)))
    return out


class _StepBuffers:
    """Scratch arrays of ``FlowPropagator.step`` (allocated once per frame size, reused): the
    two ``H x W x 4`` states and one stripe of ``rows`` rows of each temporary."""

    def __init__(self, shape: tuple[int, int], rows: int = STRIPE_ROWS) -> None:
        self.shape = shape
        self.rows = rows = min(rows, shape[0])
        width = shape[1]
        self.track = (np.empty((*shape, 4), np.float32), np.empty((*shape, 4), np.float32))
        self.planes = [np.empty((rows, width), np.float32) for _ in range(4)]
        self.padding = [np.empty((rows, width), np.float32) for _ in range(3)]  # key padding
        self.ok = np.empty((rows, width), bool)
        self.okf = np.empty((rows, width), np.float32)
        self.scale = np.empty((rows, width), np.float32)
        self.block = np.empty((rows, width, 4), np.float32)
        self.coords = np.empty((rows, width, 2), np.float32)
        self.inside = np.empty((rows, width), bool)


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

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
from endobench.propagation.flow_chain import settle
from endobench.propagation.warp import WarpError, forward_backward_confidence, pixel_grid

ConfidenceMode = Literal["photometric", "forward_backward", "none"]
CONFIDENCE_MODES = ("photometric", "forward_backward", "none")


@dataclass(frozen=True)
class Motion:
    """The state-free part of one step, as ``FlowPropagator.prepare`` computes it.

    prev / frame: the two frames it was prepared for (``step`` checks them by identity).
    gray: ``frame`` as ``H x W`` uint8 gray. flow: ``H x W x 2`` float32 offsets from every
    pixel of ``frame`` to its position in ``prev`` (a relative map for ``cv2.remap``). conf:
    ``H x W`` float32 confidence of this step (module docstring), None for
    ``confidence="none"``. seconds: time spent preparing it in flow, warp and confidence
    (``step`` adds them to the propagator's ``timings``, so only the thread that steps writes
    them).
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
        flow = np.asarray(flow, dtype=np.float32)
        if flow.shape != (*gray.shape, 2):
            raise WarpError(f"flow: expected H x W x 2 = {(*gray.shape, 2)}, got {flow.shape}")
        t2 = time.perf_counter()
        conf = None
        if self.confidence_mode == "photometric":
            warped = cv2.remap(  # type: ignore[call-overload, unused-ignore]  # OpenCV's stubs reject map2=None (one 2-channel map)
                prev_gray, flow, None, _RELATIVE_LINEAR, borderMode=cv2.BORDER_REPLICATE
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
        t1 = time.perf_counter()
        # The state ping-pongs between two buffers: the old one is the remap's source.
        source = self._track
        track = buf.track[1] if source is buf.track[0] else buf.track[0]
        probs = np.empty((self._classes, h, w), np.float32)  # fresh: returned
        conf_out = np.empty((h, w), np.float32)  # fresh: returned
        cv2.remap(source, motion.flow, None, _RELATIVE_LINEAR, dst=track, **_ZERO_BORDER)  # type: ignore[call-overload, unused-ignore]  # OpenCV's stubs reject map2=None
        # Positions are averaged over the valid bilinear taps only (no smearing from outside); a
        # pixel needs at least half of its footprint valid to have a source (``flow_chain``).
        x, y, okf = buf.x, buf.y, buf.okf
        settle(
            track,
            _NO_FOV if self.fov is None else self.fov,
            _NO_CONF if motion.conf is None else motion.conf,
            x, y, conf_out, okf, buf.rows, buf.cols,
        )  # fmt: skip
        # Only pixels whose position reaches a keyframe object can sample one; elsewhere the
        # samples are exactly 0 (zeros interpolated), so background is exactly 1.
        rects = _key_rects(x, y, self._keys, buf)
        whole = sum(key.count for key, rect in rects if rect == (0, h, 0, w))
        if whole < self._classes - 1:  # some object channel is not sampled everywhere
            probs[1:] = 0.0
            probs[0] = 1.0
        support = (0, 0, 0, 0)
        if rects:
            top, bottom = min(r[1][0] for r in rects), max(r[1][1] for r in rects)
            left, right = min(r[1][2] for r in rects), max(r[1][3] for r in rects)
            support = (top, bottom, left, right)
            # Sample the keyframe once through the chained positions: no diffusion over steps.
            for key, (ka, kb, kc, kd) in rects:
                # In stripes of rows, whose sampled block and planes stay in the CPU cache.
                for r0 in range(ka, kb, KEY_STRIPE_ROWS):
                    r1 = min(kb, r0 + KEY_STRIPE_ROWS)
                    _sample_key(key, probs, x, y, okf, (r0, r1, kc, kd), buf)
            for r0 in range(top, bottom, KEY_STRIPE_ROWS):
                roi = probs[:, r0 : min(bottom, r0 + KEY_STRIPE_ROWS), left:right]
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
        return PropagationStep(
            probs=probs, confidence=conf_out, support=None if support == (0, h, 0, w) else support
        )


_ZERO_BORDER = {"borderMode": cv2.BORDER_CONSTANT, "borderValue": 0}
# Bilinear sampling at pixel + flow: OpenCV adds the pixel itself (the same float32 sums as an
# absolute map, without building one).
_RELATIVE_LINEAR = cv2.INTER_LINEAR | cv2.WARP_RELATIVE_MAP
# ``settle``'s "no field of view" and "no step confidence" (one compiled signature for all).
_NO_FOV, _NO_CONF = np.zeros((0, 0), bool), np.zeros((0, 0), np.float32)
# A bilinear sample at x reads columns floor(x) and floor(x) + 1 (OpenCV rounds x to 1/32 of a
# pixel first), so a position more than this far outside an object's box reads only zeros.
REACH_MARGIN = 2.0
# Rows per stripe of keyframe sampling: a stripe's 4-channel block and planes (64 x W) stay in
# the CPU cache (whole-frame sampling of a large object costs about a fifth more at 480 x 854).
KEY_STRIPE_ROWS = 64
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
    """Each key whose box a position (planes ``x``, ``y``) can reach, with the rows ``ra:rb`` and
    columns ``ca:cb`` holding all such positions (``buf.rows`` / ``buf.cols``: each row's and
    column's range of positions, as ``settle`` leaves them)."""
    h, w = x.shape
    (row_low, row_high), (col_low, col_high) = buf.rows, buf.cols
    out = []
    for key in keys:
        if key.reach is None:
            out.append((key, (0, h, 0, w)))
            continue
        x0, x1, y0, y1 = key.reach
        rows = np.flatnonzero((row_high >= y0) & (row_low <= y1))
        cols = np.flatnonzero((col_high >= x0) & (col_low <= x1))
        if rows.size == 0 or cols.size == 0:
            continue
        ra, rb, ca, cb = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
        # Inside that candidate rectangle, the exact one: positions in the box.
        xs, ys = x[ra:rb, ca:cb], y[ra:rb, ca:cb]
        inside, scratch = buf.inside[: rb - ra, : cb - ca], buf.scratch[: rb - ra, : cb - ca]
        np.greater_equal(xs, x0, out=inside)
        inside &= np.less_equal(xs, x1, out=scratch)
        inside &= np.greater_equal(ys, y0, out=scratch)
        inside &= np.less_equal(ys, y1, out=scratch)
        ka, kb, kw, kh = cv2.boundingRect(inside.view(np.uint8))
        if kw:
            out.append((key, (ra + kb, ra + kb + kh, ca + ka, ca + ka + kw)))
    return out


def _sample_key(
    key: _Key,
    probs: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    okf: np.ndarray,
    rect: tuple[int, int, int, int],
    buf: _StepBuffers,
) -> None:
    """Sample ``key``'s channels at positions ``x``, ``y`` into ``probs`` inside ``rect`` (rows
    ``a:b``, columns ``c:d``, at most ``KEY_STRIPE_ROWS`` rows), zero where ``okf`` is 0."""
    a, b, c, d = rect
    xs, ys = x[a:b, c:d], y[a:b, c:d]
    planes = list(probs[key.first : key.first + key.count, a:b, c:d])
    if key.probs.shape[2] == 1:
        cv2.remap(key.probs, xs, ys, cv2.INTER_LINEAR, dst=planes[0], **_ZERO_BORDER)
    else:
        block = buf.block[: b - a, : d - c]
        sampled = cv2.remap(key.probs, xs, ys, cv2.INTER_LINEAR, dst=block, **_ZERO_BORDER)
        padding = [plane[: b - a, : d - c] for plane in buf.padding[key.count :]]
        cv2.split(sampled, planes + padding)
    for plane in planes:
        plane *= okf[a:b, c:d]


class _StepBuffers:
    """Scratch arrays of ``FlowPropagator.step`` (allocated once per frame size, reused): the
    two ``H x W x 4`` states and the planes of one step."""

    def __init__(self, shape: tuple[int, int]) -> None:
        self.shape = shape
        h, w = shape
        self.track = (np.empty((h, w, 4), np.float32), np.empty((h, w, 4), np.float32))
        self.x, self.y, self.okf = (np.empty(shape, np.float32) for _ in range(3))
        self.rows = np.empty((2, h), np.float32)  # each row's lowest, highest y (``settle``)
        self.cols = np.empty((2, w), np.float32)  # each column's lowest, highest x
        stripe = min(h, KEY_STRIPE_ROWS)
        self.padding = [np.empty((stripe, w), np.float32) for _ in range(3)]  # key padding
        self.block = np.empty((stripe, w, 4), np.float32)
        self.inside = np.empty(shape, bool)
        self.scratch = np.empty(shape, bool)


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

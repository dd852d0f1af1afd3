"""Bidirectional propagation between known keyframes: forward from k, backward from k', fused.

For a frame ``t`` between keyframes ``k < t < k'`` the forward estimate (propagated from ``k``,
distance ``d_f = t - k``) and the backward estimate (propagated from ``k'`` in reverse,
``d_b = k' - t``) are blended per pixel with weights

    w_f = (floor + (1 - floor) * c_f) * d_b,    w_b = (floor + (1 - floor) * c_b) * d_f

(``c``: each direction's propagation confidence in [0, 1]), so the nearer keyframe counts more,
a confident direction beats an unsure one, and where both have no trust the temporal weights
alone decide. Probabilities with fewer channels are zero-padded.

Objects present at one keyframe only (``present_forward`` / ``present_backward``, from the
keyframes' labels) are decided per object, not per pixel: averaging such an object with the
other side's "absent" shrinks it to a fragment, and under the DAVIS metric any fragment scores
J = F = 0 on a frame whose truth lacks the object, while a missed object costs only its own J&F.
Its appearance or disappearance time is unknown, so the nearer keyframe decides whether it
exists at ``t`` (strictly nearer: at the midpoint it is absent); where it exists, the side that
has it carries it at full strength, elsewhere its probability is 0. The other classes share what
is left of each pixel in proportion to their blend: a dropped object's pixels take the labels
the other classes' blend gives them there, not background by default.

``Bidirectional`` wraps a streaming ``Tracker``: it buffers propagated frames (probabilities
as uint8, confidence as float16) until the next keyframe arrives, then runs the backward pass
over the buffer and emits the segment in order.
"""

from __future__ import annotations

import time
from collections import deque
from concurrent.futures import Executor, Future
from dataclasses import dataclass

import cv2
import numpy as np

from endobench.propagation.base import Propagator
from endobench.propagation.fusion import FusionConfig, TemporalFusion, labels_from_probs
from endobench.propagation.half import from_half, to_half

CONFIDENCE_FLOOR = 0.05


def _pad(probs: np.ndarray, channels: int) -> np.ndarray:
    if probs.shape[0] == channels:
        return probs
    out = np.zeros((channels, *probs.shape[1:]), np.float32)
    out[: probs.shape[0]] = probs
    return out


def fuse_bidirectional(
    forward: np.ndarray,
    forward_conf: np.ndarray,
    backward: np.ndarray,
    backward_conf: np.ndarray,
    d_forward: int,
    d_backward: int,
    floor: float = CONFIDENCE_FLOOR,
    present_forward: np.ndarray | None = None,
    present_backward: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Fuse ``C1 x H x W`` and ``C2 x H x W`` float32 probabilities (weights: module docstring).

    ``forward_conf`` / ``backward_conf``: ``H x W`` float32 in [0, 1]; ``d_forward`` /
    ``d_backward``: frames from the earlier / later keyframe (>= 1). A class missing from one
    side (fewer channels, or no pixels at its keyframe) counts as absent there.
    ``present_forward`` / ``present_backward``: optional bool per class, True where the class
    has pixels at the earlier / later keyframe; given both, a class present at one of them only
    follows the one-sided rule (module docstring), else it fades out towards the other side in
    proportion to the weights. Returns the fused ``max(C1, C2) x H x W`` probabilities (they
    sum to 1 where both inputs do) and the ``H x W`` confidence (the same weighted mean of both
    confidences).
    """
    if d_forward < 1 or d_backward < 1:
        raise ValueError(f"distances must be >= 1 frame, got {d_forward} and {d_backward}")
    channels = max(forward.shape[0], backward.shape[0])
    # In-place float32 steps in the order of the formulas (identical values, fewer temporaries).
    w_f = np.multiply(forward_conf, np.float32(1 - floor), dtype=np.float32)
    w_f += np.float32(floor)
    w_f *= np.float32(d_backward)
    w_b = np.multiply(backward_conf, np.float32(1 - floor), dtype=np.float32)
    w_b += np.float32(floor)
    w_b *= np.float32(d_forward)
    w_b += w_f
    share = np.divide(w_f, w_b, out=w_f)  # forward's share, H x W in (0, 1)
    fwd, bwd = _pad(forward, channels), _pad(backward, channels)
    fused = np.subtract(fwd, bwd, dtype=np.float32)
    fused *= share
    fused += bwd
    conf = np.subtract(forward_conf, backward_conf, dtype=np.float32)
    conf *= share
    conf += backward_conf
    if present_forward is not None and present_backward is not None:
        forward_side = _one_sided(present_forward, channels)
        one_sided = forward_side ^ _one_sided(present_backward, channels)
        one_sided[0] = False  # background is the complement, never an object
        if one_sided.any():
            _carry_one_sided(fused, fwd, bwd, one_sided, forward_side, d_forward, d_backward)
    return fused, conf


def _one_sided(present: np.ndarray, channels: int) -> np.ndarray:
    out = np.zeros(channels, bool)
    out[: len(present)] = np.asarray(present, bool)[:channels]
    return out


def _carry_one_sided(
    fused: np.ndarray,
    fwd: np.ndarray,
    bwd: np.ndarray,
    one_sided: np.ndarray,
    forward_side: np.ndarray,
    d_forward: int,
    d_backward: int,
) -> None:
    """Apply the one-sided rule in place: each such class from the nearer side that has it, or 0;
    the other classes are rescaled to fill the rest of each pixel (background where none is left).
    """
    carried = []
    for c in np.flatnonzero(one_sided):
        from_forward = bool(forward_side[c])
        if d_forward < d_backward if from_forward else d_backward < d_forward:
            carried.append((c, (fwd if from_forward else bwd)[c]))
        fused[c] = 0.0
    others = fused.sum(0)
    rest = np.ones(others.shape, np.float32)  # what the carried classes leave of each pixel
    for _, p in carried:
        rest -= p
    np.maximum(rest, np.float32(0.0), out=rest)
    empty = others < np.float32(1e-6)
    fused *= rest / np.maximum(others, np.float32(1e-6))
    fused[0][empty] += rest[empty]
    for c, p in carried:
        fused[c] = p
    fused /= np.maximum(fused.sum(0), np.float32(1e-6))


def present_classes(labels: np.ndarray, channels: int) -> np.ndarray:
    """``channels`` bools: True for each class id that labels at least one pixel of ``labels``."""
    counts = np.bincount(np.asarray(labels, np.uint8).ravel(), minlength=channels)
    return counts[:channels] > 0


def _to_u8(probs: np.ndarray) -> np.ndarray:
    """``C x H x W`` float32 in [0, 1] -> uint8 (rounded, 1/255 steps)."""
    c, h, w = probs.shape
    flat = np.ascontiguousarray(probs).reshape(c * h, w)
    return cv2.convertScaleAbs(flat, alpha=255.0).reshape(c, h, w)


def _from_u8(probs: np.ndarray) -> np.ndarray:
    """uint8 probabilities -> float32 ``p / 255`` (one pass, same values as cast then scale)."""
    return np.multiply(probs, np.float32(1 / 255), dtype=np.float32)


@dataclass
class _Pending:
    index: int
    frame: np.ndarray
    probs: np.ndarray  # uint8 C x H x W
    conf: np.ndarray  # float16 H x W
    segmented: np.ndarray | None  # uint8 C x H x W
    motion: Future | None = None  # backward.prepare(next frame, frame), computed ahead


# Output tasks queued on the worker at most before ``step`` waits for the oldest (bounds the
# frames held: about two segments of ``max_gap``).
WORKER_QUEUE = 2


class Bidirectional:
    """Delay a ``Tracker``'s propagated frames until the next keyframe and fuse both directions.

    ``backward``: a propagator of the same kind as the tracker's (its own state); ``fusion``:
    labelling of the fused probabilities (hysteresis, segmenter blend); ``max_gap``: frames kept
    at most (older ones leave forward only). ``one_sided``: apply the per-object rule to classes
    present at one keyframe only (module docstring; False: the per-pixel blend for every class,
    the rule before round 4, kept for ``bench_tracking``'s before / after). ``seconds``: time
    spent buffering and in the backward pass. ``ahead``: an executor (one thread) on which the
    backward flows are prepared as the frames arrive (a propagator with ``prepare``, see
    ``lookahead``), or None (computed in the pass). ``worker``: an executor (one thread) that
    runs the backward pass, fusion and labelling of a segment while the tracker goes on forward
    with the next one, or None (run in ``step``). Either way every output (a segment, a
    keyframe, a forward-only frame) is produced by one task in stream order, so the results and
    their order are the same; with a worker ``step`` returns what is finished so far and
    ``flush`` the rest.
    """

    def __init__(
        self,
        tracker,
        backward: Propagator,
        fusion: FusionConfig | None = None,
        max_gap: int = 64,
        one_sided: bool = True,
        ahead: Executor | None = None,
        worker: Executor | None = None,
    ) -> None:
        if max_gap < 1:
            raise ValueError(f"max_gap: expected >= 1 frame, got {max_gap}")
        self.tracker, self.backward, self.max_gap = tracker, backward, max_gap
        self.one_sided = one_sided
        self.labeller = TemporalFusion(fusion) if fusion is not None else None
        self.ahead, self.worker = ahead, worker
        self._buffer: deque[_Pending] = deque()
        self._last_key = 0
        self._present: np.ndarray | None = None  # classes with pixels at the last keyframe
        self._outputs: deque[Future] = deque()  # one per output task, in stream order
        self._seconds = [0.0, 0.0]  # buffering (the caller's thread), tasks (the worker's)

    @property
    def seconds(self) -> float:
        """Seconds spent buffering frames and in the output tasks (backward pass, fusion)."""
        return self._seconds[0] + self._seconds[1]

    def step(self, frame: np.ndarray, gt=None, motion=None) -> list:
        """Feed the next frame; returns the frame results that became final (in order).

        ``motion``: the forward propagator's ``prepare`` for this frame, or None.
        """
        from endobench.propagation.tracker import FrameResult

        if self.ahead is not None and self._buffer:
            last = self._buffer[-1]
            last.motion = self.ahead.submit(self.backward.prepare, frame, last.frame)  # type: ignore[attr-defined]
        result: FrameResult = self.tracker.step(frame, gt, motion)
        if not result.is_keyframe:
            assert result.probs is not None and result.confidence_map is not None
            t0 = time.perf_counter()
            seg = None if result.segmented is None else _to_u8(result.segmented)
            self._buffer.append(
                _Pending(
                    result.index, frame, _to_u8(result.probs),
                    to_half(result.confidence_map), seg,
                )
            )  # fmt: skip
            self._seconds[0] += time.perf_counter() - t0
            if len(self._buffer) > self.max_gap:
                self._submit(self._emit_all, [self._buffer.popleft()])
            return self._finished()
        present = None
        if self.one_sided:
            assert result.probs is not None  # a keyframe always carries its probabilities
            present = present_classes(result.labels, result.probs.shape[0])
        segment, self._buffer = self._buffer, deque()
        self._submit(self._close, segment, frame, result, self._last_key, self._present, present)
        self._last_key, self._present = result.index, present
        return self._finished()

    def flush(self) -> list:
        """End of stream: every result not returned yet; the frames after the last keyframe are
        forward only."""
        if self._buffer:
            self._submit(self._emit_all, list(self._buffer))
            self._buffer.clear()
        return self._finished(everything=True)

    def _submit(self, task, *args) -> None:
        if self.worker is None:
            done: Future = Future()
            done.set_result(task(*args))
            self._outputs.append(done)
        else:
            self._outputs.append(self.worker.submit(task, *args))

    def _finished(self, everything: bool = False) -> list:
        out: list = []
        while self._outputs and (
            everything or self._outputs[0].done() or len(self._outputs) > WORKER_QUEUE
        ):
            out.extend(self._outputs.popleft().result())
        return out

    def _close(self, segment, frame, key, last_key, present_forward, present_backward) -> list:
        """The output task of a keyframe: the segment before it (backward pass, fusion,
        labels), then the keyframe itself, which resets the labeller."""
        t0 = time.perf_counter()
        if segment:
            self.backward.reset(frame, key.probs)
        for pending in reversed(segment):
            if pending.motion is None:
                step = self.backward.step(pending.frame)
            else:
                step = self.backward.step(pending.frame, pending.motion.result())  # type: ignore[call-arg]
            fused, conf = fuse_bidirectional(
                _from_u8(pending.probs), from_half(pending.conf),
                step.probs, step.confidence,
                pending.index - last_key, key.index - pending.index,
                present_forward=present_forward, present_backward=present_backward,
            )  # fmt: skip
            pending.probs, pending.conf = _to_u8(fused), to_half(conf)
        self._seconds[1] += time.perf_counter() - t0
        out = [self._emit(p) for p in segment]
        if self.labeller is not None:
            self.labeller.reset(key.labels)
        out.append(key)
        return out

    def _emit_all(self, pending: list[_Pending]) -> list:
        return [self._emit(p) for p in pending]

    def _emit(self, pending: _Pending):
        from endobench.propagation.tracker import FrameResult, mean_inside

        probs = _from_u8(pending.probs)
        conf = from_half(pending.conf)
        seg = None if pending.segmented is None else _from_u8(pending.segmented)
        if self.labeller is not None:
            labels = self.labeller(probs, conf, seg)
        else:
            labels = labels_from_probs(probs)
        return FrameResult(
            labels, False, mean_inside(conf, labels), pending.index, probs, conf, seg
        )

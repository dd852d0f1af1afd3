"""Decode frames and compute their motion ahead of the tracker, on worker threads, in order.

The flow of frame ``t`` depends only on frames ``t - 1`` and ``t``, never on the propagation
state, so it can be computed while the tracker warps frame ``t - 1``: one thread decodes frames
(and reads masks: every clip read goes through it), another calls the propagator's
``prepare(prev, frame)`` (OpenCV's DIS, decoding and colour conversion release the GIL). At
most ``depth`` frames are in flight, so memory does not grow with the clip length. The values
are those of the sequential loop: the same calls on the same frames, only earlier.

An exception in a worker is raised in the caller when it reaches that frame; ``close`` cancels
what has not started and waits for what runs (one decode, one flow), so nothing hangs and no
worker touches the propagator afterwards.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

Prepare = Callable[[np.ndarray, np.ndarray], Any]


class Lookahead:
    """Frames ``read(0) .. read(n - 1)`` with ``prepare(frame[t - 1], frame[t])`` done ahead.

    ``prepare=None``: frames only (the motion is None). ``depth >= 1``: frames in flight.
    Iterate once for ``(frame, motion)`` pairs (motion None at ``t = 0``); use as a context
    manager (or call ``close``). ``io`` is the reading thread, for other reads of the clip.
    """

    def __init__(
        self,
        read: Callable[[int], np.ndarray],
        n: int,
        depth: int = 3,
        prepare: Prepare | None = None,
    ) -> None:
        if depth < 1:
            raise ValueError(f"depth: expected >= 1 frame in flight, got {depth}")
        self.read, self.n, self.depth, self.prepare = read, n, depth, prepare
        self.io = ThreadPoolExecutor(1, thread_name_prefix="read")
        self.flow = ThreadPoolExecutor(1, thread_name_prefix="flow") if prepare else None
        self._frames: deque[Future] = deque()
        self._motions: deque[Future | None] = deque()
        self._last: Future | None = None
        self._next = 0

    def _submit(self) -> None:
        t = self._next
        self._next += 1
        frame = self.io.submit(self.read, t)
        motion = None
        if self.flow is not None and self.prepare is not None and self._last is not None:
            motion = self.flow.submit(_pair, self.prepare, self._last, frame)
        self._frames.append(frame)
        self._motions.append(motion)
        self._last = frame

    def __iter__(self) -> Iterator[tuple[np.ndarray, Any]]:
        while self._next < min(self.depth, self.n):
            self._submit()
        for _ in range(self.n):
            frame, motion = self._frames.popleft(), self._motions.popleft()
            if self._next < self.n:
                self._submit()
            yield frame.result(), None if motion is None else motion.result()

    def close(self) -> None:
        """Cancel the work not started, wait for the running one (bounded: one call each)."""
        for pool in (self.flow, self.io):
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
        self._frames.clear()
        self._motions.clear()
        self._last = None

    def __enter__(self) -> Lookahead:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _pair(prepare: Prepare, prev: Future, frame: Future) -> Any:
    return prepare(prev.result(), frame.result())

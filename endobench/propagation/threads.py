"""OpenCV's own thread pool while a tracking pipeline runs its stages on threads.

The pipelined tracker already keeps its stages busy on threads of its own (decode, flow,
stepping; bidirectional adds a backward flow and a backward pass). OpenCV's pool on top of them
oversubscribes the cores: its workers spin while they wait for work (``sched_yield``), and on two
cores that spinning takes CPU time from the stages. So while a pipeline runs, OpenCV gets the
cores its threads leave, at least one (sequential), and its setting is restored afterwards.
Results do not depend on it: OpenCV splits work by rows, each computed the same way.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import cv2


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS reports one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


@contextmanager
def opencv_threads_beside(pipeline_threads: int) -> Iterator[int]:
    """Within the block OpenCV uses ``max(1, cores - pipeline_threads)`` threads (yielded)."""
    threads = max(1, available_cores() - pipeline_threads)
    before = cv2.getNumThreads()
    cv2.setNumThreads(threads)
    try:
        yield threads
    finally:
        cv2.setNumThreads(before)

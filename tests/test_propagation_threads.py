"""OpenCV's pool beside a tracking pipeline, and prepare's reuse of the previous frame's gray."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from endobench.propagation import FlowPropagator
from endobench.propagation.flow import DISFlow
from endobench.propagation.threads import available_cores, opencv_threads_beside


def test_opencv_gets_the_cores_the_pipeline_leaves_and_is_restored():
    before = cv2.getNumThreads()
    with opencv_threads_beside(3) as threads:
        assert threads == max(1, available_cores() - 3) == cv2.getNumThreads()
    assert cv2.getNumThreads() == before
    with pytest.raises(RuntimeError), opencv_threads_beside(1):
        raise RuntimeError("a failing pipeline")
    assert cv2.getNumThreads() == before


def test_prepare_reusing_the_previous_gray_equals_converting_it_again():
    """In stream order ``prev`` is the frame prepared last, and its gray is reused; a copy of it
    (not the same object) is converted again. Both give the same motions. (A DIS instance keeps
    state between calls, so both propagators see the same sequence of pairs.)"""
    rng = np.random.default_rng(3)
    base = cv2.GaussianBlur(rng.integers(0, 256, (64, 80, 3), dtype=np.uint8), (7, 7), 2)
    clip = [np.roll(base, (t, 2 * t), axis=(0, 1)) for t in range(5)]
    reusing = FlowPropagator(DISFlow("ultrafast"), confidence="forward_backward")
    converting = FlowPropagator(DISFlow("ultrafast"), confidence="forward_backward")
    for t in range(1, 5):
        motion = reusing.prepare(clip[t - 1], clip[t])
        again = converting.prepare(clip[t - 1].copy(), clip[t])
        assert reusing._prepared is not None and reusing._prepared[0] is clip[t]
        for a, b in ((motion.gray, again.gray), (motion.flow, again.flow)):
            np.testing.assert_array_equal(a, b)
        assert motion.conf is not None and again.conf is not None
        np.testing.assert_array_equal(motion.conf, again.conf)

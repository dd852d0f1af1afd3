"""DIS ``finest_scale``: the pyramid level the flow field is computed at (flow quality option)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from endobench.propagation.flow import DISFlow, FlowError
from endobench.registry import FLOW_ESTIMATORS, SpecError


def _strip_pair() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A smooth texture, the same with a 24-px vertical strip moved 4 px right, the true flow."""
    rng = np.random.default_rng(0)
    base = cv2.GaussianBlur(rng.random((160, 200)).astype(np.float32), (0, 0), 1.5)
    base = cv2.normalize(base, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    nxt = base.copy()
    nxt[:, 92:116] = base[:, 88:112]
    truth = np.zeros((160, 200, 2), np.float32)
    truth[:, 88:112, 0] = 4.0  # prev -> next, on prev's grid
    return base, nxt, truth


def test_half_resolution_flow_finds_a_strip_that_quarter_resolution_misses():
    prev, nxt, truth = _strip_pair()

    def share_found(spec: str) -> float:
        error = np.linalg.norm(FLOW_ESTIMATORS.build(spec)(prev, nxt) - truth, axis=2)
        return float(np.mean(error[20:-20, 88:112] < 1.0))  # inside the strip, 1 px tolerance

    # The ultrafast preset's quarter-resolution field is 6 cells across the strip: it smooths
    # the strip's motion away everywhere; at half resolution it is found almost everywhere.
    assert share_found("dis") < 0.05
    assert share_found("dis:preset=ultrafast,finest_scale=1") > 0.85


def test_finest_scale_is_named_reported_and_checked():
    default = FLOW_ESTIMATORS.build("dis")
    assert default.name == "dis:ultrafast" and default.finest_scale == 2  # the preset's level
    assert DISFlow("medium").finest_scale == 1
    finer = FLOW_ESTIMATORS.build("dis:preset=ultrafast,finest_scale=1")
    assert finer.name == "dis:ultrafast,finest_scale=1"
    assert finer.info()["finest_scale"] == 1 and finer.iterations == 32
    for bad in (-1, True, 1.5):
        with pytest.raises(FlowError, match="finest_scale"):
            DISFlow("ultrafast", finest_scale=bad)
    with pytest.raises(SpecError, match="finest_scale"):
        FLOW_ESTIMATORS.build("dis:preset=ultrafast,finest_scale=-1")

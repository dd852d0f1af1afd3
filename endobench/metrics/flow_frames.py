"""Optical flow between consecutive video frames for the evaluator's temporal consistency.

OpenCV's DIS optical flow (preset ``fast``) on grayscale frames. ``dis_backward_flows`` returns,
for each frame ``t >= 1``, the ``H x W x 2`` float32 flow such that the content at pixel
``(x, y)`` of frame ``t`` was at ``(x + flow[y, x, 0], y + flow[y, x, 1])`` in frame ``t - 1``
(the convention of the synthetic generator's ``backward_flow``): backward warping of frame
``t - 1``'s mask with it predicts frame ``t``'s mask.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np


def read_frames(folder: Path, names: Sequence[str]) -> list[np.ndarray]:
    """Grayscale uint8 frames ``folder/<name>.jpg`` (or .png) in ``names`` order."""
    frames = []
    for name in names:
        path = next(
            (
                folder / f"{name}{ext}"
                for ext in (".jpg", ".jpeg", ".png")
                if (folder / f"{name}{ext}").is_file()
            ),
            None,
        )
        if path is None:
            raise FileNotFoundError(f"{folder}/{name}.jpg: video frame not found")
        image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if image is None:
            raise OSError(f"{path}: cannot decode the video frame")
        frames.append(image)
    return frames


def dis_backward_flows(frames: Sequence[np.ndarray]) -> list[np.ndarray | None]:
    """Backward flows indexed by frame: element ``t >= 1`` maps frame ``t`` to frame ``t - 1``;
    element 0 is None (the convention of :mod:`endobench.metrics.temporal_consistency`)."""
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
    return [None] + [dis.calc(frames[t], frames[t - 1], None) for t in range(1, len(frames))]

"""Flow quality measured directly: the one-step warp of the ground truth.

For two consecutive annotated frames ``t-1``, ``t`` of a clip, the truth of ``t-1`` is carried to
``t`` by the estimator's flow (nearest-neighbour backward warp, ``flow = estimator(frame_t,
frame_t-1)``, the way propagation calls it) and compared with the truth of ``t``: per object,
the IoU of the two masks on the pixels whose truth is not void. The mean over (step, object)
rows ranks flows for propagation at about a hundredth of the cost of a J&F grid, and without the
propagator's other choices (confidence, fusion, keyframes) in the way. An object absent from both
masks is not a row; one that vanishes or appears scores 0 unless the warp agrees.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from endobench.data.clip import VOID_ID, Clip
from endobench.propagation.warp import warp_labels

Flow = Callable[[np.ndarray, np.ndarray], np.ndarray]


def warp_iou(
    prev_labels: np.ndarray, labels: np.ndarray, flow: np.ndarray, void_id: int = VOID_ID
) -> dict[int, float]:
    """``{object id: IoU}`` of ``prev_labels`` warped by ``flow`` against ``labels``.

    ``prev_labels`` / ``labels``: ``H x W`` uint8 label maps (0 = background, ``void_id`` =
    not scored); ``flow``: ``H x W x 2`` float32 from ``labels``' frame to ``prev_labels``' frame
    (OpenCV convention). Objects: every id other than 0 and void in either map; pixels whose
    source lies outside the image become background.
    """
    prev_labels, labels = np.asarray(prev_labels), np.asarray(labels)
    warped, _ = warp_labels(prev_labels, flow)
    scored = labels != void_id
    ids = sorted(
        (set(np.unique(prev_labels).tolist()) | set(np.unique(labels).tolist())) - {0, void_id}
    )
    out = {}
    for obj in ids:
        a, b = (warped == obj) & scored, (labels == obj) & scored
        union = int(np.count_nonzero(a | b))
        out[obj] = np.count_nonzero(a & b) / union if union else 1.0
    return out


@dataclass(frozen=True)
class FlowQuality:
    """One estimator on a set of clips: ``mean_iou`` over (step, object) rows,
    ``share_below_half`` of those rows with IoU < 0.5, the flow's cost per step in
    milliseconds (``cpu_ms``: process CPU time of all threads, robust to other load;
    ``wall_ms``), and the numbers of ``steps`` and ``rows``."""

    mean_iou: float
    share_below_half: float
    cpu_ms: float
    wall_ms: float
    steps: int
    rows: int

    def to_dict(self) -> dict[str, float | int]:
        """Rounded for JSON reports."""
        return {
            "one_step_warp_iou": round(self.mean_iou, 4),
            "share_below_0.5": round(self.share_below_half, 3),
            "flow_cpu_ms": round(self.cpu_ms, 1),
            "flow_wall_ms": round(self.wall_ms, 1),
            "steps": self.steps,
        }


def consecutive_pairs(clip: Clip, stride: int = 1) -> Iterable[int]:
    """Frames ``t`` (every ``stride``-th) with ``t-1`` and ``t`` both annotated."""
    annotated = set(clip.annotated)
    return [t for t in range(1, len(clip), stride) if t in annotated and t - 1 in annotated]


def one_step_warp_quality(clips: Iterable[Clip], flow: Flow, stride: int = 1) -> FlowQuality:
    """``warp_iou`` over every ``stride``-th consecutive annotated pair of ``clips`` for
    ``flow(frame_t, frame_t-1)`` (an estimator), with its cost per call."""
    rows: list[float] = []
    cpu = wall = 0.0
    steps = 0
    for clip in clips:
        for t in consecutive_pairs(clip, stride):
            prev, cur = clip.frame(t - 1), clip.frame(t)
            prev_truth, truth = clip.mask(t - 1), clip.mask(t)
            assert prev_truth is not None and truth is not None  # both annotated
            c0, w0 = time.process_time(), time.perf_counter()
            field = flow(cur, prev)
            cpu += time.process_time() - c0
            wall += time.perf_counter() - w0
            steps += 1
            rows += warp_iou(prev_truth, truth, field, clip.void_id).values()
    if not steps:
        raise ValueError("one_step_warp_quality: no two consecutive annotated frames in the clips")
    values = np.asarray(rows, dtype=np.float64)
    return FlowQuality(
        mean_iou=float(values.mean()) if len(values) else 1.0,
        share_below_half=float(np.mean(values < 0.5)) if len(values) else 0.0,
        cpu_ms=1e3 * cpu / steps,
        wall_ms=1e3 * wall / steps,
        steps=steps,
        rows=len(values),
    )

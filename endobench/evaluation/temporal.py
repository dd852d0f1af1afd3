"""Flow-warped temporal consistency of one scored sequence, streamed pair by pair.

For each consecutive pair of frames ``(t-1, t)``: the backward DIS flow (preset ``fast``, the
estimator of :mod:`endobench.propagation.flow`) of frame ``t``, then TC and flicker
(:mod:`endobench.metrics.temporal_consistency`) of each scored object's ground-truth and
predicted masks. Only the previous frame is kept. Returns per sequence the means over objects
of TC-Pred (pairs whose two predictions are scored), TC-GT (all pairs), Flicker-Pred and
``TC-Gap = TC-GT - TC-Pred``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from endobench.evaluation.errors import EvaluationError
from endobench.evaluation.sources import SequenceSource
from endobench.metrics.davis import scored_frames

#: The DIS preset of the TC flow (fixed: TC values depend on it).
TC_FLOW = "fast"


def sequence_temporal_consistency(
    src: SequenceSource, rows: Sequence[dict[str, Any]], protocol: str
) -> dict[str, float]:
    """``{"TC-Pred", "TC-GT", "Flicker-Pred", "TC-Gap"}`` of one source (NaN without objects)."""
    from endobench.metrics.temporal_consistency import flicker_rate, flow_warped_consistency
    from endobench.propagation.flow import DISFlow

    if src.load_gray is None:
        raise EvaluationError(src.no_frames)
    objects = list(dict.fromkeys((int(r["object"]), int(r["pred_object"])) for r in rows))
    read = set(scored_frames(len(src.frame_names), protocol))
    flow = DISFlow(TC_FLOW)
    values: dict[tuple[int, int], dict[str, list[float]]] = {
        pair: {"TC-Pred": [], "TC-GT": [], "Flicker-Pred": []} for pair in objects
    }
    previous: tuple[np.ndarray, np.ndarray, np.ndarray | None] | None = None
    for t in range(len(src.frame_names)):
        gray, gt = src.load_gray(t), src.load_gt(t)
        pred = src.load_pred(t) if t in read else None
        if previous is not None:
            prev_gray, prev_gt, prev_pred = previous
            flows = [None, flow(gray, prev_gray)]
            for obj, pred_obj in objects:
                out = values[(obj, pred_obj)]
                out["TC-GT"].append(flow_warped_consistency([prev_gt == obj, gt == obj], flows)[0])
                if pred is not None and prev_pred is not None:
                    masks = [prev_pred == pred_obj, pred == pred_obj]
                    out["TC-Pred"].append(flow_warped_consistency(masks, flows)[0])
                    out["Flicker-Pred"].append(flicker_rate(masks, flows)[0])
        previous = (gray, gt, pred)
    per_object: dict[str, list[float]] = {"TC-Pred": [], "TC-GT": [], "Flicker-Pred": []}
    for out in values.values():
        for key, series in out.items():
            per_object[key].append(float(np.nanmean(np.asarray(series, dtype=np.float64))))
    res = {k: float(np.nanmean(v)) if v else float("nan") for k, v in per_object.items()}
    res["TC-Gap"] = res["TC-GT"] - res["TC-Pred"]
    return res

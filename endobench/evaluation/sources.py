"""`SequenceSource`: one video to score, as frame names plus loaders of its masks and frames.

Folder mode (:mod:`endobench.evaluation.folder_mode`) and dataset mode
(:mod:`endobench.evaluation.dataset_mode`) each build sources; :mod:`endobench.evaluation.engine`
scores any source the same way, decoding one frame at a time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

#: ``i -> H x W uint8`` label map of the i-th frame of a source.
MaskLoader = Callable[[int], np.ndarray]


@dataclass(frozen=True)
class SequenceSource:
    """One video to score.

    ``frame_names``: the frames in order (the protocol's first/last rules apply to this list);
    ``load_gt(i)`` / ``load_pred(i)``: ``H x W`` uint8 label maps (255 = void in the ground
    truth), raising :class:`~endobench.evaluation.errors.EvaluationError` naming the file;
    ``gt_name(i)`` / ``pred_name(i)``: the file (or entry) names used in messages;
    ``context``: what errors about this sequence's predictions are prefixed with;
    ``load_gray(i)``: ``H x W`` uint8 grey video frame for temporal consistency, or None when
    the source has no video frames (then ``no_frames`` says why).
    """

    name: str
    frame_names: tuple[str, ...]
    load_gt: MaskLoader
    load_pred: MaskLoader
    gt_name: Callable[[int], str]
    pred_name: Callable[[int], str]
    context: str
    load_gray: MaskLoader | None = None
    no_frames: str = ""

"""Score a folder of predicted mask PNGs against a DAVIS root or a ground-truth mask folder.

:func:`evaluate_folders` is what ``endobench eval --gt GT --pred PRED`` runs: discovery
(:mod:`endobench.evaluation.folders`), decoding (:func:`endobench.evaluation.decode.read_mask`),
scoring (:mod:`endobench.evaluation.engine`). Nothing is cached: every run reads and scores the
files it is given.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from endobench.evaluation.decode import read_mask
from endobench.evaluation.engine import evaluate_sources, resolve_workers, scoring_options
from endobench.evaluation.errors import EvaluationError
from endobench.evaluation.folders import (
    SequencePaths,
    check_predictions,
    discover_sequences,
    warn_extra_frames,
)
from endobench.evaluation.sources import SequenceSource
from endobench.metrics.boundary import DEFAULT_BOUND_TH
from endobench.metrics.davis import scored_frames

VIDEO_FRAME_EXTENSIONS = (".jpg", ".jpeg", ".png")


def _gray_loader(seq: SequencePaths, frames_dir: Path) -> Any:

    def load(i: int) -> np.ndarray:
        name = seq.frame_names[i]
        path = next(
            (p for ext in VIDEO_FRAME_EXTENSIONS if (p := frames_dir / f"{name}{ext}").is_file()),
            None,
        )
        if path is None:
            raise EvaluationError(f"{frames_dir}/{name}.jpg: video frame not found")
        image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if image is None:
            raise EvaluationError(f"{path}: cannot decode the video frame")
        return image

    return load


def folder_source(seq: SequencePaths) -> SequenceSource:
    """The :class:`SequenceSource` of one discovered sequence (frames for TC when present)."""
    frames_dir = seq.frames_dir if seq.frames_dir is not None and seq.frames_dir.is_dir() else None
    return SequenceSource(
        name=seq.name,
        frame_names=seq.frame_names,
        load_gt=lambda i: read_mask(seq.gt_path(i)),
        load_pred=lambda i: read_mask(seq.pred_path(i)),
        gt_name=lambda i: str(seq.gt_path(i)),
        pred_name=lambda i: str(seq.pred_path(i)),
        context=str(seq.pred_dir),
        load_gray=_gray_loader(seq, frames_dir) if frames_dir is not None else None,
        no_frames=(
            f"sequence {seq.name}: --metrics tc needs the video frames at "
            f"{seq.frames_dir or 'ROOT/JPEGImages/480p/<seq>'} (DAVIS layout)"
        ),
    )


def evaluate_folders(
    gt: str | Path,
    pred: str | Path,
    *,
    sequences: Sequence[str] | None = None,
    protocol: str = "semi-supervised",
    metrics: str | Sequence[str] | None = None,
    workers: int | None = None,
    bound_th: float = DEFAULT_BOUND_TH,
    hd95_definition: str = "monai",
    dice_empty: float = 1.0,
    progress: bool = True,
) -> tuple[Any, Any]:
    """Score every sequence; returns ``(per-frame rows, DAVIS table)`` (pandas DataFrames).

    ``metrics``: tokens among ``jf, j, f, t, dice, hd95, tc`` (list or comma-separated).
    ``workers``: scoring threads (None = usable CPUs, at most 8; 0 = the calling thread).
    Every input problem raises :class:`EvaluationError` (one line naming the file) before
    anything is scored where it can be found by listing files; prediction files and folders
    that match no ground truth give one :class:`EvaluationWarning` each.
    """
    options, want_tc = scoring_options(metrics, protocol, bound_th, dice_empty, hd95_definition)
    n_workers = resolve_workers(workers)
    seqs = discover_sequences(gt, pred, sequences)
    for seq in seqs:
        warn_extra_frames(seq.pred_dir, set(seq.frame_names), seq.name)
        required = scored_frames(len(seq.frame_names), options.protocol)
        check_predictions(seq.name, [seq.pred_path(i) for i in required])
    return evaluate_sources(
        [folder_source(s) for s in seqs],
        options,
        temporal_consistency=want_tc,
        workers=n_workers,
        progress=progress,
    )

"""Score predictions against a registry dataset, through its reader.

Predictions are ``PRED/<clip>/<frame stem>.png`` label maps holding the dataset's class ids,
as ``endobench track`` writes them. The ground truth is what the dataset's reader gives
(``Clip.mask``): its class mapping and ``target``, its void (scored as void), and only its
annotated frames. The annotated frames of a clip, in order, form the sequence the protocol
sees (semi-supervised: objects are the ids ``1..max`` of the first annotated frame, the first
and last annotated frames are not scored), so the numbers equal folder-mode evaluation of the
same masks written out as PNGs. Errors (one line): a missing clip folder or frame, a class id
the dataset does not have, a size mismatch.
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
from endobench.evaluation.folders import check_predictions, warn_extra_folders, warn_extra_frames
from endobench.evaluation.sources import SequenceSource
from endobench.metrics.boundary import DEFAULT_BOUND_TH
from endobench.metrics.davis import VOID_ID, scored_frames


def _open(name: str, registry: Any, split: str | None) -> Any:
    from endobench.data import DataError, RegistryError, open_dataset

    try:
        return open_dataset(name, split=split, registry=registry)
    except (DataError, RegistryError) as exc:
        raise EvaluationError(str(exc)) from None


def _class_checker(clip: Any, dataset: str) -> Any:
    allowed = np.zeros(256, dtype=bool)
    allowed[0] = True
    allowed[[k for k in clip.classes if 0 <= k <= 255]] = True
    known = ", ".join(f"{k} {v}" for k, v in sorted(clip.classes.items()))

    def check(path: Path, labels: np.ndarray) -> np.ndarray:
        counts = cv2.calcHist([labels], [0], None, [256], [0, 256]).ravel()
        bad = np.flatnonzero((counts > 0) & ~allowed)
        if bad.size:
            raise EvaluationError(
                f"{path}: class id(s) {bad.tolist()} that dataset {dataset} does not have "
                f"(0 background, {known})"
            )
        return labels

    return check


def clip_source(clip: Any, pred_dir: Path, dataset: str) -> SequenceSource:
    """The :class:`SequenceSource` of a clip's annotated frames against ``pred_dir``."""
    from endobench.data import DataError

    indices = list(clip.annotated)
    stems = tuple(Path(clip.frame_names[i]).stem for i in indices)
    check = _class_checker(clip, dataset)

    def pred_path(j: int) -> Path:
        return pred_dir / f"{stems[j]}.png"

    def load_gt(j: int) -> np.ndarray:
        try:
            mask = clip.mask(indices[j])
        except DataError as exc:
            raise EvaluationError(str(exc)) from None
        if clip.void_id != VOID_ID:
            mask = np.where(mask == clip.void_id, VOID_ID, mask).astype(np.uint8)
        return mask

    def load_pred(j: int) -> np.ndarray:
        path = pred_path(j)
        return check(path, read_mask(path))

    def load_gray(j: int) -> np.ndarray:
        from endobench.propagation.flow import to_gray  # only temporal consistency needs it

        try:
            return to_gray(clip.frame(indices[j]))
        except DataError as exc:
            raise EvaluationError(str(exc)) from None

    return SequenceSource(
        name=clip.name,
        frame_names=stems,
        load_gt=load_gt,
        load_pred=load_pred,
        gt_name=lambda j: (
            f"dataset {dataset} clip {clip.name} frame {clip.frame_names[indices[j]]}"
        ),
        pred_name=lambda j: str(pred_path(j)),
        context=str(pred_dir),
        load_gray=load_gray,
    )


def evaluate_dataset(
    dataset: str,
    pred: str | Path,
    *,
    registry: Any = None,
    split: str | None = None,
    sequences: Sequence[str] | None = None,
    protocol: str = "semi-supervised",
    metrics: str | Sequence[str] | None = None,
    workers: int | None = None,
    bound_th: float = DEFAULT_BOUND_TH,
    hd95_definition: str = "monai",
    dice_empty: float = 1.0,
    progress: bool = True,
) -> tuple[Any, Any]:
    """Score ``pred`` against dataset ``dataset`` of ``registry`` (a Registry, a registry file,
    or None = the default lookup), optionally one ``split`` and a subset of clips
    (``sequences``); returns ``(per-frame rows, DAVIS table)`` like
    :func:`~endobench.evaluation.evaluate_folders`, whose other arguments it shares."""
    options, want_tc = scoring_options(metrics, protocol, bound_th, dice_empty, hd95_definition)
    n_workers = resolve_workers(workers)
    pred = Path(pred)
    if not pred.is_dir():
        raise EvaluationError(f"{pred}: prediction folder not found")
    ds = _open(dataset, registry, split)
    if ds.kind != "video":
        raise EvaluationError(
            f"dataset {dataset}: holds still images ({ds.kind}); eval --dataset scores videos"
        )
    clips = ds.clips()
    names = [c.name for c in clips]
    if sequences:
        unknown = [s for s in sequences if s not in names]
        if unknown:
            raise EvaluationError(
                f"dataset {dataset}: no clip(s) {unknown}; available: {', '.join(names)}"
            )
        clips = [c for c in clips if c.name in set(sequences)]
    warn_extra_folders(pred, set(names), f"clip of dataset {dataset}")
    sources = []
    for clip in clips:
        folder = pred / clip.name
        if not folder.is_dir():
            raise EvaluationError(
                f"{folder}: prediction folder missing for clip {clip.name} of dataset {dataset}"
            )
        src = clip_source(clip, folder, dataset)
        warn_extra_frames(folder, {Path(n).stem for n in clip.frame_names}, clip.name)
        required = scored_frames(len(src.frame_names), options.protocol)
        check_predictions(clip.name, [folder / f"{src.frame_names[j]}.png" for j in required])
        if src.frame_names:
            sources.append(src)
    return evaluate_sources(
        sources, options, temporal_consistency=want_tc, workers=n_workers, progress=progress
    )

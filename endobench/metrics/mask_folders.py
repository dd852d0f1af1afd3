"""Find and decode the mask folders the evaluator compares: DAVIS layout or a plain folder pair.

DAVIS layout: ``GT/Annotations/480p/<seq>/*.png`` (frames at ``GT/JPEGImages/480p/<seq>``)
against ``PRED/<seq>/*.png``. A ground-truth folder whose sub-folders hold PNGs is read the same
way; a folder holding PNGs directly is one sequence, compared with ``PRED/*.png``. PNGs are
decoded by :func:`endobench.data.label_png.read_label_png` (palette index = object id; binary
0/255 = object 1) in worker processes.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from endobench.data.label_png import read_label_png


@dataclass(frozen=True)
class SequencePaths:
    """Files of one sequence: ground-truth and prediction PNGs by frame name, optional frames."""

    name: str
    gt_dir: Path
    pred_dir: Path
    frame_names: tuple[str, ...]
    frames_dir: Path | None


def _pngs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() == ".png" and p.is_file())


def discover_sequences(
    gt: str | Path, pred: str | Path, sequences: Sequence[str] | None = None
) -> list[SequencePaths]:
    """The sequences to evaluate, in name order; errors name the folder and what was expected."""
    gt, pred = Path(gt), Path(pred)
    if not gt.is_dir():
        raise FileNotFoundError(f"{gt}: ground-truth folder not found")
    if not pred.is_dir():
        raise FileNotFoundError(f"{pred}: prediction folder not found")
    davis_root = gt / "Annotations" / "480p"
    if davis_root.is_dir():
        seq_root, frames_root = davis_root, gt / "JPEGImages" / "480p"
    elif _pngs(gt):
        if sequences:
            raise ValueError(f"{gt}: --sequences needs a DAVIS root; this folder is one sequence")
        names = tuple(p.stem for p in _pngs(gt))
        return [SequencePaths(gt.name, gt, pred, names, None)]
    else:
        seq_root, frames_root = gt, None
    available = sorted(p.name for p in seq_root.iterdir() if p.is_dir() and _pngs(p))
    if not available:
        raise FileNotFoundError(
            f"{gt}: no mask PNGs; expected ROOT/Annotations/480p/<seq>/*.png, <seq>/*.png "
            f"sub-folders or PNGs directly"
        )
    chosen = list(sequences) if sequences else available
    unknown = [s for s in chosen if s not in available]
    if unknown:
        raise ValueError(f"{seq_root}: no sequence(s) {unknown}; available: {available}")
    out = []
    for name in chosen:
        frames_dir = frames_root / name if frames_root is not None else None
        names = tuple(p.stem for p in _pngs(seq_root / name))
        out.append(SequencePaths(name, seq_root / name, pred / name, names, frames_dir))
    return out


def prediction_paths(seq: SequencePaths, required: Sequence[int]) -> list[Path | None]:
    """Prediction PNG per frame (None where not required); raises listing missing files."""
    wanted = set(required)
    paths: list[Path | None] = []
    missing = []
    for i, name in enumerate(seq.frame_names):
        path = seq.pred_dir / f"{name}.png"
        if i not in wanted:
            paths.append(None)
            continue
        if not path.is_file():
            missing.append(str(path))
        paths.append(path)
    if missing:
        shown = ", ".join(missing[:5]) + (
            f" (and {len(missing) - 5} more)" if len(missing) > 5 else ""
        )
        raise FileNotFoundError(
            f"sequence {seq.name}: {len(missing)} prediction file(s) missing: {shown}"
        )
    return paths


def decode_masks(
    paths: Sequence[Path | None], executor: ProcessPoolExecutor | None = None, workers: int = 1
) -> list[np.ndarray | None]:
    """Decode label PNGs (None stays None), in ``executor``'s ``workers`` processes if given."""
    real = [p for p in paths if p is not None]
    if executor is None:
        decoded = [read_label_png(p) for p in real]
    else:
        chunk = max(1, len(real) // (4 * max(1, workers)))
        decoded = list(executor.map(read_label_png, real, chunksize=chunk))
    it = iter(decoded)
    return [None if p is None else next(it) for p in paths]

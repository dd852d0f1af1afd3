"""Find the mask folders folder-mode evaluation compares: the DAVIS layout or a plain folder pair.

DAVIS layout: ``GT/Annotations/480p/<seq>/*.png`` (frames at ``GT/JPEGImages/480p/<seq>``)
against ``PRED/<seq>/*.png``. A ground-truth folder whose sub-folders hold PNGs is read the same
way; a folder holding PNGs directly is one sequence, compared with ``PRED/*.png``. Prediction
files and folders that match no ground truth are reported as :class:`EvaluationWarning` (one
line each); a directory where a prediction PNG should be is an error that says so.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from endobench.evaluation.errors import EvaluationError, EvaluationWarning

#: Missing files listed in an error message before "(and N more)".
SHOWN_MISSING = 5


@dataclass(frozen=True)
class SequencePaths:
    """Files of one sequence: ground-truth and prediction PNGs by frame name, optional frames."""

    name: str
    gt_dir: Path
    pred_dir: Path
    frame_names: tuple[str, ...]
    frames_dir: Path | None

    def gt_path(self, i: int) -> Path:
        """Ground-truth PNG of frame ``i``."""
        return self.gt_dir / f"{self.frame_names[i]}.png"

    def pred_path(self, i: int) -> Path:
        """Prediction PNG of frame ``i``."""
        return self.pred_dir / f"{self.frame_names[i]}.png"


def _pngs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() == ".png" and p.is_file())


def _has_pngs(folder: Path) -> bool:
    return any(p.suffix.lower() == ".png" and p.is_file() for p in folder.iterdir())


def discover_sequences(
    gt: str | Path, pred: str | Path, sequences: Sequence[str] | None = None
) -> list[SequencePaths]:
    """The sequences to evaluate, in name order; errors name the folder and what was expected.

    Prediction sub-folders with no ground-truth sequence are reported as one warning each.
    """
    gt, pred = Path(gt), Path(pred)
    if not gt.is_dir():
        raise EvaluationError(f"{gt}: ground-truth folder not found")
    if not pred.is_dir():
        raise EvaluationError(f"{pred}: prediction folder not found")
    davis_root = gt / "Annotations" / "480p"
    if davis_root.is_dir():
        seq_root, frames_root = davis_root, gt / "JPEGImages" / "480p"
    elif _has_pngs(gt):
        if sequences:
            raise EvaluationError(
                f"{gt}: --sequences needs a DAVIS root; this folder is one sequence"
            )
        names = tuple(p.stem for p in _pngs(gt))
        return [SequencePaths(gt.name, gt, pred, names, None)]
    else:
        seq_root, frames_root = gt, None
    available = sorted(p.name for p in seq_root.iterdir() if p.is_dir() and _has_pngs(p))
    if not available:
        raise EvaluationError(
            f"{gt}: no mask PNGs; expected ROOT/Annotations/480p/<seq>/*.png, <seq>/*.png "
            f"sub-folders or PNGs directly"
        )
    chosen = list(sequences) if sequences else available
    unknown = [s for s in chosen if s not in available]
    if unknown:
        raise EvaluationError(f"{seq_root}: no sequence(s) {unknown}; available: {available}")
    warn_extra_folders(pred, set(available), "ground-truth sequence")
    out = []
    for name in chosen:
        frames_dir = frames_root / name if frames_root is not None else None
        names = tuple(p.stem for p in _pngs(seq_root / name))
        out.append(SequencePaths(name, seq_root / name, pred / name, names, frames_dir))
    return out


def warn_extra_folders(pred: Path, known: set[str], what: str) -> None:
    """One warning per sub-folder of ``pred`` that holds PNGs but is not in ``known``."""
    extra = sorted(p.name for p in pred.iterdir() if p.is_dir() and p.name not in known)
    for name in extra:
        if _has_pngs(pred / name):
            warnings.warn(
                f"{pred / name}: prediction folder ignored, no {what} of that name",
                EvaluationWarning,
                stacklevel=2,
            )


def warn_extra_frames(pred_dir: Path, stems: set[str], sequence: str) -> None:
    """One warning when ``pred_dir`` holds PNGs whose stem is no frame of ``sequence``."""
    if not pred_dir.is_dir():
        return
    extra = sorted(p.name for p in _pngs(pred_dir) if p.stem not in stems)
    if extra:
        shown = ", ".join(extra[:SHOWN_MISSING]) + (
            f" (and {len(extra) - SHOWN_MISSING} more)" if len(extra) > SHOWN_MISSING else ""
        )
        warnings.warn(
            f"{pred_dir}: {len(extra)} prediction file(s) ignored, no frame of sequence "
            f"{sequence} has their name: {shown}",
            EvaluationWarning,
            stacklevel=2,
        )


def check_predictions(sequence: str, paths: Sequence[Path]) -> None:
    """Raise one line listing the prediction PNGs in ``paths`` that are missing or directories."""
    dirs = [p for p in paths if p.is_dir()]
    if dirs:
        raise EvaluationError(f"{dirs[0]}: is a directory, expected a prediction PNG file")
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        shown = ", ".join(missing[:SHOWN_MISSING]) + (
            f" (and {len(missing) - SHOWN_MISSING} more)" if len(missing) > SHOWN_MISSING else ""
        )
        raise EvaluationError(
            f"sequence {sequence}: {len(missing)} prediction file(s) missing: {shown}"
        )

"""What every file-layout reader provides, and how its file lists become lazy `Clip`s.

A reader only knows its layout: ``scan()`` lists clips and frames (paths only, nothing is
decoded) plus structural problems (a mask without image, an unknown folder ...), and
``read_mask()`` decodes one frame's annotation into source class ids. Everything shared lives
here: size and class-id checks, the class ``target`` lookup table, and the ``on_error`` policy.
"""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict

from endobench.data.clip import VOID_ID, Clip
from endobench.data.dataset import DatasetKind, OnError
from endobench.data.errors import DataError, Problem
from endobench.data.readers.imageio import image_size, read_luma, read_rgb

MaskSource = Path | tuple[Path, ...]


@dataclass(frozen=True)
class FrameRef:
    """One frame on disk: its name, image file and annotation source (None = not annotated)."""

    name: str
    image: Path
    mask: MaskSource | None = None

    @property
    def mask_path(self) -> Path | None:
        """The annotation file named in messages (the first one when there are several)."""
        if self.mask is None:
            return None
        return self.mask[0] if isinstance(self.mask, tuple) else self.mask

    @property
    def annotation_file(self) -> Path:
        """The (first) annotation file of an annotated frame, the one ``read_mask`` decodes."""
        path = self.mask_path
        if path is None:
            raise ValueError(f"{self.image}: frame has no annotation to read")
        return path


@dataclass
class ClipSpec:
    """A clip as listed by a reader: ordered frames plus optional per-clip fps/classes/meta."""

    name: str
    frames: list[FrameRef]
    fps: float | None = None
    classes: dict[int, str] | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class ScanResult:
    """Output of `Reader.scan`: the clips found and the structural problems met on the way."""

    clips: list[ClipSpec]
    problems: list[Problem] = field(default_factory=list)


class ReaderOptions(BaseModel):
    """Base of every reader's options (unknown keys are errors, so typos are caught)."""

    model_config = ConfigDict(extra="forbid")


class Reader(ABC):
    """A dataset layout on disk. Subclasses set the class attributes and implement two methods.

    A reader is registered under its ``format`` name (the ``datasets.yaml`` field) with its
    options model: ``@READERS.register("davis", options=DavisOptions)`` on the class; it is
    built as ``cls(root, options)``.
    """

    kind: ClassVar[DatasetKind] = "video"
    default_classes: ClassVar[dict[int, str]] = {1: "object"}
    default_fps: ClassVar[float | None] = None
    # False where label ids are object ids that vary per clip (DAVIS), so no class check applies.
    check_class_ids: ClassVar[bool] = True

    def __init__(self, root: Path, options: ReaderOptions) -> None:
        self.root = root
        self.options = options

    def source_classes(self) -> dict[int, str]:
        """Class ids and names of the masks this reader decodes (before any target)."""
        return dict(self.default_classes)

    @abstractmethod
    def scan(self) -> ScanResult:
        """List clips and frames under ``self.root`` without decoding any image."""

    @abstractmethod
    def read_mask(self, frame: FrameRef) -> np.ndarray:
        """Decode ``frame``'s annotation as an ``H x W`` uint8 map of source class ids."""

    def read_frame(self, frame: FrameRef) -> np.ndarray:
        """Decode ``frame``'s image as ``H x W x 3`` uint8 RGB."""
        return read_rgb(frame.image)


def require_dir(path: Path, what: str) -> Path:
    """``path`` if it is a folder, else a DataError saying which folder was expected."""
    if not path.is_dir():
        raise DataError(path, f"{what} folder not found")
    return path


class MaskChecker:
    """Checks a decoded mask against its frame and maps it through the target lookup table."""

    def __init__(self, reader: Reader, classes: dict[int, str], lut: np.ndarray) -> None:
        self.reader = reader
        self.lut = lut
        allowed = np.zeros(256, dtype=bool)
        allowed[[0, VOID_ID, *classes]] = True
        self.allowed = allowed
        self.classes = classes

    def __call__(self, frame: FrameRef, frame_hw: tuple[int, int] | None = None) -> np.ndarray:
        mask = self.reader.read_mask(frame)
        where = frame.mask_path or frame.image
        hw = frame_hw if frame_hw is not None else image_size(frame.image)
        if mask.shape != hw:
            raise DataError(
                where,
                f"mask size {mask.shape[1]}x{mask.shape[0]} (WxH) differs from image "
                f"{frame.image.name} size {hw[1]}x{hw[0]}",
            )
        if self.reader.check_class_ids:
            counts = np.bincount(mask.ravel(), minlength=256)
            unknown = np.flatnonzero((counts > 0) & ~self.allowed)
            if unknown.size:
                expected = sorted({0, VOID_ID, *self.classes})
                raise DataError(
                    where,
                    f"unknown class id(s) {unknown.tolist()} in mask; expected ids {expected} "
                    f"(classes {self.classes})",
                )
        return self.lut[mask]


def build_clips(
    reader: Reader,
    specs: list[ClipSpec],
    source_classes: dict[int, str],
    target_classes: dict[int, str],
    lut: np.ndarray,
    fps: float | None,
    on_error: OnError,
    problems: list[Problem],
    dataset_name: str,
    progress: bool | None = None,
) -> list[Clip]:
    """Turn listed clips into lazy `Clip`s.

    In "raise" mode nothing is read here; a bad file raises `DataError` when its frame is
    accessed. In "skip" mode every frame and mask is read once (with a progress bar) and bad
    frames are dropped; ``problems`` receives each one, each clip's meta holds ``skipped`` and
    ``problems``, and a single warning summarises the whole dataset.
    """
    clips: list[Clip] = []
    if on_error == "skip":
        specs = _drop_bad_frames(reader, specs, source_classes, lut, problems, progress)
        if problems:
            warnings.warn(
                f"dataset {dataset_name!r}: skipped {len(problems)} bad frame(s) or file(s); "
                f"first: {problems[0]}. Details in Dataset.problems and each clip.meta['problems'].",
                stacklevel=3,
            )
    for spec in specs:
        # Per-clip classes (DAVIS objects) stand unless a target merged them into new classes.
        clip_classes = target_classes
        if spec.classes is not None and _is_identity(lut):
            clip_classes = spec.classes
        checker = MaskChecker(reader, spec.classes or source_classes, lut)
        clips.append(_make_clip(reader, spec, checker, clip_classes, spec.fps or fps))
    return clips


def _is_identity(lut: np.ndarray) -> bool:
    return bool(np.array_equal(lut, np.arange(256, dtype=np.uint8)))


def _make_clip(
    reader: Reader, spec: ClipSpec, checker: MaskChecker, classes: dict[int, str], fps
) -> Clip:
    frames = spec.frames

    def load_frame(i: int) -> np.ndarray:
        return reader.read_frame(frames[i])

    def load_luma(i: int) -> np.ndarray:
        return read_luma(frames[i].image)

    def load_mask(i: int) -> np.ndarray:
        return checker(frames[i])

    annotated = [i for i, f in enumerate(frames) if f.mask is not None]
    return Clip(
        name=spec.name,
        frame_names=[f.name for f in frames],
        load_frame=load_frame,
        # A reader with its own read_frame: Clip.luma converts that frame instead.
        load_luma=load_luma if type(reader).read_frame is Reader.read_frame else None,
        load_mask=load_mask,
        annotated=annotated,
        classes=classes,
        fps=fps,
        meta=dict(spec.meta),
    )


def _drop_bad_frames(
    reader: Reader,
    specs: list[ClipSpec],
    source_classes: dict[int, str],
    lut: np.ndarray,
    problems: list[Problem],
    progress: bool | None,
) -> list[ClipSpec]:
    """Read every frame and mask once; return the specs without the frames that failed."""
    from tqdm.auto import tqdm  # here: it imports asyncio, start-up that only a check needs

    total = sum(len(s.frames) for s in specs)
    kept: list[ClipSpec] = []
    with tqdm(total=total, desc="reading frames", unit="frame", disable=_disabled(progress)) as bar:
        for spec in specs:
            checker = MaskChecker(reader, spec.classes or source_classes, lut)
            good: list[FrameRef] = []
            clip_problems = [p for p in problems if _belongs(p, spec)]
            for frame in spec.frames:
                problem = check_frame(reader, frame, checker)
                bar.update(1)
                if problem is None:
                    good.append(frame)
                else:
                    problems.append(problem)
                    clip_problems.append(problem)
            meta = dict(spec.meta)
            meta["skipped"] = len(clip_problems)
            meta["problems"] = [str(p) for p in clip_problems]
            if good:
                kept.append(ClipSpec(spec.name, good, spec.fps, spec.classes, meta))
    return kept


def _belongs(problem: Problem, spec: ClipSpec) -> bool:
    """Whether a structural problem concerns a file of this clip (same folder as its frames)."""
    folders = {f.image.parent for f in spec.frames}
    return problem.path.parent in folders


def check_frame(reader: Reader, frame: FrameRef, checker: MaskChecker) -> Problem | None:
    """Read one frame and its mask with every check; the first problem found, or None."""
    try:
        image = reader.read_frame(frame)
        if frame.mask is not None:
            checker(frame, image.shape[:2])
    except DataError as exc:
        return Problem.from_error(exc)
    return None


def _disabled(progress: bool | None) -> bool | None:
    """tqdm's ``disable``: None (auto: only on a terminal), or forced on/off."""
    return None if progress is None else not progress

"""Image/mask pair folders: Kvasir-SEG (``images/``, ``masks/``) and CVC-ClinicDB.

Images and masks are matched by file stem. Kvasir-SEG masks are JPEGs whose compression
leaves grey values between 0 and 255, so masks are binarised with ``value > threshold``
(127 by default). CVC-ClinicDB ships ``Original/N.tif`` and ``Ground Truth/N.tif`` (or the
same names as ``.png`` under ``PNG/``); its 612 frames come from 29 colonoscopy sequences,
grouped here by the documented frame-number ranges.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from endobench.data.errors import DataError, Problem
from endobench.data.readers.base import (
    ClipSpec,
    FrameRef,
    Reader,
    ReaderOptions,
    ScanResult,
    require_dir,
)
from endobench.data.readers.imageio import list_images, natural_key, read_gray
from endobench.registry import READERS


class PairOptions(ReaderOptions):
    """Options of image/mask pair folders (paths relative to the dataset root)."""

    images_dir: str = "images"
    masks_dir: str = "masks"
    # Masks are binarised with value > threshold; None keeps grey values as class ids.
    threshold: int | None = 127


def pair_by_stem(
    images_dir: Path, masks_dir: Path, require_masks: bool = True
) -> tuple[list[FrameRef], list[Problem]]:
    """Match ``images_dir`` files with ``masks_dir`` files by stem.

    Returns the frames (naturally sorted by name) and a problem for every image without mask
    (when ``require_masks``) and every mask without image. An empty image folder raises.
    """
    images = list_images(images_dir)
    if not images:
        raise DataError(images_dir, "empty folder: no image files (.png/.jpg/.tif/.bmp) found")
    masks = {p.stem: p for p in list_images(masks_dir)} if masks_dir.is_dir() else {}
    problems: list[Problem] = []
    frames: list[FrameRef] = []
    stems = set()
    for image in sorted(images, key=lambda p: natural_key(p.stem)):
        stems.add(image.stem)
        mask = masks.get(image.stem)
        if mask is None and require_masks:
            problems.append(
                Problem(
                    image, f"no mask with the same name in {masks_dir} (expected {image.stem}.*)"
                )
            )
            continue
        frames.append(FrameRef(image.stem, image, mask))
    for stem, mask in sorted(masks.items()):
        if stem not in stems:
            problems.append(Problem(mask, f"mask has no image with the same name in {images_dir}"))
    return frames, problems


@READERS.register("pairs", options=PairOptions, usage="pairs")
class PairsReader(Reader):
    """Generic image/mask pair folders: one clip holding every image (still images)."""

    kind = "images"
    options: PairOptions
    default_classes = {1: "foreground"}

    def scan(self) -> ScanResult:
        opts = self.options
        images_dir = require_dir(self.root / opts.images_dir, "images")
        masks_dir = require_dir(self.root / opts.masks_dir, "masks")
        frames, problems = pair_by_stem(images_dir, masks_dir)
        return ScanResult([ClipSpec(self.root.name, frames)], problems)

    def read_mask(self, frame: FrameRef) -> np.ndarray:
        return read_thresholded(frame.annotation_file, self.options.threshold)


def read_thresholded(path: Path, threshold: int | None) -> np.ndarray:
    """A grey mask binarised with ``value > threshold`` (uint8 0/1); None keeps the grey values."""
    grey = read_gray(path)
    if threshold is None:
        return grey
    return (grey > threshold).astype(np.uint8)


@READERS.register("kvasir", options=PairOptions, usage="kvasir")
class KvasirReader(PairsReader):
    """Kvasir-SEG: ``images/<id>.jpg`` with JPEG masks ``masks/<id>.jpg`` (polyp = 1)."""

    default_classes = {1: "polyp"}


# CVC-ClinicDB frame-number ranges of its 29 sequences (inclusive), as distributed with the
# dataset's sequence annotation (e.g. dataset-ninja/cvc-612 src/convert.py).
CVC_SEQUENCES: tuple[tuple[int, int], ...] = (
    (1, 25), (26, 50), (51, 67), (68, 78), (79, 103), (104, 126), (127, 151), (152, 177),
    (178, 199), (200, 205), (206, 227), (228, 252), (253, 277), (278, 297), (298, 317),
    (318, 342), (343, 363), (364, 383), (384, 408), (409, 428), (429, 447), (448, 466),
    (467, 478), (479, 503), (504, 528), (529, 546), (547, 571), (572, 591), (592, 612),
)  # fmt: skip


def cvc_sequence_of(frame_number: int) -> int | None:
    """1-based CVC-ClinicDB sequence holding ``frame_number``, or None if outside 1..612."""
    for seq, (start, end) in enumerate(CVC_SEQUENCES, start=1):
        if start <= frame_number <= end:
            return seq
    return None


class CvcClinicDbOptions(ReaderOptions):
    """CVC-ClinicDB folders; found automatically when left unset."""

    images_dir: str | None = None
    masks_dir: str | None = None
    threshold: int | None = 127


# Layouts CVC-ClinicDB is distributed in: the original TIFF release and the PNG re-release.
_CVC_LAYOUTS = (
    ("Original", "Ground Truth"),
    ("TIF/Original", "TIF/Ground Truth"),
    ("PNG/Original", "PNG/Ground Truth"),
)


@READERS.register("cvc-clinicdb", options=CvcClinicDbOptions, usage="cvc-clinicdb")
class CvcClinicDbReader(Reader):
    """CVC-ClinicDB: ``N.tif``/``N.png`` frames and masks, grouped into sequences ``seq01..seq29``."""

    kind = "video"
    options: CvcClinicDbOptions
    default_classes = {1: "polyp"}

    def _folders(self) -> tuple[Path, Path]:
        opts = self.options
        if opts.images_dir or opts.masks_dir:
            return (
                require_dir(self.root / (opts.images_dir or "Original"), "images"),
                require_dir(self.root / (opts.masks_dir or "Ground Truth"), "masks"),
            )
        for images, masks in _CVC_LAYOUTS:
            if (self.root / images).is_dir():
                return self.root / images, require_dir(self.root / masks, "masks")
        expected = " or ".join(f"'{i}/'" for i, _ in _CVC_LAYOUTS)
        raise DataError(self.root, f"no CVC-ClinicDB image folder found; expected {expected}")

    def scan(self) -> ScanResult:
        images_dir, masks_dir = self._folders()
        frames, problems = pair_by_stem(images_dir, masks_dir)
        by_seq: dict[int, list[FrameRef]] = {}
        for frame in frames:
            seq = cvc_sequence_of(int(frame.name)) if frame.name.isdigit() else None
            if seq is None:
                problems.append(
                    Problem(frame.image, "file name is not a CVC-ClinicDB frame number 1..612")
                )
                continue
            by_seq.setdefault(seq, []).append(frame)
        clips = [
            ClipSpec(f"seq{seq:02d}", sorted(fr, key=lambda f: int(f.name)))
            for seq, fr in sorted(by_seq.items())
        ]
        return ScanResult(clips, problems)

    def read_mask(self, frame: FrameRef) -> np.ndarray:
        return read_thresholded(frame.annotation_file, self.options.threshold)

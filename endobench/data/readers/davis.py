"""DAVIS layout: ``JPEGImages/<res>/<seq>/*.jpg`` with masks in ``Annotations/<res>/<seq>/*.png``.

Masks are palette PNGs whose palette index is the object id (DAVIS 2017), or 0/255 grayscale
(DAVIS 2016), where 255 is object 1. Frames without a mask are unannotated (semi-supervised
test sets annotate only the first frame). Each clip's classes are the objects of its first
annotated mask, as in the semi-supervised protocol.
"""

from __future__ import annotations

import numpy as np

from endobench.data.clip import VOID_ID
from endobench.data.errors import DataError, Problem
from endobench.data.label_png import LabelPngError, read_label_png
from endobench.data.readers.base import (
    ClipSpec,
    FrameRef,
    Reader,
    ReaderOptions,
    ScanResult,
    require_dir,
)
from endobench.data.readers.imageio import list_images, natural_key
from endobench.registry import READERS


class DavisOptions(ReaderOptions):
    """DAVIS folder names and resolution."""

    resolution: str = "480p"
    images_dir: str = "JPEGImages"
    annotations_dir: str = "Annotations"


@READERS.register("davis", options=DavisOptions, usage="davis")
class DavisReader(Reader):
    """DAVIS 2016/2017 (and any dataset written by ``endobench synth``)."""

    kind = "video"
    options: DavisOptions
    default_classes = {1: "object"}
    default_fps = 24.0
    check_class_ids = False

    def scan(self) -> ScanResult:
        opts = self.options
        images_root = require_dir(self.root / opts.images_dir / opts.resolution, "frames")
        masks_root = self.root / opts.annotations_dir / opts.resolution
        sequences = sorted(p for p in images_root.iterdir() if p.is_dir())
        if not sequences:
            raise DataError(images_root, "empty folder: no sequence sub-folders found")
        clips: list[ClipSpec] = []
        problems: list[Problem] = []
        for seq_dir in sequences:
            images = list_images(seq_dir)
            if not images:
                problems.append(Problem(seq_dir, "empty folder: no frames in this sequence"))
                continue
            mask_dir = masks_root / seq_dir.name
            masks = {p.stem: p for p in list_images(mask_dir)} if mask_dir.is_dir() else {}
            stems = {p.stem for p in images}
            for stem, path in sorted(masks.items()):
                if stem not in stems:
                    problems.append(
                        Problem(path, f"mask has no frame with the same name in {seq_dir}")
                    )
            frames = [
                FrameRef(p.stem, p, masks.get(p.stem))
                for p in sorted(images, key=lambda p: natural_key(p.stem))
            ]
            clips.append(ClipSpec(seq_dir.name, frames, classes=self._objects(frames)))
        return ScanResult(clips, problems)

    def _objects(self, frames: list[FrameRef]) -> dict[int, str]:
        """Objects of the first annotated frame (reads that one mask); {} if none annotated."""
        first = next((f for f in frames if f.mask is not None), None)
        if first is None:
            return {}
        try:
            ids = np.unique(self.read_mask(first))
        except DataError:
            return {}  # reported when the mask itself is read
        return {int(i): f"object {int(i)}" for i in ids if 0 < i < VOID_ID}

    def read_mask(self, frame: FrameRef) -> np.ndarray:
        try:
            return read_label_png(frame.annotation_file)
        except LabelPngError as exc:
            raise DataError(frame.annotation_file, str(exc).split(": ", 1)[-1]) from None

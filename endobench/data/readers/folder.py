"""Generic folder layout for user data.

::

    root/images/<clip>/<frame>.{png,jpg,...}     root/masks/<clip>/<frame>.png
    (or, for a single clip:  root/images/<frame>.png   root/masks/<frame>.png)

Masks are matched to frames by file stem. ``mask_encoding: labels`` reads the palette index
(palette PNG) or the grey value as the class id; ``binary`` thresholds grey values at
``threshold`` (object = 1). For ``kind: video`` frames without a mask are unannotated; for
``kind: images`` every image needs a mask unless ``require_masks: false``.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from endobench.data.dataset import DatasetKind
from endobench.data.errors import DataError, Problem
from endobench.data.readers.base import ClipSpec, FrameRef, Reader, ReaderOptions, ScanResult
from endobench.data.readers.base import require_dir as _require_dir
from endobench.data.readers.imageio import list_images, read_gray, read_grey_levels, read_raw
from endobench.data.readers.pairs import pair_by_stem
from endobench.registry import READERS


class FolderOptions(ReaderOptions):
    """Options of the generic folder layout."""

    images_dir: str = "images"
    masks_dir: str = "masks"
    kind: Literal["video", "images"] = "video"
    mask_encoding: Literal["labels", "binary"] = "labels"
    threshold: int = 127
    require_masks: bool | None = None  # default: True for kind images, False for video


@READERS.register("folder", options=FolderOptions, usage="folder")
class FolderReader(Reader):
    """User data in ``images/`` + ``masks/`` folders, one sub-folder per clip."""

    options: FolderOptions
    default_classes = {1: "object"}

    @property
    def kind(self) -> DatasetKind:  # type: ignore[override]  # a ClassVar elsewhere; here an option
        return self.options.kind

    def scan(self) -> ScanResult:
        opts = self.options
        images_root = _require_dir(self.root / opts.images_dir, "images")
        masks_root = self.root / opts.masks_dir
        require = opts.require_masks if opts.require_masks is not None else opts.kind == "images"
        clip_dirs = sorted(p for p in images_root.iterdir() if p.is_dir())
        if not clip_dirs:
            if not list_images(images_root):
                raise DataError(images_root, "empty folder: no images and no clip sub-folders")
            frames, single_problems = pair_by_stem(images_root, masks_root, require)
            return ScanResult([ClipSpec(self.root.name, frames)], single_problems)
        clips: list[ClipSpec] = []
        problems = []
        for clip_dir in clip_dirs:
            try:
                frames, found = pair_by_stem(clip_dir, masks_root / clip_dir.name, require)
            except DataError as exc:
                problems.append(Problem.from_error(exc))
                continue
            problems.extend(found)
            if frames:
                clips.append(ClipSpec(clip_dir.name, frames))
        return ScanResult(clips, problems)

    def read_mask(self, frame: FrameRef) -> np.ndarray:
        opts = self.options
        if opts.mask_encoding == "binary":
            return (read_gray(frame.annotation_file) > opts.threshold).astype(np.uint8)
        arr, mode = read_raw(frame.annotation_file)
        if mode == "P":
            return arr.astype(np.uint8, copy=False)
        return read_grey_levels(frame.annotation_file)

"""CholecSeg8k: ``videoNN/videoNN_XXXXX/frame_N_endo.png`` + ``frame_N_endo_watershed_mask.png``.

The watershed masks store one grey value per class (as 'L' or as RGB with equal channels).
The dataset's documented mapping (Kaggle page; written there as "#505050" etc., i.e. the
decimal value repeated per channel) is grey 50, 11, 21, 13, 12, 31, 23, 24, 25, 32, 22, 33, 5
for classes 0..12 below. Grey 255 (a one-pixel white outline around regions) and 0 (pixels the
annotators left unlabelled) are not classes: they become void (255). Each ``videoNN_XXXXX``
folder (80 consecutive frames at 25 fps) is one clip.
"""

from __future__ import annotations

import re

import numpy as np

from endobench.data.clip import VOID_ID
from endobench.data.errors import DataError, Problem
from endobench.data.readers.base import ClipSpec, FrameRef, Reader, ReaderOptions, ScanResult
from endobench.data.readers.imageio import natural_key, read_grey_levels
from endobench.registry import READERS

CHOLECSEG8K_CLASSES: dict[int, str] = {
    0: "black background",
    1: "abdominal wall",
    2: "liver",
    3: "gastrointestinal tract",
    4: "fat",
    5: "grasper",
    6: "connective tissue",
    7: "blood",
    8: "cystic duct",
    9: "l-hook electrocautery",
    10: "gallbladder",
    11: "hepatic vein",
    12: "liver ligament",
}

# Watershed grey value of class id 0..12, in class order.
WATERSHED_GREY = (50, 11, 21, 13, 12, 31, 23, 24, 25, 32, 22, 33, 5)
# Grey values that mark "no class here": region outlines (255) and unlabelled pixels (0).
WATERSHED_VOID = (255, 0)


def watershed_lut() -> tuple[np.ndarray, np.ndarray]:
    """``(lut, known)``: grey value -> class id (void for outlines) and which greys are valid."""
    lut = np.full(256, VOID_ID, dtype=np.uint8)
    known = np.zeros(256, dtype=bool)
    for class_id, grey in enumerate(WATERSHED_GREY):
        lut[grey] = class_id
        known[grey] = True
    known[list(WATERSHED_VOID)] = True
    return lut, known


_LUT, _KNOWN = watershed_lut()
_FRAME_RE = re.compile(r"^frame_(\d+)_endo\.png$")


@READERS.register("cholecseg8k", options=ReaderOptions, usage="cholecseg8k")
class CholecSeg8kReader(Reader):
    """CholecSeg8k semantic segmentation (13 classes, every frame annotated)."""

    kind = "video"
    default_classes = {k: v for k, v in CHOLECSEG8K_CLASSES.items() if k}
    default_fps = 25.0

    def scan(self) -> ScanResult:
        clip_dirs = sorted(
            {p.parent for p in self.root.glob("*/*/frame_*_endo.png")},
            key=lambda p: natural_key(p.name),
        )
        if not clip_dirs:
            raise DataError(
                self.root,
                "empty folder: no videoNN/videoNN_XXXXX/frame_N_endo.png files found",
            )
        clips: list[ClipSpec] = []
        problems: list[Problem] = []
        for clip_dir in clip_dirs:
            frames: list[FrameRef] = []
            for image in sorted(clip_dir.iterdir(), key=lambda p: natural_key(p.name)):
                if not _FRAME_RE.match(image.name):
                    continue
                mask = image.with_name(image.stem + "_watershed_mask.png")
                if not mask.is_file():
                    problems.append(Problem(image, f"no watershed mask {mask.name} for this frame"))
                    continue
                frames.append(FrameRef(image.stem, image, mask))
            for mask in clip_dir.glob("frame_*_endo_watershed_mask.png"):
                image = mask.with_name(mask.name.replace("_watershed_mask", ""))
                if not image.is_file():
                    problems.append(Problem(mask, f"watershed mask has no frame {image.name}"))
            if frames:
                clips.append(ClipSpec(clip_dir.name, frames, meta={"video": clip_dir.parent.name}))
        return ScanResult(clips, problems)

    def read_mask(self, frame: FrameRef) -> np.ndarray:
        path = frame.annotation_file
        grey = read_grey_levels(path)
        counts = np.bincount(grey.ravel(), minlength=256)
        unknown = np.flatnonzero((counts > 0) & ~_KNOWN)
        if unknown.size:
            raise DataError(
                path,
                f"unknown watershed grey value(s) {unknown.tolist()}; expected class greys "
                f"{list(WATERSHED_GREY)} or void {list(WATERSHED_VOID)}",
            )
        return _LUT[grey]

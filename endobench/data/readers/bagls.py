"""BAGLS glottis segmentation: ``N.png`` image, ``N_seg.png`` mask, ``N.meta`` JSON.

Frames are random stills of high-speed videos, renumbered across the split: ``N`` says
nothing about time and the meta has no frame number. They are grouped by the meta's
"Video Id" into clips named ``video_<id:03d>`` (order by ``N``, which is not temporal), from a
flat folder (as released) or from per-video sub-folders (as in the shared sample). Masks are
0/255 grayscale; 255 (above 127) is the glottal area, class 1.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from endobench.data.errors import DataError, Problem
from endobench.data.readers.base import ClipSpec, FrameRef, Reader, ReaderOptions, ScanResult
from endobench.data.readers.imageio import read_gray
from endobench.registry import READERS

_THRESHOLD = 127


def read_video_id(meta: Path) -> int:
    """The "Video Id" of a BAGLS ``.meta`` file; DataError naming the file otherwise."""
    try:
        data = json.loads(meta.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(meta, "file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(meta, f"not valid JSON ({exc})") from None
    value = data.get("Video Id") if isinstance(data, dict) else None
    if isinstance(value, bool) or not isinstance(value, int):
        raise DataError(meta, f'field "Video Id" is {value!r}; expected an integer')
    return value


@READERS.register("bagls", options=ReaderOptions, usage="bagls")
class BaglsReader(Reader):
    """BAGLS still frames grouped by recording (kind "images": no temporal order)."""

    kind = "images"
    default_classes = {1: "glottis"}

    def scan(self) -> ScanResult:
        images = [
            p
            for pattern in ("*.png", "*/*.png")
            for p in self.root.glob(pattern)
            if not p.stem.endswith("_seg") and not p.name.startswith(".")
        ]
        if not images:
            raise DataError(self.root, "empty folder: no N.png frames (flat or per video) found")
        problems: list[Problem] = []
        groups: dict[int, list[FrameRef]] = {}
        for image in images:
            meta = image.with_suffix(".meta")
            mask = image.with_name(image.stem + "_seg.png")
            if not mask.is_file():
                problems.append(Problem(image, f"no mask {mask.name} next to this frame"))
                continue
            try:
                video_id = read_video_id(meta)
            except DataError as exc:
                problems.append(Problem.from_error(exc))
                continue
            groups.setdefault(video_id, []).append(FrameRef(image.stem, image, mask))
        for mask in (
            p for pattern in ("*_seg.png", "*/*_seg.png") for p in self.root.glob(pattern)
        ):
            image = mask.with_name(mask.name[: -len("_seg.png")] + ".png")
            if not image.is_file():
                problems.append(Problem(mask, f"mask has no frame {image.name}"))
        clips = [
            ClipSpec(
                f"video_{vid:03d}",
                sorted(frames, key=_index_key),
                meta={"video_id": vid, "ordered": False},
            )
            for vid, frames in sorted(groups.items())
        ]
        return ScanResult(clips, problems)

    def read_mask(self, frame: FrameRef) -> np.ndarray:
        return (read_gray(frame.annotation_file) > _THRESHOLD).astype(np.uint8)


def _index_key(frame: FrameRef) -> tuple[int, str]:
    return (int(frame.name), "") if frame.name.isdigit() else (1 << 62, frame.name)

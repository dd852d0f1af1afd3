"""EndoVis 2017 Robotic Instrument Segmentation.

Layout: ``instrument_dataset_N/left_frames/frameNNN.png`` and, for training sets,
``instrument_dataset_N/ground_truth/<Instrument>_labels/frameNNN.png``: one grey mask per
instrument, 0 = background, 10 = shaft, 20 = wrist, 30 = claspers (any non-zero value in
``Other_labels``, which marks non-robotic tools such as a drop-in ultrasound probe). The
folder name gives the instrument type (type ids as used by the challenge and TernausNet):

- ``task: type``  -> 1 bipolar forceps, 2 prograsp forceps, 3 large needle driver,
  4 vessel sealer, 5 grasping retractor, 6 monopolar curved scissors, 7 other;
- ``task: parts`` -> 1 shaft, 2 wrist, 3 claspers (``Other`` stays background);
- ``task: binary`` -> 1 instrument (``Other`` stays background, as in the challenge).

Frames are the full 1920 x 1080 video frames (the challenge crops 1280 x 1024 at x=320,
y=28; apply that downstream if wanted). Each ``instrument_dataset_N`` is one clip at 2 fps.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import numpy as np

from endobench.data.errors import DataError, Problem
from endobench.data.readers.base import ClipSpec, FrameRef, Reader, ReaderOptions, ScanResult
from endobench.data.readers.imageio import list_images, natural_key, read_gray
from endobench.registry import READERS

# Substring of the ground-truth folder name -> instrument type id.
INSTRUMENT_TYPES: dict[str, int] = {
    "Bipolar_Forceps": 1,
    "Prograsp_Forceps": 2,
    "Large_Needle_Driver": 3,
    "Vessel_Sealer": 4,
    "Grasping_Retractor": 5,
    "Monopolar_Curved_Scissors": 6,
    "Other": 7,
}
TYPE_CLASSES = {
    1: "bipolar forceps",
    2: "prograsp forceps",
    3: "large needle driver",
    4: "vessel sealer",
    5: "grasping retractor",
    6: "monopolar curved scissors",
    7: "other",
}
PART_VALUES = {10: 1, 20: 2, 30: 3}
PART_CLASSES = {1: "shaft", 2: "wrist", 3: "claspers"}
OTHER_TYPE = 7
_DATASET_RE = re.compile(r"^instrument_dataset_(\d+)$")


class EndoVis2017Options(ReaderOptions):
    """Which labelling of the instruments to produce."""

    task: Literal["type", "parts", "binary"] = "type"


def instrument_type(folder_name: str) -> int | None:
    """Type id from a ground-truth folder name such as 'Left_Prograsp_Forceps_labels'."""
    for key, type_id in INSTRUMENT_TYPES.items():
        if key in folder_name:
            return type_id
    return None


@READERS.register("endovis2017", options=EndoVis2017Options, usage="endovis2017")
class EndoVis2017Reader(Reader):
    """EndoVis 2017 instrument segmentation (type, parts or binary task)."""

    kind = "video"
    options: EndoVis2017Options
    default_fps = 2.0

    def source_classes(self) -> dict[int, str]:
        task = self.options.task
        return {"type": TYPE_CLASSES, "parts": PART_CLASSES, "binary": {1: "instrument"}}[task]

    def scan(self) -> ScanResult:
        datasets = sorted(
            (p for p in self.root.iterdir() if p.is_dir() and _DATASET_RE.match(p.name)),
            key=lambda p: natural_key(p.name),
        )
        if not datasets:
            raise DataError(self.root, "empty folder: no instrument_dataset_N folders found")
        clips: list[ClipSpec] = []
        problems: list[Problem] = []
        for ds in datasets:
            frames_dir = ds / "left_frames"
            if not frames_dir.is_dir():
                problems.append(Problem(frames_dir, "left_frames folder not found"))
                continue
            images = list_images(frames_dir)
            if not images:
                problems.append(Problem(frames_dir, "empty folder: no frames"))
                continue
            label_dirs = self._label_dirs(ds / "ground_truth", problems)
            stems = {p.name for p in images}
            for label_dir in label_dirs:
                for mask in list_images(label_dir):
                    if mask.name not in stems:
                        problems.append(Problem(mask, f"mask has no frame in {frames_dir}"))
            frames: list[FrameRef] = []
            for image in sorted(images, key=lambda p: natural_key(p.stem)):
                masks = tuple(d / image.name for d in label_dirs)
                missing = [m for m in masks if not m.is_file()]
                if missing:
                    problems.append(Problem(missing[0], f"no mask for frame {image.name}"))
                    continue
                frames.append(FrameRef(image.stem, image, masks or None))
            if frames:
                clips.append(ClipSpec(ds.name, frames))
        return ScanResult(clips, problems)

    def _label_dirs(self, gt_dir: Path, problems: list[Problem]) -> list[Path]:
        if not gt_dir.is_dir():
            return []  # test sets ship no ground truth: frames are unannotated
        dirs = []
        for d in sorted(p for p in gt_dir.iterdir() if p.is_dir()):
            if instrument_type(d.name) is None:
                problems.append(
                    Problem(
                        d,
                        f"unknown instrument folder; expected a name containing one of {list(INSTRUMENT_TYPES)}",
                    )
                )
                continue
            dirs.append(d)
        return dirs

    def read_mask(self, frame: FrameRef) -> np.ndarray:
        task = self.options.task
        paths = frame.mask if isinstance(frame.mask, tuple) else (frame.annotation_file,)
        labels: np.ndarray | None = None
        for path in paths:
            grey = read_gray(path)
            if labels is None:
                labels = np.zeros_like(grey)
            elif grey.shape != labels.shape:
                raise DataError(path, f"size {grey.shape[::-1]} differs from {paths[0]}")
            type_id = instrument_type(path.parent.name)
            if task == "type":
                labels[grey > 0] = type_id
                continue
            if type_id == OTHER_TYPE:
                continue
            if task == "binary":
                labels[grey > 0] = 1
                continue
            bad = np.setdiff1d(np.unique(grey), [0, *PART_VALUES])
            if bad.size:
                raise DataError(
                    path, f"unknown part value(s) {bad.tolist()}; expected 0, 10, 20 or 30"
                )
            for value, part in PART_VALUES.items():
                labels[grey == value] = part
        if labels is None:
            raise DataError(frame.image, "no ground-truth mask files listed for this frame")
        return labels

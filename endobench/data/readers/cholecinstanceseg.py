"""CholecInstanceSeg: ``<clip>/img_dir/<name>.png`` with LabelMe polygons ``<clip>/ann_dir/<name>.json``.

Decision: the LabelMe JSON is the ground truth (it is what the dataset ships); each polygon
is filled with OpenCV ``fillPoly`` on integer-truncated vertices (the authors' own
conversion), in the order written, so a later shape overwrites an earlier one. Every
polygon of an instance is filled. The authors' ``convert_to_semantic_maps_utils.py`` keeps
only the last polygon of an instance with several (its "same instance" check looks in the
wrong dict), so its maps lack those extra parts; otherwise our rasterisation matches them
to within 3 pixels per frame (tested on the sample).

Alternatively ``annotations: semantic_maps`` reads the authors' RGB maps from
``semantic_maps_dir``: class colours below; instance k > 1 of a class has its blue channel
raised by 20 * (k - 1) (mod 256), which keeps every (class, instance) colour distinct.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from endobench.data.errors import DataError, Problem
from endobench.data.readers.base import ClipSpec, FrameRef, Reader, ReaderOptions, ScanResult
from endobench.data.readers.imageio import list_images, natural_key, read_raw
from endobench.registry import READERS

CHOLECINSTANCESEG_CLASSES: dict[int, str] = {
    1: "grasper",
    2: "hook",
    3: "irrigator",
    4: "clipper",
    5: "bipolar",
    6: "scissors",
    7: "snare",
}

# Colour of instance 1 of each class in the authors' semantic maps (RGB).
CLASS_COLOURS: dict[int, tuple[int, int, int]] = {
    1: (255, 0, 0),
    2: (0, 128, 0),
    3: (255, 255, 0),
    4: (128, 0, 128),
    5: (255, 165, 0),
    6: (0, 255, 255),
    7: (255, 0, 255),
}
INSTANCE_BLUE_STEP = 20


class CholecInstanceSegOptions(ReaderOptions):
    """Annotation source: the shipped JSON polygons, or the authors' colour maps."""

    annotations: Literal["json", "semantic_maps"] = "json"
    # Folder of colour maps (relative to the root), needed with annotations: semantic_maps.
    semantic_maps_dir: str | None = None


def colour_to_class(rgb: tuple[int, int, int]) -> tuple[int, int] | None:
    """``(class_id, instance)`` of a semantic-map colour, or None if no class produces it."""
    r, g, b = rgb
    for class_id, (cr, cg, cb) in CLASS_COLOURS.items():
        if (r, g) != (cr, cg):
            continue
        step, rest = divmod((b - cb) % 256, INSTANCE_BLUE_STEP)
        if rest == 0:
            return class_id, step + 1
    return None


def _unique_names(clips: list[ClipSpec], root: Path) -> list[ClipSpec]:
    """Name clips by their folder; fall back to the path under root where names repeat."""
    names = [c.name for c in clips]
    for clip in clips:
        if names.count(clip.name) > 1:
            clip.name = clip.frames[0].image.parent.parent.relative_to(root).as_posix()
    return clips


def rasterize_shapes(
    shapes: list[dict], height: int, width: int, class_ids: dict[str, int], where: Path
) -> np.ndarray:
    """Fill LabelMe polygons into an ``H x W`` uint8 class map (later shapes on top)."""
    labels = np.zeros((height, width), dtype=np.uint8)
    for k, shape in enumerate(shapes):
        name = str(shape.get("label", "")).lower()
        if name not in class_ids:
            raise DataError(
                where,
                f"shapes[{k}].label {shape.get('label')!r} is not a known class; "
                f"expected one of {sorted(class_ids)}",
            )
        kind = shape.get("shape_type", "polygon")
        if kind != "polygon":
            raise DataError(where, f"shapes[{k}].shape_type {kind!r}; expected 'polygon'")
        try:
            points = np.asarray(shape["points"], dtype=np.float64).reshape(-1, 2)
        except (KeyError, ValueError, TypeError):
            raise DataError(where, f"shapes[{k}].points: expected a list of [x, y] pairs") from None
        if len(points) < 3:
            raise DataError(where, f"shapes[{k}].points: a polygon needs 3 or more points")
        cv2.fillPoly(labels, [points.astype(np.int32)], int(class_ids[name]))
    return labels


@READERS.register("cholecinstanceseg", options=CholecInstanceSegOptions, usage="cholecinstanceseg")
class CholecInstanceSegReader(Reader):
    """Tool semantic segmentation from CholecInstanceSeg (7 tool classes)."""

    kind = "video"
    options: CholecInstanceSegOptions
    default_classes = CHOLECINSTANCESEG_CLASSES

    def scan(self) -> ScanResult:
        opts = self.options
        if opts.annotations == "semantic_maps" and not opts.semantic_maps_dir:
            raise DataError(self.root, "annotations: semantic_maps needs semantic_maps_dir")
        img_dirs = sorted(
            (p for p in self.root.rglob("img_dir") if p.is_dir()), key=lambda p: str(p)
        )
        if not img_dirs:
            raise DataError(self.root, "empty folder: no <clip>/img_dir folders found")
        clips: list[ClipSpec] = []
        problems: list[Problem] = []
        for img_dir in img_dirs:
            ann_dir = self._annotation_dir(img_dir)
            images = list_images(img_dir)
            if not images:
                problems.append(Problem(img_dir, "empty folder: no frames"))
                continue
            frames: list[FrameRef] = []
            for image in sorted(images, key=lambda p: natural_key(p.stem)):
                ann = ann_dir / (image.stem + self._suffix())
                if not ann.is_file():
                    problems.append(Problem(image, f"no annotation {ann.name} in {ann_dir}"))
                    continue
                frames.append(FrameRef(image.stem, image, ann))
            stems = {p.stem for p in images}
            if ann_dir.is_dir():
                for ann in sorted(ann_dir.glob("*" + self._suffix())):
                    if ann.stem not in stems:
                        problems.append(Problem(ann, f"annotation has no frame in {img_dir}"))
            if frames:
                clips.append(ClipSpec(img_dir.parent.name, frames))
        return ScanResult(_unique_names(clips, self.root), problems)

    def _annotation_dir(self, img_dir: Path) -> Path:
        opts = self.options
        if opts.annotations == "json":
            return img_dir.parent / "ann_dir"
        return self.root / str(opts.semantic_maps_dir)

    def _suffix(self) -> str:
        return ".json" if self.options.annotations == "json" else ".png"

    def read_mask(self, frame: FrameRef) -> np.ndarray:
        if self.options.annotations == "semantic_maps":
            return self._read_colour_map(frame.annotation_file)
        return self._read_json(frame.annotation_file)

    def _read_json(self, path: Path) -> np.ndarray:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise DataError(path, "file not found") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DataError(path, f"not valid LabelMe JSON ({exc})") from None
        try:
            height, width = int(data["imageHeight"]), int(data["imageWidth"])
            shapes = list(data["shapes"])
        except (KeyError, TypeError, ValueError):
            raise DataError(
                path, "missing or invalid imageHeight/imageWidth/shapes; expected LabelMe JSON"
            ) from None
        class_ids = {name: cid for cid, name in CHOLECINSTANCESEG_CLASSES.items()}
        return rasterize_shapes(shapes, height, width, class_ids, path)

    def _read_colour_map(self, path: Path) -> np.ndarray:
        arr, mode = read_raw(path)
        if arr.ndim != 3 or arr.shape[2] < 3:
            raise DataError(path, f"semantic map of mode {mode}; expected an RGB colour map")
        rgb = np.ascontiguousarray(arr[..., :3])
        packed = (
            (rgb[..., 0].astype(np.int32) << 16) | (rgb[..., 1].astype(np.int32) << 8) | rgb[..., 2]
        )
        colours, inverse = np.unique(packed.ravel(), return_inverse=True)
        ids = np.zeros(len(colours), dtype=np.uint8)
        for k, c in enumerate(colours.tolist()):
            if c == 0:
                continue
            found = colour_to_class(((c >> 16) & 255, (c >> 8) & 255, c & 255))
            if found is None:
                raise DataError(
                    path,
                    f"unknown class colour {((c >> 16) & 255, (c >> 8) & 255, c & 255)}; "
                    f"expected one of {CLASS_COLOURS} (blue + 20 per extra instance)",
                )
            ids[k] = found[0]
        return ids[inverse].reshape(rgb.shape[:2])

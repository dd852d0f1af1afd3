"""Core data types: a lazily read video `Clip` and a still-image `ImageSample`."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

VOID_ID = 255

FrameLoader = Callable[[int], np.ndarray]
MaskLoader = Callable[[int], "np.ndarray | None"]


class Clip:
    """A video clip whose frames and masks are read on demand.

    Frames are ``H x W x 3`` uint8 RGB (``luma(i)``: ``H x W`` uint8 brightness for consumers of
    gray frames; ``load_luma`` may decode it faster than the RGB frame); masks are ``H x W``
    uint8 label maps (0 = background, ``void_id`` = ignore, other values = class or object ids).
    ``mask(i)`` is None for frames without annotation, so sparsely annotated videos are
    represented exactly. Nothing is cached: a 10,000-frame clip costs the memory of one frame at
    a time.
    """

    def __init__(
        self,
        name: str,
        frame_names: Sequence[str],
        load_frame: FrameLoader,
        load_mask: MaskLoader,
        annotated: Sequence[int],
        classes: dict[int, str],
        fps: float | None = None,
        fov_mask: np.ndarray | None = None,
        meta: dict[str, Any] | None = None,
        void_id: int = VOID_ID,
        load_luma: FrameLoader | None = None,
    ) -> None:
        self.name = name
        self.frame_names = list(frame_names)
        self._load_frame = load_frame
        self._load_luma = load_luma
        self._load_mask = load_mask
        self.annotated = sorted(int(i) for i in annotated)
        self._annotated_set = set(self.annotated)
        self.classes = dict(classes)
        self.fps = fps
        self.fov_mask = fov_mask
        self.meta: dict[str, Any] = dict(meta or {})
        self.void_id = void_id

    def __len__(self) -> int:
        return len(self.frame_names)

    def __repr__(self) -> str:
        return (
            f"Clip(name={self.name!r}, frames={len(self)}, annotated={len(self.annotated)}, "
            f"classes={self.classes})"
        )

    def _check_index(self, i: int) -> int:
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"clip {self.name!r}: frame index {i} out of range [0, {n})")
        return i % n

    def frame(self, i: int) -> np.ndarray:
        """Frame ``i`` as ``H x W x 3`` uint8 RGB."""
        return self._load_frame(self._check_index(i))

    def luma(self, i: int) -> np.ndarray:
        """Frame ``i``'s brightness as ``H x W`` uint8 (ITU-R 601 luma of ``frame(i)`` unless the
        reader decodes it directly, e.g. a JPEG's luma plane)."""
        i = self._check_index(i)
        if self._load_luma is not None:
            return self._load_luma(i)
        return cv2.cvtColor(self.frame(i), cv2.COLOR_RGB2GRAY)

    def mask(self, i: int) -> np.ndarray | None:
        """Label map of frame ``i`` (``H x W`` uint8), or None if that frame is not annotated."""
        i = self._check_index(i)
        if i not in self._annotated_set:
            return None
        return self._load_mask(i)

    def frames(self) -> Iterator[np.ndarray]:
        """Iterate over all frames in order, one in memory at a time."""
        for i in range(len(self)):
            yield self.frame(i)


@dataclass
class ImageSample:
    """One still image with its label map (``H x W`` uint8, 0 = background, 255 = void)."""

    id: str
    image: np.ndarray
    mask: np.ndarray | None
    classes: dict[int, str] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

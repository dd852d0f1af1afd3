"""Write a clip in the DAVIS layout: JPEG frames and palette PNG masks, one folder per clip.

Layout: ``ROOT/JPEGImages/<res>/<clip>/<frame>.jpg`` and ``ROOT/Annotations/<res>/<clip>/<frame>.png``.
Frames are JPEGs (OpenCV's encoder at the given quality), masks DAVIS palette PNGs whose index
is the label; a frame without a mask gets no annotation file, as in DAVIS test sets. Every file
is written atomically, so an interrupted write never leaves a half-written frame. The DAVIS
reader (``format: davis``) reads the result back.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from endobench.data.clip import Clip
from endobench.data.label_png import write_palette_png
from endobench.io_utils import atomic_write_bytes

#: The DAVIS resolution folder; kept as "480p" whatever the frame size (what the reader expects).
DAVIS_RESOLUTION = "480p"


@dataclass(frozen=True)
class DavisClipFolders:
    """Where :func:`write_davis_clip` put one clip, and how many files it wrote there."""

    images: Path
    annotations: Path
    frames: int
    masks: int


def _write_jpeg(path: Path, rgb: np.ndarray, quality: int) -> None:
    """Write an ``H x W x 3`` uint8 RGB frame as a JPEG (OpenCV's encoder), atomically."""
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise OSError(f"{path}: could not encode JPEG")
    atomic_write_bytes(path, encoded.tobytes(), fsync=False)


def write_davis_clip(
    clip: Clip,
    root: str | Path,
    quality: int = 95,
    resolution: str = DAVIS_RESOLUTION,
    progress: bool = False,
) -> DavisClipFolders:
    """Write every frame of ``clip`` (and every mask it has) under ``root`` in the DAVIS layout.

    Files are named by ``clip.frame_names`` (``00000.jpg`` / ``00000.png``); folders are created.
    ``quality``: JPEG quality in 1..100. ``progress`` shows a tqdm bar (one step per frame).
    """
    if not 1 <= quality <= 100:
        raise ValueError(f"quality: expected an integer in 1..100, got {quality}")
    root = Path(root)
    image_dir = root / "JPEGImages" / resolution / clip.name
    mask_dir = root / "Annotations" / resolution / clip.name
    image_dir.mkdir(parents=True, exist_ok=True)
    mask_dir.mkdir(parents=True, exist_ok=True)
    from tqdm import tqdm  # here: only writing a clip needs it, not reading one

    masks = 0
    frames = tqdm(range(len(clip)), desc=f"writing {clip.name}", unit="frame", disable=not progress)
    for i in frames:
        stem = clip.frame_names[i]
        _write_jpeg(image_dir / f"{stem}.jpg", clip.frame(i), quality)
        mask = clip.mask(i)
        if mask is not None:
            write_palette_png(mask_dir / f"{stem}.png", mask)
            masks += 1
    return DavisClipFolders(images=image_dir, annotations=mask_dir, frames=len(clip), masks=masks)

"""``predict_labels``: label maps for every frame of a clip or a sequence of frames."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch
from tqdm.auto import tqdm

from endobench.data.clip import Clip
from endobench.models.segnet import SegNet


def predict_labels(
    model: SegNet,
    clip_or_frames: Clip | Sequence[np.ndarray] | np.ndarray,
    batch_size: int = 8,
    size: int | None = None,
    progress: bool = False,
) -> list[np.ndarray]:
    """Label maps (``H x W`` uint8, argmax of the softmax) for every frame of a clip or sequence.

    Frames are read and segmented ``batch_size`` at a time (a long clip is never loaded whole).
    ``size``: run the model at ``size x size`` (the training resolution, ``spec.input_size``) and
    resample the probabilities bilinearly back to each frame's size; None: at each frame's size.
    """
    n = len(clip_or_frames)
    frame_at = (
        clip_or_frames.frame if isinstance(clip_or_frames, Clip) else clip_or_frames.__getitem__
    )
    out: list[np.ndarray] = []
    for start in tqdm(range(0, n, batch_size), desc="predict", disable=not progress, leave=False):
        frames = [np.asarray(frame_at(i)) for i in range(start, min(n, start + batch_size))]
        shapes = {f.shape for f in frames}
        if size is None and len(shapes) > 1:
            out.extend(predict_labels(model, frames[i : i + 1], 1)[0] for i in range(len(frames)))
            continue
        batch = np.stack(
            [
                cv2.resize(f, (size, size), interpolation=cv2.INTER_LINEAR) if size else f
                for f in frames
            ]
        )
        probs = torch.from_numpy(model.predict_proba(batch, batch_size=batch_size))
        for f, p in zip(frames, probs, strict=True):
            if p.shape[-2:] != f.shape[:2]:
                p = torch.nn.functional.interpolate(
                    p[None], size=f.shape[:2], mode="bilinear", align_corners=False
                )[0]
            out.append(p.argmax(0).numpy().astype(np.uint8))
    return out

"""Interfaces shared by every propagation method: what a propagator and a segmenter look like."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass
class PropagationStep:
    """Output of one propagation step onto a new frame.

    probs: ``C x H x W`` float32 class probabilities (channel 0 = background; columns sum to 1).
    confidence: ``H x W`` float32 in [0, 1], how much the propagated label at each pixel is trusted.
    support: rows ``r0:r1`` and columns ``c0:c1`` outside which ``probs`` is exactly background
    (1 on channel 0, 0 on the others), so labels need only be computed inside; an empty box when
    every pixel is background; None when no such box is known.
    labels: ``H x W`` uint8 ``fusion.labels_from_probs(probs)`` when the propagator computed them
    on the way (flow propagation's kernel does); None: not computed.
    """

    probs: np.ndarray
    confidence: np.ndarray
    support: tuple[int, int, int, int] | None = None
    labels: np.ndarray | None = None


@runtime_checkable
class Propagator(Protocol):
    """Carries a label map from frame to frame (optical flow or feature affinity).

    Usage: ``reset(frame0, probs0)`` at every keyframe with the keyframe's probabilities
    (``C x H x W`` float32; a hard label map is passed as one-hot), then ``step(frame)`` for
    each following frame in order. Implementations stream: they keep only what they need from
    earlier frames (bounded memory).
    """

    name: str

    def reset(self, frame: np.ndarray, probs: np.ndarray) -> None:
        """Start (or restart) propagation from ``frame`` (``H x W x 3`` uint8 RGB) and its probs."""
        ...

    def step(self, frame: np.ndarray) -> PropagationStep:
        """Propagate the current labels onto the next ``frame`` and make it the new current frame."""
        ...


@runtime_checkable
class Segmenter(Protocol):
    """Segments single frames: a trained network wrapped for inference."""

    num_classes: int

    def predict_proba(self, frames: np.ndarray) -> np.ndarray:
        """``N x H x W x 3`` uint8 RGB -> ``N x C x H x W`` float32 probabilities."""
        ...


def one_hot(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """``H x W`` integer label map -> ``C x H x W`` float32 one-hot (void/out-of-range -> all 0)."""
    labels = np.asarray(labels)
    out = np.zeros((num_classes, *labels.shape), dtype=np.float32)
    for c in range(num_classes):
        out[c] = labels == c
    return out

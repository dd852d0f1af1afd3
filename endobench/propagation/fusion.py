"""Temporal fusion: blend propagated and segmented probabilities, then label with hysteresis.

Pure functions do the maths (``fuse_probs``, ``labels_from_probs``, ``hysteresis_labels``);
``TemporalFusion`` only remembers the previous frame's labels.
"""

from __future__ import annotations

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field


class FusionConfig(BaseModel):
    """Settings of the temporal fusion (all defaults live here).

    trust: weight of propagation relative to the segmenter, per unit of propagation confidence
        (0 = segmenter only, 1 = blend by the confidence itself).
    keep: hysteresis; a pixel keeps its previous label while that label's probability stays at
        or above ``keep`` (None disables hysteresis). For two classes, ``keep = 0.3`` means a pixel
        turns foreground above p = 0.7 and back to background below p = 0.3.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    trust: float = Field(1.0, ge=0.0, le=1.0)
    keep: float | None = Field(0.35, gt=0.0, lt=0.5)


def fuse_probs(
    propagated: np.ndarray, segmented: np.ndarray, confidence: np.ndarray, trust: float = 1.0
) -> np.ndarray:
    """Confidence-weighted blend, ``C x H x W`` float32.

    ``out = w * propagated + (1 - w) * segmented`` with ``w = trust * confidence`` per pixel
    (``confidence`` ``H x W`` in [0, 1]); both inputs ``C x H x W`` probabilities.
    """
    if propagated.shape != segmented.shape:
        raise ValueError(
            f"fusion: propagated probs {propagated.shape} and segmenter probs {segmented.shape} "
            "must have the same C x H x W shape (same classes, same frame size)"
        )
    if confidence.shape != propagated.shape[1:]:
        raise ValueError(
            f"fusion: confidence {confidence.shape} must be H x W = {propagated.shape[1:]}"
        )
    w = np.clip(confidence, 0.0, 1.0).astype(np.float32) * np.float32(trust)
    return (segmented + w[None] * (propagated - segmented)).astype(np.float32, copy=False)


def labels_from_probs(probs: np.ndarray) -> np.ndarray:
    """``C x H x W`` probabilities -> ``H x W`` uint8 labels (argmax; ties go to the lower id).

    Probabilities are numbers (no NaN), as every propagator and fusion here gives them.
    """
    if probs.shape[0] == 2:
        # Two classes: one comparison instead of a strided argmax (the tracker's hot path).
        return np.greater(probs[1], probs[0]).view(np.uint8)
    if probs.shape[0] > 256 or probs.size == 0 or probs.dtype not in (np.float32, np.float64):
        return probs.argmax(axis=0).astype(np.uint8)
    # A running maximum over the channels in id order, on contiguous planes: about 10x faster
    # than numpy's argmax over the strided channel axis (2 vs 20 ms for 7 x 480 x 854). Where
    # channel c beats every lower id strictly, the label becomes c, which is above every label so
    # far: so the new label is max(label, c where it wins, else 0), ties stay with the lower id.
    best = probs[0].copy()
    labels = np.zeros(probs.shape[1:], np.uint8)
    wins = np.empty(probs.shape[1:], np.uint8)
    for c in range(1, probs.shape[0]):
        channel = np.ascontiguousarray(probs[c])
        cv2.compare(channel, best, cv2.CMP_GT, dst=wins)  # 255 where it wins, else 0
        cv2.min(wins, c, dst=wins)  # type: ignore[call-overload, unused-ignore]  # the stubs want an array for the scalar
        cv2.max(labels, wins, dst=labels)
        cv2.max(best, channel, dst=best)
    return labels


def hysteresis_labels(probs: np.ndarray, previous: np.ndarray, keep: float) -> np.ndarray:
    """Labels with temporal hysteresis, ``H x W`` uint8.

    A pixel keeps its ``previous`` label (``H x W`` ids < C) while ``probs[previous] >= keep``;
    otherwise it takes the argmax. Suppresses label flicker where the probabilities hover
    around the decision boundary.
    """
    if previous.shape != probs.shape[1:]:
        raise ValueError(
            f"hysteresis: previous labels {previous.shape} must be H x W = {probs.shape[1:]}"
        )
    c = probs.shape[0]
    prev = previous.astype(np.intp)
    if prev.size and prev.max() >= c:
        raise ValueError(
            f"hysteresis: previous labels hold id {prev.max()} but probs have only {c} classes"
        )
    p_prev = np.take_along_axis(probs, prev[None], axis=0)[0]
    return np.where(p_prev >= keep, previous, labels_from_probs(probs)).astype(np.uint8)


class TemporalFusion:
    """Per-frame labelling on non-keyframes: blend with the segmenter, then hysteresis.

    Call ``reset(labels)`` at every keyframe with its label map, then ``__call__`` on each
    propagated frame.
    """

    def __init__(self, config: FusionConfig | None = None) -> None:
        self.config = config or FusionConfig()
        self._previous: np.ndarray | None = None

    def reset(self, labels: np.ndarray) -> None:
        """Restart from a keyframe's ``H x W`` uint8 label map."""
        self._previous = np.asarray(labels, dtype=np.uint8)

    def __call__(
        self, propagated: np.ndarray, confidence: np.ndarray, segmented: np.ndarray | None = None
    ) -> np.ndarray:
        """Fuse (when ``segmented`` is given) and label; returns ``H x W`` uint8."""
        probs = (
            propagated
            if segmented is None
            else fuse_probs(propagated, segmented, confidence, self.config.trust)
        )
        keep = self.config.keep
        if keep is None or self._previous is None:
            labels = labels_from_probs(probs)
        else:
            labels = hysteresis_labels(probs, self._previous, keep)
        self._previous = labels
        return labels

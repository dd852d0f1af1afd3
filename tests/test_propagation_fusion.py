"""Fusion and hysteresis on hand cases."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from endobench.propagation.fusion import (
    FusionConfig,
    TemporalFusion,
    fuse_probs,
    hysteresis_labels,
    labels_from_probs,
)


def binary(p1: list[float]) -> np.ndarray:
    p = np.asarray(p1, np.float32).reshape(1, -1)
    return np.stack([1 - p, p])


def test_fuse_probs_hand_values():
    prop, seg = binary([1.0, 1.0, 0.0]), binary([0.0, 0.0, 1.0])
    conf = np.array([[1.0, 0.25, 0.5]], np.float32)
    fused = fuse_probs(prop, seg, conf)
    np.testing.assert_allclose(fused[1], [[1.0, 0.25, 0.5]])
    np.testing.assert_allclose(fused.sum(0), 1.0)
    half = fuse_probs(prop, seg, conf, trust=0.5)
    np.testing.assert_allclose(half[1], [[0.5, 0.125, 0.75]])
    with pytest.raises(ValueError, match="same C x H x W"):
        fuse_probs(prop, np.zeros((3, 1, 3), np.float32), conf)


def test_labels_from_probs_ties_and_multiclass():
    assert labels_from_probs(binary([0.5, 0.51, 0.2])).tolist() == [[0, 1, 0]]
    probs = np.array([[[0.2, 0.4]], [[0.3, 0.4]], [[0.5, 0.2]]], np.float32)
    assert labels_from_probs(probs).tolist() == [[2, 0]]


def test_hysteresis_keeps_labels_inside_the_band():
    probs = binary([0.6, 0.4, 0.2, 0.8, 0.75])
    prev = np.array([[0, 1, 1, 0, 1]], np.uint8)
    # keep=0.3: bg stays until p1 > 0.7; fg stays until p1 < 0.3.
    assert hysteresis_labels(probs, prev, keep=0.3).tolist() == [[0, 1, 0, 1, 1]]
    with pytest.raises(ValueError, match="classes"):
        hysteresis_labels(probs, np.array([[0, 2, 0, 0, 0]], np.uint8), keep=0.3)


def test_temporal_fusion_suppresses_flicker():
    rng = np.random.default_rng(0)
    fusion = TemporalFusion(FusionConfig(keep=0.3))
    plain_changes = held_changes = 0
    fusion.reset(np.ones((8, 8), np.uint8))
    plain_prev = np.ones((8, 8), np.uint8)
    for _ in range(20):
        p = binary(list(rng.uniform(0.4, 0.6, 64))).reshape(2, 8, 8)
        held = fusion(p, np.ones((8, 8), np.float32))
        plain = labels_from_probs(p)
        plain_changes += int((plain != plain_prev).sum())
        held_changes += int((held != 1).sum())
        plain_prev = plain
    assert plain_changes > 300 and held_changes == 0


def test_temporal_fusion_blends_segmenter_by_confidence():
    fusion = TemporalFusion(FusionConfig(keep=None))
    prop, seg = binary([0.9, 0.9]), binary([0.0, 0.0])
    conf = np.array([[1.0, 0.3]], np.float32)
    assert fusion(prop, conf, seg).tolist() == [[1, 0]]
    with pytest.raises(ValidationError):
        FusionConfig(keep=0.6)


@pytest.mark.parametrize("classes", [1, 3, 7, 13, 256])
def test_labels_from_probs_is_argmax_with_ties_to_the_lower_id(classes):
    rng = np.random.default_rng(classes)
    probs = rng.random((classes, 19, 23)).astype(np.float32)
    probs[:, :6] = np.round(probs[:, :6] * 3) / 3  # many exact ties
    strided = np.moveaxis(np.ascontiguousarray(np.moveaxis(probs, 0, -1)), -1, 0)
    for p in (probs, strided, probs.astype(np.float64)):
        np.testing.assert_array_equal(labels_from_probs(p), p.argmax(axis=0).astype(np.uint8))

"""Losses on hand-computed cases: perfect, disjoint, half overlap, empty, ignored pixels."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from endobench.registry import LOSSES
from endobench.training.losses import (
    binary_cross_entropy_loss,
    boundary_loss,
    build_loss,
    cross_entropy_loss,
    signed_distance_map,
    soft_dice_loss,
)

BIG = 30.0  # logit margin: softmax probabilities within 1e-13 of 0 / 1


def hard_logits(labels: np.ndarray, num_classes: int) -> torch.Tensor:
    """B x C x H x W logits that put (almost) all mass on ``labels`` (B x H x W)."""
    onehot = np.eye(num_classes, dtype=np.float32)[labels]  # B x H x W x C
    return torch.from_numpy(onehot).permute(0, 3, 1, 2) * (2 * BIG) - BIG


def stripes(h: int, w: int, lo: int, hi: int) -> np.ndarray:
    """1 x H x W label map with foreground 1 on columns [lo, hi)."""
    mask = np.zeros((1, h, w), dtype=np.int64)
    mask[:, :, lo:hi] = 1
    return mask


@pytest.mark.parametrize("num_classes", [1, 2])
def test_dice_perfect_disjoint_half_overlap(num_classes: int) -> None:
    target = torch.from_numpy(stripes(4, 8, 0, 4))
    perfect = hard_logits(stripes(4, 8, 0, 4), 2)
    disjoint = hard_logits(stripes(4, 8, 4, 8), 2)
    half = hard_logits(stripes(4, 8, 2, 6), 2)  # |A & B| = 2 of |A| = |B| = 4 per row
    if num_classes == 1:  # sigmoid logit of the foreground
        perfect, disjoint, half = (x[:, 1:] for x in (perfect, disjoint, half))
    assert soft_dice_loss(perfect, target).item() == pytest.approx(0.0, abs=1e-6)
    assert soft_dice_loss(disjoint, target).item() == pytest.approx(1.0, abs=1e-6)
    assert soft_dice_loss(half, target).item() == pytest.approx(0.5, abs=1e-6)


def test_dice_soft_probabilities_exact() -> None:
    # Zero logits: p = 0.5 everywhere. 8 foreground pixels of 32: Dice = 2*4 / (16 + 8) = 1/3.
    target = torch.from_numpy(stripes(4, 8, 0, 2))
    logits = torch.zeros(1, 2, 4, 8)
    assert soft_dice_loss(logits, target).item() == pytest.approx(1 - 1 / 3, abs=1e-6)
    # Including background: Dice_bg = 2*12 / (16 + 24) = 0.6; mean(1/3, 0.6).
    loss_bg = soft_dice_loss(logits, target, include_background=True).item()
    assert loss_bg == pytest.approx(1 - (1 / 3 + 0.6) / 2, abs=1e-6)


def test_dice_empty_target_and_absent_classes() -> None:
    empty = torch.zeros(1, 4, 8, dtype=torch.long)
    # No foreground anywhere: no class present -> 0, still differentiable.
    logits = torch.zeros(1, 2, 4, 8, requires_grad=True)
    loss = soft_dice_loss(logits, empty)
    assert loss.item() == 0.0
    loss.backward()
    assert logits.grad is not None
    # Multi-class: class 2 absent from the target is left out of the mean; class 1 perfect.
    target = torch.from_numpy(stripes(4, 8, 0, 4))
    assert soft_dice_loss(hard_logits(stripes(4, 8, 0, 4), 3), target).item() == pytest.approx(
        0.0, abs=1e-6
    )


def test_dice_multiclass_hand_computed() -> None:
    # Class 1 on columns 0-1, class 2 on columns 2-5; prediction puts class 2 on columns 0-3.
    target = np.zeros((1, 2, 8), dtype=np.int64)
    target[:, :, 0:2] = 1
    target[:, :, 2:6] = 2
    pred = np.zeros((1, 2, 8), dtype=np.int64)
    pred[:, :, 0:4] = 2
    loss = soft_dice_loss(hard_logits(pred, 3), torch.from_numpy(target)).item()
    dice1 = 0.0  # class 1 never predicted
    dice2 = 2 * 4 / (8 + 8)  # overlap columns 2-3 (4 px) of 8 predicted and 8 true
    assert loss == pytest.approx(1 - (dice1 + dice2) / 2, abs=1e-6)


def test_cross_entropy_exact_values() -> None:
    target = torch.from_numpy(stripes(4, 8, 0, 3))
    assert cross_entropy_loss(torch.zeros(1, 2, 4, 8), target).item() == pytest.approx(
        math.log(2), abs=1e-6
    )
    assert cross_entropy_loss(torch.zeros(1, 5, 4, 8), target).item() == pytest.approx(
        math.log(5), abs=1e-6
    )
    perfect = hard_logits(stripes(4, 8, 0, 3), 2)
    assert cross_entropy_loss(perfect, target).item() == pytest.approx(0.0, abs=1e-6)
    # Disjoint with margin 2*BIG: every pixel pays ~2*BIG nats.
    disjoint = hard_logits(1 - stripes(4, 8, 0, 3), 2)
    assert cross_entropy_loss(disjoint, target).item() == pytest.approx(2 * BIG, rel=1e-4)
    # Sigmoid path (C == 1) equals BCE: zero logit costs log 2 per pixel.
    assert cross_entropy_loss(torch.zeros(1, 1, 4, 8), target).item() == pytest.approx(
        math.log(2), abs=1e-6
    )


def test_bce_one_hot_per_channel() -> None:
    target = torch.from_numpy(stripes(2, 4, 0, 2))
    # Every channel at logit 0 costs log 2 per pixel and channel, whatever C.
    assert binary_cross_entropy_loss(torch.zeros(1, 3, 2, 4), target).item() == pytest.approx(
        math.log(2), abs=1e-6
    )
    perfect = hard_logits(stripes(2, 4, 0, 2), 2)
    assert binary_cross_entropy_loss(perfect, target).item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("name", LOSSES.names())
def test_ignored_pixels_change_nothing(name: str) -> None:
    """Adding ignored pixels with absurd logits gives exactly the loss of the valid crop."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, size=(2, 6, 6))
    logits = torch.from_numpy(rng.normal(size=(2, 3, 6, 6)).astype(np.float32))
    padded_labels = np.full((2, 6, 10), 255, dtype=np.int64)
    padded_labels[:, :, :6] = labels
    padded_logits = torch.full((2, 3, 6, 10), -50.0)
    padded_logits[:, 0, :, 6:] = 50.0  # confidently "background" where the label is void
    padded_logits[:, :, :, :6] = logits
    loss_fn = LOSSES.get(name).obj
    crop = loss_fn(logits, torch.from_numpy(labels)).item()
    padded = loss_fn(padded_logits, torch.from_numpy(padded_labels)).item()
    if name == "boundary":
        # The distance maps are normalised by the image diagonal, which the padding changes.
        crop *= math.hypot(6, 6) / math.hypot(6, 10)
    assert padded == pytest.approx(crop, rel=1e-5, abs=1e-7)


@pytest.mark.parametrize("name", LOSSES.names())
def test_all_ignored_is_zero_not_nan(name: str) -> None:
    logits = torch.randn(1, 2, 3, 3, requires_grad=True)
    loss = LOSSES.get(name).obj(logits, torch.full((1, 3, 3), 255, dtype=torch.long))
    assert loss.item() == 0.0
    loss.backward()


def test_signed_distance_map_hand_computed() -> None:
    mask = np.array([[0, 0, 1, 1, 1]], dtype=bool)
    np.testing.assert_allclose(signed_distance_map(mask), [[2, 1, 0, -1, -2]])
    np.testing.assert_array_equal(signed_distance_map(np.zeros((3, 3), bool)), np.zeros((3, 3)))


def test_boundary_loss_hand_computed_and_ordering() -> None:
    target = torch.tensor([[[0, 0, 1, 1, 1]]])  # phi = [2, 1, 0, -1, -2] / sqrt(26)
    diag = math.hypot(1, 5)
    perfect = hard_logits(target.numpy(), 2)
    assert boundary_loss(perfect, target).item() == pytest.approx(-3 / diag / 5, abs=1e-6)
    shifted = hard_logits(np.array([[[0, 1, 1, 1, 0]]]), 2)  # phi sum 1 + 0 - 1 = 0
    assert boundary_loss(shifted, target).item() == pytest.approx(0.0, abs=1e-6)
    disjoint = hard_logits(np.array([[[1, 1, 0, 0, 0]]]), 2)
    assert boundary_loss(disjoint, target).item() == pytest.approx(3 / diag / 5, abs=1e-6)
    # Sigmoid (C == 1) uses the same map on its single channel.
    assert boundary_loss(perfect[:, 1:], target).item() == pytest.approx(-3 / diag / 5, abs=1e-6)


def test_loss_terms_are_registered() -> None:
    assert LOSSES.names() == ["bce", "boundary", "ce", "dice"]
    assert LOSSES.get("dice").obj is soft_dice_loss and LOSSES.get("ce").obj is cross_entropy_loss
    assert LOSSES.get("boundary").description == "boundary loss (Kervadec et al.)"
    assert LOSSES.get("bce").module == "endobench.training.losses"


def test_build_loss_weighted_sum_and_errors() -> None:
    rng = np.random.default_rng(1)
    logits = torch.from_numpy(rng.normal(size=(2, 3, 8, 8)).astype(np.float32))
    logits.requires_grad_(True)
    target = torch.from_numpy(rng.integers(0, 3, size=(2, 8, 8)))
    loss = build_loss({"dice": 1.0, "ce": 1.0, "boundary": 0.1})
    expected = (
        soft_dice_loss(logits, target)
        + cross_entropy_loss(logits, target)
        + 0.1 * boundary_loss(logits, target)
    )
    value = loss(logits, target)
    assert value.item() == pytest.approx(expected.item(), rel=1e-6)
    value.backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0
    assert set(loss.terms(logits, target)) == {"dice", "ce", "boundary"}
    with pytest.raises(ValueError, match="unknown loss name.*'focal'.*expected"):
        build_loss({"focal": 1.0})
    with pytest.raises(ValueError, match="non-zero weight"):
        build_loss({"dice": 0.0})
    with pytest.raises(ValueError, match="target: expected shape"):
        loss(logits, target[:, :4])

"""Segmentation losses from logits: soft Dice, (binary) cross-entropy, boundary loss, weighted sums.

Every loss takes ``logits`` (``B x C x H x W`` float) and ``target`` (``B x H x W`` integer label
map, values ``0..C-1`` or ``ignore_index``) and returns a scalar tensor. ``C == 1`` means a binary
task with a sigmoid output (target values 0/1); ``C >= 2`` means softmax over classes (endobench's
binary tasks use ``C == 2``: background / foreground). Pixels equal to ``ignore_index`` (255) take no
part in any loss: they are removed from every sum and from every pixel count.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import cast

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from torch import nn

from endobench.registry import LOSSES

IGNORE_INDEX = 255


def _check_inputs(logits: torch.Tensor, target: torch.Tensor) -> None:
    if logits.ndim != 4:
        raise ValueError(f"logits: expected B x C x H x W, got shape {tuple(logits.shape)}")
    b, _, h, w = logits.shape
    if tuple(target.shape) != (b, h, w):
        raise ValueError(
            f"target: expected shape {(b, h, w)} to match logits {tuple(logits.shape)}, "
            f"got {tuple(target.shape)}"
        )


def _probs_and_onehot(
    logits: torch.Tensor, target: torch.Tensor, ignore_index: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Class probabilities, one-hot target and valid-pixel mask, all ``B x C x H x W`` float.

    Ignored pixels have probability, one-hot and validity zero, so they vanish from every sum.
    """
    _check_inputs(logits, target)
    c = logits.shape[1]
    valid = (target != ignore_index).unsqueeze(1).to(logits.dtype)
    labels = torch.where(target == ignore_index, torch.zeros_like(target), target).long()
    if c == 1:
        probs = torch.sigmoid(logits)
        onehot = labels.unsqueeze(1).to(logits.dtype)
    else:
        probs = torch.softmax(logits, dim=1)
        onehot = F.one_hot(labels, c).permute(0, 3, 1, 2).to(logits.dtype)
    return probs * valid, onehot * valid, valid


def _foreground_channels(num_channels: int, include_background: bool) -> slice:
    # With a sigmoid output (C == 1) the single channel is the foreground.
    return slice(0 if include_background or num_channels == 1 else 1, num_channels)


def soft_dice_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    ignore_index: int = IGNORE_INDEX,
    include_background: bool = False,
) -> torch.Tensor:
    """``1 - mean_c soft Dice_c`` over the batch (sums over all images and pixels, per class).

    ``Dice_c = 2 sum(p_c t_c) / (sum(p_c) + sum(t_c))``. Classes absent from the target of the
    whole batch are left out of the mean (the segmentation_models_pytorch convention): the soft
    Dice of an absent class is 0 for any false-positive mass, however small, a discontinuous
    penalty that would dominate training; the cross-entropy term penalises false positives
    instead. With no class present at all the loss is 0 (still attached to the graph).
    Background (channel 0) is excluded unless ``include_background``.
    """
    probs, onehot, _ = _probs_and_onehot(logits, target, ignore_index)
    channels = _foreground_channels(logits.shape[1], include_background)
    probs, onehot = probs[:, channels], onehot[:, channels]
    dims = (0, 2, 3)
    intersection = (probs * onehot).sum(dims)
    denominator = probs.sum(dims) + onehot.sum(dims)
    present = onehot.sum(dims) > 0
    dice = 2 * intersection / denominator.clamp_min(torch.finfo(denominator.dtype).tiny)
    if not bool(present.any()):
        return logits.sum() * 0.0
    return 1.0 - dice[present].mean()


def cross_entropy_loss(
    logits: torch.Tensor, target: torch.Tensor, ignore_index: int = IGNORE_INDEX
) -> torch.Tensor:
    """Mean pixel cross-entropy over non-ignored pixels (softmax; sigmoid BCE when ``C == 1``).

    Returns 0 (attached to the graph) when every pixel is ignored, where a plain mean would be NaN.
    """
    _check_inputs(logits, target)
    valid = target != ignore_index
    if not bool(valid.any()):
        return logits.sum() * 0.0
    if logits.shape[1] == 1:
        return binary_cross_entropy_loss(logits, target, ignore_index)
    return F.cross_entropy(logits, target.long(), ignore_index=ignore_index)


def binary_cross_entropy_loss(
    logits: torch.Tensor, target: torch.Tensor, ignore_index: int = IGNORE_INDEX
) -> torch.Tensor:
    """Per-channel sigmoid BCE against the one-hot target, mean over channels and valid pixels.

    For ``C == 1`` this is the usual binary cross-entropy with target values 0/1.
    """
    _check_inputs(logits, target)
    valid = (target != ignore_index).unsqueeze(1)
    labels = torch.where(target == ignore_index, torch.zeros_like(target), target).long()
    c = logits.shape[1]
    if c == 1:
        onehot = labels.unsqueeze(1).to(logits.dtype)
    else:
        onehot = F.one_hot(labels, c).permute(0, 3, 1, 2).to(logits.dtype)
    per_pixel = F.binary_cross_entropy_with_logits(logits, onehot, reduction="none")
    count = valid.sum() * c
    if int(count) == 0:
        return logits.sum() * 0.0
    return (per_pixel * valid).sum() / count


def signed_distance_map(mask: np.ndarray) -> np.ndarray:
    """Kervadec et al.'s signed Euclidean distance of a binary ``H x W`` mask, float32 pixels.

    Outside the mask: distance to the nearest mask pixel (positive). Inside: minus (distance to
    the nearest non-mask pixel - 1), so pixels on the inner boundary are 0 and deeper pixels are
    negative. An empty mask gives all zeros (no boundary to be near), as in the reference code.
    """
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return np.zeros(mask.shape, dtype=np.float32)
    outside = ndimage.distance_transform_edt(~mask)
    inside = ndimage.distance_transform_edt(mask)
    return (outside * ~mask - (inside - 1) * mask).astype(np.float32)


def boundary_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    ignore_index: int = IGNORE_INDEX,
    include_background: bool = False,
) -> torch.Tensor:
    """Boundary loss (Kervadec et al., MIDL 2019): ``mean(p_c * phi_c)`` over valid pixels, classes.

    ``phi_c`` is :func:`signed_distance_map` of the target's class-``c`` mask, divided by the image
    diagonal so the loss lies in ``[-1, 1]`` and a weight chosen at one resolution carries over to
    another (the paper uses raw pixels with a scheduled weight). Ignored pixels count as "not class
    c" when the distance is computed and are left out of the mean. The minimum (a perfect
    prediction) is negative; only differences matter, so it is used alongside Dice / CE.
    """
    probs, _, valid = _probs_and_onehot(logits, target, ignore_index)
    channels = range(logits.shape[1])[_foreground_channels(logits.shape[1], include_background)]
    if len(channels) == 0:
        return logits.sum() * 0.0
    labels = target.detach().cpu().numpy()
    b, _, h, w = logits.shape
    diagonal = float(np.hypot(h, w))
    phi = np.zeros((b, len(channels), h, w), dtype=np.float32)
    for i in range(b):
        for k, c in enumerate(channels):
            class_mask = labels[i] == 1 if logits.shape[1] == 1 else labels[i] == c
            phi[i, k] = signed_distance_map(class_mask) / diagonal
    phi_t = torch.from_numpy(phi).to(device=logits.device, dtype=probs.dtype)
    count = valid.sum() * len(channels)
    if float(count) == 0:
        return logits.sum() * 0.0
    return (probs[:, list(channels)] * phi_t).sum() / count


LOSSES.register("dice", soft_dice_loss, description="soft Dice: 1 - mean foreground Dice")
LOSSES.register("ce", cross_entropy_loss, description="pixel cross-entropy (softmax)")
LOSSES.register("bce", binary_cross_entropy_loss, description="per-channel sigmoid BCE")
LOSSES.register("boundary", boundary_loss, description="boundary loss (Kervadec et al.)")


class CombinedLoss(nn.Module):
    """Weighted sum ``sum_k w_k * loss_k(logits, target)`` of losses registered in ``LOSSES``."""

    def __init__(self, weights: Mapping[str, float], ignore_index: int = IGNORE_INDEX) -> None:
        super().__init__()
        unknown = sorted(name for name in weights if name not in LOSSES)
        if unknown:
            raise ValueError(
                f"loss weights: unknown loss name(s) {unknown}; expected some of {LOSSES.names()}"
            )
        if not weights or all(float(w) == 0 for w in weights.values()):
            raise ValueError(f"loss weights: expected at least one non-zero weight, got {weights}")
        self.weights = {name: float(w) for name, w in weights.items() if float(w) != 0}
        self.ignore_index = ignore_index

    def terms(self, logits: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each unweighted loss term by name (scalar tensors)."""
        return {
            name: LOSSES.get(name).obj(logits, target, ignore_index=self.ignore_index)
            for name in self.weights
        }

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        terms = self.terms(logits, target)
        return cast(torch.Tensor, sum(self.weights[name] * v for name, v in terms.items()))


def build_loss(weights: Mapping[str, float], ignore_index: int = IGNORE_INDEX) -> CombinedLoss:
    """The weighted loss, e.g. ``build_loss({"dice": 1.0, "ce": 1.0, "boundary": 0.1})``.

    Names are registered in ``endobench.registry.LOSSES``; zero weights drop a term.
    """
    return CombinedLoss(weights, ignore_index=ignore_index)

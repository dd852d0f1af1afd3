"""Segmentation heads: multi-level backbone features -> per-pixel class logits.

Every head is called as ``head(features, out_size)`` with ``features`` a list of ``B x C_i x h_i x w_i``
maps (shallow to deep, as :meth:`Backbone.forward_features` returns them) and returns
``B x num_classes x out_size`` logits. Binary tasks use ``num_classes = 2`` (background, foreground).
Heads are registered in ``endobench.registry.HEADS`` (listing: ``endobench list heads``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from endobench.registry import HEADS


def _conv_bn_relu(c_in: int, c_out: int, kernel: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize (identity when already ``size``)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class LinearHead(nn.Module):
    """Linear probe: BatchNorm + 1x1 convolution on the last level, bilinear upsampling."""

    def __init__(self, in_channels: Sequence[int], num_classes: int) -> None:
        super().__init__()
        _check_head_args(in_channels, num_classes)
        self.in_channels = list(in_channels)
        self.num_classes = int(num_classes)
        self.norm = nn.BatchNorm2d(self.in_channels[-1])
        self.classifier = nn.Conv2d(self.in_channels[-1], self.num_classes, 1)

    def forward(self, features: Sequence[torch.Tensor], out_size: tuple[int, int]) -> torch.Tensor:
        """Last level ``B x C x h x w`` -> ``B x num_classes x out_size`` logits."""
        return _resize(self.classifier(self.norm(features[-1])), out_size)


class SqueezeExcitation(nn.Module):
    """Channel attention: global average -> bottleneck MLP -> sigmoid gate per channel."""

    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.gate = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(channels, hidden, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)


def pyramid_sizes(grid: tuple[int, int], levels: int) -> list[tuple[int, int]]:
    """Target sizes of a ViT feature pyramid built from ``levels`` same-grid maps.

    Level i goes to stride ``patch * 2**i / 4`` (DPT / ViTDet): for 4 levels on a ``g`` grid the sizes
    are 4g, 2g, g, ceil(g/2) -- strides 4, 8, 16, 32 for a 16-pixel patch.
    """
    sizes = []
    for i in range(levels):
        scale = 4.0 / 2**i
        sizes.append(tuple(max(1, math.ceil(n * scale)) for n in grid))
    return sizes


class FusionHead(nn.Module):
    """Multi-level fusion decoder: projection + SE attention per level, pyramid, top-down fusion.

    1. Each level is projected to ``width`` channels (1x1 conv, BN, ReLU) and reweighted by
       squeeze-and-excitation channel attention.
    2. Pyramid: each level is refined by a 3x3 conv down to its level width; when all levels share
       one grid (ViT), level i is then resampled bilinearly to stride ``patch*2**i/4`` (the
       DPT/ViTDet "simple pyramid", with the conv run on the small grid where it is cheap); maps
       that already form a pyramid (CNN stages) keep their own resolution.
    3. Progressive fusion from the coarsest level: upsample x2 to the next finer level, concatenate
       the skip, 3x3 conv; then a 3x3 conv and a 1x1 classifier at the finest level, and bilinear
       upsampling of the logits to ``out_size``.

    The decoder tapers like a U-Net's: the coarsest level keeps ``width`` channels and each finer
    level halves it (never below ``min_width``). The finest level has 64x the pixels of the
    coarsest, so a constant width would make the head costlier than a ViT-S backbone, which
    defeats training light heads from cached features.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        num_classes: int,
        width: int = 128,
        se_reduction: int = 4,
        min_width: int = 32,
    ) -> None:
        super().__init__()
        _check_head_args(in_channels, num_classes)
        self.in_channels = list(in_channels)
        self.num_classes = int(num_classes)
        self.width = int(width)
        n = len(self.in_channels)
        self.level_widths = [
            max(self.width >> (n - 1 - i), min(min_width, self.width)) for i in range(n)
        ]
        widths = self.level_widths
        self.project = nn.ModuleList(_conv_bn_relu(c, width, 1) for c in self.in_channels)
        self.attention = nn.ModuleList(SqueezeExcitation(width, se_reduction) for _ in range(n))
        self.refine = nn.ModuleList(_conv_bn_relu(width, w, 3) for w in widths)
        self.fuse = nn.ModuleList(
            _conv_bn_relu(widths[i + 1] + widths[i], widths[i], 3) for i in range(n - 1)
        )
        self.classifier = nn.Sequential(
            _conv_bn_relu(widths[0], widths[0], 3), nn.Conv2d(widths[0], self.num_classes, 1)
        )

    def forward(self, features: Sequence[torch.Tensor], out_size: tuple[int, int]) -> torch.Tensor:
        """Levels shallow -> deep, ``B x C_i x h_i x w_i`` -> ``B x num_classes x out_size`` logits."""
        if len(features) != len(self.in_channels):
            raise ValueError(
                f"FusionHead: got {len(features)} feature levels, built for {len(self.in_channels)}"
            )
        grids = [(int(f.shape[-2]), int(f.shape[-1])) for f in features]
        same_grid = all(g == grids[0] for g in grids)
        sizes = pyramid_sizes(grids[0], len(features)) if same_grid else grids
        levels = [
            _resize(refine(attend(project(f))), size)
            for f, size, project, attend, refine in zip(
                features, sizes, self.project, self.attention, self.refine, strict=True
            )
        ]
        y = levels[-1]
        for i in range(len(levels) - 2, -1, -1):
            skip = levels[i]
            y = self.fuse[i](
                torch.cat([_resize(y, (int(skip.shape[-2]), int(skip.shape[-1]))), skip], dim=1)
            )
        return _resize(self.classifier(y), out_size)


HEADS.register("linear", LinearHead)
HEADS.register("fusion", FusionHead)


def _check_head_args(in_channels: Sequence[int], num_classes: int) -> None:
    if not in_channels or any(int(c) < 1 for c in in_channels):
        raise ValueError(f"in_channels={list(in_channels)}: expected one positive int per level")
    if int(num_classes) < 2:
        raise ValueError(
            f"num_classes={num_classes}: expected >= 2 (binary tasks use 2: background, foreground)"
        )


def build_head(name: str, in_channels: Sequence[int], num_classes: int, **kwargs) -> nn.Module:
    """A registered head (``linear``, ``fusion``, plugins) for levels of ``in_channels`` channels
    (``backbone.embed_dims``).

    Every head is registered as a class (or factory) called ``cls(in_channels, num_classes,
    **kwargs)``; extra keyword arguments go to it (``width``, ``se_reduction`` for the fusion
    head). An unknown name is a :class:`~endobench.registry.RegistryError` listing the heads.
    """
    head: nn.Module = HEADS.get(name).obj(in_channels, num_classes, **kwargs)
    return head

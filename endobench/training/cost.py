"""Estimated compute of a training run, so that a sweep can start its longest trainings first.

The unit is GMAC (10^9 multiply-accumulates) per training image: every training of one dataset
sees the same images, so the dataset's size is a common factor and is left out. The estimate
counts only what dominates on any device, the forward multiply-accumulates of the backbone and of
the head (a backward pass costs about twice its forward, so a trained part counts 3x):

- backbone forward at ``size x size``: a ViT with ``L`` blocks of width ``d`` on ``N`` tokens
  (patches plus prefix tokens) costs ``12 L N d^2`` (attention projections and a 4x MLP) plus
  ``2 L N^2 d`` (attention itself); a CNN costs its published count at 224 px scaled by the pixels;
- the head: :data:`HEAD_GMACS_224` at 224 px, scaled by the pixels;
- features cached (frozen backbone, no pixel-changing augmentation; see
  ``endobench.training.runner``): one backbone forward per image, then the head every epoch;
  otherwise a backbone forward every epoch (3x where blocks are unfrozen) and the head.

A backbone or head this table does not know (a plugin's) costs 0, so plan order decides for it.
"""

from __future__ import annotations

import math

from endobench.training.augment import is_geometric, is_photometric
from endobench.training.config import TrainConfig

#: ViT backbones: (blocks, width, patch size, prefix tokens) of the timm architecture.
VIT_ARCHITECTURES: dict[str, tuple[int, int, int, int]] = {
    "dinov2_vits14": (12, 384, 14, 1),
    "dinov2_vitb14": (12, 768, 14, 1),
    "dinov2_vitl14": (24, 1024, 14, 1),
    "dinov2_vitg14": (40, 1536, 14, 1),
    "dinov2_vits14_reg4": (12, 384, 14, 5),
    "dinov2_vitb14_reg4": (12, 768, 14, 5),
    "dinov2_vitl14_reg4": (24, 1024, 14, 5),
    "dinov2_vitg14_reg4": (40, 1536, 14, 5),
    "vit_small_in1k": (12, 384, 16, 1),
}

#: CNN backbones: forward GMAC per 224 x 224 image (timm's model card: resnet50 4.1).
CNN_GMACS_224: dict[str, float] = {"resnet50": 4.1}

#: Head forward GMAC per 224 x 224 image: the fusion head's convolutions at width 128 on a
#: ResNet-50 pyramid (strides 4-32) add up to 0.50; a linear probe is negligible.
HEAD_GMACS_224: dict[str, float] = {"linear": 0.0, "fusion": 0.5}


def backbone_gmacs(name: str, size: int) -> float:
    """Forward GMAC of backbone ``name`` on one ``size x size`` image (0 when unknown)."""
    if name in VIT_ARCHITECTURES:
        blocks, width, patch, prefix = VIT_ARCHITECTURES[name]
        tokens = math.ceil(size / patch) ** 2 + prefix
        return blocks * (12 * tokens * width**2 + 2 * tokens**2 * width) / 1e9
    return CNN_GMACS_224.get(name, 0.0) * (size / 224) ** 2


def training_cost(config: TrainConfig) -> float:
    """Estimated GMAC per training image of the whole run (see the module docstring)."""
    backbone = backbone_gmacs(config.backbone, config.size)
    if backbone == 0.0 or config.head not in HEAD_GMACS_224:
        return 0.0
    head = 3 * HEAD_GMACS_224[config.head] * (config.size / 224) ** 2
    changes_pixels = is_geometric(config.augment) or is_photometric(config.augment)
    if config.unfreeze_last == 0 and config.use_feature_cache and not changes_pixels:
        return backbone + config.epochs * head
    return config.epochs * ((3 if config.unfreeze_last else 1) * backbone + head)

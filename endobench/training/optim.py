"""The optimiser's parameter groups and the learning-rate schedule (warm-up, then cosine)."""

from __future__ import annotations

import math
from typing import Any

from endobench.models import SegNet
from endobench.training.config import TrainConfig


def lr_factor(step: int, total_steps: int, warmup_steps: int, min_ratio: float = 0.0) -> float:
    """Learning-rate multiplier at optimiser step ``step`` (0-based).

    Linear warm-up ``(step + 1) / warmup_steps`` for the first ``warmup_steps`` steps, then cosine
    decay from 1 to ``min_ratio`` at the last step.
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps - 1)
    progress = min(1.0, (step - warmup_steps) / span)
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def param_groups(model: SegNet, config: TrainConfig) -> list[dict[str, Any]]:
    """AdamW groups: head / backbone x decay / no decay (biases and norm weights: ndim < 2)."""
    groups = []
    for part, lr in (
        (model.head, config.lr),
        (model.backbone, config.lr * config.backbone_lr_mult),
    ):
        params = [p for p in part.parameters() if p.requires_grad]
        decay = [p for p in params if p.ndim >= 2]
        no_decay = [p for p in params if p.ndim < 2]
        for ps, wd in ((decay, config.weight_decay), (no_decay, 0.0)):
            if ps:
                groups.append({"params": ps, "lr": lr, "base_lr": lr, "weight_decay": wd})
    return groups

"""Validation scores of a training run: confusion counts per class, pooled Dice and IoU."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from endobench.training.losses import IGNORE_INDEX


def confusion_counts(
    pred: torch.Tensor, target: torch.Tensor, num_classes: int, ignore_index: int = IGNORE_INDEX
) -> torch.Tensor:
    """``num_classes x 3`` int64 (TP, FP, FN) per class of label maps ``pred`` / ``target``."""
    valid = target != ignore_index
    p, t = pred[valid].long(), target[valid].long()
    cm = torch.bincount(t * num_classes + p, minlength=num_classes * num_classes)
    cm = cm.reshape(num_classes, num_classes).cpu()  # rows: truth, columns: prediction
    tp = cm.diag()
    return torch.stack([tp, cm.sum(0) - tp, cm.sum(1) - tp], dim=1)


def dice_iou(counts: torch.Tensor) -> dict[str, Any]:
    """Mean foreground Dice and IoU from (TP, FP, FN) counts over a whole set.

    Per class ``c >= 1``: Dice = 2TP / (2TP + FP + FN), IoU = TP / (TP + FP + FN), pooled over all
    pixels of the set; classes never present in truth or prediction are left out of the means.
    """
    dice, iou = {}, {}
    for c in range(1, counts.shape[0]):
        tp, fp, fn = (int(v) for v in counts[c])
        if tp + fp + fn:
            dice[c] = 2 * tp / (2 * tp + fp + fn)
            iou[c] = tp / (tp + fp + fn)
    return {
        "dice": float(np.mean(list(dice.values()))) if dice else float("nan"),
        "iou": float(np.mean(list(iou.values()))) if iou else float("nan"),
        "dice_per_class": dice,
        "iou_per_class": iou,
    }

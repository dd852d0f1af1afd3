"""What a training run reports: :class:`TrainingSummary`, written to summary.json by notebook 02.

The best epoch's validation Dice and IoU, when it was reached, the training time, the best
checkpoint and the backbone's weights provenance. Reading a file with an unknown (misspelt) key
or a value of the wrong type raises :class:`~endobench.propagation.summary.SummaryError` naming
the file and the field (:func:`~endobench.propagation.summary.read_summary`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from endobench.propagation.summary import WeightsRecord


class TrainingSummary(BaseModel):
    """Headline numbers of one training run (notebook 02). Every field is optional on reading
    (older runs and other notebooks write fewer); :func:`training_summary` fills them all."""

    model_config = ConfigDict(extra="forbid")

    dice: float | None = None
    iou: float | None = None
    best_epoch: int | None = None
    train_seconds: float | None = None
    checkpoint: str | None = None
    weights: WeightsRecord | None = None

    def to_json(self) -> dict[str, Any]:
        """The dict summary.json holds (unset fields left out)."""
        return self.model_dump(exclude_unset=True)


def training_summary(result: Any) -> TrainingSummary:
    """The summary of what ``fit`` returned: the best epoch's validation Dice and IoU, its
    number, the summed epoch times, the best checkpoint and the backbone's weights provenance.

    ``result``: a training result with ``history`` (one dict per epoch with ``val_iou`` and
    ``seconds``), ``best_epoch`` (1-based), ``best_val_dice``, ``best_checkpoint`` and
    ``model.backbone.weights``.
    """
    best = result.history[result.best_epoch - 1]
    return TrainingSummary(
        dice=result.best_val_dice,
        iou=best["val_iou"],
        best_epoch=result.best_epoch,
        train_seconds=float(np.sum([epoch["seconds"] for epoch in result.history])),
        checkpoint=str(result.best_checkpoint),
        weights=WeightsRecord(**result.model.backbone.weights.to_dict()),
    )

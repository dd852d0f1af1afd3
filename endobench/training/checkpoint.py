"""Writing training checkpoints: which tensors to keep, the payload, an atomic write.

The layout (spec, tensors, training record) and the reading side are in
``endobench.models.load``; :func:`save_checkpoint` adds the format tag and writes atomically.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch

from endobench.io_utils import atomic_write_bytes
from endobench.models import SegNet
from endobench.models.load import FORMAT


def model_state(model: SegNet) -> dict[str, torch.Tensor]:
    """Tensors to store for ``model``: the whole head and the backbone's trainable parameters.

    Keyed as in ``model.state_dict()``. The tensors are not copied: save them before training
    continues.
    """
    full = model.state_dict()
    trainable = {f"backbone.{n}" for n, p in model.backbone.named_parameters() if p.requires_grad}
    return {k: v.detach().cpu() for k, v in full.items() if k.startswith("head.") or k in trainable}


def save_checkpoint(payload: dict[str, Any], path: str | Path) -> Path:
    """Write ``payload`` (``spec``, ``state`` and the training record) to ``path`` atomically."""
    buffer = io.BytesIO()
    torch.save({"format": FORMAT, **payload}, buffer)
    return atomic_write_bytes(path, buffer.getvalue())

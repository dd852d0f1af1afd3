"""SegNet: a backbone and a head composed into a segmenter with logits at input resolution."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from endobench.models.backbones import Backbone


class SegNet(nn.Module):
    """``backbone -> head``; any input ``H x W`` (padded to the patch multiple, logits cropped back).

    Satisfies ``endobench.propagation.base.Segmenter`` through :meth:`predict_proba`.
    """

    def __init__(self, backbone: Backbone, head: nn.Module) -> None:
        super().__init__()
        if list(getattr(head, "in_channels", backbone.embed_dims)) != list(backbone.embed_dims):
            raise ValueError(
                f"head expects levels with {head.in_channels} channels but backbone {backbone.name} "
                f"returns {backbone.embed_dims}; build the head with in_channels=backbone.embed_dims"
            )
        self.backbone = backbone
        self.head = head

    @property
    def num_classes(self) -> int:
        """Number of output channels (2 for binary tasks)."""
        return int(cast(Any, self.head).num_classes)

    def logits_from_features(
        self, features: Sequence[torch.Tensor], image_size: tuple[int, int]
    ) -> torch.Tensor:
        """Head on precomputed backbone features -> ``B x C x H x W`` logits for an ``H x W`` image.

        The head predicts on the padded canvas (``ceil(H/p)*p``), which is then cropped, so pixels
        stay aligned with the patches they came from. Used by ``forward`` and by feature caches.
        """
        h, w = int(image_size[0]), int(image_size[1])
        gh, gw = self.backbone.grid_size(h, w)
        p = self.backbone.patch_size
        return self.head(features, (gh * p, gw * p))[..., :h, :w]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``B x 3 x H x W`` normalised float -> ``B x num_classes x H x W`` logits."""
        size = (int(x.shape[-2]), int(x.shape[-1]))
        return self.logits_from_features(self.backbone.forward_features(x), size)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @torch.no_grad()
    def predict_proba(self, frames: np.ndarray, batch_size: int = 8) -> np.ndarray:
        """``N x H x W x 3`` (or ``H x W x 3``) uint8 RGB -> ``N x C x H x W`` float32 softmax probs.

        Runs in eval mode without gradients, ``batch_size`` frames at a time; on CUDA with bf16
        autocast and channels_last. The module's previous train/eval mode is restored afterwards.
        """
        frames = np.asarray(frames)
        if frames.ndim == 3:
            frames = frames[None]
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(
                f"predict_proba: expected N x H x W x 3 uint8 frames, got {frames.shape} {frames.dtype}"
            )
        was_training = self.training
        self.eval()
        on_cuda = self.device.type == "cuda"
        autocast = (
            torch.autocast("cuda", dtype=torch.bfloat16) if on_cuda else contextlib.nullcontext()
        )
        out = np.empty((len(frames), self.num_classes, *frames.shape[1:3]), dtype=np.float32)
        try:
            for start in range(0, len(frames), batch_size):
                x = self.backbone.preprocess(frames[start : start + batch_size])
                if on_cuda:
                    x = x.contiguous(memory_format=torch.channels_last)
                with autocast:
                    logits = self(x)
                out[start : start + len(x)] = torch.softmax(logits.float(), dim=1).cpu().numpy()
        finally:
            self.train(was_training)
        return out

    def describe(self) -> dict[str, Any]:
        """Plain dict for results: backbone (with weights provenance), head, classes."""
        return {
            "backbone": self.backbone.describe(),
            "head": type(self.head).__name__,
            "head_in_channels": list(cast(Any, self.head).in_channels),
            "num_classes": self.num_classes,
            "weights": self.backbone.weights.to_dict(),
        }


def resolve_device(name: str) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; otherwise ``torch.device(name)``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)

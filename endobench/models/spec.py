"""What a trained segmenter is, as data: :class:`SegNetSpec`, and :func:`build_segnet` from it.

A spec is the recipe a checkpoint stores next to its tensors (``endobench.models.load``): the
backbone (registry name, weights choice, timm overrides, returned levels, trainable blocks), the
head (name and keyword arguments), the classes, the input size the model was trained at and the
torch seed of its initialisation. After the backbone is built, ``weights`` (its provenance) and,
for a random initialisation, ``backbone_sha256`` record what it must be rebuilt as. Normalisation
(mean / std) is not stored: it belongs to the backbone's timm configuration and comes with it.

A spec knows nothing about training (optimiser, data, augmentation), so renaming or adding a
training option never makes a checkpoint unloadable.
"""

from __future__ import annotations

from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field

from endobench.models.backbones import build_backbone
from endobench.models.heads import build_head
from endobench.models.segnet import SegNet
from endobench.models.weights import WeightsInfo


class SegNetSpec(BaseModel):
    """A segmenter's build recipe and provenance (see the module docstring).

    ``pretrained`` / ``weights_file``: the backbone's weights choice, as ``build_backbone``'s
    ``pretrained`` / ``weights``. ``init_seed``: ``torch.manual_seed`` before the backbone and the
    head are built (a random-init backbone is re-drawn from it). ``input_size``: the square
    resolution the model was trained at (None: any). ``classes``: class id -> name, background
    (0) implied.
    """

    model_config = ConfigDict(extra="forbid")

    backbone: str
    pretrained: bool | None = None
    weights_file: str | None = None
    backbone_kwargs: dict[str, Any] = Field(default_factory=dict)
    out_indices: list[int] | None = None
    unfreeze_last: int = Field(0, ge=0)
    head: str
    head_kwargs: dict[str, Any] = Field(default_factory=dict)
    num_classes: int = Field(ge=2)
    classes: dict[int, str] = Field(default_factory=dict)
    input_size: int | None = Field(None, ge=1)
    init_seed: int
    weights: WeightsInfo | None = None
    backbone_sha256: str | None = None


def build_segnet(spec: SegNetSpec) -> SegNet:
    """The ``SegNet`` of ``spec``, initialised from ``spec.init_seed`` (global RNG untouched).

    Trained tensors are not loaded here (see ``endobench.models.load.load_segnet``); neither is
    the provenance checked.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.init_seed)
        backbone = build_backbone(
            spec.backbone,
            pretrained=spec.pretrained,
            weights=spec.weights_file,
            out_indices=spec.out_indices,
            unfreeze_last=spec.unfreeze_last,
            model_kwargs=spec.backbone_kwargs or None,
        )
        head = build_head(spec.head, backbone.embed_dims, spec.num_classes, **spec.head_kwargs)
    return SegNet(backbone, head)

"""``TrainConfig``: everything that defines a training run, validated; every default lives here."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from endobench.registry import AUGMENTATIONS, HEADS, LOSSES

# Fields that may differ between a run and its resumption without changing its numbers.
RESUMABLE_CHANGES = frozenset({"out_dir", "device", "num_workers", "cache_dir", "datasets"})


class TrainConfig(BaseModel):
    """Everything that defines a training run; every default lives here.

    Data: ``dataset`` (registry name) with ``dataset_overrides`` (e.g. synthetic options),
    ``datasets`` (registry file; default lookup otherwise), ``train_split`` / ``val_split`` (registry
    splits) or a ``val_fraction`` of clips (video) / images held out by ``seed``; ``max_images``
    caps the training set (first N after the split). Images are resized to ``size x size`` pixels.
    Model: ``backbone`` with ``pretrained`` / ``weights`` (one is required), ``out_indices``,
    ``unfreeze_last`` blocks trainable, ``backbone_kwargs`` (timm overrides); ``head`` with
    ``head_kwargs``; ``num_classes`` (default: largest class id + 1, at least 2).
    Optimisation: AdamW ``lr`` (head), ``lr * backbone_lr_mult`` (unfrozen blocks), ``weight_decay``
    (not on biases / norms), ``warmup_epochs`` of linear warm-up then cosine decay to
    ``lr * min_lr_ratio``, ``grad_clip`` (max global L2 norm; None = off), ``loss`` weights (names
    registered in ``endobench.registry.LOSSES``); ``augment``: a preset registered in
    ``endobench.registry.AUGMENTATIONS``.
    """

    model_config = ConfigDict(extra="forbid")

    dataset: str = "synthetic"
    dataset_overrides: dict[str, Any] = Field(default_factory=dict)
    datasets: str | None = None
    train_split: str | None = None
    val_split: str | None = None
    val_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    max_images: int | None = Field(None, ge=1)
    size: int = Field(224, ge=14, le=4096, description="square training resolution (pixels)")

    backbone: str = "dinov2_vits14"
    pretrained: bool | None = None
    weights: str | None = None
    out_indices: list[int] | None = None
    unfreeze_last: int = Field(0, ge=0)
    backbone_kwargs: dict[str, Any] = Field(default_factory=dict)
    head: str = "fusion"
    head_kwargs: dict[str, Any] = Field(default_factory=dict)
    num_classes: int | None = Field(None, ge=2)

    augment: str = "none"
    epochs: int = Field(10, ge=1)
    batch_size: int = Field(8, ge=1)
    lr: float = Field(1e-3, gt=0.0)
    backbone_lr_mult: float = Field(0.1, ge=0.0)
    weight_decay: float = Field(1e-4, ge=0.0)
    warmup_epochs: float = Field(1.0, ge=0.0)
    min_lr_ratio: float = Field(0.0, ge=0.0, le=1.0)
    grad_clip: float | None = Field(1.0, gt=0.0)
    loss: dict[str, float] = Field(default_factory=lambda: {"dice": 1.0, "ce": 1.0})
    seed: int = 0

    use_feature_cache: bool = True
    cache_dir: str | None = None
    out_dir: str = "results/train"
    device: str = "auto"
    num_workers: int = Field(0, ge=0)

    @field_validator("augment")
    @classmethod
    def _known_preset(cls, value: str) -> str:
        if value not in AUGMENTATIONS:
            raise ValueError(
                f"unknown augmentation preset {value!r}; expected one of {AUGMENTATIONS.names()}"
            )
        return value

    @field_validator("head")
    @classmethod
    def _known_head(cls, value: str) -> str:
        return HEADS.check(value)

    @field_validator("loss")
    @classmethod
    def _known_losses(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = sorted(n for n in value if n not in LOSSES)
        if unknown:
            raise ValueError(f"unknown loss name(s) {unknown}; expected some of {LOSSES.names()}")
        return value

    @model_validator(mode="after")
    def _weights_choice(self) -> TrainConfig:
        if self.weights is not None and self.pretrained is not None:
            raise ValueError("give either weights (a local file) or pretrained, not both")
        if self.weights is None and self.pretrained is None:
            raise ValueError(
                "choose the backbone weights: pretrained=true (timm / Hugging Face cache), "
                "weights=PATH (local file) or pretrained=false (random initialisation)"
            )
        return self

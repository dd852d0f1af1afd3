"""The segmenter a training configuration describes, as a ``SegNetSpec``."""

from __future__ import annotations

from collections.abc import Mapping

from endobench.models import SegNetSpec
from endobench.seeding import derive_seed
from endobench.training.config import TrainConfig


def model_spec(
    config: TrainConfig, num_classes: int, classes: Mapping[int, str] | None = None
) -> SegNetSpec:
    """The spec of ``config``'s model; ``build_segnet`` of it draws a random initialisation from
    ``config.seed``. Provenance (``weights``, ``backbone_sha256``) is filled in once built."""
    return SegNetSpec(
        backbone=config.backbone,
        pretrained=config.pretrained,
        weights_file=config.weights,
        backbone_kwargs=config.backbone_kwargs,
        out_indices=config.out_indices,
        unfreeze_last=config.unfreeze_last,
        head=config.head,
        head_kwargs=config.head_kwargs,
        num_classes=num_classes,
        classes={int(k): str(v) for k, v in (classes or {}).items()},
        input_size=config.size,
        init_seed=derive_seed(config.seed, "init"),
    )

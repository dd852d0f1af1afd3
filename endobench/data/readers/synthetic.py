"""The built-in ``synthetic`` dataset: clips from `endobench.data.synthetic.generate_clip`.

Options (registry entry or ``open_dataset("synthetic", overrides=...)``): ``num_clips``,
``seed`` (clip ``k`` uses ``seed + k``) and ``config``, the `SyntheticConfig` fields. Overrides
may name config fields directly (``{"num_frames": 10}``); they go into ``config``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field

from endobench.data.clip import Clip
from endobench.data.dataset import Dataset
from endobench.data.readers.base import ReaderOptions
from endobench.data.targets import TargetSpec, build_label_lut, identity_lut
from endobench.registry import READERS

# The one format without files: a registry entry needs no root (see data/registry.py).
SYNTHETIC_FORMAT = "synthetic"


class SyntheticOptions(ReaderOptions):
    """How many clips, from which seed, with which generator configuration."""

    num_clips: int = Field(2, ge=1, le=10_000)
    seed: int = 0
    config: dict[str, Any] = Field(default_factory=dict)


def route_synthetic_override(key: str) -> tuple[str, ...]:
    """Where an override key goes: top level, or inside ``config`` for generator fields."""
    if key in SyntheticOptions.model_fields:
        return (key,)
    return ("config", key)


@READERS.register(SYNTHETIC_FORMAT, options=SyntheticOptions, usage="synthetic")
def open_synthetic(
    name: str,
    options: SyntheticOptions,
    target: TargetSpec | None,
    config_error: type[Exception],
    where: str,
) -> Dataset:
    """Built-in procedural endoscopic video (no files needed).

    A `Dataset` of lazily rendered synthetic clips (nothing is rendered here).

    ``config_error`` is raised (with ``where`` naming the registry entry) when ``config`` does
    not validate as a `SyntheticConfig`.
    """
    from pydantic import ValidationError

    from endobench.data.synthetic import SyntheticConfig, generate_clip

    try:
        config = SyntheticConfig(**options.config)
    except ValidationError as exc:
        details = "; ".join(
            f"config.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise config_error(f"{where}: {details}") from None

    def make_clips() -> list[Clip]:
        clips: list[Clip] = [
            generate_clip(config, options.seed + k) for k in range(options.num_clips)
        ]
        if target is None:
            return clips
        return [_retarget(clip, target) for clip in clips]

    probe = generate_clip(config, options.seed)
    _, classes = build_label_lut(dict(probe.classes), target)
    meta = {"seed": options.seed, "num_clips": options.num_clips, "config": config.model_dump()}
    return Dataset(name, "video", classes, make_clips, format=SYNTHETIC_FORMAT, meta=meta)


def _retarget(clip: Clip, target: TargetSpec) -> Clip:
    """A view of ``clip`` whose masks go through the target's lookup table.

    The view is a plain `Clip`: ground-truth flows of the synthetic clip stay on the original.
    """
    lut, classes = build_label_lut(dict(clip.classes), target)
    if np.array_equal(lut, identity_lut()):
        return clip

    def load_mask(i: int) -> np.ndarray | None:
        mask = clip.mask(i)
        return None if mask is None else lut[mask]

    return Clip(
        name=clip.name,
        frame_names=clip.frame_names,
        load_frame=clip.frame,
        load_mask=load_mask,
        annotated=clip.annotated,
        classes=classes,
        fps=clip.fps,
        fov_mask=clip.fov_mask,
        meta={**clip.meta, "source": clip},
    )

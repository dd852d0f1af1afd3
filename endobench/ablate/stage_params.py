"""Typed parameters of the shipped stage notebooks, validated for every run before any kernel.

``plan_sweep`` checks each task's parameters (the notebook's defaults overridden by the grid's
values) with the model of its notebook, chosen by file name: ``02_train_segmentation`` ->
:class:`endobench.training.config.TrainConfig` (the notebook builds one from its parameters; its
``augmentation`` is the config's ``augment``), ``03_propagate_track`` -> :class:`TrackParams`.
Registered names are checked too, by the registries of ``endobench.registry`` (plugins
included): backbones, heads, augmentation presets, propagation specs (``PROPAGATORS.parse``)
and keyframe policies (``KEYFRAME_POLICIES.parse``). Other notebooks are not checked beyond
their parameter names.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from endobench.errors import UserError, validation_message
from endobench.registry import BACKBONES, KEYFRAME_POLICIES, PROPAGATORS

# Notebook parameter of 02 -> TrainConfig field, where the names differ.
TRAIN_FIELD_OF_PARAM = {"augmentation": "augment", "run_dir": "out_dir"}


class StageParamsError(UserError, ValueError):
    """A stage parameter of a run is invalid (the message names field, value, what is allowed)."""


class TrackParams(BaseModel):
    """Parameters of notebook 03 (propagate and track); strict types, as the kernel gets them."""

    model_config = ConfigDict(extra="allow", strict=True)

    datasets: str | None = None
    dataset: str = "synthetic"
    eval_split: str | None = None
    eval_overrides: dict[str, Any] | None = None
    max_clips: int | None = Field(2, ge=1)  # None: every clip
    checkpoint: str = ""
    keyframe_source: Literal["gt", "model"] = "gt"
    propagation: str = "flow:dis"
    policy: str = "every:8"
    fusion: bool = False
    bidirectional: bool = False
    flow_confidence: Literal["photometric", "forward_backward", "none"] = "photometric"
    propagation_weights: str | None = None
    reference: bool = False
    reference_cache: str | None = None  # set by the sweep (endobench.ablate.runner)
    progress: bool | None = None
    device: str = "auto"
    strip_frames: int = Field(6, ge=1)

    @field_validator("propagation")
    @classmethod
    def _known_propagation(cls, value: str) -> str:
        PROPAGATORS.parse(value)  # nothing is built: no network is loaded here
        return value

    @field_validator("policy")
    @classmethod
    def _known_policy(cls, value: str) -> str:
        KEYFRAME_POLICIES.parse(value)
        return value


def _train_config(params: dict[str, Any]) -> Any:
    """The ``TrainConfig`` notebook 02 builds from these parameters."""
    from endobench.training.config import TrainConfig

    fields = {TRAIN_FIELD_OF_PARAM.get(k, k): v for k, v in params.items()}
    if fields.get("weights"):
        fields["pretrained"] = None  # as notebook 02 does: a weights file replaces pretrained
    fields = {k: v for k, v in fields.items() if k in TrainConfig.model_fields}
    return TrainConfig.model_validate(fields)


def _validate_train(params: dict[str, Any]) -> None:
    config = _train_config(params)
    try:
        BACKBONES.check(config.backbone)
    except ValueError as err:
        raise _FieldError("backbone", config.backbone, str(err)) from None


def _validate_track(params: dict[str, Any]) -> None:
    TrackParams.model_validate(params)


STAGE_MODELS: dict[str, Callable[[dict[str, Any]], None]] = {
    "02_train_segmentation": _validate_train,
    "03_propagate_track": _validate_track,
}


class _FieldError(Exception):
    def __init__(self, name: str, value: Any, message: str) -> None:
        super().__init__(f"field '{name}': value {value!r}: {message}")


def validate_stage_params(notebook: Path, params: dict[str, Any], where: str) -> None:
    """Raise :class:`StageParamsError` ``"<where>: field 'f': value v: <allowed>"`` if invalid."""
    check = STAGE_MODELS.get(notebook.stem)
    if check is None:
        return
    try:
        check(params)
    except ValidationError as err:
        names = {v: k for k, v in TRAIN_FIELD_OF_PARAM.items()}
        raise StageParamsError(f"{where}: {validation_message(err, names)}") from None
    except _FieldError as err:
        raise StageParamsError(f"{where}: {err}") from None


def stage_cost(notebook: Path, params: dict[str, Any]) -> float:
    """Estimated compute of a task whose parameters are valid (0: no estimate for this stage).

    Notebook 02: :func:`endobench.training.cost.training_cost` of its ``TrainConfig``; the
    scheduler starts the costliest work first among tasks that as many others wait for.
    """
    if notebook.stem != "02_train_segmentation":
        return 0.0
    from endobench.training.cost import training_cost

    return training_cost(_train_config(params))

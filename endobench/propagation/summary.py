"""What a tracking run reports: :class:`TrackingSummary`, written to summary.json by notebook 03.

``summary.json`` stays one flat dict (the results store flattens it into columns that the sweep
report reads): the DAVIS table's global row (``J&F-Mean``, ``J-Decay``, ``T-Mean``,
``Dice-Mean``, ...: every column of the registered metrics, :mod:`endobench.metrics.per_frame`),
the cost (keyframes per 100 frames, seconds per frame), the clips and frames tracked, whether
propagation was bidirectional, the segmenter's weights provenance and, with notebook 03's
``reference``, the ground-truth-keyframe references (copy / forward / bidirectional) behind the
report's propagation story. Reading a file with an unknown key (a misspelt one) or a value of the
wrong type raises :class:`SummaryError` naming the file and the field.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from endobench.errors import UserError

M = TypeVar("M", bound=BaseModel)

#: The ground-truth-keyframe references notebook 03 tracks with ``reference: true``.
ReferenceMethod = Literal["copy", "forward", "bidirectional"]


class SummaryError(UserError, ValueError):
    """A summary.json that does not fit its model (names the file, the field and the problem)."""


class WeightsRecord(BaseModel):
    """Provenance of a backbone's weights, as ``WeightsInfo.to_dict()`` writes it."""

    model_config = ConfigDict(extra="forbid")

    name: str
    source: str
    sha256: str
    path: str | None = None
    model_kwargs: dict[str, Any] = Field(default_factory=dict)


class ReferenceScore(BaseModel):
    """One ground-truth-keyframe reference: its label, J&F and cost."""

    model_config = ConfigDict(extra="forbid")

    label: str
    jf_mean: float = Field(alias="J&F-Mean")
    keyframes_per_100: float
    seconds_per_frame: float


def score_columns() -> frozenset[str]:
    """The DAVIS table columns a summary may carry: those of every registered metric."""
    from endobench.metrics.per_frame import table_columns

    return frozenset(table_columns())


class TrackingSummary(BaseModel):
    """Headline numbers of one tracking run (notebook 03). Every field is optional on reading
    (older runs and other notebooks write fewer); :func:`tracking_summary` fills them all.

    ``scores``: the DAVIS table's global row, flat in the JSON (``{"J&F-Mean": 0.8, ...}``).
    """

    model_config = ConfigDict(extra="forbid")

    scores: dict[str, float | None] = Field(default_factory=dict)
    keyframes_per_100: float | None = None
    seconds_per_frame: float | None = None
    clips: int | None = None
    frames: int | None = None
    bidirectional: bool | None = None
    reference: dict[ReferenceMethod, ReferenceScore] | None = None
    weights: WeightsRecord | None = None

    @model_validator(mode="before")
    @classmethod
    def _gather_scores(cls, data: Any) -> Any:
        if not isinstance(data, Mapping) or "scores" in data:
            return data
        columns = score_columns()
        scores = {k: v for k, v in data.items() if k in columns}
        return {k: v for k, v in data.items() if k not in columns} | {"scores": scores}

    @field_validator("scores")
    @classmethod
    def _known_columns(cls, scores: dict[str, float | None]) -> dict[str, float | None]:
        unknown = sorted(set(scores) - score_columns())
        if unknown:
            raise ValueError(
                f"unknown score column(s) {unknown}; expected some of {sorted(score_columns())}"
            )
        return scores

    def to_json(self) -> dict[str, Any]:
        """The flat dict summary.json holds (unset fields left out, scores at the top level)."""
        body = self.model_dump(by_alias=True, exclude_unset=True, exclude={"scores"})
        return dict(self.scores) | body


def _cost(results: Mapping[str, Any]) -> tuple[float, float, int]:
    frames = sum(r.num_frames for r in results.values())
    keyframes = sum(len(r.keyframes) for r in results.values())
    seconds = sum(r.timings["total"] for r in results.values())
    return 100.0 * keyframes / frames, seconds / frames, frames


def reference_score(label: str, table: Any, results: Mapping[str, Any]) -> ReferenceScore:
    """A reference's entry: ``label``, the global J&F of its DAVIS ``table`` (``summarize``) and
    the cost of its ``results`` ({clip: TrackResult})."""
    keyframes_per_100, seconds_per_frame, _ = _cost(results)
    return ReferenceScore.model_validate(
        {
            "label": label,
            "J&F-Mean": float(table.loc["global", "J&F-Mean"]),
            "keyframes_per_100": keyframes_per_100,
            "seconds_per_frame": seconds_per_frame,
        }
    )


def tracking_summary(
    table: Any,
    results: Mapping[str, Any],
    *,
    bidirectional: bool,
    reference: Mapping[str, ReferenceScore] | None = None,
    weights: Mapping[str, Any] | None = None,
) -> TrackingSummary:
    """The summary of a tracking run: the global row of its DAVIS ``table`` (``summarize``),
    the cost over every clip of ``results`` ({clip: TrackResult}), ``bidirectional``, the
    ``reference`` scores (when tracked) and the segmenter's ``weights`` provenance (when any)."""
    keyframes_per_100, seconds_per_frame, frames = _cost(results)
    fields: dict[str, Any] = {
        "scores": {str(k): float(v) for k, v in table.loc["global"].items()},
        "keyframes_per_100": keyframes_per_100,
        "seconds_per_frame": seconds_per_frame,
        "clips": len(results),
        "frames": frames,
        "bidirectional": bool(bidirectional),
    }
    if reference is not None:
        fields["reference"] = dict(reference)
    if weights is not None:
        fields["weights"] = dict(weights)
    return TrackingSummary(**fields)


def read_summary(path: str | Path, model: type[M]) -> M:
    """``path`` (a summary.json) validated by ``model``; :class:`SummaryError` names the file and
    the field when a key is unknown (misspelt) or a value has the wrong type."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SummaryError(f"{path}: not found; expected the run's summary.json") from None
    except (OSError, ValueError) as exc:
        raise SummaryError(f"{path}: not readable as JSON ({exc})") from None
    if not isinstance(data, dict):
        raise SummaryError(f"{path}: expected a JSON object, got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise SummaryError(f"{path}: {_problems(exc)}") from None


def _problems(exc: ValidationError) -> str:
    out = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "(top level)"
        if err["type"] == "extra_forbidden":
            out.append(f"field {field!r}: unknown field (misspelt?)")
        else:
            out.append(f"field {field!r}: {str(err['msg']).removeprefix('Value error, ')}")
    return "; ".join(out)

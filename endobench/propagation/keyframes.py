"""Keyframe policies: at which frames the tracker re-segments instead of propagating.

A policy is a pure decision ``policy.decide(t, state) -> bool`` on a ``KeyframeState`` that the
tracker fills; frame 0 is always a keyframe. Specs (``KEYFRAME_POLICIES.build(spec)``):

- ``first``: frame 0 only (pure propagation);
- ``every:K``: whenever K frames have passed since the last keyframe (0, K, 2K, ... unless a
  keyframe was deferred, see ``track``);
- ``adaptive``, ``adaptive:THRESH`` or ``adaptive:confidence=0.5,drift=0.25,min_gap=3,budget=10``:
  re-segment when the mean propagation confidence inside the propagated mask falls below
  ``confidence`` or the appearance drift since the last keyframe exceeds ``drift`` (``none``
  disables a criterion), never sooner than ``min_gap`` frames after the last keyframe, and never
  more than ``budget`` keyframes in any window of 100 frames (``none``: no budget);
- ``list:0,12,30``: exactly these frames (annotation workflows; frame 0 is a keyframe whether
  listed or not, indices are distinct integers >= 0 in increasing order);
- ``all``: every frame (the segmentation-only upper bound).

``KEYFRAME_POLICIES.parse(spec)`` validates a spec without building anything; errors are
``endobench.registry.SpecError``, a ``UserError``. A new policy is one decorated factory (see
CONTRIBUTING.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from endobench.registry import KEYFRAME_POLICIES

BUDGET_WINDOW = 100  # frames; the adaptive budget counts keyframes per this many frames
THUMBNAIL_SIZE = 32  # pixels per side of the thumbnails compared by appearance_drift


@dataclass(frozen=True)
class KeyframeState:
    """What the tracker knows when deciding about frame ``t``.

    frames_since_keyframe: ``t`` minus the index of the last keyframe (>= 1 after frame 0).
    confidence: mean propagation confidence in [0, 1] inside the mask propagated onto ``t``
        (None when the tracker did not propagate before deciding).
    drift: appearance drift in [0, 1] between frame ``t`` and the last keyframe (None if not
        measured).
    recent_keyframes: keyframes among the frames ``t - 100 + 1 .. t - 1``.
    """

    frames_since_keyframe: int
    confidence: float | None = None
    drift: float | None = None
    recent_keyframes: int = 0


@runtime_checkable
class KeyframePolicy(Protocol):
    """Decides whether frame ``t`` is a keyframe.

    ``spec`` is the policy's text in tables and run ids. ``needs_confidence`` / ``needs_drift``
    tell the tracker to propagate onto ``t`` / to measure the drift before asking (otherwise it
    may skip that work on keyframes). Read-only: a field or a property implements each.
    """

    @property
    def spec(self) -> str: ...

    @property
    def needs_confidence(self) -> bool: ...

    @property
    def needs_drift(self) -> bool: ...

    def decide(self, t: int, state: KeyframeState) -> bool:
        """True if frame ``t`` should be segmented (a keyframe)."""
        ...


@dataclass(frozen=True)
class FirstFrame:
    """Keyframe at frame 0 only."""

    spec: str = "first"
    needs_confidence: bool = False
    needs_drift: bool = False

    def decide(self, t: int, state: KeyframeState) -> bool:
        return t == 0


@dataclass(frozen=True)
class EveryK:
    """Keyframe at frame 0 and whenever ``k`` frames have passed since the last keyframe."""

    k: int
    needs_confidence: bool = False
    needs_drift: bool = False

    @property
    def spec(self) -> str:
        return f"every:{self.k}"

    def decide(self, t: int, state: KeyframeState) -> bool:
        return t == 0 or state.frames_since_keyframe >= self.k


@dataclass(frozen=True)
class AllFrames:
    """Every frame is a keyframe (segmentation only; the upper bound of any policy)."""

    spec: str = "all"
    needs_confidence: bool = False
    needs_drift: bool = False

    def decide(self, t: int, state: KeyframeState) -> bool:
        return True


@dataclass(frozen=True)
class ListedFrames:
    """Keyframes at the listed frame indices (and frame 0)."""

    frames: tuple[int, ...]
    needs_confidence: bool = False
    needs_drift: bool = False

    @property
    def spec(self) -> str:
        return "list:" + ",".join(str(f) for f in self.frames)

    def decide(self, t: int, state: KeyframeState) -> bool:
        return t == 0 or t in self.frames


class AdaptiveConfig(BaseModel):
    """Thresholds of the adaptive policy (all defaults live here)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    confidence: float | None = Field(0.5, ge=0.0, le=1.0)
    drift: float | None = Field(0.25, ge=0.0, le=1.0)
    min_gap: int = Field(3, ge=1)
    budget: int | None = Field(None, ge=1, le=BUDGET_WINDOW)


@dataclass(frozen=True)
class Adaptive:
    """Keyframe when propagation confidence drops or appearance drifts (see module docstring)."""

    config: AdaptiveConfig = AdaptiveConfig()

    @property
    def spec(self) -> str:
        c = self.config
        return (
            f"adaptive:confidence={c.confidence},drift={c.drift},min_gap={c.min_gap},"
            f"budget={c.budget}"
        ).replace("None", "none")

    @property
    def needs_confidence(self) -> bool:
        return self.config.confidence is not None

    @property
    def needs_drift(self) -> bool:
        return self.config.drift is not None

    def decide(self, t: int, state: KeyframeState) -> bool:
        c = self.config
        if t == 0:
            return True
        if state.frames_since_keyframe < c.min_gap:
            return False
        if c.budget is not None and state.recent_keyframes >= c.budget:
            return False
        low_confidence = (
            c.confidence is not None
            and state.confidence is not None
            and state.confidence < c.confidence
        )
        drifted = c.drift is not None and state.drift is not None and state.drift > c.drift
        return low_confidence or drifted


def thumbnail(frame: np.ndarray) -> np.ndarray:
    """``H x W x 3`` uint8 RGB -> ``32 x 32`` float32 gray thumbnail (area-averaged)."""
    frame = np.asarray(frame)
    gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) if frame.ndim == 3 else frame
    small = cv2.resize(gray, (THUMBNAIL_SIZE, THUMBNAIL_SIZE), interpolation=cv2.INTER_AREA)
    return small.astype(np.float32)


def appearance_drift(a: np.ndarray, b: np.ndarray) -> float:
    """Drift in [0, 1] between two thumbnails: ``(1 - ZNCC) / 2``.

    0 = identical up to brightness and contrast, 0.5 = unrelated, 1 = inverted. Flat thumbnails
    (no variance) count as identical to each other and unrelated (0.5) to anything else.
    """
    a = a.astype(np.float64).ravel() - a.mean()
    b = b.astype(np.float64).ravel() - b.mean()
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na < 1e-9 or nb < 1e-9:
        return 0.0 if (na < 1e-9 and nb < 1e-9) else 0.5
    zncc = float(np.dot(a, b) / (na * nb))
    return float(np.clip((1.0 - zncc) / 2.0, 0.0, 1.0))


# --- registration ------------------------------------------------------------------------------
# Registered simplest first: that is the order of listings and of the forms in error messages.
_LIST_EXAMPLE = "(e.g. list:0,12,30)"


class EveryOptions(BaseModel):
    """``every:K``: K frames between keyframes."""

    model_config = ConfigDict(extra="forbid")

    k: int

    @model_validator(mode="before")
    @classmethod
    def _positive_integer(cls, values: Any) -> Any:
        raw = values.get("k") if isinstance(values, dict) else None
        try:
            k = int(str(raw).strip())
        except ValueError:
            k = 0
        if k < 1:
            raise ValueError("every:K needs an integer K >= 1 (e.g. every:10)")
        return {**values, "k": k}


class ListOptions(BaseModel):
    """``list:I,J,...``: the keyframe indices."""

    model_config = ConfigDict(extra="forbid")

    frames: tuple[int, ...]

    @model_validator(mode="before")
    @classmethod
    def _increasing_indices(cls, values: Any) -> Any:
        raw: Any = values.get("frames") if isinstance(values, dict) else None
        try:  # "0,12,30" from a spec, or a sequence of ints given in Python
            frames = tuple(int(item) for item in (raw.split(",") if isinstance(raw, str) else raw))
        except (TypeError, ValueError):
            raise ValueError(
                f"list:I,J,... needs comma-separated integer frame indices {_LIST_EXAMPLE}"
            ) from None
        if any(f < 0 for f in frames) or any(
            b <= a for a, b in zip(frames, frames[1:], strict=False)
        ):
            raise ValueError(f"list indices must be >= 0, distinct and increasing {_LIST_EXAMPLE}")
        return {**values, "frames": frames}


@KEYFRAME_POLICIES.register("first")
def first_frame() -> FirstFrame:
    """Frame 0 only (pure propagation)."""
    return FirstFrame()


@KEYFRAME_POLICIES.register("every", options=EveryOptions, usage="every:K")
def every_k(options: EveryOptions) -> EveryK:
    """Whenever K frames have passed since the last keyframe."""
    return EveryK(options.k)


@KEYFRAME_POLICIES.register("list", options=ListOptions, usage="list:I,J,...")
def listed_frames(options: ListOptions) -> ListedFrames:
    """Exactly these frames (annotation workflows; frame 0 always)."""
    return ListedFrames(options.frames)


@KEYFRAME_POLICIES.register(
    "adaptive",
    options=AdaptiveConfig,
    usage="adaptive | adaptive:THRESH | adaptive:confidence=C,drift=D,min_gap=G,budget=B",
)
def adaptive(options: AdaptiveConfig) -> Adaptive:
    """When propagation confidence drops or appearance drifts (``none`` disables a criterion)."""
    return Adaptive(options)


@KEYFRAME_POLICIES.register("all")
def all_frames() -> AllFrames:
    """Every frame (segmentation only; the upper bound of any policy)."""
    return AllFrames()

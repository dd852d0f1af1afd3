"""Keyframe policies: at which frames the tracker re-segments instead of propagating.

A policy is a pure decision ``policy.decide(t, state) -> bool`` on a ``KeyframeState`` that the
tracker fills; frame 0 is always a keyframe. Specs (``build_keyframe_policy``):

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

``parse_keyframe_spec`` validates a spec without running anything (a grid validator can call it);
errors are ``KeyframeSpecError``, a ``UserError``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from endobench.errors import UserError

BUDGET_WINDOW = 100  # frames; the adaptive budget counts keyframes per this many frames
THUMBNAIL_SIZE = 32  # pixels per side of the thumbnails compared by appearance_drift


class KeyframeSpecError(UserError, ValueError):
    """A keyframe policy spec could not be parsed; the message shows the accepted forms."""


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

    ``needs_confidence`` / ``needs_drift`` tell the tracker to propagate onto ``t`` / to measure
    the drift before asking (otherwise it may skip that work on keyframes).
    """

    spec: str
    needs_confidence: bool
    needs_drift: bool

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


_FORMS = (
    "first | every:K | list:I,J,... | adaptive | adaptive:THRESH | "
    "adaptive:confidence=C,drift=D,min_gap=G,budget=B | all"
)


def _parse_list(spec: str, args: str) -> ListedFrames:
    try:
        frames = tuple(int(item) for item in args.split(","))
    except ValueError:
        raise KeyframeSpecError(
            f"keyframe policy {spec!r}: list:I,J,... needs comma-separated integer frame indices "
            "(e.g. list:0,12,30)"
        ) from None
    if any(f < 0 for f in frames) or any(b <= a for a, b in zip(frames, frames[1:], strict=False)):
        raise KeyframeSpecError(
            f"keyframe policy {spec!r}: list indices must be >= 0, distinct and increasing "
            "(e.g. list:0,12,30)"
        )
    return ListedFrames(frames)


def _parse_adaptive(spec: str, args: str) -> Adaptive:
    if not args:
        return Adaptive()
    values: dict[str, float | int | None] = {}
    if "=" not in args:
        try:
            values["confidence"] = float(args)
        except ValueError:
            raise KeyframeSpecError(
                f"keyframe policy {spec!r}: THRESH must be a number in [0, 1], got {args!r}"
            ) from None
    else:
        for item in args.split(","):
            key, sep, raw = item.partition("=")
            key, raw = key.strip(), raw.strip().lower()
            if not sep or key not in AdaptiveConfig.model_fields:
                raise KeyframeSpecError(
                    f"keyframe policy {spec!r}: unknown or malformed field {item!r}; expected "
                    f"key=value with keys {sorted(AdaptiveConfig.model_fields)}"
                )
            try:
                values[key] = (
                    None
                    if raw == "none"
                    else (int(raw) if key in ("min_gap", "budget") else float(raw))
                )
            except ValueError:
                raise KeyframeSpecError(
                    f"keyframe policy {spec!r}: field {key!r} expects a number or 'none', got {raw!r}"
                ) from None
    try:
        return Adaptive(AdaptiveConfig(**values))
    except ValidationError as exc:
        problems = "; ".join(f"{e['loc'][0]}: {e['msg']}" for e in exc.errors())
        raise KeyframeSpecError(f"keyframe policy {spec!r}: {problems}") from None


def parse_keyframe_spec(spec: str) -> KeyframePolicy:
    """Validate a keyframe spec and return its (light, pure) policy; ``KeyframeSpecError`` if bad."""
    return build_keyframe_policy(spec)


def build_keyframe_policy(spec: str) -> KeyframePolicy:
    """Build a policy from its spec (forms in the module docstring)."""
    if not isinstance(spec, str):
        raise KeyframeSpecError(f"keyframe policy {spec!r}: expected a string, one of {_FORMS}")
    name, _, args = spec.strip().partition(":")
    name = name.lower()
    if name in ("first", "all"):
        if args:
            raise KeyframeSpecError(f"keyframe policy {spec!r}: {name!r} takes no argument")
        return FirstFrame() if name == "first" else AllFrames()
    if name == "every":
        try:
            k = int(args)
        except ValueError:
            k = 0
        if k < 1:
            raise KeyframeSpecError(
                f"keyframe policy {spec!r}: every:K needs an integer K >= 1 (e.g. every:10)"
            )
        return EveryK(k)
    if name == "adaptive":
        return _parse_adaptive(spec, args.strip())
    if name == "list":
        return _parse_list(spec, args)
    raise KeyframeSpecError(f"keyframe policy {spec!r}: expected one of {_FORMS}")

"""Configuration of the synthetic endoscopic video generator: every default lives here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Difficulty = Literal["easy", "medium", "hard"]
ObjectKind = Literal["polyp", "instrument"]
OcclusionKind = Literal["smoke", "blood", "exit"]


@dataclass(frozen=True)
class DifficultyProfile:
    """How hard a clip is. Speeds are per frame, in units of the frame's shorter side ``s``."""

    camera_speed: float  # peak camera translation speed (fraction of s per frame)
    camera_rotation_deg: float  # amplitude of the camera roll oscillation (degrees)
    zoom_amplitude: float  # amplitude of log-zoom oscillation (0.1 = about +-10 %)
    object_speed: float  # peak speed of the objects' own motion (fraction of s per frame)
    object_rotation_deg: float  # amplitude of the objects' own rotation (degrees)
    events_per_100_frames: float  # expected number of occlusion events per 100 frames
    event_frames: tuple[int, int]  # min / max duration of one occlusion event (frames)
    noise_sigma: float  # sensor noise standard deviation (grey levels)
    blur_exposure: float  # exposure time as a fraction of the frame interval (motion blur)
    haze_peak: float  # peak opacity of smoke haze (0..1)


DIFFICULTY_PROFILES: dict[str, DifficultyProfile] = {
    "easy": DifficultyProfile(
        camera_speed=0.006,
        camera_rotation_deg=4.0,
        zoom_amplitude=0.04,
        object_speed=0.004,
        object_rotation_deg=4.0,
        events_per_100_frames=1.0,
        event_frames=(12, 24),
        noise_sigma=1.5,
        blur_exposure=0.3,
        haze_peak=0.35,
    ),
    "medium": DifficultyProfile(
        camera_speed=0.015,
        camera_rotation_deg=10.0,
        zoom_amplitude=0.08,
        object_speed=0.01,
        object_rotation_deg=8.0,
        events_per_100_frames=2.5,
        event_frames=(10, 24),
        noise_sigma=3.0,
        blur_exposure=0.5,
        haze_peak=0.5,
    ),
    "hard": DifficultyProfile(
        camera_speed=0.03,
        camera_rotation_deg=20.0,
        zoom_amplitude=0.15,
        object_speed=0.02,
        object_rotation_deg=15.0,
        events_per_100_frames=5.0,
        event_frames=(8, 20),
        noise_sigma=6.0,
        blur_exposure=0.8,
        haze_peak=0.7,
    ),
}


class CameraMotion(BaseModel):
    """A constant per-frame camera motion (replaces the random smooth motion when given).

    ``translation`` is the camera's displacement per frame in frame pixels, so the ground-truth
    backward flow of a pure translation is exactly ``translation`` everywhere; ``rotation_deg``
    rolls the view about the frame centre per frame; ``zoom`` > 1 magnifies the content by that
    factor per frame (moving closer).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    translation: tuple[float, float] = (0.0, 0.0)
    rotation_deg: float = Field(0.0, ge=-45.0, le=45.0)
    zoom: float = Field(1.0, gt=0.5, lt=2.0)


class SyntheticConfig(BaseModel):
    """Options of one synthetic clip (the ``synthetic`` dataset's registry entry validates to this).

    Label ids: 0 background, 1..K objects in the order of ``object_kinds`` (default: polyp,
    instrument, polyp, ...). Masks hold the *visible* object pixels: an object hidden by another
    object, by opaque blood (opacity >= 0.5) or outside the field of view is not in the mask;
    smoke haze and motion blur change the image, never the mask.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    height: int = Field(128, ge=32, le=4096, description="frame height (pixels)")
    width: int = Field(160, ge=32, le=4096, description="frame width (pixels)")
    num_frames: int = Field(48, ge=1, le=1_000_000, description="frames in the clip")
    num_objects: int = Field(2, ge=0, le=8, description="number of tracked objects K")
    object_kinds: tuple[ObjectKind, ...] | None = Field(
        None, description="kind of each object; default alternates polyp, instrument"
    )
    difficulty: Difficulty = "medium"
    occlusions: bool = Field(True, description="schedule occlusion events at all")
    occlusion_kinds: tuple[OcclusionKind, ...] = ("smoke", "blood", "exit")
    motion_blur: bool = True
    specular: bool = Field(True, description="specular highlights on tissue and objects")
    vignetting: bool = True
    noise: bool = Field(True, description="sensor noise (sigma set by difficulty)")
    fov: bool = Field(True, description="circular field of view (black outside)")
    fov_radius: float = Field(
        1.1, gt=0.2, le=3.0, description="FOV radius in units of half the shorter side"
    )
    camera: CameraMotion | None = Field(
        None, description="constant camera motion; None = random smooth motion by difficulty"
    )
    fps: float = Field(25.0, gt=0.0, le=1000.0)

    @model_validator(mode="after")
    def _check_object_kinds(self) -> SyntheticConfig:
        if self.object_kinds is not None and len(self.object_kinds) != self.num_objects:
            raise ValueError(
                f"object_kinds has {len(self.object_kinds)} entries but num_objects is "
                f"{self.num_objects}; give one kind ('polyp' or 'instrument') per object"
            )
        return self

    @property
    def kinds(self) -> tuple[ObjectKind, ...]:
        """The kind of each object 1..K."""
        if self.object_kinds is not None:
            return self.object_kinds
        cycle: tuple[ObjectKind, ObjectKind] = ("polyp", "instrument")
        return tuple(cycle[k % 2] for k in range(self.num_objects))

    @property
    def profile(self) -> DifficultyProfile:
        """The difficulty profile (speeds, event rate, noise) of this configuration."""
        return DIFFICULTY_PROFILES[self.difficulty]

    def classes(self) -> dict[int, str]:
        """Object id -> name: the kind, numbered from the second object of the same kind."""
        names: dict[int, str] = {}
        seen: dict[str, int] = {}
        for k, kind in enumerate(self.kinds, start=1):
            seen[kind] = seen.get(kind, 0) + 1
            names[k] = kind if seen[kind] == 1 else f"{kind}_{seen[kind]}"
        return names

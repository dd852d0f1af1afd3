"""Named augmentation presets on albumentations 2.x, with endoscopy-specific transforms.

Presets (``build_augmentation(name)``; registered in ``endobench.registry.AUGMENTATIONS``, where
a plugin adds its own: a function ``size -> list of albumentations transforms``):

- ``none``: identity (plus the optional resize).
- ``basic``: flips, small affine, colour jitter.
- ``classic``: flip, grid distortion, colour jitter / brightness-contrast, Gaussian noise,
  Gaussian / median blur, sun flare.
- ``endoscopic``: flips, affine with free roll, specular highlights, smoke haze, blood tint,
  colour jitter, motion blur, a field-of-view circle mask, JPEG artefacts.

Order inside a preset: geometric transforms first (they move image and mask together, masks with
nearest-neighbour interpolation), then scene effects, then sensor effects (motion blur), then the
field-of-view mask (the endoscope's optics are fixed to the sensor, so the black border is neither
hazed nor blurred), and JPEG compression last, as in a recorded video.

Field-of-view decision: outside the circle the image becomes black and the mask becomes
background (0), not void. Real endoscopic datasets label the black border as background, and a
model must learn to predict background there; with void those pixels would be untrained and could
produce false positives on black corners at evaluation time. ``FieldOfViewMask(mask_fill=255)``
gives the void behaviour when wanted.

All randomness comes from the ``Compose`` seed (``build_augmentation(..., seed=)`` or
``compose.set_random_seed``), never from global random state.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import albumentations as A
import cv2
import numpy as np
from albumentations.core.composition import BaseCompose
from albumentations.core.transforms_interface import BaseTransformInitSchema
from albumentations.core.type_definitions import Targets

from endobench.registry import AUGMENTATIONS

Preset = Callable[[int | None], list[A.BasicTransform]]


def _to_float(img: np.ndarray) -> tuple[np.ndarray, float]:
    """Image as float32 with its full-scale value (255 for uint8, 1 for float images)."""
    scale = 255.0 if img.dtype == np.uint8 else 1.0
    return img.astype(np.float32), scale


def _from_float(out: np.ndarray, like: np.ndarray, scale: float) -> np.ndarray:
    out = np.clip(out, 0.0, scale)
    if like.dtype == np.uint8:
        return np.rint(out).astype(np.uint8)
    return out.astype(like.dtype)


def _smooth_field(rng: np.random.Generator, shape: tuple[int, int], cells: int) -> np.ndarray:
    """A smooth random ``H x W`` field in [0, 1]: a ``cells x cells`` grid upsampled bicubically."""
    grid = rng.uniform(0.0, 1.0, size=(cells, cells)).astype(np.float32)
    field = cv2.resize(grid, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)
    return np.clip(field, 0.0, 1.0)


class SpecularHighlights(A.ImageOnlyTransform):
    """Small saturated white blobs, like light reflected by wet mucosa.

    ``num_spots_range``: how many blobs; ``radius_range``: blob radius as a fraction of
    ``min(H, W)``. Each blob is an elongated Gaussian with a saturated core.
    """

    class InitSchema(BaseTransformInitSchema):
        num_spots_range: tuple[int, int]
        radius_range: tuple[float, float]

    def __init__(
        self,
        num_spots_range: tuple[int, int] = (1, 8),
        radius_range: tuple[float, float] = (0.005, 0.03),
        p: float = 0.5,
    ) -> None:
        super().__init__(p=p)
        self.num_spots_range = num_spots_range
        self.radius_range = radius_range

    def get_params_dependent_on_data(
        self, params: dict[str, Any], data: dict[str, Any]
    ) -> dict[str, Any]:
        h, w = params["shape"][:2]
        rng = self.random_generator
        n = int(rng.integers(self.num_spots_range[0], self.num_spots_range[1] + 1))
        spots = np.stack(
            [
                rng.uniform(0, w, n),  # centre x
                rng.uniform(0, h, n),  # centre y
                rng.uniform(*self.radius_range, n) * min(h, w),  # radius (pixels)
                rng.uniform(1.0, 2.5, n),  # elongation
                rng.uniform(0, np.pi, n),  # orientation
            ],
            axis=1,
        )
        return {"spots": spots}

    def apply(self, img: np.ndarray, spots: np.ndarray, **params: Any) -> np.ndarray:
        h, w = img.shape[:2]
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        alpha = np.zeros((h, w), dtype=np.float32)
        for cx, cy, radius, elongation, angle in spots:
            dx, dy = xx - cx, yy - cy
            u = (dx * np.cos(angle) + dy * np.sin(angle)) / (radius * elongation)
            v = (-dx * np.sin(angle) + dy * np.cos(angle)) / radius
            alpha = np.maximum(alpha, np.exp(-0.5 * (u * u + v * v)))
        alpha = np.clip(1.5 * alpha, 0.0, 1.0)[..., None]  # saturated core, soft rim
        out, scale = _to_float(img)
        return _from_float(out * (1 - alpha) + scale * alpha, img, scale)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("num_spots_range", "radius_range")


class SmokeHaze(A.ImageOnlyTransform):
    """Surgical smoke: blend towards a light grey with a smooth, spatially varying density.

    ``alpha_range``: peak haze opacity; ``gray_range``: haze brightness as a fraction of full scale.
    """

    class InitSchema(BaseTransformInitSchema):
        alpha_range: tuple[float, float]
        gray_range: tuple[float, float]

    def __init__(
        self,
        alpha_range: tuple[float, float] = (0.2, 0.6),
        gray_range: tuple[float, float] = (0.75, 0.95),
        p: float = 0.5,
    ) -> None:
        super().__init__(p=p)
        self.alpha_range = alpha_range
        self.gray_range = gray_range

    def get_params_dependent_on_data(
        self, params: dict[str, Any], data: dict[str, Any]
    ) -> dict[str, Any]:
        rng = self.random_generator
        density = _smooth_field(rng, params["shape"][:2], cells=4)
        return {
            "density": density * rng.uniform(*self.alpha_range),
            "gray": float(rng.uniform(*self.gray_range)),
        }

    def apply(self, img: np.ndarray, density: np.ndarray, gray: float, **params: Any) -> np.ndarray:
        out, scale = _to_float(img)
        a = density[..., None]
        return _from_float(out * (1 - a) + gray * scale * a, img, scale)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("alpha_range", "gray_range")


class BloodTint(A.ImageOnlyTransform):
    """Blood in the field: green and blue absorbed, shifting colours towards dark red.

    Multiplies channels by ``1 - s * (1 - tint)`` with ``tint = (1.0, 0.35, 0.3)`` (RGB) and a
    smooth spatially varying strength ``s`` peaking at a value drawn from ``strength_range``.
    """

    TINT = np.array([1.0, 0.35, 0.3], dtype=np.float32)

    class InitSchema(BaseTransformInitSchema):
        strength_range: tuple[float, float]

    def __init__(self, strength_range: tuple[float, float] = (0.15, 0.5), p: float = 0.5) -> None:
        super().__init__(p=p)
        self.strength_range = strength_range

    def get_params_dependent_on_data(
        self, params: dict[str, Any], data: dict[str, Any]
    ) -> dict[str, Any]:
        rng = self.random_generator
        field = 0.5 + 0.5 * _smooth_field(rng, params["shape"][:2], cells=3)
        return {"strength": field * rng.uniform(*self.strength_range)}

    def apply(self, img: np.ndarray, strength: np.ndarray, **params: Any) -> np.ndarray:
        if img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f"BloodTint: expected an H x W x 3 RGB image, got {img.shape}")
        out, scale = _to_float(img)
        gain = 1 - strength[..., None] * (1 - self.TINT)
        return _from_float(out * gain, img, scale)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("strength_range",)


class FieldOfViewMask(A.DualTransform):
    """The endoscope's circular field of view: black outside a circle, mask set to ``mask_fill``.

    ``radius_range``: circle radius as a fraction of the half-diagonal (1.0 passes through the
    corners; ~0.7 is the circle inscribed in a square); ``center_shift``: maximum centre offset as
    a fraction of width / height. ``mask_fill``: 0 (background, default) or 255 (void); see the
    module docstring for why background is the default.
    """

    _targets = (Targets.IMAGE, Targets.MASK)

    class InitSchema(BaseTransformInitSchema):
        radius_range: tuple[float, float]
        center_shift: float
        mask_fill: int

    def __init__(
        self,
        radius_range: tuple[float, float] = (0.7, 1.0),
        center_shift: float = 0.05,
        mask_fill: int = 0,
        p: float = 0.5,
    ) -> None:
        super().__init__(p=p)
        self.radius_range = radius_range
        self.center_shift = center_shift
        self.mask_fill = mask_fill

    def get_params_dependent_on_data(
        self, params: dict[str, Any], data: dict[str, Any]
    ) -> dict[str, Any]:
        h, w = params["shape"][:2]
        rng = self.random_generator
        cx = w / 2 + rng.uniform(-self.center_shift, self.center_shift) * w
        cy = h / 2 + rng.uniform(-self.center_shift, self.center_shift) * h
        radius = rng.uniform(*self.radius_range) * np.hypot(h, w) / 2
        yy, xx = np.mgrid[0:h, 0:w]
        # Pixel centres at integer coordinates + 0.5.
        outside = (xx + 0.5 - cx) ** 2 + (yy + 0.5 - cy) ** 2 > radius**2
        return {"outside": outside}

    def apply(self, img: np.ndarray, outside: np.ndarray, **params: Any) -> np.ndarray:
        out = img.copy()
        out[outside] = 0
        return out

    def apply_to_mask(self, mask: np.ndarray, outside: np.ndarray, **params: Any) -> np.ndarray:
        out = mask.copy()
        out[outside] = self.mask_fill
        return out

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("radius_range", "center_shift", "mask_fill")


@AUGMENTATIONS.register("none")
def _none(size: int | None) -> list[A.BasicTransform]:
    """Identity: no transform."""
    return []


@AUGMENTATIONS.register("basic")
def _basic(size: int | None) -> list[A.BasicTransform]:
    """Flips, small affine, colour jitter."""
    return [
        A.HorizontalFlip(p=0.5),
        A.VerticalFlip(p=0.5),
        A.Affine(scale=(0.9, 1.1), translate_percent=(-0.05, 0.05), rotate=(-15, 15), p=0.5),
        A.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.02, p=0.5),
    ]


@AUGMENTATIONS.register("classic")
def _classic(size: int | None) -> list[A.BasicTransform]:
    """Flip, grid distortion, colour jitter, noise, blur, sun flare."""
    # RandomSunFlare's source radius is in pixels; scale it with the working size when known.
    flare_radius = max(8, int(0.15 * size)) if size else 60
    return [
        A.HorizontalFlip(p=0.5),
        A.GridDistortion(num_steps=5, distort_limit=0.2, p=0.3),
        A.OneOf(
            [
                A.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.02),
                A.RandomBrightnessContrast(brightness_limit=0.2, contrast_limit=0.2),
            ],
            p=0.6,
        ),
        A.GaussNoise(std_range=(0.02, 0.08), p=0.3),
        A.OneOf([A.GaussianBlur(blur_limit=(3, 5)), A.MedianBlur(blur_limit=(3, 5))], p=0.3),
        A.RandomSunFlare(
            flare_roi=(0.0, 0.0, 1.0, 0.5),
            src_radius=flare_radius,
            num_flare_circles_range=(3, 6),
            p=0.1,
        ),
    ]


@AUGMENTATIONS.register("endoscopic")
def _endoscopic(size: int | None) -> list[A.BasicTransform]:
    """Flips, free roll, specular highlights, smoke, blood, motion blur, field of view, JPEG."""
    return [
        A.HorizontalFlip(p=0.5),
        A.VerticalFlip(p=0.5),
        # The endoscope rolls freely about its axis: large rotations are realistic.
        A.Affine(scale=(0.85, 1.15), translate_percent=(-0.05, 0.05), rotate=(-45, 45), p=0.7),
        A.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.15, hue=0.02, p=0.5),
        SpecularHighlights(p=0.4),
        SmokeHaze(p=0.25),
        BloodTint(p=0.2),
        A.MotionBlur(blur_limit=(3, 9), p=0.25),
        FieldOfViewMask(p=0.3),
        A.ImageCompression(quality_range=(30, 90), p=0.3),
    ]


def _preset(name: str, size: int | None) -> list[A.BasicTransform]:
    if name not in AUGMENTATIONS:
        raise ValueError(
            f"augment: unknown preset {name!r}; expected one of {AUGMENTATIONS.names()}"
        )
    preset: Preset = AUGMENTATIONS.get(name).obj
    return preset(size)


def _leaves(transforms: Sequence[A.BasicTransform]) -> list[A.BasicTransform]:
    """Every transform, descending into OneOf / SomeOf groups."""
    out: list[A.BasicTransform] = []
    for t in transforms:
        out.extend(_leaves(t.transforms) if isinstance(t, BaseCompose) else [t])
    return out


def _keep(transforms: Sequence[A.BasicTransform], kind: type) -> list[A.BasicTransform]:
    """The transforms of ``kind``; groups keep their members of that kind (dropped if none)."""
    kept: list[A.BasicTransform] = []
    for t in transforms:
        if isinstance(t, BaseCompose):
            members = _keep(t.transforms, kind)
            if members:
                kept.append(type(t)(members, p=t.p))
        elif isinstance(t, kind):
            kept.append(t)
    return kept


def is_geometric(name: str) -> bool:
    """Whether preset ``name`` contains a transform that moves or changes the mask.

    Derived from the transforms themselves: any albumentations ``DualTransform`` (flips, affine,
    grid distortion, the field-of-view mask) counts. A fixed resize does not.
    """
    return any(isinstance(t, A.DualTransform) for t in _leaves(_preset(name, None)))


def is_photometric(name: str) -> bool:
    """Whether preset ``name`` contains a transform that changes pixel values only."""
    return any(isinstance(t, A.ImageOnlyTransform) for t in _leaves(_preset(name, None)))


def preset_names() -> list[str]:
    """The names accepted by :func:`build_augmentation` (registered in ``AUGMENTATIONS``)."""
    return AUGMENTATIONS.names()


def build_augmentation(
    name: str, size: int | None = None, seed: int | None = None, geometric_only: bool = False
) -> A.Compose:
    """The albumentations pipeline of preset ``name``.

    Call it as ``aug(image=HxWx3 uint8, mask=HxW uint8)``. ``size``: resize both to
    ``size x size`` first (image bilinear, mask nearest), so pixel-sized parameters act at the
    working resolution. ``seed``: the pipeline's own random state (same seed, same outputs).
    ``geometric_only``: keep only the transforms that touch the mask (used to test alignment).
    """
    transforms = _preset(name, size)
    if geometric_only:
        transforms = _keep(transforms, A.DualTransform)
    if size is not None:
        transforms = [A.Resize(size, size), *transforms]
    return A.Compose(transforms, seed=seed)

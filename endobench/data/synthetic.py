"""Synthetic endoscopic video with exact masks and exact motion: the built-in ``synthetic`` dataset.

A clip is a camera moving (translation, roll, zoom) over a tileable procedural mucosa texture,
seen through a circular field of view with vignetting, plus K objects (polyp-like blobs riding on
the tissue, rigid instruments entering from the edge) with their own motion, occlusion events
(smoke haze, blood pools, objects leaving the view), motion blur and sensor noise.

Frames are rendered on demand from per-frame poses computed up front, so frame ``i`` is the same
whether frames are read in order or at random, and the same seed gives bit-identical frames and
masks. Masks hold the *visible* pixels of each object (ids 1..K): pixels hidden by another object,
by blood of opacity >= 0.5 or lying outside the field of view are background; haze and blur
never change a mask. The ground-truth backward flow is exact: content at pixel (x, y) of frame i
was at (x + f[y, x, 0], y + f[y, x, 1]) in frame i-1, using each object's own motion on its
visible pixels and the camera's motion elsewhere.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property

import cv2
import numpy as np

from endobench.data.clip import Clip
from endobench.data.synthetic_config import (
    DIFFICULTY_PROFILES,
    CameraMotion,
    DifficultyProfile,
    SyntheticConfig,
)
from endobench.data.synthetic_motion import OcclusionEvent, ScenePlan, plan_scene, translation
from endobench.data.synthetic_texture import (
    Sprite,
    blood_field,
    instrument_sprite,
    mucosa_texture,
    periodic_noise,
    polyp_sprite,
    texture_size,
)

__all__ = [
    "DIFFICULTY_PROFILES",
    "CameraMotion",
    "DifficultyProfile",
    "OcclusionEvent",
    "SyntheticClip",
    "SyntheticConfig",
    "generate_clip",
    "generate_clips",
]

_WARP = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
_BLOOD_RGB = np.array([112.0, 10.0, 16.0], np.float32)
_BLOOD_OPACITY = 0.95
_HAZE_RGB = (222, 214, 210)
_HAZE_GRID = 16  # haze varies smoothly: rendered at 1/16 resolution, then upsampled
_NOISE_MARGIN = 16
_MAX_BLUR = 9.0  # pixels  # the noise image is shifted by up to this many pixels per frame


@dataclass(frozen=True)
class _BloodPool:
    field: np.ndarray  # float32, > 1 - strength where the pool covers at that strength
    origin: tuple[float, float]


@dataclass
class _Rendered:
    index: int
    image: np.ndarray | None
    labels: np.ndarray


def _fov_geometry(config: SyntheticConfig, plan: ScenePlan) -> tuple[np.ndarray, np.ndarray]:
    """FOV mask (H x W bool) and the brightness gain (H x W x 3 uint8, 255 = 1, 0 outside FOV)."""
    h, w = config.height, config.width
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cx, cy = plan.fov_center
    r = np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2)
    radius = plan.fov_radius
    fov = r <= radius if config.fov else np.ones((h, w), bool)
    gain = np.ones((h, w), np.float32)
    if config.vignetting:
        gain *= np.clip(1.0 - 0.45 * (r / radius) ** 2, 0.25, 1.0)
    if config.fov:
        gain *= np.clip(radius - r + 0.5, 0.0, 1.0) * fov  # anti-aliased rim, black outside
    gain8 = np.clip(gain * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return fov, np.repeat(gain8[..., None], 3, axis=2)


def _line_kernel(dx: float, dy: float) -> np.ndarray | None:
    """Normalised motion-blur kernel along (dx, dy) pixels, or None when under a pixel long.

    The length is capped at ``_MAX_BLUR`` pixels: beyond 11 x 11 cv2.filter2D switches to a
    DFT that is 30 times slower, and longer streaks add little realism.
    """
    length = float(np.hypot(dx, dy))
    if length < 1.0:
        return None
    if length > _MAX_BLUR:
        dx, dy = dx * _MAX_BLUR / length, dy * _MAX_BLUR / length
        length = _MAX_BLUR
    half = int(np.ceil(length / 2.0))
    size = 2 * half + 1
    kernel = np.zeros((size, size), np.float32)
    samples = int(np.ceil(length * 2.0)) + 1
    for s in np.linspace(-0.5, 0.5, samples):
        x, y = half + s * dx, half + s * dy
        x0, y0 = int(np.floor(x)), int(np.floor(y))
        fx, fy = x - x0, y - y0
        for yi, xi, wgt in (
            (y0, x0, (1 - fx) * (1 - fy)),
            (y0, x0 + 1, fx * (1 - fy)),
            (y0 + 1, x0, (1 - fx) * fy),
            (y0 + 1, x0 + 1, fx * fy),
        ):
            if 0 <= yi < size and 0 <= xi < size:
                kernel[yi, xi] += wgt
    return kernel / kernel.sum()


def _apply_point(matrix: np.ndarray, x: float, y: float) -> np.ndarray:
    return (matrix @ np.array([x, y, 1.0]))[:2]


class SyntheticClip(Clip):
    """A procedurally rendered endoscopic clip; every frame is annotated.

    Besides the ``Clip`` interface: ``config``, ``seed``, ``events`` (list of
    ``OcclusionEvent``), ``plan`` (all poses), ``backward_flow(i)`` and
    ``camera_backward_flow(i)``. The most recent frame is kept so that ``frame(i)`` followed by
    ``mask(i)`` renders once.
    """

    def __init__(self, config: SyntheticConfig, seed: int, name: str | None = None) -> None:
        if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
            raise ValueError(f"synthetic clip: seed must be a non-negative integer, got {seed!r}")
        self.config = config
        self.seed = int(seed)
        # Independent streams, so adding detail to one part never changes another.
        motion_seed, texture_seed, sprite_seed, blood_seed, noise_seed, haze_seed, event_seed = (
            np.random.SeedSequence(self.seed).spawn(7)
        )
        self._texture_seed = texture_seed
        self._sprite_seed = sprite_seed
        self._blood_seed = blood_seed
        self._noise_seed = noise_seed
        self._haze_seed = haze_seed
        self._texture_side = texture_size(config.height, config.width)
        self.plan = plan_scene(
            config,
            np.random.default_rng(motion_seed),
            np.random.default_rng(event_seed),
            self._texture_side,
        )
        self.events: list[OcclusionEvent] = list(self.plan.events)
        fov, self._gain = _fov_geometry(config, self.plan)
        self._last: _Rendered | None = None
        n = config.num_frames
        super().__init__(
            name=name if name is not None else f"synthetic_{self.seed:04d}",
            frame_names=[f"{i:05d}" for i in range(n)],
            load_frame=self._load_frame_at,
            load_mask=self._load_mask_at,
            annotated=range(n),
            classes=config.classes(),
            fps=config.fps,
            fov_mask=fov,
            meta={
                "generator": "endobench.data.synthetic",
                "seed": self.seed,
                "config": config.model_dump(mode="json"),
                "object_kinds": dict(enumerate(config.kinds, start=1)),
                "events": [e.to_dict() for e in self.events],
            },
        )

    # ----- per-clip assets, built on first use -----------------------------------------------
    @cached_property
    def texture(self) -> np.ndarray:
        """The tileable mucosa texture (side x side x 4 uint8 RGBX) the camera looks at."""
        return mucosa_texture(
            np.random.default_rng(self._texture_seed),
            self._texture_side,
            float(min(self.config.height, self.config.width)),
            specular=self.config.specular,
        )

    @cached_property
    def sprites(self) -> list[Sprite]:
        """One sprite per object (premultiplied RGBA)."""
        rng = np.random.default_rng(self._sprite_seed)
        out = []
        for kind, size in zip(self.config.kinds, self.plan.object_sizes, strict=True):
            if kind == "polyp":
                out.append(polyp_sprite(rng, size, specular=self.config.specular))
            else:
                out.append(
                    instrument_sprite(rng, size, self.plan.shaft_length, self.config.specular)
                )
        return out

    @cached_property
    def _blood(self) -> dict[int, _BloodPool]:
        rng = np.random.default_rng(self._blood_seed)
        pools = {}
        for index, radius in sorted(self.plan.blood_radius.items()):
            field, origin = blood_field(rng, radius)
            pools[index] = _BloodPool(field, origin)
        return pools

    @cached_property
    def _noise(self) -> tuple[np.ndarray, np.ndarray]:
        """Noise image (H+m x W+m x 3 uint8 centred on 128) and per-frame offsets (N x 2)."""
        h, w, m = self.config.height, self.config.width, _NOISE_MARGIN
        rng = np.random.default_rng(self._noise_seed)
        sigma = self.config.profile.noise_sigma
        noise = rng.standard_normal((h + m, w + m, 3), dtype=np.float32) * sigma + 128.5
        offsets = rng.integers(0, m + 1, size=(self.config.num_frames, 2))
        return np.clip(noise, 0, 255).astype(np.uint8), offsets

    @cached_property
    def _haze(self) -> tuple[np.ndarray, np.ndarray]:
        """Low-resolution periodic haze density (float32 in 0..1) and a flat haze-colour image."""
        rng = np.random.default_rng(self._haze_seed)
        density = periodic_noise(rng, 32, [10.0])[0]
        density = np.clip(0.75 + 0.2 * density, 0.3, 1.0)  # patchy but everywhere
        colour = np.empty((self.config.height, self.config.width, 3), np.uint8)
        colour[:] = _HAZE_RGB
        return density, colour

    # ----- rendering -----------------------------------------------------------------------
    def _roi(
        self, to_local: np.ndarray, shape: tuple[int, int], pad: int
    ) -> tuple[int, int, int, int] | None:
        """Frame box (x0, y0, x1, y1) covering a local ``shape`` (h, w) image, or None if empty."""
        h, w = shape
        to_frame = np.linalg.inv(to_local)
        corners = np.array([[0, 0, 1], [w, 0, 1], [0, h, 1], [w, h, 1]], np.float64).T
        xy = (to_frame @ corners)[:2]
        x0 = max(int(np.floor(xy[0].min())) - pad, 0)
        y0 = max(int(np.floor(xy[1].min())) - pad, 0)
        x1 = min(int(np.ceil(xy[0].max())) + pad + 1, self.config.width)
        y1 = min(int(np.ceil(xy[1].max())) + pad + 1, self.config.height)
        if x1 <= x0 or y1 <= y0:
            return None
        return x0, y0, x1, y1

    def _blur_kernel(
        self, before: np.ndarray, now: np.ndarray, x: float, y: float
    ) -> np.ndarray | None:
        """Blur kernel for content at frame point (x, y) moving by ``inv(before) @ now``."""
        if not self.config.motion_blur:
            return None
        src = _apply_point(np.linalg.inv(before) @ now, x, y)
        exposure = self.config.profile.blur_exposure
        return _line_kernel(exposure * (x - src[0]), exposure * (y - src[1]))

    def _render(self, i: int, with_image: bool) -> _Rendered:
        last = self._last
        if last is not None and last.index == i and (last.image is not None or not with_image):
            return last
        cfg, plan = self.config, self.plan
        h, w = cfg.height, cfg.width
        camera = plan.camera[i]
        prev = max(i - 1, 0) if i > 0 else min(1, len(self) - 1)
        labels = np.zeros((h, w), np.uint8)
        image = None
        if with_image:
            rgbx = cv2.warpAffine(
                self.texture, camera[:2], (w, h), flags=_WARP, borderMode=cv2.BORDER_WRAP
            )
            image = cv2.cvtColor(rgbx, cv2.COLOR_RGBA2RGB)
        polyp_ids = [k for k, kind in enumerate(cfg.kinds, start=1) if kind == "polyp"]
        instrument_ids = [k for k, kind in enumerate(cfg.kinds, start=1) if kind == "instrument"]
        for k in polyp_ids:
            self._draw_object(k, i, prev, image, labels, blur=False)
        for index, event in enumerate(self.events):
            strength = event.envelope(i) if event.kind == "blood" else 0.0
            if strength > 0.0:
                self._draw_blood(index, strength, camera, image, labels, polyp_ids)
        if image is not None and i != prev:
            centre = plan.fov_center
            before, now = (plan.camera[prev], camera) if prev < i else (camera, plan.camera[prev])
            kernel = self._blur_kernel(before, now, *centre)
            if kernel is not None:
                image = cv2.filter2D(image, -1, kernel, borderType=cv2.BORDER_REFLECT)
        for k in instrument_ids:
            self._draw_object(k, i, prev, image, labels, blur=True)
        if image is not None:
            image = self._finish_image(i, image)
        if self.fov_mask is not None:
            labels[~self.fov_mask] = 0
        rendered = _Rendered(i, image, labels)
        self._last = rendered
        return rendered

    def _draw_object(
        self,
        k: int,
        i: int,
        prev: int,
        image: np.ndarray | None,
        labels: np.ndarray,
        blur: bool,
    ) -> None:
        sprite = self.sprites[k - 1]
        poses = self.plan.to_object[k - 1]
        to_sprite = translation(*sprite.origin) @ poses[i]
        kernel = None
        if blur and image is not None and i != prev:
            before, now = (poses[prev], poses[i]) if prev < i else (poses[i], poses[prev])
            x, y = _apply_point(np.linalg.inv(poses[i]), 0.0, 0.0)
            kernel = self._blur_kernel(before, now, x, y)
        pad = 2 + (kernel.shape[0] // 2 if kernel is not None else 0)
        box = self._roi(to_sprite, sprite.alpha.shape, pad)
        if box is None:
            return
        x0, y0, x1, y1 = box
        local = (to_sprite @ translation(x0, y0))[:2]
        size = (x1 - x0, y1 - y0)
        if image is None:
            alpha = cv2.warpAffine(sprite.alpha, local, size, flags=_WARP)
            labels[y0:y1, x0:x1][alpha >= 128] = k
            return
        rgba = cv2.warpAffine(sprite.rgba, local, size, flags=_WARP)
        alpha = cv2.extractChannel(rgba, 3)
        labels[y0:y1, x0:x1][alpha >= 128] = k
        rgb = cv2.cvtColor(rgba, cv2.COLOR_RGBA2RGB)
        if kernel is not None:
            rgb = cv2.filter2D(rgb, -1, kernel, borderType=cv2.BORDER_CONSTANT)
            alpha = cv2.filter2D(alpha, -1, kernel, borderType=cv2.BORDER_CONSTANT)
        # Premultiplied "over": roi * (1 - alpha) + rgb, with saturating uint8 arithmetic.
        keep = cv2.cvtColor(cv2.bitwise_not(alpha), cv2.COLOR_GRAY2RGB)
        roi = image[y0:y1, x0:x1]
        roi[:] = cv2.add(cv2.multiply(roi, keep, scale=1.0 / 255.0), rgb)

    def _draw_blood(
        self,
        index: int,
        strength: float,
        camera: np.ndarray,
        image: np.ndarray | None,
        labels: np.ndarray,
        polyp_ids: list[int],
    ) -> None:
        pool = self._blood[index]
        to_field = translation(*pool.origin) @ self.plan.blood_pose[index] @ camera
        box = self._roi(to_field, pool.field.shape, 2)
        if box is None:
            return
        x0, y0, x1, y1 = box
        local = (to_field @ translation(x0, y0))[:2]
        field = cv2.warpAffine(
            pool.field,
            local,
            (x1 - x0, y1 - y0),
            flags=_WARP,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=-1.0,
        )
        opacity = np.clip((field - (1.0 - strength)) * 5.0, 0.0, 1.0) * _BLOOD_OPACITY
        covered = opacity >= 0.5
        roi_labels = labels[y0:y1, x0:x1]
        roi_labels[covered & np.isin(roi_labels, polyp_ids)] = 0
        if image is None:
            return
        roi = image[y0:y1, x0:x1].astype(np.float32)
        roi += (_BLOOD_RGB - roi) * opacity[..., None]
        image[y0:y1, x0:x1] = (roi + 0.5).astype(np.uint8)

    def _finish_image(self, i: int, image: np.ndarray) -> np.ndarray:
        """Smoke haze, sensor noise, then vignetting and the black surround of the FOV."""
        cfg = self.config
        h, w = cfg.height, cfg.width
        haze = max((e.envelope(i) for e in self.events if e.kind == "smoke"), default=0.0)
        if haze > 0.0:
            density, colour = self._haze
            small = (int(np.ceil(w / _HAZE_GRID)) + 1, int(np.ceil(h / _HAZE_GRID)) + 1)
            drift = translation(0.15 * i, 0.07 * i)[:2]
            low = cv2.warpAffine(density, drift, small, flags=_WARP, borderMode=cv2.BORDER_WRAP)
            weight = cv2.resize(low, (w, h), interpolation=cv2.INTER_LINEAR)
            weight *= np.float32(cfg.profile.haze_peak * haze)
            image = cv2.blendLinear(image, colour, 1.0 - weight, weight)
        if cfg.noise:
            noise, offsets = self._noise
            oy, ox = offsets[i]
            image = cv2.addWeighted(image, 1.0, noise[oy : oy + h, ox : ox + w], 1.0, -128.0)
        return cv2.multiply(image, self._gain, scale=1.0 / 255.0)

    def _load_frame_at(self, i: int) -> np.ndarray:
        image = self._render(i, with_image=True).image
        assert image is not None
        return image.copy()

    def _load_mask_at(self, i: int) -> np.ndarray:
        return self._render(i, with_image=False).labels.copy()

    # ----- ground-truth motion ---------------------------------------------------------------
    @cached_property
    def _grid(self) -> tuple[np.ndarray, np.ndarray]:
        yy, xx = np.mgrid[0 : self.config.height, 0 : self.config.width].astype(np.float32)
        return xx, yy

    def _check_flow_index(self, i: int) -> int:
        n = len(self)
        if not 1 <= i < n:
            raise IndexError(
                f"clip {self.name!r}: backward flow needs 1 <= i < {n} (frame i-1 must exist), "
                f"got {i}"
            )
        return i

    def _affine_flow(self, step: np.ndarray) -> np.ndarray:
        """Flow ``step @ p - p`` at every pixel p (H x W x 2 float32)."""
        xx, yy = self._grid
        flow = np.empty((*xx.shape, 2), np.float32)
        flow[..., 0] = (step[0, 0] - 1.0) * xx + step[0, 1] * yy + step[0, 2]
        flow[..., 1] = step[1, 0] * xx + (step[1, 1] - 1.0) * yy + step[1, 2]
        return flow

    def camera_backward_flow(self, i: int) -> np.ndarray:
        """Camera-only backward flow into frame ``i`` (H x W x 2 float32, pixels; i >= 1).

        Tissue at (x, y) in frame i was at (x + f[y, x, 0], y + f[y, x, 1]) in frame i-1.
        Defined everywhere, also outside the field of view.
        """
        self._check_flow_index(i)
        return self._affine_flow(np.linalg.inv(self.plan.camera[i - 1]) @ self.plan.camera[i])

    def object_backward_flow(self, i: int, k: int) -> np.ndarray:
        """Backward flow of object ``k`` (1..K) alone, as if it covered the whole frame.

        H x W x 2 float32: a point of object k at (x, y) in frame i was at (x + f[y, x, 0],
        y + f[y, x, 1]) in frame i-1, whether or not it is visible in either frame.
        """
        self._check_flow_index(i)
        if not 1 <= k <= len(self.plan.to_object):
            raise IndexError(
                f"clip {self.name!r}: object id must be in 1..{len(self.plan.to_object)}, got {k}"
            )
        poses = self.plan.to_object[k - 1]
        return self._affine_flow(np.linalg.inv(poses[i - 1]) @ poses[i])

    def backward_flow(self, i: int) -> np.ndarray:
        """Exact backward flow into frame ``i`` (H x W x 2 float32, pixels; i >= 1).

        On the visible pixels of object k (``mask(i) == k``) it is object k's own motion; on
        every other pixel it is the camera's motion (blood and haze move with the tissue).
        Background uncovered by a moving object maps onto that object in frame i-1
        (disocclusion), as in any exact optical flow.
        """
        flow = self.camera_backward_flow(i)
        labels = self.mask(i)
        assert labels is not None
        for k, poses in enumerate(self.plan.to_object, start=1):
            ys, xs = np.nonzero(labels == k)
            if ys.size == 0:
                continue
            step = np.linalg.inv(poses[i - 1]) @ poses[i]
            x, y = xs.astype(np.float64), ys.astype(np.float64)
            flow[ys, xs, 0] = (step[0, 0] - 1.0) * x + step[0, 1] * y + step[0, 2]
            flow[ys, xs, 1] = step[1, 0] * x + (step[1, 1] - 1.0) * y + step[1, 2]
        return flow

    def event_frames(self, kinds: Iterable[str] | None = None) -> set[int]:
        """Indices of frames touched by an occlusion event (of the given kinds, default all)."""
        wanted = None if kinds is None else set(kinds)
        return {
            t
            for e in self.events
            if wanted is None or e.kind in wanted
            for t in range(e.start, e.stop)
        }


def generate_clip(config: SyntheticConfig, seed: int, name: str | None = None) -> SyntheticClip:
    """A synthetic clip for ``config``; the same (config, seed) always gives the same pixels."""
    return SyntheticClip(config, seed, name=name)


def generate_clips(config: SyntheticConfig, seeds: Iterable[int]) -> list[SyntheticClip]:
    """One clip per seed (lazy: nothing is rendered until frames are read)."""
    return [generate_clip(config, seed) for seed in seeds]

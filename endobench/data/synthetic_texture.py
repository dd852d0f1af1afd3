"""Procedural appearance for synthetic endoscopy: mucosa texture and object sprites.

Everything is rendered once per clip. The mucosa texture is periodic (tileable) so the camera can
wander without limit by sampling it with wrap-around. Sprites carry *premultiplied* RGB and an
alpha channel, so bilinear warping does not darken their edges.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import scipy.fft


@dataclass(frozen=True)
class Sprite:
    """An object's appearance in its own pixel coordinates.

    ``rgba``: h x w x 4 uint8, RGB premultiplied by alpha (one warp moves colour and alpha);
    ``alpha``: the same alpha as a contiguous h x w array (masks alone need only this).
    ``origin``: (x, y) sprite pixel that the object's pose places (polyp centre, instrument
    tip base).
    """

    rgba: np.ndarray
    alpha: np.ndarray
    origin: tuple[float, float]


def _upsample_periodic(field: np.ndarray, factor: int) -> np.ndarray:
    """Enlarge a periodic field by an integer factor, keeping it periodic (cubic interpolation)."""
    n = field.shape[0]
    pad = 2
    wrapped = np.pad(field, pad, mode="wrap")
    big = cv2.resize(wrapped, ((n + 2 * pad) * factor,) * 2, interpolation=cv2.INTER_CUBIC)
    return big[pad * factor : (pad + n) * factor, pad * factor : (pad + n) * factor]


def periodic_noise(rng: np.random.Generator, size: int, wavelengths: list[float]) -> np.ndarray:
    """Band-limited periodic noise: one ``size x size`` float32 field per wavelength (pixels).

    Each field has zero mean and unit standard deviation and tiles seamlessly; fields come from
    independent white noise. Long wavelengths are synthesised on a coarser grid (at least 8
    samples per wavelength) and upsampled, which keeps a 1280 x 1280 texture cheap.
    """
    out = np.empty((len(wavelengths), size, size), np.float32)
    for index, wavelength in enumerate(wavelengths):
        factor = 1
        while (
            size % (2 * factor) == 0
            and wavelength / (2 * factor) >= 8
            and size // (2 * factor) >= 32
        ):
            factor *= 2
        n = size // factor
        fy = np.fft.fftfreq(n).astype(np.float32)[:, None]
        fx = np.fft.rfftfreq(n).astype(np.float32)[None, :]
        radius = np.sqrt(fx * fx + fy * fy)
        radius[0, 0] = 1.0  # avoid log(0); the DC term is removed below
        band = np.exp(-0.5 * ((np.log(radius) - np.log(factor / wavelength)) / 0.45) ** 2)
        band[0, 0] = 0.0
        white = rng.standard_normal((n, n), dtype=np.float32)
        field = scipy.fft.irfft2(scipy.fft.rfft2(white, workers=1) * band, s=(n, n), workers=1)
        field = field.astype(np.float32)
        if factor > 1:
            field = _upsample_periodic(field, factor)
        out[index] = field / (field.std() + 1e-8)
    return out


def texture_size(height: int, width: int) -> int:
    """Side of the square periodic texture: covers the rotated, zoomed-out view without repeats."""
    diagonal = float(np.hypot(height, width))
    return int(max(256, np.ceil(1.3 * diagonal / 64.0) * 64))


def _lerp(base: np.ndarray, colour: tuple[float, float, float], weight: np.ndarray) -> np.ndarray:
    return base + (np.asarray(colour, np.float32) - base) * weight[..., None]


def mucosa_texture(
    rng: np.random.Generator, size: int, scale: float, specular: bool = True
) -> np.ndarray:
    """A tileable mucosa texture, ``size x size x 4`` uint8 RGBX (the 4th channel is unused:
    cv2.warpAffine reads 4-byte pixels about 30 % faster than 3-byte ones).

    ``scale`` is the frame's shorter side in pixels: fold, vessel and grain sizes follow it, so
    a clip looks alike at 128 x 160 and at 480 x 854. Folds are shaded ridges, vessels are the
    zero crossings of band noise (a branching network), highlights sit on the fold crests.
    """
    low, fold, colour_a, colour_b, vessel_big, vessel_small, vis, grain = periodic_noise(
        rng,
        size,
        [
            0.9 * scale,
            0.45 * scale,
            0.7 * scale,
            0.5 * scale,
            0.35 * scale,
            0.12 * scale,
            0.6 * scale,
            max(2.0, 0.012 * scale),
        ],
    )
    ridges = 1.0 / (1.0 + (fold / 0.3) ** 2)  # smooth crests along the zero lines
    height_field = 0.5 * low + 0.9 * ridges
    # Light from the upper left: shading is the height field's directional derivative.
    slope = (height_field - np.roll(height_field, 2, axis=1)) + (
        height_field - np.roll(height_field, 2, axis=0)
    )
    slope *= 0.5 * 0.45 * scale / 8.0  # about scale-independent shading strength
    shade = np.clip(0.85 + 0.12 * np.tanh(0.5 * height_field) + 0.35 * np.tanh(slope), 0.5, 1.2)

    rgb = np.empty((size, size, 3), np.float32)
    rgb[..., 0] = 0.80 + 0.05 * colour_a
    rgb[..., 1] = 0.40 + 0.05 * colour_b + 0.03 * colour_a
    rgb[..., 2] = 0.35 + 0.04 * colour_b
    # Pale, yellowish patches (mucus, thinner mucosa).
    rgb = _lerp(rgb, (0.90, 0.62, 0.50), np.clip(0.5 * (colour_a - 0.8), 0.0, 0.4))

    visibility = np.clip(0.6 + 0.5 * vis, 0.0, 1.0)
    big = np.exp(-((vessel_big / 0.07) ** 2)) * visibility
    small = np.exp(-((vessel_small / 0.12) ** 2)) * np.clip(0.3 + 0.4 * vis, 0.0, 1.0)
    rgb = _lerp(rgb, (0.48, 0.10, 0.16), 0.75 * big)
    rgb = _lerp(rgb, (0.62, 0.20, 0.22), 0.45 * small)

    rgb *= shade[..., None] * (1.0 + 0.035 * grain)[..., None]
    if specular:
        crest = np.clip((slope - 1.6) * 1.5, 0.0, 1.0) * np.clip(ridges * 2.0, 0.0, 1.0)
        sparkle = np.clip((grain - 2.9) * 2.0, 0.0, 1.0) * np.clip(ridges * 1.5, 0.0, 1.0)
        highlight = np.clip(crest + sparkle, 0.0, 1.0)
        rgb = _lerp(rgb, (1.0, 0.98, 0.95), highlight)
    rgbx = np.full((size, size, 4), 255, np.uint8)
    rgbx[..., :3] = np.clip(rgb * 255.0 + 0.5, 0, 255)
    return rgbx


def _sprite(rgb: np.ndarray, alpha: np.ndarray, origin: tuple[float, float]) -> Sprite:
    """Float RGB and alpha in 0..1 -> a uint8 sprite with premultiplied colour."""
    alpha8 = np.clip(alpha * 255.0 + 0.5, 0, 255).astype(np.uint8)
    rgba = np.empty((*alpha.shape, 4), np.uint8)
    rgba[..., :3] = np.clip(np.clip(rgb, 0.0, 1.0) * alpha[..., None] * 255.0 + 0.5, 0, 255)
    rgba[..., 3] = alpha8
    return Sprite(rgba, alpha8, origin)


def polyp_sprite(rng: np.random.Generator, radius: float, specular: bool = True) -> Sprite:
    """A polyp-like blob of mean radius ``radius`` pixels: lobed outline, dome shading, gloss."""
    half = int(np.ceil(1.35 * radius)) + 2
    size = 2 * half + 1
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) - half
    rho = np.sqrt(xx * xx + yy * yy)
    theta = np.arctan2(yy, xx)
    outline = np.ones_like(rho)
    for k in (2, 3, 4, 5):
        outline += rng.uniform(0.0, 0.07 / k * 2) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    r_theta = radius * outline
    alpha = np.clip(r_theta - rho + 0.5, 0.0, 1.0)  # one-pixel anti-aliased edge

    z = np.sqrt(np.clip(1.0 - (rho / r_theta) ** 2, 0.0, 1.0))
    # GaussianBlur keeps float32; asarray only tells the type checker so (no copy).
    surface = np.asarray(
        cv2.GaussianBlur(
            rng.standard_normal((size, size)).astype(np.float32), (0, 0), max(1.0, radius / 10)
        ),
        dtype=np.float32,
    )
    surface /= surface.std() + 1e-8
    base = np.array([0.86, 0.42, 0.38], np.float32) + rng.uniform(-0.05, 0.05, 3).astype(np.float32)
    shade = 0.62 + 0.38 * z + 0.12 * (-(xx + yy) / (1.41 * radius)) * z + 0.03 * surface
    rgb = base[None, None, :] * shade[..., None]
    # Surface pit pattern: faint darker network, as in a real adenoma.
    pits = np.exp(-((surface / 0.25) ** 2))
    rgb = _lerp(rgb, (0.60, 0.20, 0.22), 0.25 * pits * z)
    if specular:
        sx, sy = -0.3 * radius, -0.35 * radius
        sigma = 0.12 * radius
        spot = np.exp(-((xx - sx) ** 2 + (yy - sy) ** 2) / (2 * sigma * sigma))
        spot += 0.7 * np.exp(-((xx - 0.15 * radius) ** 2 + (yy + 0.1 * radius) ** 2) / (sigma**2))
        rgb = _lerp(rgb, (1.0, 0.98, 0.96), np.clip(spot, 0.0, 1.0))
    return _sprite(rgb, alpha, (float(half), float(half)))


def instrument_sprite(
    rng: np.random.Generator, shaft_width: float, shaft_length: float, specular: bool = True
) -> Sprite:
    """A rigid instrument: a metallic shaft along -x ending in a two-jaw tip along +x.

    ``origin`` is the tip base (where shaft and jaws meet), so the pose places that point.
    """
    w = shaft_width
    tip = 1.7 * w
    pad = 3
    length = int(np.ceil(shaft_length + tip)) + 2 * pad
    height = int(np.ceil(1.6 * w)) + 2 * pad
    ox, oy = pad + shaft_length, height / 2.0
    shift = 4
    one = 1 << shift

    def poly(points: list[tuple[float, float]]) -> np.ndarray:
        return np.round(np.array([[(ox + x) * one, (oy + y) * one] for x, y in points])).astype(
            np.int32
        )

    shaft = poly([(-shaft_length, -w / 2), (0, -w / 2), (0, w / 2), (-shaft_length, w / 2)])
    opening = rng.uniform(0.05, 0.25) * w
    upper = poly([(0, -w / 2), (0.35 * tip, -w / 2 - opening), (tip, -0.05 * w), (0, 0)])
    lower = poly([(0, 0), (tip, 0.05 * w), (0.35 * tip, w / 2 + opening), (0, w / 2)])
    alpha8 = np.zeros((height, length), np.uint8)
    cv2.fillPoly(alpha8, [shaft, upper, lower], 255, lineType=cv2.LINE_AA, shift=shift)
    alpha = alpha8.astype(np.float32) / 255.0

    yy, xx = np.mgrid[0:height, 0:length].astype(np.float32)
    across = (yy - oy) / (w / 2)  # -1..1 over the shaft's width
    metal = 0.42 + 0.25 * np.cos(np.clip(across, -1.5, 1.5) * 1.2)
    if specular:
        metal += 0.45 * np.exp(-(((across + 0.35) / 0.12) ** 2))
    grey = rng.uniform(0.85, 1.05)
    rgb = np.repeat((metal * grey)[..., None], 3, axis=2) * np.array([0.97, 0.98, 1.0], np.float32)
    # A dark insulation band and a darker jaw assembly make the tip easy to tell from the shaft.
    local_x = xx - ox
    band = (local_x > -2.6 * w) & (local_x < -1.6 * w)
    rgb[band] *= 0.35
    jaws = local_x >= -0.25 * w
    rgb[jaws] *= 0.6
    return _sprite(rgb, alpha, (float(ox), float(oy)))


def blood_field(rng: np.random.Generator, radius: float) -> tuple[np.ndarray, tuple[float, float]]:
    """An irregular pool: float32 field, 1 at its centre falling below 0 outside ``radius``.

    The pool spreads by lowering the threshold on this field over an event (see the renderer).
    Returns the field and its centre (x, y) in field pixels.
    """
    half = int(np.ceil(1.6 * radius)) + 2
    size = 2 * half + 1
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) - half
    rough = np.asarray(
        cv2.GaussianBlur(
            rng.standard_normal((size, size)).astype(np.float32), (0, 0), max(1.0, radius / 5)
        ),
        dtype=np.float32,
    )
    rough /= rough.std() + 1e-8
    field = 1.0 - (xx * xx + yy * yy) / (radius * radius) + 0.25 * rough
    return field.astype(np.float32), (float(half), float(half))

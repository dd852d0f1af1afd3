"""Augmentation presets: mask alignment, determinism, custom endoscopic transforms, errors."""

from __future__ import annotations

import albumentations as A
import numpy as np
import pytest
from scipy import ndimage

from endobench.registry import AUGMENTATIONS
from endobench.training.augment import (
    BloodTint,
    FieldOfViewMask,
    SmokeHaze,
    SpecularHighlights,
    _leaves,
    _preset,
    build_augmentation,
    is_geometric,
    is_photometric,
    preset_names,
)

# Label k is drawn in PALETTE[k]; 0 is black, like the field-of-view border and affine fill.
PALETTE = np.array([[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255]], dtype=np.uint8)
PRESETS = ["none", "basic", "classic", "endoscopic"]


def label_scene(h: int = 96, w: int = 128) -> np.ndarray:
    """An H x W uint8 label map: grey-free blobs of labels 1..3 on background 0, asymmetric."""
    mask = np.zeros((h, w), dtype=np.uint8)
    yy, xx = np.mgrid[0:h, 0:w]
    mask[(yy - 30) ** 2 + (xx - 35) ** 2 < 18**2] = 1
    mask[10:40, 80:120] = 2
    mask[60:90, 20:110] = 3
    mask[70:80, 50:60] = 1
    return mask


def decode(image: np.ndarray) -> np.ndarray:
    """Nearest palette colour of each pixel, as a label map."""
    dist = ((image[:, :, None, :].astype(int) - PALETTE[None, None].astype(int)) ** 2).sum(-1)
    return dist.argmin(-1).astype(np.uint8)


def misaligned_far_from_edges(image: np.ndarray, mask: np.ndarray) -> tuple[float, int]:
    """(fraction of pixels whose colour disagrees with the mask, count of those > 2 px from edges).

    Linear image interpolation blends colours on label edges, so disagreement is allowed there.
    """
    wrong = decode(image) != mask
    edges = np.zeros_like(wrong)
    for axis in (0, 1):
        edges |= np.diff(mask.astype(int), axis=axis, prepend=mask.take([0], axis=axis)) != 0
        edges |= np.diff(mask.astype(int), axis=axis, append=mask.take([-1], axis=axis)) != 0
    near_edges = ndimage.binary_dilation(edges, iterations=2)
    return float(wrong.mean()), int((wrong & ~near_edges).sum())


@pytest.mark.parametrize("name", PRESETS)
def test_geometric_transforms_keep_mask_aligned(name: str) -> None:
    mask = label_scene()
    image = PALETTE[mask]
    changed = 0
    for seed in range(8):
        out = build_augmentation(name, seed=seed, geometric_only=True)(image=image, mask=mask)
        assert out["image"].shape == image.shape and out["mask"].shape == mask.shape
        assert out["mask"].dtype == np.uint8
        assert set(np.unique(out["mask"])) <= {0, 1, 2, 3}  # nearest: no blended labels
        fraction, far = misaligned_far_from_edges(out["image"], out["mask"])
        assert fraction < 0.06, (name, seed, fraction)
        assert far == 0, (name, seed, far)
        changed += int(not np.array_equal(out["mask"], mask))
    if name == "none":
        assert changed == 0
    else:  # the transforms really ran (each has probability < 1)
        assert changed >= 4


def test_alignment_check_detects_a_misaligned_pair() -> None:
    """The check above can fail: an image flipped without its mask is caught."""
    mask = label_scene()
    fraction, far = misaligned_far_from_edges(PALETTE[mask][:, ::-1], mask)
    assert fraction > 0.2 and far > 500


def test_resize_keeps_alignment_and_sets_size() -> None:
    mask = label_scene()
    out = build_augmentation("endoscopic", size=64, seed=3, geometric_only=True)(
        image=PALETTE[mask], mask=mask
    )
    assert out["image"].shape == (64, 64, 3) and out["mask"].shape == (64, 64)
    assert misaligned_far_from_edges(out["image"], out["mask"])[1] == 0


@pytest.mark.parametrize("name", PRESETS)
def test_full_preset_deterministic_with_seed(name: str) -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(64, 80, 3), dtype=np.uint8)
    mask = label_scene(64, 80)
    outs = [build_augmentation(name, seed=s)(image=image, mask=mask) for s in (7, 7, 8)]
    np.testing.assert_array_equal(outs[0]["image"], outs[1]["image"])
    np.testing.assert_array_equal(outs[0]["mask"], outs[1]["mask"])
    assert outs[0]["image"].dtype == np.uint8 and outs[0]["image"].shape == image.shape
    if name == "none":
        np.testing.assert_array_equal(outs[2]["image"], image)
    else:  # across 10 seeds some differ: the seed is really used
        variants = {
            build_augmentation(name, seed=s)(image=image, mask=mask)["image"].tobytes()
            for s in range(10)
        }
        assert len(variants) >= 5


@pytest.mark.parametrize("name", PRESETS)
def test_photometric_transforms_never_touch_the_mask(name: str) -> None:
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, size=(48, 48, 3), dtype=np.uint8)
    mask = label_scene(48, 48)
    for t in _leaves(_preset(name, 48)):
        if isinstance(t, A.ImageOnlyTransform):
            t.p = 1.0
            out = A.Compose([t], seed=0)(image=image, mask=mask)
            np.testing.assert_array_equal(out["mask"], mask)
            assert out["image"].dtype == np.uint8 and out["image"].shape == image.shape
            assert not np.array_equal(out["image"], image), type(t).__name__


def test_preset_kinds() -> None:
    assert preset_names() == sorted(PRESETS) == AUGMENTATIONS.names()
    assert AUGMENTATIONS.get("basic").description == "Flips, small affine, colour jitter."
    assert not is_geometric("none") and not is_photometric("none")
    for name in ("basic", "classic", "endoscopic"):
        assert is_geometric(name) and is_photometric(name)


def test_unknown_preset_lists_valid_names() -> None:
    with pytest.raises(ValueError, match=r"unknown preset 'heavy'.*\['basic', 'classic'"):
        build_augmentation("heavy")
    with pytest.raises(ValueError, match="endoscopic"):
        is_geometric("heavy")


def test_field_of_view_mask_background_and_void() -> None:
    image = np.full((50, 50, 3), 200, dtype=np.uint8)
    mask = np.ones((50, 50), dtype=np.uint8)
    fov = FieldOfViewMask(radius_range=(0.75, 0.75), center_shift=0.0, p=1.0)
    out = A.Compose([fov], seed=0)(image=image, mask=mask)
    outside = out["image"].sum(-1) == 0
    # Radius 0.75 * half-diagonal (26.5 px) cuts the four corners only.
    assert outside[0, 0] and outside[-1, -1] and not outside[25, 25] and not outside[0, 25]
    np.testing.assert_array_equal(out["mask"] == 0, outside)
    void = FieldOfViewMask(radius_range=(0.75, 0.75), center_shift=0.0, mask_fill=255, p=1.0)
    out_void = A.Compose([void], seed=0)(image=image, mask=mask)
    np.testing.assert_array_equal(out_void["mask"] == 255, outside)


def test_custom_photometric_effects_are_physical() -> None:
    image = np.full((40, 40, 3), 100, dtype=np.uint8)
    spec = A.Compose([SpecularHighlights(num_spots_range=(3, 3), p=1.0)], seed=0)(image=image)
    assert spec["image"].max() == 255 and (spec["image"] >= image).all()  # only brightens
    haze = A.Compose([SmokeHaze(alpha_range=(0.5, 0.5), p=1.0)], seed=0)(image=image)
    assert (haze["image"] >= image).all() and haze["image"].mean() > 110  # towards light grey
    blood = A.Compose([BloodTint(strength_range=(0.4, 0.4), p=1.0)], seed=0)(image=image)["image"]
    np.testing.assert_array_equal(blood[..., 0], 100)  # red kept
    assert (blood[..., 1] < 100).all() and (blood[..., 2] < 100).all()  # green, blue absorbed
    as_float = A.Compose([SmokeHaze(p=1.0)], seed=0)(image=image.astype(np.float32) / 255)
    assert as_float["image"].dtype == np.float32 and as_float["image"].max() <= 1.0

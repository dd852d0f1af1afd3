"""The synthetic endoscopic video generator: determinism, exact masks and motion, options, CLI."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from pydantic import ValidationError

from endobench.cli import main as cli_main
from endobench.data.label_png import read_label_png
from endobench.data.synthetic import (
    CameraMotion,
    SyntheticClip,
    SyntheticConfig,
    generate_clip,
    generate_clips,
)

K3 = np.ones((3, 3), np.uint8)


def _grid(clip: SyntheticClip) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0 : clip.config.height, 0 : clip.config.width].astype(np.float32)
    return xx, yy


def _warp(image: np.ndarray, flow: np.ndarray, interpolation: int) -> np.ndarray:
    """Backward warp: out(p) = image(p + flow(p)); outside the image -> 0."""
    yy, xx = np.mgrid[0 : flow.shape[0], 0 : flow.shape[1]].astype(np.float32)
    return cv2.remap(image, xx + flow[..., 0], yy + flow[..., 1], interpolation)


@pytest.fixture(scope="module")
def busy_config() -> SyntheticConfig:
    """Everything on: hard motion, three objects, occlusions, blur, noise."""
    return SyntheticConfig(num_frames=30, num_objects=3, difficulty="hard")


@pytest.fixture(scope="module")
def motion_clip() -> SyntheticClip:
    """Big enough objects that one-pixel rounding stays under 3 % of their area."""
    config = SyntheticConfig(height=240, width=320, num_frames=24, num_objects=3, occlusions=False)
    return generate_clip(config, seed=11)


def test_same_seed_is_bit_identical_and_seeds_differ(busy_config: SyntheticConfig) -> None:
    a, b = generate_clip(busy_config, 7), generate_clip(busy_config, 7)
    c = generate_clip(busy_config, 8)
    assert a.events == b.events and a.events, "hard clips of 30 frames schedule events"
    for i in range(len(a)):
        assert np.array_equal(a.frame(i), b.frame(i))
        assert np.array_equal(a.mask(i), b.mask(i))
        assert np.array_equal(a.backward_flow(i), b.backward_flow(i)) if i else True
    assert not np.array_equal(a.frame(0), c.frame(0))
    assert not np.array_equal(a.mask(5), c.mask(5))


def test_random_access_equals_sequential(busy_config: SyntheticConfig) -> None:
    sequential = generate_clip(busy_config, 3)
    frames = [sequential.frame(i) for i in range(len(sequential))]
    masks = [sequential.mask(i) for i in range(len(sequential))]
    shuffled = generate_clip(busy_config, 3)
    order = np.random.default_rng(0).permutation(len(shuffled))
    for i in order:  # masks first for some, frames first for others: the 1-frame cache
        if i % 2:
            assert np.array_equal(shuffled.mask(int(i)), masks[i])
            assert np.array_equal(shuffled.frame(int(i)), frames[i])
        else:
            assert np.array_equal(shuffled.frame(int(i)), frames[i])
            assert np.array_equal(shuffled.mask(int(i)), masks[i])
    assert np.array_equal(shuffled.frame(-1), frames[-1])
    returned = shuffled.frame(4)
    returned[:] = 0  # callers own the arrays they get
    assert np.array_equal(shuffled.frame(4), frames[4])


def test_clip_interface_and_objects_present(busy_config: SyntheticConfig) -> None:
    clip = generate_clip(busy_config, 1, name="demo")
    assert clip.name == "demo" and len(clip) == 30 and clip.annotated == list(range(30))
    assert clip.classes == {1: "polyp", 2: "instrument", 3: "polyp_2"}
    assert clip.fps == 25.0 and clip.meta["seed"] == 1
    frame, mask = clip.frame(0), clip.mask(0)
    assert frame.shape == (128, 160, 3) and frame.dtype == np.uint8
    assert mask.shape == (128, 160) and mask.dtype == np.uint8
    areas = np.bincount(mask.ravel(), minlength=4)
    assert set(np.unique(mask)) <= {0, 1, 2, 3}
    assert all(areas[k] > 150 for k in (1, 2, 3)), areas  # frame 0 is event-free
    assert [c.name for c in generate_clips(busy_config, [4, 5])] == [
        "synthetic_0004",
        "synthetic_0005",
    ]
    with pytest.raises(IndexError, match="1 <= i < 30"):
        clip.backward_flow(0)
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        generate_clip(busy_config, -1)


def test_fov_is_a_circle_and_black_outside(busy_config: SyntheticConfig) -> None:
    clip = generate_clip(busy_config, 2)
    yy, xx = np.mgrid[0:128, 0:160]
    radius = 1.1 * 128 / 2  # fov_radius in units of half the shorter side
    expected = (xx - 79.5) ** 2 + (yy - 63.5) ** 2 <= radius**2
    assert np.array_equal(clip.fov_mask, expected)
    assert not clip.fov_mask[0, 0] and clip.fov_mask[64, 80] and clip.fov_mask[0, 80]
    for i in range(0, len(clip), 3):
        assert not clip.frame(i)[~clip.fov_mask].any()
        assert not clip.mask(i)[~clip.fov_mask].any()
    open_view = generate_clip(busy_config.model_copy(update={"fov": False}), 2)
    assert open_view.fov_mask.all() and open_view.frame(0)[0, 0].any()


def test_masks_move_with_the_ground_truth_object_motion(motion_clip: SyntheticClip) -> None:
    """Warping mask i-1 by an object's own motion reproduces mask i up to pixel rounding."""
    clip = motion_clip
    fov = cv2.erode(clip.fov_mask.astype(np.uint8), K3)
    skip = clip.event_frames(["blood", "exit"])
    ious: dict[int, list[float]] = {1: [], 2: [], 3: []}
    off_boundary = compared = 0
    for i in range(1, len(clip)):
        if i in skip or i - 1 in skip:
            continue
        previous, current = clip.mask(i - 1), clip.mask(i)
        for k in ious:
            flow = clip.object_backward_flow(i, k)
            warped = _warp(previous, flow, cv2.INTER_NEAREST)
            source_in_view = _warp(fov, flow, cv2.INTER_NEAREST) > 0
            # Compare where both ends are in view and no other object hides k.
            valid = source_in_view & (fov > 0) & np.isin(warped, (0, k)) & np.isin(current, (0, k))
            a, b = (warped == k) & valid, (current == k) & valid
            obj = (current == k).astype(np.uint8)
            band = (cv2.dilate(obj, K3) - cv2.erode(obj, K3)) > 0
            off_boundary += int(((a ^ b) & ~band).sum())
            compared += int(b.sum())
            if b.sum() > 300:
                ious[k].append((a & b).sum() / (a | b).sum())
    assert all(len(v) >= 10 for v in ious.values()), {k: len(v) for k, v in ious.items()}
    for k, values in ious.items():
        assert np.mean(values) > 0.97, (k, np.mean(values))
        assert min(values) > 0.93, (k, min(values))
    # Disagreements are one-pixel rounding at the outline, not geometry errors.
    assert off_boundary <= 0.0005 * compared, (off_boundary, compared)


def test_backward_flow_composes_object_and_camera_motion(motion_clip: SyntheticClip) -> None:
    clip = motion_clip
    i = 5
    flow, camera, labels = clip.backward_flow(i), clip.camera_backward_flow(i), clip.mask(i)
    assert flow.shape == (240, 320, 2) and flow.dtype == np.float32
    assert np.array_equal(flow[labels == 0], camera[labels == 0])
    for k in (1, 2, 3):
        on_k = labels == k
        assert on_k.any()
        assert np.allclose(flow[on_k], clip.object_backward_flow(i, k)[on_k], atol=1e-4)
        assert np.abs(flow[on_k] - camera[on_k]).max() > 0.05  # objects move on their own


def _near_other_objects(current: np.ndarray, warped: np.ndarray, k: int) -> np.ndarray:
    """Pixels within 5 px of another object in frame i or in warped frame i-1 (contacts)."""
    other = ((current > 0) & (current != k)) | ((warped > 0) & (warped != k))
    return cv2.dilate(other.astype(np.uint8), np.ones((11, 11), np.uint8)) > 0


def test_mask_warped_by_backward_flow_matches_next_mask() -> None:
    """The brief's check: warp mask i-1 by backward_flow(i) (nearest), compare with mask i.

    Away from occlusion events and object contacts the only differences are outline rounding
    and the background a moving object uncovers (a band as wide as its motion, which is why
    the thin instrument scores lower than the polyps).
    """
    config = SyntheticConfig(height=240, width=320, num_frames=24, num_objects=3, difficulty="easy")
    clip = generate_clip(config, 0)
    fov = cv2.erode(clip.fov_mask.astype(np.uint8), K3)
    skip = clip.event_frames(["blood", "exit"])
    ious: dict[int, list[float]] = {1: [], 2: [], 3: []}
    for i in range(1, len(clip)):
        if i in skip or i - 1 in skip:
            continue
        current, flow = clip.mask(i), clip.backward_flow(i)
        warped = _warp(clip.mask(i - 1), flow, cv2.INTER_NEAREST)
        in_view = (_warp(fov, flow, cv2.INTER_NEAREST) > 0) & (fov > 0)
        for k in ious:
            valid = in_view & ~_near_other_objects(current, warped, k)
            a, b = (warped == k) & valid, (current == k) & valid
            if b.sum() > 300:
                ious[k].append((a & b).sum() / (a | b).sum())
    assert all(len(v) >= 15 for v in ious.values()), {k: len(v) for k, v in ious.items()}
    for k in (1, 3):  # polyps
        assert min(ious[k]) > 0.94 and np.mean(ious[k]) > 0.97, (k, ious[k])
    assert np.mean(ious[2]) > 0.94, ious[2]  # instrument: thin, moves most


def test_frames_move_with_the_flow_in_textured_areas() -> None:
    config = SyntheticConfig(
        height=160, width=200, num_frames=12, occlusions=False, noise=False, motion_blur=False
    )
    clip = generate_clip(config, 5)
    interior = cv2.erode(clip.fov_mask.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
    for i in range(1, len(clip)):
        flow, labels = clip.backward_flow(i), clip.mask(i)
        # Away from object outlines (disocclusions, anti-aliased edges).
        edges = cv2.dilate(cv2.Canny(labels * 60, 1, 1), np.ones((7, 7), np.uint8)) > 0
        region = interior & ~edges & (_warp(interior.astype(np.uint8), flow, 0) > 0)
        current = clip.frame(i).astype(np.float32)
        previous = clip.frame(i - 1).astype(np.float32)
        warped = _warp(previous, flow, cv2.INTER_LINEAR)
        err = np.abs(warped - current)[region].mean()
        unwarped = np.abs(previous - current)[region].mean()
        assert current[region].std() > 15  # textured
        assert err < 4.0, (i, err)
        assert err < 0.5 * unwarped, (i, err, unwarped)


def test_constant_camera_motion_gives_the_configured_flow() -> None:
    base = SyntheticConfig(height=64, width=96, num_frames=4, num_objects=0, occlusions=False)
    shifted = generate_clip(
        base.model_copy(update={"camera": CameraMotion(translation=(2.5, -1.25))}), 0
    )
    for i in (1, 3):
        flow = shifted.camera_backward_flow(i)
        assert np.allclose(flow[..., 0], 2.5, atol=1e-4)
        assert np.allclose(flow[..., 1], -1.25, atol=1e-4)
        assert np.array_equal(flow, shifted.backward_flow(i))  # no objects
    xx, yy = _grid(shifted)
    cx, cy = 47.5, 31.5
    rolled = generate_clip(base.model_copy(update={"camera": CameraMotion(rotation_deg=3.0)}), 0)
    a = np.deg2rad(3.0)
    expected_x = np.cos(a) * (xx - cx) - np.sin(a) * (yy - cy) + cx - xx
    expected_y = np.sin(a) * (xx - cx) + np.cos(a) * (yy - cy) + cy - yy
    flow = rolled.camera_backward_flow(2)
    assert np.allclose(flow[..., 0], expected_x, atol=1e-3)
    assert np.allclose(flow[..., 1], expected_y, atol=1e-3)
    zoomed = generate_clip(base.model_copy(update={"camera": CameraMotion(zoom=1.25)}), 0)
    flow = zoomed.camera_backward_flow(1)
    assert np.allclose(flow[..., 0], (xx - cx) / 1.25 + cx - xx, atol=1e-3)
    assert np.allclose(flow[..., 1], (yy - cy) / 1.25 + cy - yy, atol=1e-3)
    # And the pixels agree: frame 1 is frame 0 shifted by the flow (texture only, no noise).
    quiet = base.model_copy(
        update={
            "camera": CameraMotion(translation=(3.0, 2.0)),
            "noise": False,
            "motion_blur": False,
            "vignetting": False,
            "fov": False,
        }
    )
    clip = generate_clip(quiet, 0)
    assert np.abs(clip.frame(1)[:-2, :-3].astype(int) - clip.frame(0)[2:, 3:]).max() <= 1


def _camera_speed(config: SyntheticConfig, seeds: range) -> float:
    speeds = []
    for seed in seeds:
        clip = generate_clip(config, seed)
        centre = (config.height // 2, config.width // 2)
        speeds += [np.hypot(*clip.camera_backward_flow(i)[centre]) for i in range(1, len(clip))]
    return float(np.median(speeds))


def test_difficulty_scales_motion_events_and_noise() -> None:
    configs = {d: SyntheticConfig(num_frames=40, difficulty=d) for d in ("easy", "medium", "hard")}
    speed = {d: _camera_speed(c, range(3)) for d, c in configs.items()}
    assert speed["easy"] < speed["medium"] < speed["hard"], speed
    events = {d: sum(len(generate_clip(c, s).events) for s in range(8)) for d, c in configs.items()}
    assert events["easy"] < events["hard"], events
    assert all(
        not generate_clip(configs["hard"].model_copy(update={"occlusions": False}), s).events
        for s in range(4)
    )
    # Sensor noise: the same scene differs from its noise-free rendering by about sigma.
    for difficulty, sigma in (("easy", 1.5), ("hard", 6.0)):
        noisy = generate_clip(configs[difficulty], 0)
        clean = generate_clip(configs[difficulty].model_copy(update={"noise": False}), 0)
        centre = np.s_[40:90, 50:110]
        diff = noisy.frame(0)[centre].astype(float) - clean.frame(0)[centre]
        assert abs(diff.std() - sigma * 0.95) < 0.35 * sigma, (difficulty, diff.std())


def _sharpness(image: np.ndarray) -> float:
    return float(cv2.Laplacian(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), cv2.CV_32F).var())


def test_blur_and_vignetting_have_measurable_effects() -> None:
    config = SyntheticConfig(num_frames=12, difficulty="hard", occlusions=False, noise=False)
    blurred = generate_clip(config, 4)
    sharp = generate_clip(config.model_copy(update={"motion_blur": False}), 4)
    i = max(range(1, 12), key=lambda j: np.hypot(*blurred.camera_backward_flow(j)[64, 80]))
    assert _sharpness(blurred.frame(i)) < 0.8 * _sharpness(sharp.frame(i))
    assert np.array_equal(blurred.mask(i), sharp.mask(i))  # blur never changes masks
    flat = generate_clip(config.model_copy(update={"vignetting": False}), 4)
    rim = blurred.fov_mask & ~cv2.erode(
        blurred.fov_mask.astype(np.uint8), np.ones((25, 25))
    ).astype(bool)
    ratio = blurred.frame(0)[rim].mean() / flat.frame(0)[rim].mean()
    assert 0.5 < ratio < 0.75, ratio


def _first_clip_with(config: SyntheticConfig, kind: str, objects_kind: str | None = None):
    for seed in range(200):
        clip = generate_clip(config, seed)
        for event in clip.events:
            if event.kind == kind and (
                objects_kind is None
                or (
                    event.objects
                    and all(config.kinds[k - 1] == objects_kind for k in event.objects)
                )
            ):
                return clip, event
    raise AssertionError(f"no {kind} event in 200 seeds")


def test_occlusion_events_change_images_and_masks_as_documented() -> None:
    config = SyntheticConfig(num_frames=60, difficulty="hard")
    # Smoke: contrast drops, masks untouched.
    clip, smoke = _first_clip_with(
        config.model_copy(update={"occlusion_kinds": ("smoke",)}), "smoke"
    )
    peak = (smoke.start + smoke.stop) // 2
    before = smoke.start - 1
    centre = np.s_[34:94, 50:110]  # away from the vignetted rim
    grey = [cv2.cvtColor(clip.frame(t), cv2.COLOR_RGB2GRAY)[centre] for t in (before, peak)]
    assert grey[1].std() < 0.8 * grey[0].std(), (grey[0].std(), grey[1].std())
    assert grey[1].mean() > grey[0].mean() + 20  # whitish smoke
    clear = generate_clip(config.model_copy(update={"occlusions": False}), clip.seed)
    assert np.array_equal(clip.frame(before), clear.frame(before))  # same scene, no events
    for t in range(smoke.start, smoke.stop):
        assert np.array_equal(clip.mask(t), clear.mask(t))
        assert not np.array_equal(clip.frame(t), clear.frame(t))
    # Blood: covers part of a polyp, which leaves the mask.
    clip, blood = _first_clip_with(
        config.model_copy(update={"occlusion_kinds": ("blood",)}), "blood"
    )
    peak = (blood.start + blood.stop) // 2
    area = lambda t: int(np.isin(clip.mask(t), blood.objects).sum())  # noqa: E731
    assert area(peak) < 0.9 * area(blood.start - 1), (area(peak), area(blood.start - 1))
    # Leaving the view: the polyp (camera swings away) or the instrument (withdrawn) vanishes.
    exits = config.model_copy(update={"occlusion_kinds": ("exit",)})
    for kind in ("polyp", "instrument"):
        clip, gone = _first_clip_with(exits, "exit", kind)
        peak = (gone.start + gone.stop) // 2
        assert all(np.isin(clip.mask(peak), gone.objects).sum() == 0 for _ in [0]), kind
        assert np.isin(clip.mask(gone.start - 1), gone.objects).sum() > 100, kind


def test_cli_writes_a_davis_layout(tmp_path) -> None:
    code = cli_main(
        [
            "synth",
            "--out",
            str(tmp_path),
            "--frames",
            "4",
            "--seed",
            "3",
            "--name",
            "demo",
            "--difficulty",
            "hard",
        ]
    )
    assert code == 0
    images = sorted((tmp_path / "JPEGImages" / "480p" / "demo").glob("*.jpg"))
    masks = sorted((tmp_path / "Annotations" / "480p" / "demo").glob("*.png"))
    assert [p.name for p in images] == [f"{i:05d}.jpg" for i in range(4)]
    assert [p.name for p in masks] == [f"{i:05d}.png" for i in range(4)]
    clip = generate_clip(SyntheticConfig(num_frames=4, difficulty="hard"), 3, name="demo")
    for i in range(4):
        assert np.array_equal(read_label_png(masks[i]), clip.mask(i))
        jpeg = cv2.cvtColor(cv2.imread(str(images[i])), cv2.COLOR_BGR2RGB)
        assert np.abs(jpeg.astype(int) - clip.frame(i)).mean() < 4.0
    assert not list(tmp_path.rglob(".*tmp*"))  # atomic writes leave no temp files


def test_config_validation_errors_are_clear(capsys) -> None:
    with pytest.raises(ValidationError, match="height"):
        SyntheticConfig(height=8)
    with pytest.raises(ValidationError, match="difficulty"):
        SyntheticConfig(difficulty="extreme")
    with pytest.raises(ValidationError, match="heigth"):
        SyntheticConfig(heigth=100)
    with pytest.raises(ValidationError, match="object_kinds has 1 entries but num_objects is 2"):
        SyntheticConfig(num_objects=2, object_kinds=("polyp",))
    assert SyntheticConfig(num_objects=3).kinds == ("polyp", "instrument", "polyp")
    assert cli_main(["synth", "--out", "unused", "--frames", "0"]) == 2
    assert "num_frames" in capsys.readouterr().err


def test_davis_resolution_is_supported() -> None:
    clip = generate_clip(SyntheticConfig(height=480, width=854, num_frames=2), 0)
    frame, mask = clip.frame(1), clip.mask(1)
    assert frame.shape == (480, 854, 3) and mask.shape == (480, 854)
    assert clip.backward_flow(1).shape == (480, 854, 2)
    assert set(np.unique(mask)) == {0, 1, 2}
    yy, xx = np.mgrid[0:480, 0:854]
    # r = 1.1 * 240 = 264 > 240: the circle is cut by the top and bottom edges, as in real scopes
    assert np.array_equal(clip.fov_mask, (xx - 426.5) ** 2 + (yy - 239.5) ** 2 <= 264**2)
    assert clip.fov_mask[0, 426] and not clip.fov_mask[239, 150]

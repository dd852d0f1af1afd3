"""Geometry of a synthetic clip: camera and object trajectories and the occlusion schedule.

All poses are 3 x 3 float64 affine matrices, precomputed for every frame, so any frame can be
rendered on its own (random access equals sequential access). Conventions:

- ``camera[t]`` maps frame pixel coordinates (x, y) to mucosa-texture coordinates.
- ``to_object[k][t]`` maps frame pixel coordinates to object k's own coordinates (pixels,
  origin at the object's anchor: polyp centre, instrument tip base); the renderer adds the
  sprite's origin offset.
- ``blood_pose[e]`` maps texture coordinates to blood event e's own coordinates (pool centre).

With these, content at frame pixel p of frame t was at ``inv(M[t-1]) @ M[t] @ p`` in frame t-1,
which is what the ground-truth backward flow evaluates.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from endobench.data.synthetic_config import DifficultyProfile, SyntheticConfig


def similarity(tx: float, ty: float, angle: float = 0.0, scale: float = 1.0) -> np.ndarray:
    """3 x 3 matrix of ``p -> T(tx, ty) @ R(angle) @ S(scale) @ p`` (angle in radians)."""
    c, s = np.cos(angle) * scale, np.sin(angle) * scale
    return np.array([[c, -s, tx], [s, c, ty], [0.0, 0.0, 1.0]])


def translation(tx: float, ty: float) -> np.ndarray:
    """3 x 3 matrix of a translation by (tx, ty)."""
    return similarity(tx, ty)


def smoothstep(x: np.ndarray | float) -> np.ndarray:
    """0 below 0, 1 above 1, C1-smooth in between."""
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


@dataclass(frozen=True)
class OcclusionEvent:
    """One occlusion over frames ``start <= t < stop``.

    kind: "smoke" (haze; masks unchanged), "blood" (pool on the tissue; hides polyps under
    opacity >= 0.5), "exit" (the objects in ``objects`` leave the field of view and return).
    ``objects``: ids whose masks the event can change.
    """

    kind: str
    start: int
    stop: int
    objects: tuple[int, ...] = ()

    def envelope(self, t: int) -> float:
        """Strength at frame t: ramps in over the first third, holds, ramps out over the last."""
        if not self.start <= t < self.stop:
            return 0.0
        ramp = max(1.0, (self.stop - self.start) / 3.0)
        rise = smoothstep((t - self.start + 1) / ramp)
        fall = smoothstep((self.stop - t) / ramp)
        return float(min(rise, fall))

    def to_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "start": self.start, "stop": self.stop, "objects": self.objects}


@dataclass
class ScenePlan:
    """Everything geometric about a clip, for all frames (see module docstring)."""

    camera: np.ndarray  # N x 3 x 3
    to_object: list[np.ndarray]  # K arrays N x 3 x 3
    object_sizes: list[float]  # polyp radius or instrument shaft width (pixels)
    shaft_length: float
    events: list[OcclusionEvent]
    blood_pose: dict[int, np.ndarray] = field(default_factory=dict)  # event index -> 3 x 3
    blood_radius: dict[int, float] = field(default_factory=dict)
    fov_center: tuple[float, float] = (0.0, 0.0)
    fov_radius: float = 0.0


def _oscillation(
    rng: np.random.Generator, t: np.ndarray, amplitude: float, speed: float, terms: int = 2
) -> np.ndarray:
    """Smooth bounded motion: a sum of sinusoids with total amplitude ``amplitude`` whose peak
    rate of change is about ``speed`` per frame."""
    out = np.zeros_like(t)
    if amplitude <= 0.0 or speed <= 0.0:
        return out
    for _ in range(terms):
        a = amplitude / terms * rng.uniform(0.6, 1.0)
        omega = speed / amplitude * rng.uniform(0.6, 1.0)
        out += a * np.sin(omega * t + rng.uniform(0.0, 2.0 * np.pi))
    return out


def schedule_events(
    rng: np.random.Generator,
    config: SyntheticConfig,
    camera_exit_possible: bool,
) -> list[OcclusionEvent]:
    """Draw the clip's occlusion events. Frame 0 is always free of events (it is the usual
    reference frame of semi-supervised tracking)."""
    profile: DifficultyProfile = config.profile
    n = config.num_frames
    lo, hi = profile.event_frames
    if not config.occlusions or n < lo + 2:
        return []
    kinds = config.kinds
    polyps = tuple(k for k, kind in enumerate(kinds, start=1) if kind == "polyp")
    instruments = [k for k, kind in enumerate(kinds, start=1) if kind == "instrument"]
    exit_targets: list[tuple[int, ...]] = [(k,) for k in instruments]
    if camera_exit_possible and polyps:
        exit_targets.append(polyps)
    available = [kind for kind in config.occlusion_kinds if kind != "exit" or exit_targets]
    if not available:
        return []
    expected = profile.events_per_100_frames * n / 100.0
    count = int(expected) + int(rng.random() < expected - int(expected))
    events: list[OcclusionEvent] = []
    for _ in range(count):
        kind = str(available[rng.integers(len(available))])
        # Leaving the view and coming back takes longer than a puff of smoke.
        stretch = 2 if kind == "exit" else 1
        if n < stretch * lo + 2:
            continue
        duration = int(rng.integers(stretch * lo, min(stretch * hi, n - 2) + 1))
        objects: tuple[int, ...] = ()
        if kind == "exit":
            objects = exit_targets[rng.integers(len(exit_targets))]
        elif kind == "blood":
            objects = polyps
        for _attempt in range(10):
            start = int(rng.integers(1, n - duration + 1))
            candidate = OcclusionEvent(kind, start, start + duration, objects)
            clash = any(
                e.kind == kind
                and (kind != "exit" or e.objects == objects)
                and e.start < candidate.stop
                and candidate.start < e.stop
                for e in events
            )
            if not clash:
                events.append(candidate)
                break
    return sorted(events, key=lambda e: (e.start, e.kind))


def plan_scene(
    config: SyntheticConfig,
    rng: np.random.Generator,
    event_rng: np.random.Generator,
    texture_side: int,
) -> ScenePlan:
    """Trajectories of the camera and of every object, and the occlusion events.

    Events draw only from ``event_rng``, so switching occlusions off (or changing their kinds)
    leaves the scene and its motion outside the events unchanged.
    """
    n, h, w = config.num_frames, config.height, config.width
    profile = config.profile
    side = float(min(h, w))
    fc = ((w - 1) / 2.0, (h - 1) / 2.0)
    radius = config.fov_radius * side / 2.0 if config.fov else float(np.hypot(h, w) / 2.0)
    t = np.arange(n, dtype=np.float64)
    kinds = config.kinds
    random_camera = config.camera is None
    events = schedule_events(event_rng, config, camera_exit_possible=random_camera)

    # Object sizes and where the polyps sit on the tissue (texture coordinates).
    anchor = np.array([texture_side / 2.0, texture_side / 2.0])
    sizes: list[float] = []
    polyp_at: dict[int, np.ndarray] = {}
    for k, kind in enumerate(kinds, start=1):
        if kind == "polyp":
            r = rng.uniform(0.13, 0.2) * side
            position = anchor.copy()
            for _attempt in range(50):
                offset = rng.uniform(-0.55, 0.55, 2) * radius if polyp_at else np.zeros(2)
                position = anchor + offset
                if all(
                    np.hypot(*(position - p)) > 1.15 * (r + sizes[j - 1])
                    for j, p in polyp_at.items()
                ):
                    break
            polyp_at[k] = position
            sizes.append(r)
        else:
            sizes.append(rng.uniform(0.07, 0.1) * side)
    shaft_length = 1.6 * radius

    # Camera: frame -> texture.
    theta0 = rng.uniform(0.0, 2.0 * np.pi)
    start_offset = rng.uniform(-0.25, 0.25, 2) * radius
    camera = np.empty((n, 3, 3))
    if random_camera:
        amplitude = 0.3 * radius
        speed = profile.camera_speed * side
        cx = anchor[0] + start_offset[0] + _oscillation(rng, t, amplitude, speed)
        cy = anchor[1] + start_offset[1] + _oscillation(rng, t, amplitude, speed)
        rot_amp = np.deg2rad(profile.camera_rotation_deg)
        theta = theta0 + _oscillation(rng, t, rot_amp, rot_amp / 25.0)
        log_zoom = _oscillation(rng, t, profile.zoom_amplitude, profile.zoom_amplitude / 25.0)
        scale = np.exp(log_zoom)  # texture pixels per frame pixel (> 1: zoomed out)
        spread = max((float(np.hypot(*(p - anchor))) for p in polyp_at.values()), default=0.0)
        r_max = max((sizes[k - 1] for k in polyp_at), default=0.0)
        for e in events:
            if e.kind == "exit" and polyp_at and e.objects == tuple(polyp_at):
                away = float(np.exp(profile.zoom_amplitude)) * (radius + 1.5 * r_max)
                distance = away + spread + float(np.hypot(*start_offset)) + amplitude
                direction = event_rng.uniform(0.0, 2.0 * np.pi)
                env = np.array([e.envelope(int(i)) for i in t])
                cx += distance * np.cos(direction) * env
                cy += distance * np.sin(direction) * env
        centre = translation(-fc[0], -fc[1])
        for i in range(n):
            camera[i] = similarity(cx[i], cy[i], theta[i], scale[i]) @ centre
    else:
        motion = config.camera
        assert motion is not None
        step = (
            translation(fc[0] + motion.translation[0], fc[1] + motion.translation[1])
            @ similarity(0.0, 0.0, np.deg2rad(motion.rotation_deg), 1.0 / motion.zoom)
            @ translation(-fc[0], -fc[1])
        )
        x0, y0 = anchor + start_offset
        camera[0] = similarity(x0, y0, theta0, 1.0) @ translation(-fc[0], -fc[1])
        for i in range(1, n):
            camera[i] = camera[i - 1] @ step

    to_object: list[np.ndarray] = []
    entry_angle = rng.uniform(0.0, 2.0 * np.pi)
    for k, kind in enumerate(kinds, start=1):
        size = sizes[k - 1]
        poses = np.empty((n, 3, 3))
        obj_speed = profile.object_speed * side
        obj_rot = np.deg2rad(profile.object_rotation_deg)
        if kind == "polyp":
            wobble = 0.05 * side
            px = polyp_at[k][0] + _oscillation(rng, t, wobble, obj_speed)
            py = polyp_at[k][1] + _oscillation(rng, t, wobble, obj_speed)
            phi = rng.uniform(0.0, 2.0 * np.pi) + _oscillation(rng, t, obj_rot, obj_rot / 15.0)
            breathe = 1.0 + _oscillation(rng, t, 0.04, 0.004, terms=1)
            for i in range(n):
                to_texture = similarity(px[i], py[i], phi[i], breathe[i])
                poses[i] = np.linalg.inv(to_texture) @ camera[i]
        else:
            entry_angle += rng.uniform(0.6, 1.4) * np.pi
            ex = fc[0] + 1.25 * radius * np.cos(entry_angle)
            ey = fc[1] + 1.25 * radius * np.sin(entry_angle)
            alpha = (
                entry_angle
                + np.pi
                + rng.uniform(-0.4, 0.4)
                + _oscillation(rng, t, 1.5 * obj_rot, 1.5 * obj_rot / 12.0)
            )
            depth = rng.uniform(0.6, 0.9) * radius + _oscillation(rng, t, 0.2 * radius, obj_speed)
            withdrawn = -1.7 * size - 0.1 * radius  # jaws fully outside the field of view
            for e in events:
                if e.kind == "exit" and e.objects == (k,):
                    env = np.array([e.envelope(int(i)) for i in t])
                    depth = (1.0 - env) * depth + env * withdrawn
            tip_x = ex + depth * np.cos(alpha)
            tip_y = ey + depth * np.sin(alpha)
            for i in range(n):
                poses[i] = np.linalg.inv(similarity(tip_x[i], tip_y[i], alpha[i], 1.0))
        to_object.append(poses)

    plan = ScenePlan(
        camera=camera,
        to_object=to_object,
        object_sizes=sizes,
        shaft_length=shaft_length,
        events=events,
        fov_center=fc,
        fov_radius=radius,
    )
    for index, e in enumerate(events):
        if e.kind != "blood":
            continue
        blood_r = event_rng.uniform(0.18, 0.3) * side
        if polyp_at:
            target = list(polyp_at)[event_rng.integers(len(polyp_at))]
            angle = event_rng.uniform(0.0, 2.0 * np.pi)
            where = polyp_at[target] + 0.6 * sizes[target - 1] * np.array(
                [np.cos(angle), np.sin(angle)]
            )
        else:
            where = (camera[e.start] @ np.array([fc[0], fc[1], 1.0]))[:2]
            where = where + event_rng.uniform(-0.4, 0.4, 2) * radius
        to_texture = similarity(where[0], where[1], event_rng.uniform(0, 2 * np.pi))
        plan.blood_pose[index] = np.linalg.inv(to_texture)
        plan.blood_radius[index] = blood_r
    return plan

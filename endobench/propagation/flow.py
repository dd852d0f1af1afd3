"""Dense optical flow behind one interface: OpenCV DIS and Farneback, torchvision RAFT.

Every estimator is called as ``estimator(prev, next) -> H x W x 2`` float32 flow in the OpenCV
convention: the content at pixel ``(x, y)`` of ``prev`` is found at
``(x + flow[y, x, 0], y + flow[y, x, 1])`` in ``next`` (units: pixels). To carry labels from
frame ``t-1`` to frame ``t`` by backward warping, call ``estimator(frame_t, frame_t_minus_1)``.
Inputs are ``H x W x 3`` uint8 RGB or ``H x W`` uint8 grayscale frames of the same size.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from endobench.errors import UserError
from endobench.io_utils import sha256_file
from endobench.propagation.flow_levels import CoarseFlow, Shrinker, exact_at_level
from endobench.registry import FLOW_ESTIMATORS

_DIS_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}

# Every setting a DIS object has besides its finest scale (getter / setter suffixes).
_DIS_SETTINGS = (
    "GradientDescentIterations", "PatchSize", "PatchStride", "VariationalRefinementIterations",
    "VariationalRefinementAlpha", "VariationalRefinementDelta", "VariationalRefinementGamma",
    "VariationalRefinementEpsilon", "UseMeanNormalization", "UseSpatialPropagation",
)  # fmt: skip

# The inverse search of the presets stops before it converges on large motion: on the shared
# real clips one-step warp IoU and J&F rise up to 32 iterations and are flat beyond (48, 64,
# 128), at no measurable flow cost (bench/bench_tracking.py "what each change bought").
PROPAGATION_DIS_ITERATIONS = 32


class FlowError(UserError, ValueError):
    """A flow estimator could not be built or called as asked; the message says what to change."""


def to_gray(frame: np.ndarray) -> np.ndarray:
    """``H x W x 3`` uint8 RGB (or ``H x W`` gray, returned as is) -> ``H x W`` uint8 gray."""
    frame = np.asarray(frame)
    if frame.ndim == 2:
        return frame if frame.dtype == np.uint8 else frame.astype(np.uint8)
    if frame.ndim == 3 and frame.shape[2] == 3:
        return cv2.cvtColor(np.ascontiguousarray(frame, dtype=np.uint8), cv2.COLOR_RGB2GRAY)
    raise FlowError(f"frame: expected H x W x 3 RGB or H x W gray, got shape {frame.shape}")


def _check_pair(prev: np.ndarray, nxt: np.ndarray) -> None:
    if prev.shape[:2] != nxt.shape[:2]:
        raise FlowError(
            f"frames differ in size: prev {prev.shape[:2]} vs next {nxt.shape[:2]} (H x W); "
            "flow needs two frames of the same size"
        )


class FlowEstimator:
    """Base of every estimator: ``estimator(prev, next) -> H x W x 2`` float32 (OpenCV convention).

    ``name`` is the spec it was built from; ``info()`` gives its provenance for reports.
    ``grayscale`` says whether the estimator only needs gray frames (callers may then pass
    pre-converted ``H x W`` uint8 frames to avoid converting a frame twice).
    """

    name: str = ""
    grayscale: ClassVar[bool] = True

    def __call__(self, prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def info(self) -> dict[str, Any]:
        """Provenance: ``{"name", "source", "sha256"}`` (sha256 of weights, None without weights)."""
        return {"name": self.name, "source": f"opencv {cv2.__version__}", "sha256": None}


class DISFlow(FlowEstimator):
    """OpenCV Dense Inverse Search flow (Kroeger et al. 2016); the fast CPU default.

    ``iterations``: gradient-descent iterations of the inverse search per patch and scale; None
    keeps the preset's (12 / 16 / 25 for ultrafast / fast / medium). Propagation builds DIS with
    ``PROPAGATION_DIS_ITERATIONS`` (the ``dis`` entry of ``FLOW_ESTIMATORS``). ``finest_scale``:
    the pyramid level the flow field is computed at (0 = full resolution, 1 = half, 2 = quarter);
    None keeps the preset's (2 / 2 / 1): one level finer costs about 3x the flow time.
    ``patch_size`` / ``patch_stride`` (pixels at each level; presets 8 / 4, 8 / 4, 8 / 3) and
    ``refinement_iterations`` (variational refinement per level; presets 0 / 5 / 5): None keeps
    the preset's. ``name`` is the spec that builds it again (``dis:ultrafast,finest_scale=1``).
    """

    def __init__(
        self,
        preset: str = "fast",
        iterations: int | None = None,
        finest_scale: int | None = None,
        *,
        patch_size: int | None = None,
        patch_stride: int | None = None,
        refinement_iterations: int | None = None,
    ) -> None:
        if preset not in _DIS_PRESETS:
            raise FlowError(f"DIS preset {preset!r}: expected one of {sorted(_DIS_PRESETS)}")
        self.name = f"dis:{preset}"
        self._dis = cv2.DISOpticalFlow_create(_DIS_PRESETS[preset])  # type: ignore[attr-defined]  # missing from OpenCV's stubs
        if iterations is not None:
            if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
                raise FlowError(f"DIS iterations {iterations!r}: expected an integer >= 1")
            self._dis.setGradientDescentIterations(iterations)
        self.iterations = int(self._dis.getGradientDescentIterations())
        settings = (
            ("finest_scale", finest_scale, 0, "FinestScale", "0 = full resolution"),
            ("patch_size", patch_size, 1, "PatchSize", "pixels"),
            ("patch_stride", patch_stride, 1, "PatchStride", "pixels"),
            ("refinement_iterations", refinement_iterations, 0, "VariationalRefinementIterations", "0 = none"),
        )  # fmt: skip
        for field, value, low, setter, meaning in settings:
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise FlowError(f"DIS {field} {value!r}: expected an integer >= {low} ({meaning})")
            getattr(self._dis, "set" + setter)(value)
            self.name += f",{field}={value}"
        self.finest_scale = int(self._dis.getFinestScale())
        self.patch_size = int(self._dis.getPatchSize())
        self.patch_stride = int(self._dis.getPatchStride())
        self.refinement_iterations = int(self._dis.getVariationalRefinementIterations())
        if self.patch_stride > self.patch_size:
            raise FlowError(
                f"DIS patch_stride {self.patch_stride}: expected at most patch_size "
                f"{self.patch_size} (patches must cover the image)"
            )
        # The same search at level 0, for frames shrunk to the finest level (``coarse``).
        self._level_dis = cv2.DISOpticalFlow_create(_DIS_PRESETS[preset])  # type: ignore[attr-defined]  # missing from OpenCV's stubs
        for setting in _DIS_SETTINGS:
            if hasattr(self._dis, "get" + setting):  # not every OpenCV version has every setting
                getattr(self._level_dis, "set" + setting)(getattr(self._dis, "get" + setting)())
        self._level_dis.setFinestScale(0)
        self._shrink = Shrinker(self.finest_scale)

    def info(self) -> dict[str, Any]:
        return {
            **super().info(),
            "iterations": self.iterations,
            "finest_scale": self.finest_scale,
            "patch_size": self.patch_size,
            "patch_stride": self.patch_stride,
            "refinement_iterations": self.refinement_iterations,
        }

    def coarse(self, prev: np.ndarray, nxt: np.ndarray) -> CoarseFlow | None:
        """The flow at DIS's finest level, computed on the frames shrunk to it (``flow_levels``):
        ``coarse(...).full()`` is ``self(prev, nxt)``, the same as OpenCV's DIS bit for bit.
        None at ``finest_scale = 0`` or for a frame size where shrinking first is not exact."""
        prev, nxt = to_gray(prev), to_gray(nxt)
        _check_pair(prev, nxt)
        h, w = prev.shape
        if not exact_at_level(w, h, self.patch_size, self.finest_scale):
            return None
        first, second = self._shrink(prev, nxt)
        flow = self._level_dis.calc(first, second, None)
        return CoarseFlow(flow, self.finest_scale, (h, w))

    def __call__(self, prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        prev, nxt = to_gray(prev), to_gray(nxt)  # once: ``coarse`` gets gray frames as they are
        coarse = self.coarse(prev, nxt)
        return coarse.full() if coarse is not None else self._dis.calc(prev, nxt, None)


class FarnebackFlow(FlowEstimator):
    """OpenCV Farneback polynomial-expansion flow (slow but smooth; a classical reference)."""

    def __init__(
        self,
        pyr_scale: float = 0.5,
        levels: int = 3,
        winsize: int = 15,
        iterations: int = 3,
        poly_n: int = 5,
        poly_sigma: float = 1.2,
    ) -> None:
        self.name = "farneback"
        self._params = (pyr_scale, levels, winsize, iterations, poly_n, poly_sigma, 0)

    def __call__(self, prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        prev, nxt = to_gray(prev), to_gray(nxt)
        _check_pair(prev, nxt)
        return cv2.calcOpticalFlowFarneback(prev, nxt, None, *self._params)  # type: ignore[call-overload, unused-ignore]  # OpenCV's stubs reject flow=None


class RAFTFlow(FlowEstimator):
    """torchvision RAFT (small or large), on the GPU when one is available.

    Weights: ``weights=None`` looks for the torchvision checkpoint in the torch hub cache
    (``torch.hub.get_dir()/checkpoints``; nothing is downloaded), ``weights=PATH`` loads a local
    state dict, ``allow_random_init=True`` (and no weights) builds an untrained network, which is
    only useful for testing the plumbing. Inputs are padded (edge replication) to a multiple of 8
    and cropped back; frames whose short side is below ``min_size`` (128) are upsampled first and
    the flow is scaled back to the input's pixel units.
    """

    grayscale: ClassVar[bool] = False
    min_size: ClassVar[int] = 128

    def __init__(
        self,
        variant: str = "small",
        weights: str | Path | None = None,
        allow_random_init: bool = False,
        device: str | None = None,
        num_flow_updates: int | None = None,
    ) -> None:
        import torch
        from torchvision.models import optical_flow as tv_flow

        builders = {
            "small": (tv_flow.raft_small, tv_flow.Raft_Small_Weights.C_T_V2, 12),
            "large": (tv_flow.raft_large, tv_flow.Raft_Large_Weights.C_T_SKHT_V2, 12),
        }
        if variant not in builders:
            raise FlowError(f"RAFT variant {variant!r}: expected 'small' or 'large'")
        build, default_weights, default_updates = builders[variant]
        self.name = f"raft_{variant}"
        self.num_flow_updates = num_flow_updates or default_updates
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        path = Path(weights) if weights is not None else None
        if path is None:
            cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(default_weights.url).name
            path = cached if cached.is_file() else None
        if path is not None:
            if not path.is_file():
                raise FlowError(f"RAFT weights file {path} not found (weights=PATH)")
            model = build(weights=None, progress=False)
            state = torch.load(path, map_location="cpu", weights_only=True)
            try:
                model.load_state_dict(state)
            except RuntimeError as exc:
                raise FlowError(
                    f"{path}: not a torchvision {self.name} state dict ({exc})"
                ) from exc
            self._info = {"name": self.name, "source": str(path), "sha256": sha256_file(path)}
        elif allow_random_init:
            model = build(weights=None, progress=False)
            self._info = {"name": self.name, "source": "random-init", "sha256": "random-init"}
        else:
            raise FlowError(
                f"{self.name}: no weights found (looked for {Path(default_weights.url).name} in the "
                f"torch hub cache {torch.hub.get_dir()}/checkpoints; nothing is downloaded). Copy "
                f"the torchvision checkpoint there, pass weights=PATH (CLI: --weights PATH), or "
                "pass allow_random_init=True to test with an untrained network."
            )
        self.model = model.eval().to(self.device)

    def info(self) -> dict[str, Any]:
        return dict(self._info)

    def _to_tensor(self, frame: np.ndarray, size: tuple[int, int] | None):
        import torch

        frame = np.asarray(frame)
        if frame.ndim == 2:
            frame = np.repeat(frame[..., None], 3, axis=2)
        if frame.ndim != 3 or frame.shape[2] != 3:
            raise FlowError(f"RAFT frame: expected H x W x 3 RGB, got shape {frame.shape}")
        if size is not None:
            frame = cv2.resize(frame, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
        x = torch.from_numpy(np.ascontiguousarray(frame)).to(self.device)
        # RAFT expects RGB scaled to [-1, 1].
        return x.permute(2, 0, 1)[None].float().div_(127.5).sub_(1.0)

    def __call__(self, prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        _check_pair(np.asarray(prev), np.asarray(nxt))
        h, w = np.asarray(prev).shape[:2]
        scale = max(1.0, self.min_size / min(h, w))
        size = (round(h * scale), round(w * scale)) if scale > 1.0 else None
        a, b = self._to_tensor(prev, size), self._to_tensor(nxt, size)
        sh, sw = a.shape[-2:]
        pad_h, pad_w = (-sh) % 8, (-sw) % 8
        if pad_h or pad_w:
            a = F.pad(a, (0, pad_w, 0, pad_h), mode="replicate")
            b = F.pad(b, (0, pad_w, 0, pad_h), mode="replicate")
        with torch.inference_mode():
            flow = self.model(a, b, num_flow_updates=self.num_flow_updates)[-1]
        flow = flow[0, :, :sh, :sw].permute(1, 2, 0).float().cpu().numpy()
        if size is not None:
            # Back to the input grid; flow vectors shrink with the pixel grid, per axis.
            flow = cv2.resize(flow, (w, h), interpolation=cv2.INTER_LINEAR)
            flow[..., 0] *= w / sw
            flow[..., 1] *= h / sh
        return np.ascontiguousarray(flow, dtype=np.float32)


# --- registration: FLOW_ESTIMATORS.build("dis:fast"), build("raft_small", weights=PATH) ----------
# Every factory takes the keywords ``weights`` (a local file), ``allow_random_init`` and
# ``device`` (PROPAGATORS' flow passes them on); estimators without weights refuse a file.


def _no_weights(name: str, weights: str | Path | None) -> None:
    if weights is not None:
        raise FlowError(
            f"flow estimator {name!r} takes no weights file (weights={str(weights)!r}); "
            "weights apply to RAFT or affinity propagation"
        )


class DISOptions(BaseModel):
    """``dis:PRESET[,key=value...]``; plain ``dis`` is the ultrafast preset (bench/bench_tracking.py:
    as accurate as ``fast`` on the shared samples, and faster). Unset fields keep the preset's."""

    model_config = ConfigDict(extra="forbid")

    preset: Literal["ultrafast", "fast", "medium"] = "ultrafast"
    # Propagation runs the inverse search to convergence: the one-step warp IoU rises up to 32
    # iterations and is flat beyond (bench/bench_tracking.py); the presets stop at 12 / 16 / 25.
    iterations: int = Field(default=PROPAGATION_DIS_ITERATIONS, ge=1)
    # None: the preset's level (ultrafast 2 = quarter resolution); 1 buys J&F on every shared
    # sample at about 3x the flow time (bench/bench_tracking.py "what_each_change_bought").
    finest_scale: int | None = Field(default=None, ge=0)
    patch_size: int | None = Field(default=None, ge=1)
    patch_stride: int | None = Field(default=None, ge=1)
    refinement_iterations: int | None = Field(default=None, ge=0)


@FLOW_ESTIMATORS.register(
    "dis",
    options=DISOptions,
    usage="dis | dis:ultrafast|fast|medium[,finest_scale=N,patch_size=N,patch_stride=N,"
    "refinement_iterations=N,iterations=N]",
)
def dis(
    options: DISOptions,
    weights: str | Path | None = None,
    allow_random_init: bool = False,
    device: str | None = None,
) -> DISFlow:
    """OpenCV Dense Inverse Search (the fast CPU default), run to convergence."""
    _no_weights(f"dis:{options.preset}", weights)
    return DISFlow(
        options.preset,
        iterations=options.iterations,
        finest_scale=options.finest_scale,
        patch_size=options.patch_size,
        patch_stride=options.patch_stride,
        refinement_iterations=options.refinement_iterations,
    )


@FLOW_ESTIMATORS.register("farneback")
def farneback(
    weights: str | Path | None = None,
    allow_random_init: bool = False,
    device: str | None = None,
    **params: Any,
) -> FarnebackFlow:
    """OpenCV Farneback polynomial expansion (slow, smooth; a classical reference)."""
    _no_weights("farneback", weights)
    return FarnebackFlow(**params)


@FLOW_ESTIMATORS.register("raft_small")
def raft_small(**kwargs: Any) -> RAFTFlow:
    """torchvision RAFT-small (weights: torch hub cache or weights=PATH; nothing downloaded)."""
    return RAFTFlow("small", **kwargs)


@FLOW_ESTIMATORS.register("raft_large")
def raft_large(**kwargs: Any) -> RAFTFlow:
    """torchvision RAFT-large (weights: torch hub cache or weights=PATH; nothing downloaded)."""
    return RAFTFlow("large", **kwargs)

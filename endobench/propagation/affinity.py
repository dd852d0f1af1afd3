"""Feature-affinity propagation: carry labels through a video with self-supervised patch features.

Implements the DINO video-segmentation protocol (``../shared/docs/PROPAGATION.md``) behind the
:class:`~endobench.propagation.base.Propagator` interface, streaming: each frame's features are
computed once, and only the first frame plus the last ``n_last`` frames are kept.

Two modes:

- ``reference`` reproduces the official script's choices: short side 480 and the long side floored
  to a multiple of 64 (aspect not kept), std 0.228, patch grid floor-sized (trailing pixels ignored),
  first mask resized with PIL nearest straight to the grid, output upsampled by the patch size,
  per-channel min-max rescaled, arg-maxed and PIL-nearest resized to the frame size. Square frames
  use the frame's sizing rule for the mask too (the official code transposes them: a bug we fix).
- ``default`` keeps the aspect ratio (short side ``short_side``, both sides rounded to the patch
  size), uses the backbone's own normalisation, area-averages the keyframe probabilities onto the
  grid, and returns bilinearly upsampled probabilities (no min-max distortion).

Both: ``n_last = 0`` means "first frame only" (the official code hangs); more than 255 objects is
refused; prefix tokens (CLS and registers) are dropped by the backbone by count.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from endobench.propagation.affinity_core import (
    l2_normalize,
    one_thread,
    propagate_labels,
    reference_argmax,
    window_keys,
)
from endobench.propagation.base import PropagationStep, one_hot

REFERENCE_MEAN = (0.485, 0.456, 0.406)
REFERENCE_STD = (0.228, 0.224, 0.225)  # 0.228 (not 0.229) as in the official script
MAX_CLASSES = 256


@dataclass(frozen=True)
class AffinityConfig:
    """Settings of feature-affinity propagation; the defaults are the official protocol's."""

    mode: Literal["reference", "default"] = "default"
    n_last: int = 7
    radius: int = 12
    topk: int = 5
    temperature: float = 0.1
    short_side: int = 480

    def __post_init__(self) -> None:
        if self.mode not in ("reference", "default"):
            raise ValueError(f"affinity mode: expected 'reference' or 'default', got {self.mode!r}")
        if self.n_last < 0:
            raise ValueError(f"affinity n_last: expected >= 0, got {self.n_last}")
        if self.topk < 1:
            raise ValueError(f"affinity topk: expected >= 1, got {self.topk}")
        if self.temperature <= 0:
            raise ValueError(f"affinity temperature: expected > 0, got {self.temperature}")
        if self.short_side < 1:
            raise ValueError(f"affinity short_side: expected >= 1, got {self.short_side}")


def reference_frame_size(height: int, width: int, short_side: int = 480) -> tuple[int, int]:
    """Official sizing: short side ``short_side``, long side floored to a multiple of 64 -> (H, W)."""
    if height <= width:
        return short_side, int((short_side * width / height) // 64 * 64)
    return int((short_side * height / width) // 64 * 64), short_side


def default_frame_size(height: int, width: int, short_side: int, patch: int) -> tuple[int, int]:
    """Aspect-keeping sizing: short side ~``short_side``, both sides rounded to the patch -> (H, W)."""
    scale = short_side / min(height, width)
    return (
        max(patch, round(height * scale / patch) * patch),
        max(patch, round(width * scale / patch) * patch),
    )


def normalized_input(
    frame: np.ndarray,
    size: tuple[int, int],
    crop: tuple[int, int],
    mean: np.ndarray,
    std: np.ndarray,
) -> np.ndarray:
    """``H x W x 3`` uint8 RGB -> ``3 x crop`` float32 network input.

    Resized to ``size`` (H, W; OpenCV bilinear, as the official script), cropped to the top-left
    ``crop`` (the stride-p patch embedding ignores trailing pixels, so the floor grid sees the
    same), then ``(x / 255 - mean) / std`` per channel in float32: the reference's operations in
    its order, on the smaller uint8 image first and in place.
    """
    resized = cv2.resize(frame, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
    chw = np.ascontiguousarray(resized[: crop[0], : crop[1]].transpose(2, 0, 1))
    image = np.divide(chw, np.float32(255.0), dtype=np.float32)
    np.subtract(image, mean[:, None, None], out=image)
    np.divide(image, std[:, None, None], out=image)
    return image


class FeatureExtractor:
    """Wraps a backbone as ``normalised 1 x 3 x H x W tensor -> d x h x w`` last-block features.

    Features are taken after the backbone's final norm (as ``get_intermediate_layers(n=1)`` in the
    official script), prefix tokens removed by the backbone.
    """

    def __init__(self, backbone: Any) -> None:
        self.backbone = backbone.eval()
        self.patch_size = int(backbone.patch_size)
        self.mean = tuple(backbone.mean)
        self.std = tuple(backbone.std)
        self.weights = backbone.weights

    @torch.no_grad()
    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        device = next(self.backbone.parameters()).device
        image = image.to(device)
        if device.type == "cuda":
            with torch.autocast("cuda", dtype=torch.bfloat16):
                levels = self.backbone.forward_features(image, norm=True)
        else:
            levels = self.backbone.forward_features(image, norm=True)
        return levels[-1][0].float().cpu()


class AffinityPropagator:
    """Propagator by feature affinity (see module docstring for the two modes).

    extractor: callable ``1 x 3 x H x W`` normalised tensor -> ``d x h x w`` features, with
    attributes ``patch_size``, ``mean``, ``std`` and (optionally) ``weights`` provenance.
    Confidence per pixel = (largest soft-label probability) x (mean cosine similarity of the kept
    sources, clipped to [0, 1]): high when the top-k sources agree and resemble the pixel.
    """

    def __init__(
        self,
        extractor: Callable[[torch.Tensor], torch.Tensor],
        config: AffinityConfig | None = None,
    ) -> None:
        self.extractor = extractor
        self.config = config or AffinityConfig()
        self.patch = int(extractor.patch_size)  # type: ignore[attr-defined]
        self.name = f"affinity:{self.config.mode}"
        ref = self.config.mode == "reference"
        self._mean = np.asarray(REFERENCE_MEAN if ref else extractor.mean, np.float32)  # type: ignore[attr-defined]
        self._std = np.asarray(REFERENCE_STD if ref else extractor.std, np.float32)  # type: ignore[attr-defined]
        self._first: tuple[tuple[torch.Tensor, ...], torch.Tensor] | None = None
        self._recent: deque[tuple[tuple[torch.Tensor, ...], torch.Tensor]] = deque(
            maxlen=max(self.config.n_last, 1)
        )
        self._grid: tuple[int, int] = (0, 0)
        self.timings = {"features": 0.0, "propagation": 0.0}

    @property
    def weights(self) -> Any:
        """Provenance of the backbone weights behind the features (None for plain callables)."""
        return getattr(self.extractor, "weights", None)

    def _resized_size(self, height: int, width: int) -> tuple[int, int]:
        if self.config.mode == "reference":
            return reference_frame_size(height, width, self.config.short_side)
        return default_frame_size(height, width, self.config.short_side, self.patch)

    def _features(self, frame: np.ndarray) -> torch.Tensor:
        """``H x W x 3`` uint8 RGB -> ``d x h x w`` L2-normalised features; sets the grid size."""
        start = time.perf_counter()
        th, tw = self._resized_size(*frame.shape[:2])
        gh, gw = th // self.patch, tw // self.patch
        image = normalized_input(
            frame, (th, tw), (gh * self.patch, gw * self.patch), self._mean, self._std
        )
        features = self.extractor(torch.from_numpy(image)[None])
        if tuple(features.shape[1:]) != (gh, gw):
            raise ValueError(
                f"feature extractor returned a {tuple(features.shape[1:])} grid; expected {(gh, gw)} "
                f"for a {th}x{tw} input with patch size {self.patch}"
            )
        self._grid = (gh, gw)
        self.timings["features"] += time.perf_counter() - start
        with one_thread():
            return l2_normalize(features)

    def _keys(self, features: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """A frame's ``d x h x w`` features laid out once for the windowed products."""
        return window_keys(features, self.config.radius)

    def _labels_to_grid(self, probs: np.ndarray) -> torch.Tensor:
        """Keyframe ``C x H x W`` probabilities -> ``C x hw`` labels on the current grid."""
        gh, gw = self._grid
        if self.config.mode == "reference":
            labels = np.argmax(probs, axis=0).astype(np.uint8)
            small = np.asarray(Image.fromarray(labels).resize((gw, gh), Image.Resampling.NEAREST))
            grid = np.stack([small == c for c in range(probs.shape[0])]).astype(np.float32)
        else:
            hwc = np.ascontiguousarray(probs.transpose(1, 2, 0), dtype=np.float32)
            small = cv2.resize(hwc, (gw, gh), interpolation=cv2.INTER_AREA).reshape(gh, gw, -1)
            grid = small.transpose(2, 0, 1)
        return torch.from_numpy(np.ascontiguousarray(grid)).reshape(probs.shape[0], gh * gw)

    def reset(self, frame: np.ndarray, probs: np.ndarray) -> None:
        """Start from a keyframe: ``frame`` (``H x W x 3`` uint8) and its ``C x H x W`` probabilities."""
        probs = np.asarray(probs, dtype=np.float32)
        if probs.ndim != 3 or probs.shape[1:] != frame.shape[:2]:
            raise ValueError(
                f"keyframe probabilities: expected C x {frame.shape[0]} x {frame.shape[1]}, "
                f"got {probs.shape}"
            )
        if probs.shape[0] > MAX_CLASSES:
            raise ValueError(
                f"keyframe has {probs.shape[0] - 1} objects; at most {MAX_CLASSES - 1} are supported"
            )
        features = self._features(frame)
        with one_thread():
            self._first = (self._keys(features), self._labels_to_grid(probs))
        self._recent.clear()
        self._num_classes = probs.shape[0]

    def step(self, frame: np.ndarray) -> PropagationStep:
        """Propagate onto the next ``frame``; returns full-resolution probabilities and confidence."""
        if self._first is None:
            raise RuntimeError("AffinityPropagator.step() called before reset() with a keyframe")
        query = self._features(frame)
        start = time.perf_counter()
        context = [self._first, *(self._recent if self.config.n_last > 0 else ())]
        workers = torch.get_num_threads()  # propagation threads: as many as torch's
        with one_thread():
            labels, similarity = propagate_labels(
                query,
                [keys for keys, _ in context],
                [lab for _, lab in context],
                radius=self.config.radius,
                topk=self.config.topk,
                temperature=self.config.temperature,
                workers=workers,
            )
            if self.config.n_last > 0:
                self._recent.append((self._keys(query), labels))
            probs, confidence = self._to_frame(labels, similarity, frame.shape[:2])
        self.timings["propagation"] += time.perf_counter() - start
        return PropagationStep(probs=probs, confidence=confidence)

    def _to_frame(
        self, labels: torch.Tensor, similarity: torch.Tensor, size: tuple[int, int]
    ) -> tuple[np.ndarray, np.ndarray]:
        gh, gw = self._grid
        height, width = size
        grid_labels = labels.reshape(-1, gh, gw)
        certainty = labels.max(dim=0).values * similarity.clamp(0.0, 1.0)
        conf = F.interpolate(
            certainty.reshape(1, 1, gh, gw),
            size=(height, width),
            mode="bilinear",
            align_corners=False,
        )[0, 0]
        if self.config.mode == "reference":
            hard = reference_argmax(grid_labels, self.patch)
            hard = np.asarray(
                Image.fromarray(hard).resize((width, height), Image.Resampling.NEAREST)
            )
            probs = one_hot(hard, labels.shape[0])
        else:
            probs = F.interpolate(
                grid_labels[None], size=(height, width), mode="bilinear", align_corners=False
            )[0].numpy()
        return probs, conf.numpy().astype(np.float32)


def build_affinity_propagator(
    backbone_name: str,
    pretrained: bool | None = None,
    weights: str | None = None,
    model_kwargs: dict[str, Any] | None = None,
    block: int | None = None,
    **config: Any,
) -> AffinityPropagator:
    """Build an :class:`AffinityPropagator` on a registered backbone (see ``endobench.models``).

    ``block`` selects the transformer block whose output is used (default: the last one).
    Remaining keyword arguments go to :class:`AffinityConfig`.
    """
    from endobench.models import build_backbone

    out_indices = None if block is None else [block]
    backbone = build_backbone(
        backbone_name,
        pretrained=pretrained,
        weights=weights,
        out_indices=out_indices,
        model_kwargs=model_kwargs,
    )
    if torch.cuda.is_available():
        backbone = backbone.cuda()
    return AffinityPropagator(FeatureExtractor(backbone), AffinityConfig(**config))

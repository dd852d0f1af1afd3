"""On-disk cache of frozen-backbone features, keyed by content so it can never go stale.

A cached entry is the list of ``C_i x h_i x w_i`` float16 feature maps that
``backbone.forward_features`` returns for one image. Its key is the SHA-256 of

- the backbone fingerprint: registry name, timm model, weights SHA-256 (for a random
  initialisation, the SHA-256 of the parameters themselves, since "random-init" names no single
  set of weights), architecture overrides, returned blocks, normalisation constants, compute
  precision, and the timm / torch versions (an upgrade may change the numbers, so it invalidates);
- the image: its exact uint8 bytes, shape and dtype, after any resize (so the resolution is in it).

Any change to either gives a new key, hence a miss; nothing is ever overwritten with different
content. Layout: ``<root>/<fingerprint[:20]>/backbone.json`` (what the fingerprint stands for) and
``<root>/<fingerprint[:20]>/<key[:2]>/<key>.pt``: the 4-byte magic ``EBFC``, the SHA-256 of the
payload (32 bytes), then the payload (``torch.save`` of the list, loaded with ``weights_only=True``).
Writes go to a temporary file that is renamed into place, so a crash never leaves a truncated entry
under a valid name; every load verifies the payload's SHA-256, so an entry damaged later (truncated,
bit-flipped, overwritten) is detected and recomputed, as is an unreadable or mis-shaped one.

Only valid for a frozen backbone fed un-augmented pixels: any augmentation that changes pixels
(photometric) or geometry makes every epoch's input new, so the trainer then computes features
on the fly (see ``endobench.training.runner``).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import timm
import torch
from tqdm.auto import tqdm

from endobench.io_utils import atomic_write_bytes, atomic_write_json
from endobench.models import Backbone
from endobench.models.weights import state_sha256

logger = logging.getLogger(__name__)

FORMAT_VERSION = 2  # 2: entries carry the SHA-256 of their payload
ENTRY_MAGIC = b"EBFC"
DEFAULT_CACHE_ENV = "ENDOBENCH_FEATURE_CACHE"


def default_cache_dir() -> Path:
    """``$ENDOBENCH_FEATURE_CACHE``, else ``~/.cache/endobench/features``."""
    env = os.environ.get(DEFAULT_CACHE_ENV)
    return Path(env) if env else Path.home() / ".cache" / "endobench" / "features"


def backbone_description(backbone: Backbone, precision: str) -> dict:
    """Everything that determines a frozen backbone's features, as a JSON-able dict."""
    weights = backbone.weights.to_dict()
    sha = weights["sha256"]
    if backbone.weights.source == "random-init":
        sha = "state:" + state_sha256(backbone)
    return {
        "format": FORMAT_VERSION,
        "backbone": backbone.name,
        "timm_name": weights["name"],
        "weights_sha256": sha,
        "model_kwargs": weights.get("model_kwargs", {}),
        "out_indices": list(backbone.out_indices),
        "embed_dims": list(backbone.embed_dims),
        "patch_size": backbone.patch_size,
        "mean": list(backbone.mean),
        "std": list(backbone.std),
        "norm": False,
        "precision": precision,
        "timm": timm.__version__,
        "torch": torch.__version__,
    }


def image_sha256(image: np.ndarray) -> str:
    """SHA-256 of an image's exact content: shape, dtype and bytes."""
    image = np.ascontiguousarray(image)
    digest = hashlib.sha256(f"{image.shape}|{image.dtype}|".encode())
    digest.update(image.tobytes())
    return digest.hexdigest()


def _atomic_torch_save(obj: object, path: Path) -> None:
    """Write ``obj`` as a checksummed entry (magic, payload SHA-256, payload) atomically."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    payload = buffer.getvalue()
    entry = ENTRY_MAGIC + hashlib.sha256(payload).digest() + payload
    atomic_write_bytes(path, entry, fsync=False)  # an entry is cheap to recompute


def _verified_payload(entry: bytes) -> bytes | None:
    """The payload of a checksummed entry, or None when its magic or SHA-256 does not match."""
    head = len(ENTRY_MAGIC) + 32
    if len(entry) < head or not entry.startswith(ENTRY_MAGIC):
        return None
    payload = entry[head:]
    if hashlib.sha256(payload).digest() != entry[len(ENTRY_MAGIC) : head]:
        return None
    return payload


class FeatureCache:
    """Frozen-backbone features for images, computed once and reused across epochs and runs.

    ``precision``: "fp32" or "bf16" (the autocast used to compute them; part of the key).
    ``hits`` / ``misses`` count entries found / computed since construction.
    """

    def __init__(self, root: str | Path, backbone: Backbone, precision: str = "fp32") -> None:
        if not backbone.frozen:
            raise ValueError(
                f"feature cache: backbone {backbone.name} has {backbone.unfreeze_last} trainable "
                "blocks; cached features are only valid for a fully frozen backbone"
            )
        if precision not in ("fp32", "bf16"):
            raise ValueError(f"feature cache: precision {precision!r}; expected 'fp32' or 'bf16'")
        self.backbone = backbone
        self.precision = precision
        self.description = backbone_description(backbone, precision)
        canonical = json.dumps(self.description, sort_keys=True).encode()
        self.fingerprint = hashlib.sha256(canonical).hexdigest()
        self.root = Path(root) / self.fingerprint[:20]
        self.hits = 0
        self.misses = 0
        info = self.root / "backbone.json"
        if not info.exists():
            atomic_write_json(info, self.description)

    def key(self, image: np.ndarray) -> str:
        """Cache key of one ``H x W x 3`` uint8 image under this backbone."""
        return hashlib.sha256(f"{self.fingerprint}|{image_sha256(image)}".encode()).hexdigest()

    def path(self, key: str) -> Path:
        """File of entry ``key``."""
        return self.root / key[:2] / f"{key}.pt"

    def _valid(self, feats: object) -> bool:
        return (
            isinstance(feats, list)
            and len(feats) == len(self.backbone.embed_dims)
            and all(
                isinstance(f, torch.Tensor)
                and f.dtype == torch.float16
                and f.ndim == 3
                and f.shape[0] == c
                for f, c in zip(feats, self.backbone.embed_dims, strict=False)
            )
        )

    def load(self, key: str) -> list[torch.Tensor] | None:
        """The cached ``C_i x h_i x w_i`` float16 maps of entry ``key``, or None if absent / bad."""
        path = self.path(key)
        if not path.exists():
            return None
        payload = _verified_payload(path.read_bytes())
        if payload is None:
            logger.warning("feature cache: entry %s fails its SHA-256 check; recomputing", path)
            return None
        try:
            feats = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
        except Exception as err:  # a damaged file is recomputed, never trusted
            logger.warning("feature cache: unreadable entry %s (%s); recomputing", path, err)
            return None
        if not self._valid(feats):
            logger.warning("feature cache: entry %s has unexpected content; recomputing", path)
            return None
        return feats

    @torch.no_grad()
    def _compute(self, images: np.ndarray) -> list[list[torch.Tensor]]:
        """Per-image float16 CPU feature lists for an ``N x H x W x 3`` uint8 batch."""
        was_training = self.backbone.training
        self.backbone.eval()
        try:
            x = self.backbone.preprocess(images)
            autocast = (
                torch.autocast("cuda", dtype=torch.bfloat16)
                if self.precision == "bf16"
                else contextlib.nullcontext()
            )
            if x.device.type == "cuda":
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast:
                levels = self.backbone.forward_features(x)
            levels = [f.float().half().cpu() for f in levels]
        finally:
            self.backbone.train(was_training)
        return [[f[i].clone() for f in levels] for i in range(len(images))]

    def ensure(
        self, images: Sequence[np.ndarray], batch_size: int = 8, progress: bool = True
    ) -> list[str]:
        """Keys of ``images`` (each ``H x W x 3`` uint8), computing and storing missing entries.

        Images are batched by shape; every image of one call may differ in size.
        """
        keys = [self.key(image) for image in images]
        missing = [i for i, k in enumerate(keys) if self.load(k) is None]
        self.hits += len(keys) - len(missing)
        self.misses += len(missing)
        if missing:
            by_shape: dict[tuple[int, ...], list[int]] = {}
            for i in missing:
                by_shape.setdefault(tuple(images[i].shape), []).append(i)
            bar = tqdm(
                total=len(missing),
                desc=f"features {self.backbone.name}",
                disable=not progress,
                leave=False,
            )
            for indices in by_shape.values():
                for start in range(0, len(indices), batch_size):
                    chunk = indices[start : start + batch_size]
                    feats = self._compute(np.stack([images[i] for i in chunk]))
                    for i, f in zip(chunk, feats, strict=True):
                        _atomic_torch_save(f, self.path(keys[i]))
                    bar.update(len(chunk))
            bar.close()
        return keys

    def load_batch(self, keys: Iterable[str]) -> list[torch.Tensor]:
        """Levels stacked over ``keys``: one ``B x C_i x h_i x w_i`` float16 tensor per level."""
        per_image = []
        for key in keys:
            feats = self.load(key)
            if feats is None:
                raise KeyError(
                    f"feature cache: entry {key} missing from {self.root}; call ensure()"
                )
            per_image.append(feats)
        return [torch.stack(level) for level in zip(*per_image, strict=True)]

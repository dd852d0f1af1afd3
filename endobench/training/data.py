"""Training data: a registry dataset split, resized to the training resolution, as torch datasets.

``load_data(config)`` gives ``(train, val, classes, num_classes)`` as :class:`PreparedData`
arrays; :class:`PixelDataset` augments them per ``(seed, epoch, index)``;
:class:`CachedFeatureDataset` serves frozen-backbone features from a ``FeatureCache`` instead.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from endobench.data import ImageSample
from endobench.seeding import derive_seed
from endobench.training.augment import build_augmentation
from endobench.training.config import TrainConfig
from endobench.training.feature_cache import FeatureCache
from endobench.training.losses import IGNORE_INDEX

logger = logging.getLogger(__name__)


@dataclass
class PreparedData:
    """Training-resolution arrays: ``images`` N x S x S x 3 uint8, ``masks`` N x S x S uint8."""

    images: np.ndarray
    masks: np.ndarray
    ids: list[str]


def resize_pair(image: np.ndarray, mask: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """``size x size`` image (area when shrinking, else bilinear) and mask (nearest)."""
    h, w = image.shape[:2]
    if (h, w) == (size, size):
        return image, mask
    interp = cv2.INTER_AREA if size < min(h, w) else cv2.INTER_LINEAR
    return (
        cv2.resize(image, (size, size), interpolation=interp),
        cv2.resize(mask, (size, size), interpolation=cv2.INTER_NEAREST),
    )


def _prepare(
    samples: Iterable[ImageSample], size: int, num_classes: int, where: str
) -> PreparedData:
    images, masks, ids = [], [], []
    for s in samples:
        if s.mask is None:
            continue
        labels = np.unique(s.mask)
        bad = [int(v) for v in labels if v >= num_classes and v != IGNORE_INDEX]
        if bad:
            raise ValueError(
                f"{where}: sample {s.id}: label values {bad} outside 0..{num_classes - 1} "
                f"(and {IGNORE_INDEX} = ignore); set num_classes or a dataset target mapping"
            )
        image, mask = resize_pair(np.ascontiguousarray(s.image), np.ascontiguousarray(s.mask), size)
        images.append(image)
        masks.append(mask)
        ids.append(s.id)
    if not images:
        raise ValueError(f"{where}: no annotated images")
    return PreparedData(np.stack(images), np.stack(masks).astype(np.uint8), ids)


def split_indices(
    samples: Sequence[ImageSample], video: bool, val_fraction: float, seed: int
) -> tuple[list[int], list[int]]:
    """Hold out ``val_fraction`` of the clips (video datasets, so neighbouring frames never leak
    across the split) or of the images, chosen by ``seed``. At least one group goes each way."""
    groups: dict[str, list[int]] = {}
    for i, s in enumerate(samples):
        key = str(s.meta.get("clip", s.id)) if video else s.id
        groups.setdefault(key, []).append(i)
    if len(groups) < 2:
        if video:
            logger.warning("only one clip: splitting its frames, neighbouring frames may leak")
            return split_indices(samples, False, val_fraction, seed)
        raise ValueError("need at least 2 annotated images to split into train and validation")
    names = sorted(groups)
    order = np.random.default_rng(derive_seed(seed, "split")).permutation(len(names))
    n_val = min(len(names) - 1, max(1, round(val_fraction * len(names))))
    val_names = {names[i] for i in order[:n_val]}
    train = [i for name in names if name not in val_names for i in groups[name]]
    val = [i for name in names if name in val_names for i in groups[name]]
    return train, val


def load_data(config: TrainConfig) -> tuple[PreparedData, PreparedData, dict[int, str], int]:
    """(train, val, classes, num_classes) at the training resolution."""
    from endobench.data import load_registry, open_dataset

    registry = load_registry(config.datasets)
    overrides = config.dataset_overrides or None

    def open_split(split: str | None):
        return open_dataset(config.dataset, split=split, registry=registry, overrides=overrides)

    train_ds = open_split(config.train_split)
    classes = dict(train_ds.classes)
    num_classes = config.num_classes or max(2, max(classes, default=1) + 1)
    where = f"dataset {config.dataset}"
    samples = [s for s in train_ds.images() if s.mask is not None]
    if config.val_split is not None:
        train_samples = samples
        val_samples = [s for s in open_split(config.val_split).images() if s.mask is not None]
    else:
        train_idx, val_idx = split_indices(
            samples, train_ds.kind == "video", config.val_fraction, config.seed
        )
        train_samples = [samples[i] for i in train_idx]
        val_samples = [samples[i] for i in val_idx]
    if config.max_images is not None:
        train_samples = train_samples[: config.max_images]
    train = _prepare(train_samples, config.size, num_classes, f"{where} (train)")
    val = _prepare(val_samples, config.size, num_classes, f"{where} (validation)")
    return train, val, classes, num_classes


class PixelDataset(torch.utils.data.Dataset):
    """Images (augmented per ``(seed, epoch, index)``) and masks as uint8 tensors."""

    def __init__(self, data: PreparedData, preset: str, seed: int) -> None:
        self.data = data
        self.preset = preset
        self.seed = seed
        self.epoch = 0
        self.augment = build_augmentation(preset) if preset != "none" else None

    def __len__(self) -> int:
        return len(self.data.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, mask = self.data.images[i], self.data.masks[i]
        if self.augment is not None:
            self.augment.set_random_seed(derive_seed(self.seed, "augment", self.epoch, i))
            out = self.augment(image=image, mask=mask)
            image, mask = out["image"], out["mask"]
        return torch.from_numpy(np.ascontiguousarray(image)), torch.from_numpy(
            np.ascontiguousarray(mask)
        )


#: Bytes of verified cache entries a :class:`CachedFeatureDataset` keeps in memory (beyond: read
#: and verified again on every access).
IN_MEMORY_FEATURE_BYTES = 2 << 30


class CachedFeatureDataset(torch.utils.data.Dataset):
    """Cached float16 feature levels and masks.

    Entries are read and SHA-256-verified once, then served from memory (up to
    :data:`IN_MEMORY_FEATURE_BYTES` in all): every epoch reads the same features.
    """

    def __init__(self, cache: FeatureCache, keys: list[str], masks: np.ndarray) -> None:
        self.cache, self.keys, self.masks = cache, keys, masks
        self.epoch = 0
        self._loaded: dict[int, list[torch.Tensor]] = {}
        self._loaded_bytes = 0

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, i: int) -> tuple[list[torch.Tensor], torch.Tensor]:
        feats = self._loaded.get(i) or self.cache.load(self.keys[i])
        if feats is None:
            raise KeyError(f"feature cache entry {self.keys[i]} disappeared from {self.cache.root}")
        size = sum(f.numel() * f.element_size() for f in feats)
        if i not in self._loaded and self._loaded_bytes + size <= IN_MEMORY_FEATURE_BYTES:
            self._loaded[i] = feats
            self._loaded_bytes += size
        return feats, torch.from_numpy(self.masks[i])

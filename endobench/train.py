"""Training a segmentation head (and optionally the last backbone blocks): ``fit``, checkpoints, ``predict``.

``fit(TrainConfig(...))`` trains a ``SegNet`` on a registry dataset with AdamW (backbone blocks at
``lr * backbone_lr_mult``), a cosine schedule with linear warm-up, gradient clipping, bf16 autocast
and channels_last on CUDA (fp32 on CPU), validation Dice / IoU every epoch, ``metrics.csv``, a
``best.pt`` and a ``last.pt`` checkpoint (see ``endobench.checkpoint``), and exact resume.

Reproducibility: every random draw is derived from ``(seed, purpose, epoch[, sample])``: the model
initialisation, the train/val split, each epoch's shuffling, each sample's augmentation and the
global torch generator (dropout) at the start of each epoch. A resumed run therefore needs no saved
random-number-generator state: restarting at epoch ``e`` re-derives exactly the draws an
uninterrupted run makes at epoch ``e``, independent of anything else that consumed random numbers
before (e.g. a notebook cell). Model and AdamW states come from ``last.pt``. On CPU this gives
bit-identical results; CUDA kernels may be non-deterministic.

Feature cache: with a fully frozen backbone and the ``none`` augmentation preset, backbone features
are read from (or computed once into) ``endobench.feature_cache.FeatureCache`` and only the head
runs each epoch. Any preset that changes pixels (photometric) or geometry gives new backbone inputs
every epoch, so the features are computed on the fly instead; the reason is logged and recorded in
``TrainResult.feature_cache``. Cached features are float16, so a cached run's numbers differ from an
uncached run's by float16 rounding of the features.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import logging
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from tqdm.auto import tqdm

from endobench.augment import build_augmentation, is_geometric, is_photometric, preset_names
from endobench.checkpoint import (
    check_weights_provenance,
    model_state,
    read_checkpoint,
    restore_model_state,
    save_checkpoint,
)
from endobench.data import Clip, ImageSample
from endobench.feature_cache import FeatureCache, default_cache_dir
from endobench.io_utils import atomic_write_text
from endobench.losses import IGNORE_INDEX, LOSSES, build_loss
from endobench.models import SegNet, build_backbone, build_head
from endobench.models.weights import state_sha256

logger = logging.getLogger(__name__)

# Fields that may differ between a run and its resumption without changing its numbers.
RESUMABLE_CHANGES = frozenset({"out_dir", "device", "num_workers", "cache_dir", "datasets"})


class TrainConfig(BaseModel):
    """Everything that defines a training run; every default lives here.

    Data: ``dataset`` (registry name) with ``dataset_overrides`` (e.g. synthetic options),
    ``datasets`` (registry file; default lookup otherwise), ``train_split`` / ``val_split`` (registry
    splits) or a ``val_fraction`` of clips (video) / images held out by ``seed``; ``max_images``
    caps the training set (first N after the split). Images are resized to ``size x size`` pixels.
    Model: ``backbone`` with ``pretrained`` / ``weights`` (one is required), ``out_indices``,
    ``unfreeze_last`` blocks trainable, ``backbone_kwargs`` (timm overrides); ``head`` with
    ``head_kwargs``; ``num_classes`` (default: largest class id + 1, at least 2).
    Optimisation: AdamW ``lr`` (head), ``lr * backbone_lr_mult`` (unfrozen blocks), ``weight_decay``
    (not on biases / norms), ``warmup_epochs`` of linear warm-up then cosine decay to
    ``lr * min_lr_ratio``, ``grad_clip`` (max global L2 norm; None = off), ``loss`` weights (names
    from ``endobench.losses.LOSSES``).
    """

    model_config = ConfigDict(extra="forbid")

    dataset: str = "synthetic"
    dataset_overrides: dict[str, Any] = Field(default_factory=dict)
    datasets: str | None = None
    train_split: str | None = None
    val_split: str | None = None
    val_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    max_images: int | None = Field(None, ge=1)
    size: int = Field(224, ge=14, le=4096, description="square training resolution (pixels)")

    backbone: str = "dinov2_vits14"
    pretrained: bool | None = None
    weights: str | None = None
    out_indices: list[int] | None = None
    unfreeze_last: int = Field(0, ge=0)
    backbone_kwargs: dict[str, Any] = Field(default_factory=dict)
    head: Literal["linear", "fusion"] = "fusion"
    head_kwargs: dict[str, Any] = Field(default_factory=dict)
    num_classes: int | None = Field(None, ge=2)

    augment: str = "none"
    epochs: int = Field(10, ge=1)
    batch_size: int = Field(8, ge=1)
    lr: float = Field(1e-3, gt=0.0)
    backbone_lr_mult: float = Field(0.1, ge=0.0)
    weight_decay: float = Field(1e-4, ge=0.0)
    warmup_epochs: float = Field(1.0, ge=0.0)
    min_lr_ratio: float = Field(0.0, ge=0.0, le=1.0)
    grad_clip: float | None = Field(1.0, gt=0.0)
    loss: dict[str, float] = Field(default_factory=lambda: {"dice": 1.0, "ce": 1.0})
    seed: int = 0

    use_feature_cache: bool = True
    cache_dir: str | None = None
    out_dir: str = "results/train"
    device: str = "auto"
    num_workers: int = Field(0, ge=0)

    @field_validator("augment")
    @classmethod
    def _known_preset(cls, value: str) -> str:
        if value not in preset_names():
            raise ValueError(
                f"unknown augmentation preset {value!r}; expected one of {preset_names()}"
            )
        return value

    @field_validator("loss")
    @classmethod
    def _known_losses(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(value) - set(LOSSES))
        if unknown:
            raise ValueError(f"unknown loss name(s) {unknown}; expected some of {sorted(LOSSES)}")
        return value

    @model_validator(mode="after")
    def _weights_choice(self) -> TrainConfig:
        if self.weights is not None and self.pretrained is not None:
            raise ValueError("give either weights (a local file) or pretrained, not both")
        if self.weights is None and self.pretrained is None:
            raise ValueError(
                "choose the backbone weights: pretrained=true (timm / Hugging Face cache), "
                "weights=PATH (local file) or pretrained=false (random initialisation)"
            )
        return self


@dataclass
class TrainResult:
    """What ``fit`` returns. ``model`` holds the final (last-epoch) weights; ``best.pt`` the best."""

    model: SegNet
    history: list[dict[str, Any]]
    best_epoch: int
    best_val_dice: float
    out_dir: Path
    best_checkpoint: Path
    last_checkpoint: Path
    metrics_csv: Path
    feature_cache: dict[str, Any] = field(default_factory=dict)


# --- randomness ---------------------------------------------------------------------------------
def derive_seed(*parts: object) -> int:
    """A 31-bit seed that is a pure function of ``parts`` (stable across processes and runs)."""
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def lr_factor(step: int, total_steps: int, warmup_steps: int, min_ratio: float = 0.0) -> float:
    """Learning-rate multiplier at optimiser step ``step`` (0-based).

    Linear warm-up ``(step + 1) / warmup_steps`` for the first ``warmup_steps`` steps, then cosine
    decay from 1 to ``min_ratio`` at the last step.
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps - 1)
    progress = min(1.0, (step - warmup_steps) / span)
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


# --- data ---------------------------------------------------------------------------------------
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


class _Pixels(torch.utils.data.Dataset):
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


class _CachedFeatures(torch.utils.data.Dataset):
    """Cached float16 feature levels and masks."""

    def __init__(self, cache: FeatureCache, keys: list[str], masks: np.ndarray) -> None:
        self.cache, self.keys, self.masks = cache, keys, masks
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, i: int) -> tuple[list[torch.Tensor], torch.Tensor]:
        feats = self.cache.load(self.keys[i])
        if feats is None:
            raise KeyError(f"feature cache entry {self.keys[i]} disappeared from {self.cache.root}")
        return feats, torch.from_numpy(self.masks[i])


# --- model --------------------------------------------------------------------------------------
def build_model(config: TrainConfig, num_classes: int) -> SegNet:
    """The SegNet of ``config``; a random initialisation is seeded from ``config.seed``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(config.seed, "init"))
        backbone = build_backbone(
            config.backbone,
            pretrained=config.pretrained,
            weights=config.weights,
            out_indices=config.out_indices,
            unfreeze_last=config.unfreeze_last,
            model_kwargs=config.backbone_kwargs or None,
        )
        head = build_head(config.head, backbone.embed_dims, num_classes, **config.head_kwargs)
    return SegNet(backbone, head)


def param_groups(model: SegNet, config: TrainConfig) -> list[dict[str, Any]]:
    """AdamW groups: head / backbone x decay / no decay (biases and norm weights: ndim < 2)."""
    groups = []
    for part, lr in (
        (model.head, config.lr),
        (model.backbone, config.lr * config.backbone_lr_mult),
    ):
        params = [p for p in part.parameters() if p.requires_grad]
        decay = [p for p in params if p.ndim >= 2]
        no_decay = [p for p in params if p.ndim < 2]
        for ps, wd in ((decay, config.weight_decay), (no_decay, 0.0)):
            if ps:
                groups.append({"params": ps, "lr": lr, "base_lr": lr, "weight_decay": wd})
    return groups


def resolve_device(name: str) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; otherwise ``torch.device(name)``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


# --- metrics ------------------------------------------------------------------------------------
def confusion_counts(
    pred: torch.Tensor, target: torch.Tensor, num_classes: int, ignore_index: int = IGNORE_INDEX
) -> torch.Tensor:
    """``num_classes x 3`` int64 (TP, FP, FN) per class of label maps ``pred`` / ``target``."""
    valid = target != ignore_index
    p, t = pred[valid].long(), target[valid].long()
    cm = torch.bincount(t * num_classes + p, minlength=num_classes * num_classes)
    cm = cm.reshape(num_classes, num_classes).cpu()  # rows: truth, columns: prediction
    tp = cm.diag()
    return torch.stack([tp, cm.sum(0) - tp, cm.sum(1) - tp], dim=1)


def dice_iou(counts: torch.Tensor) -> dict[str, Any]:
    """Mean foreground Dice and IoU from (TP, FP, FN) counts over a whole set.

    Per class ``c >= 1``: Dice = 2TP / (2TP + FP + FN), IoU = TP / (TP + FP + FN), pooled over all
    pixels of the set; classes never present in truth or prediction are left out of the means.
    """
    dice, iou = {}, {}
    for c in range(1, counts.shape[0]):
        tp, fp, fn = (int(v) for v in counts[c])
        if tp + fp + fn:
            dice[c] = 2 * tp / (2 * tp + fp + fn)
            iou[c] = tp / (tp + fp + fn)
    return {
        "dice": float(np.mean(list(dice.values()))) if dice else float("nan"),
        "iou": float(np.mean(list(iou.values()))) if iou else float("nan"),
        "dice_per_class": dice,
        "iou_per_class": iou,
    }


# --- the loop -----------------------------------------------------------------------------------
class EpochRunner:
    """Per-run state: model, data (pixels or cached features), loss, device, autocast.

    ``train_epoch`` / ``validate`` are the steps ``fit`` repeats; ``cache_info`` says whether the
    feature cache is used and why (also read by ``bench/bench_train.py``).
    """

    def __init__(
        self, config: TrainConfig, model: SegNet, train: PreparedData, val: PreparedData,
        device: torch.device, progress: bool,
    ) -> None:  # fmt: skip
        self.config, self.model, self.device, self.progress = config, model, device, progress
        self.size = (config.size, config.size)
        self.loss_fn = build_loss(config.loss)
        self.on_cuda = device.type == "cuda"
        self.cache_info = self._cache_decision()
        if self.cache_info["used"]:
            precision = "bf16" if self.on_cuda else "fp32"
            cache = FeatureCache(config.cache_dir or default_cache_dir(), model.backbone, precision)
            keys = cache.ensure(list(train.images) + list(val.images), config.batch_size, progress)
            self.cache_info.update(root=str(cache.root), hits=cache.hits, misses=cache.misses)
            self.train_set: torch.utils.data.Dataset = _CachedFeatures(
                cache, keys[: len(train.images)], train.masks
            )
            self.val_set: torch.utils.data.Dataset = _CachedFeatures(
                cache, keys[len(train.images) :], val.masks
            )
        else:
            self.train_set = _Pixels(train, config.augment, config.seed)
            self.val_set = _Pixels(val, "none", config.seed)

    def _cache_decision(self) -> dict[str, Any]:
        c = self.config
        if not c.use_feature_cache:
            reason = "disabled by use_feature_cache=false"
        elif not self.model.backbone.frozen:
            reason = f"backbone has trainable blocks (unfreeze_last={c.unfreeze_last})"
        elif is_geometric(c.augment) or is_photometric(c.augment):
            reason = (
                f"augmentation preset {c.augment!r} changes the backbone input every epoch "
                f"(geometric={is_geometric(c.augment)}, photometric={is_photometric(c.augment)})"
            )
        else:
            return {"used": True, "reason": "frozen backbone, no augmentation"}
        if c.use_feature_cache:
            logger.info("feature cache not used: %s; computing backbone features each step", reason)
        return {"used": False, "reason": reason}

    def loader(self, dataset: torch.utils.data.Dataset, order: Sequence[int]):
        return torch.utils.data.DataLoader(
            dataset,
            batch_size=self.config.batch_size,
            sampler=list(order),
            num_workers=self.config.num_workers,
            pin_memory=self.on_cuda,
        )

    def autocast(self):
        if self.on_cuda:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def logits(self, inputs: Any) -> torch.Tensor:
        if self.cache_info["used"]:
            feats = [f.to(self.device, non_blocking=True).float() for f in inputs]
            if self.on_cuda:
                feats = [f.contiguous(memory_format=torch.channels_last) for f in feats]
            with self.autocast():
                return self.model.logits_from_features(feats, self.size).float()
        x = self.model.backbone.preprocess(inputs)
        if self.on_cuda:
            x = x.contiguous(memory_format=torch.channels_last)
        with self.autocast():
            return self.model(x).float()

    def train_epoch(
        self, epoch: int, optimizer: torch.optim.Optimizer, step: int, total_steps: int,
        warmup_steps: int,
    ) -> tuple[float, int]:  # fmt: skip
        """One epoch; returns (mean training loss, next global step)."""
        c = self.config
        self.model.train()
        self.train_set.epoch = epoch
        torch.manual_seed(derive_seed(c.seed, "torch", epoch))
        order = np.random.default_rng(derive_seed(c.seed, "shuffle", epoch)).permutation(
            len(self.train_set)
        )
        params = [p for g in optimizer.param_groups for p in g["params"]]
        total, count = 0.0, 0
        bar = tqdm(
            self.loader(self.train_set, order.tolist()),
            desc=f"epoch {epoch + 1}/{c.epochs}",
            leave=False,
            disable=not self.progress,
        )
        for inputs, target in bar:
            factor = lr_factor(step, total_steps, warmup_steps, c.min_lr_ratio)
            for group in optimizer.param_groups:
                group["lr"] = group["base_lr"] * factor
            target = target.to(self.device, non_blocking=True).long()
            loss = self.loss_fn(self.logits(inputs), target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if c.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(params, c.grad_clip)
            optimizer.step()
            step += 1
            n = len(target)
            value = float(loss.detach())
            total += value * n
            count += n
            bar.set_postfix(loss=f"{value:.4f}")
        return total / max(count, 1), step

    @torch.no_grad()
    def validate(self) -> dict[str, Any]:
        self.model.eval()
        counts = torch.zeros(self.model.num_classes, 3, dtype=torch.int64)
        total, n = 0.0, 0
        for inputs, target in self.loader(self.val_set, range(len(self.val_set))):
            target = target.to(self.device).long()
            logits = self.logits(inputs)
            total += float(self.loss_fn(logits, target)) * len(target)
            n += len(target)
            counts += confusion_counts(logits.argmax(1), target, self.model.num_classes)
        scores = dice_iou(counts)
        return {"val_loss": total / max(n, 1), "val_dice": scores["dice"], "val_iou": scores["iou"]}


def _write_metrics_csv(history: list[dict[str, Any]], path: Path) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(history[0]))
    writer.writeheader()
    writer.writerows(history)
    atomic_write_text(path, buffer.getvalue())


def _check_resumable(saved: dict[str, Any], config: TrainConfig, path: Path) -> None:
    current = config.model_dump(mode="json")
    changed = sorted(
        k for k in set(saved) | set(current)
        if k not in RESUMABLE_CHANGES and saved.get(k) != current.get(k)
    )  # fmt: skip
    if changed:
        details = ", ".join(f"{k}: {saved.get(k)!r} -> {current.get(k)!r}" for k in changed)
        raise ValueError(
            f"cannot resume from {path}: configuration differs in {details}; only "
            f"{sorted(RESUMABLE_CHANGES)} may change on resume (start a new out_dir instead)"
        )


def fit(
    config: TrainConfig,
    progress: bool = True,
    resume: bool | str | Path = False,
    stop_after_epoch: int | None = None,
) -> TrainResult:
    """Train as ``config`` says; write ``metrics.csv``, ``best.pt`` and ``last.pt`` in ``out_dir``.

    ``resume``: True continues from ``out_dir/last.pt`` (a path names another checkpoint); the
    result equals an uninterrupted run's. ``stop_after_epoch``: return after that many completed
    epochs (time-limited jobs; resume later) without changing the schedule, which always spans
    ``config.epochs``.
    """
    out_dir = Path(config.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    device = resolve_device(config.device)
    train, val, classes, num_classes = load_data(config)
    model = build_model(config, num_classes)
    random_init = model.backbone.weights.source == "random-init"
    backbone_sha256 = state_sha256(model.backbone) if random_init else None
    model = model.to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(param_groups(model, config), lr=config.lr)
    history: list[dict[str, Any]] = []
    best = {"epoch": 0, "val_dice": -math.inf}
    start_epoch = 0
    if resume:
        path = out_dir / "last.pt" if resume is True else Path(resume)
        ckpt = read_checkpoint(path)
        _check_resumable(ckpt["config"], config, path)
        check_weights_provenance(model, ckpt["weights"], str(path), ckpt["backbone_sha256"])
        restore_model_state(model, ckpt["state"], str(path))
        optimizer.load_state_dict(ckpt["optimizer"])
        history, best, start_epoch = list(ckpt["history"]), dict(ckpt["best"]), int(ckpt["epoch"])
        logger.info("resuming %s at epoch %d", path, start_epoch)

    runner = EpochRunner(config, model, train, val, device, progress)
    steps_per_epoch = math.ceil(len(train.images) / config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    warmup_steps = min(total_steps, round(config.warmup_epochs * steps_per_epoch))
    step = start_epoch * steps_per_epoch
    last_epoch = config.epochs if stop_after_epoch is None else min(config.epochs, stop_after_epoch)
    payload_base = {
        "config": config.model_dump(mode="json"),
        "classes": {int(k): str(v) for k, v in classes.items()},
        "num_classes": num_classes,
        "weights": model.backbone.weights.to_dict(),
        "backbone_sha256": backbone_sha256,
        "model": model.describe(),
    }
    epochs = tqdm(
        range(start_epoch, last_epoch), desc="training", disable=not progress, initial=start_epoch,
        total=config.epochs,
    )  # fmt: skip
    for epoch in epochs:
        started = time.perf_counter()
        train_loss, step = runner.train_epoch(epoch, optimizer, step, total_steps, warmup_steps)
        row = {
            "epoch": epoch + 1,
            "train_loss": train_loss,
            **runner.validate(),
            "lr": optimizer.param_groups[0]["lr"],
            "seconds": time.perf_counter() - started,
            "feature_cache": runner.cache_info["used"],
        }
        history.append(row)
        epochs.set_postfix(loss=f"{train_loss:.4f}", dice=f"{row['val_dice']:.4f}")
        payload = {
            **payload_base,
            "epoch": epoch + 1,
            "history": history,
            "state": model_state(model),
            "optimizer": optimizer.state_dict(),
        }
        if row["val_dice"] > best["val_dice"]:
            best = {"epoch": epoch + 1, "val_dice": row["val_dice"]}
            save_checkpoint({**payload, "best": best}, out_dir / "best.pt")
        save_checkpoint({**payload, "best": best}, out_dir / "last.pt")
        _write_metrics_csv(history, out_dir / "metrics.csv")
    return TrainResult(
        model=model,
        history=history,
        best_epoch=int(best["epoch"]),
        best_val_dice=float(best["val_dice"]),
        out_dir=out_dir,
        best_checkpoint=out_dir / "best.pt",
        last_checkpoint=out_dir / "last.pt",
        metrics_csv=out_dir / "metrics.csv",
        feature_cache=dict(runner.cache_info),
    )


def load_checkpoint(path: str | Path, device: str = "cpu") -> tuple[SegNet, dict[str, Any]]:
    """Rebuild the trained ``SegNet`` from a checkpoint (``weights_only=True`` safe).

    The frozen backbone is rebuilt from the recorded weights source and verified (weights file
    SHA-256, or for a random initialisation the SHA-256 of the re-drawn tensors). Returns ``(model in eval mode,
    metadata)``; metadata holds ``config`` (plain dict), ``epoch``, ``history``, ``best``,
    ``weights`` (provenance), ``classes``, ``num_classes``, ``model``.
    """
    ckpt = read_checkpoint(path)
    config = TrainConfig.model_validate(ckpt["config"])
    model = build_model(config, int(ckpt["num_classes"]))
    check_weights_provenance(model, ckpt["weights"], str(path), ckpt["backbone_sha256"])
    restore_model_state(model, ckpt["state"], str(path))
    model.to(resolve_device(device)).eval()
    meta = {k: v for k, v in ckpt.items() if k not in ("state", "optimizer")}
    return model, meta


def predict(
    model: SegNet,
    clip_or_frames: Clip | Sequence[np.ndarray] | np.ndarray,
    batch_size: int = 8,
    size: int | None = None,
    progress: bool = False,
) -> list[np.ndarray]:
    """Label maps (``H x W`` uint8, argmax of the softmax) for every frame of a clip or sequence.

    Frames are read and segmented ``batch_size`` at a time (a long clip is never loaded whole).
    ``size``: run the model at ``size x size`` (the training resolution, e.g.
    ``meta["config"]["size"]``) and resample the probabilities bilinearly back to each frame's size.
    """
    n = len(clip_or_frames)
    frame_at = (
        clip_or_frames.frame if isinstance(clip_or_frames, Clip) else clip_or_frames.__getitem__
    )
    out: list[np.ndarray] = []
    for start in tqdm(range(0, n, batch_size), desc="predict", disable=not progress, leave=False):
        frames = [np.asarray(frame_at(i)) for i in range(start, min(n, start + batch_size))]
        shapes = {f.shape for f in frames}
        if size is None and len(shapes) > 1:
            out.extend(predict(model, frames[i : i + 1], 1)[0] for i in range(len(frames)))
            continue
        batch = np.stack(
            [
                cv2.resize(f, (size, size), interpolation=cv2.INTER_LINEAR) if size else f
                for f in frames
            ]
        )
        probs = torch.from_numpy(model.predict_proba(batch, batch_size=batch_size))
        for f, p in zip(frames, probs, strict=True):
            if p.shape[-2:] != f.shape[:2]:
                p = torch.nn.functional.interpolate(
                    p[None], size=f.shape[:2], mode="bilinear", align_corners=False
                )[0]
            out.append(p.argmax(0).numpy().astype(np.uint8))
    return out

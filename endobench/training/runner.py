"""``EpochRunner``: one run's model, data, loss and device; trains an epoch, validates.

Feature cache: with a fully frozen backbone and the ``none`` augmentation preset, backbone features
are read from (or computed once into) a :class:`~endobench.training.feature_cache.FeatureCache`
and only the head runs each epoch. Any preset that changes pixels (photometric) or geometry gives
new backbone inputs every epoch, so the features are computed on the fly instead; the reason is
logged and recorded in ``cache_info``. Cached features are float16, so a cached run's numbers
differ from an uncached run's by float16 rounding of the features.

Validation images are never augmented, so on the live path a frozen backbone's validation features
are the same every epoch: they are computed at the first validation, batch by batch as every
validation batches them, and kept in memory (up to :data:`VALIDATION_FEATURE_BYTES`; beyond it they
are recomputed each epoch). Only the head runs again, on the very tensors the backbone returned, so
every number is the one a full forward gives.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from endobench.models import SegNet
from endobench.seeding import derive_seed
from endobench.training.augment import is_geometric, is_photometric
from endobench.training.config import TrainConfig
from endobench.training.data import CachedFeatureDataset, PixelDataset, PreparedData
from endobench.training.feature_cache import FeatureCache, default_cache_dir
from endobench.training.losses import build_loss
from endobench.training.optim import lr_factor
from endobench.training.validation import confusion_counts, dice_iou

logger = logging.getLogger(__name__)

#: Bytes of validation features (live path, frozen backbone) kept in memory across epochs.
VALIDATION_FEATURE_BYTES = 1 << 30


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
            self.train_set: CachedFeatureDataset | PixelDataset = CachedFeatureDataset(
                cache, keys[: len(train.images)], train.masks
            )
            self.val_set: CachedFeatureDataset | PixelDataset = CachedFeatureDataset(
                cache, keys[len(train.images) :], val.masks
            )
        else:
            self.train_set = PixelDataset(train, config.augment, config.seed)
            self.val_set = PixelDataset(val, "none", config.seed)
        # (features, target) per validation batch, once computed (live path, frozen backbone)
        self._val_batches: list[tuple[list[torch.Tensor], torch.Tensor]] | None = None

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
        for logits, target in self._validation_logits():
            total += float(self.loss_fn(logits, target)) * len(target)
            n += len(target)
            counts += confusion_counts(logits.argmax(1), target, self.model.num_classes)
        scores = dice_iou(counts)
        return {"val_loss": total / max(n, 1), "val_dice": scores["dice"], "val_iou": scores["iou"]}

    def _validation_logits(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(logits, target) per validation batch; a frozen backbone's features computed once."""
        if self._val_batches is not None:
            for feats, target in self._val_batches:
                with self.autocast():
                    yield self.model.logits_from_features(feats, self.size).float(), target
            return
        keep = not self.cache_info["used"] and self.model.backbone.frozen
        kept: list[tuple[list[torch.Tensor], torch.Tensor]] = []
        kept_bytes = 0
        for inputs, target in self.loader(self.val_set, range(len(self.val_set))):
            target = target.to(self.device).long()
            if not keep:
                yield self.logits(inputs), target
                continue
            x = self.model.backbone.preprocess(inputs)
            if self.on_cuda:
                x = x.contiguous(memory_format=torch.channels_last)
            with self.autocast():  # what SegNet.forward does, with the features kept
                feats = self.model.backbone.forward_features(x)
                logits = self.model.logits_from_features(feats, self.size).float()
            kept_bytes += sum(f.numel() * f.element_size() for f in feats)
            keep = kept_bytes <= VALIDATION_FEATURE_BYTES
            if keep:
                kept.append((feats, target))
            else:  # over the budget: recomputed every epoch
                kept.clear()
            yield logits, target
        if keep:
            self._val_batches = kept

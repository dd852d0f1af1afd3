"""``fit``: train a segmentation head (and optionally the last backbone blocks) on a dataset.

``fit(TrainConfig(...))`` trains a ``SegNet`` on a registry dataset with AdamW (backbone blocks at
``lr * backbone_lr_mult``), a cosine schedule with linear warm-up, gradient clipping, bf16 autocast
and channels_last on CUDA (fp32 on CPU), validation Dice / IoU every epoch, ``metrics.csv``, a
``best.pt`` and a ``last.pt`` checkpoint (see ``endobench.models.load``), and exact resume.

Reproducibility: every random draw is derived from ``(seed, purpose, epoch[, sample])``
(``endobench.seeding.derive_seed``): the model initialisation, the train/val split, each epoch's
shuffling, each sample's augmentation and the global torch generator (dropout) at the start of
each epoch. A resumed run therefore needs no saved random-number-generator state: restarting at
epoch ``e`` re-derives exactly the draws an uninterrupted run makes at epoch ``e``, independent of
anything else that consumed random numbers before (e.g. a notebook cell). Model and AdamW states
come from ``last.pt``. On CPU this gives bit-identical results; CUDA kernels may be
non-deterministic. When the feature cache is used and why: ``endobench.training.runner``.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from endobench.io_utils import atomic_write_text
from endobench.models import SegNet, build_segnet, resolve_device
from endobench.models.load import (
    check_weights_provenance,
    checkpoint_spec,
    read_checkpoint,
    restore_model_state,
)
from endobench.models.weights import state_sha256
from endobench.training.checkpoint import model_state, save_checkpoint
from endobench.training.config import RESUMABLE_CHANGES, TrainConfig
from endobench.training.data import load_data
from endobench.training.model import model_spec
from endobench.training.optim import param_groups
from endobench.training.runner import EpochRunner

logger = logging.getLogger(__name__)


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
    recipe = model_spec(config, num_classes, classes)
    model = build_segnet(recipe)
    random_init = model.backbone.weights.source == "random-init"
    spec = recipe.model_copy(
        update={
            "weights": model.backbone.weights,
            "backbone_sha256": state_sha256(model.backbone) if random_init else None,
        }
    )
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
        check_weights_provenance(model, checkpoint_spec(ckpt, str(path)), str(path))
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
        "spec": spec.model_dump(mode="json"),
        "config": config.model_dump(mode="json"),
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

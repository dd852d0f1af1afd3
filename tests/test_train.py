"""Training on synthetic data on CPU: learning, exact resume, checkpoints, predict, uncached path."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import albumentations as A
import numpy as np
import pytest
import torch

from endobench.data import open_dataset
from endobench.models import SegNetSpec, load_segnet, predict_labels, read_checkpoint
from endobench.registry import AUGMENTATIONS, LOSSES
from endobench.training import runner
from endobench.training.augment import build_augmentation, is_geometric
from endobench.training.config import TrainConfig
from endobench.training.data import load_data, split_indices
from endobench.training.loop import TrainResult, fit
from endobench.training.losses import build_loss
from endobench.training.optim import lr_factor
from endobench.training.validation import confusion_counts, dice_iou

# 4 easy synthetic clips x 3 frames: 3 clips (9 images) train, 1 clip (3 images) validation.
DATA = {"num_clips": 4, "num_frames": 3, "seed": 3, "difficulty": "easy"}
EPOCHS = 10


def reference_config(tmp: Path, cache: Path, **changes) -> TrainConfig:
    fields = dict(
        dataset="synthetic",
        dataset_overrides=DATA,
        backbone="dinov2_vits14",
        pretrained=False,  # random init, explicitly: no downloads in tests
        head="fusion",
        head_kwargs={"width": 32},
        size=224,
        epochs=EPOCHS,
        batch_size=4,
        lr=1e-2,
        seed=0,
        cache_dir=str(cache),
        out_dir=str(tmp),
    )
    fields.update(changes)
    return TrainConfig(**fields)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("feature_cache")


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path):
    config = reference_config(tmp_path_factory.mktemp("reference"), cache_dir)
    return config, fit(config, progress=False)


def best_constant_dice(masks: np.ndarray, num_classes: int) -> float:
    """Mean foreground Dice of the best prediction that is one label everywhere."""
    target = torch.from_numpy(masks).long()
    scores = [
        dice_iou(confusion_counts(torch.full_like(target, k), target, num_classes))["dice"]
        for k in range(num_classes)
    ]
    return max(s for s in scores if not np.isnan(s))


def test_fit_learns_far_beyond_constant_prediction(reference) -> None:
    config, result = reference
    _, val, _, num_classes = load_data(config)
    baseline = best_constant_dice(val.masks, num_classes)
    assert num_classes == 3 and baseline < 0.15
    assert result.best_val_dice > baseline + 0.35, (result.best_val_dice, baseline)
    assert result.history[-1]["val_dice"] > baseline + 0.3
    losses = [row["train_loss"] for row in result.history]
    assert losses[-1] < 0.35 * losses[0]
    assert all(b < a for a, b in zip(losses[:4], losses[1:5], strict=True))  # early epochs


def test_fit_writes_metrics_and_checkpoints(reference) -> None:
    config, result = reference
    assert result.feature_cache["used"] and result.feature_cache["misses"] == 12
    with open(result.metrics_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == list(range(1, EPOCHS + 1))
    assert {"train_loss", "val_loss", "val_dice", "val_iou", "lr", "seconds"} <= set(rows[0])
    assert float(rows[3]["val_dice"]) == pytest.approx(result.history[3]["val_dice"])
    best = torch.load(result.best_checkpoint, weights_only=True)
    assert best["epoch"] == result.best_epoch
    assert best["best"]["val_dice"] == pytest.approx(max(r["val_dice"] for r in result.history))
    spec = SegNetSpec.model_validate(best["spec"])
    assert spec.weights.sha256 == "random-init" and len(spec.backbone_sha256) == 64
    # The frozen backbone is rebuilt from its provenance, not stored: only head tensors.
    assert best["state"] and all(k.startswith("head.") for k in best["state"])
    assert result.best_checkpoint.stat().st_size < 2e6
    assert best["config"]["backbone"] == "dinov2_vits14" and best["config"]["size"] == 224
    assert spec.classes == {1: "polyp", 2: "instrument"}
    # Warm-up over the first epoch (3 steps), then cosine down to 0 at the last step.
    assert result.history[0]["lr"] == pytest.approx(config.lr)
    assert result.history[-1]["lr"] == pytest.approx(0.0, abs=1e-12)


def small_config(tmp: Path, cache: Path, **changes) -> TrainConfig:
    """A cheap run: 4 images at 56 px, linear head."""
    fields = dict(size=56, epochs=3, max_images=4, head="linear", head_kwargs={}, lr=3e-3)
    fields.update(changes)
    return reference_config(tmp, cache, **fields)


@pytest.mark.parametrize("augment", ["none", "endoscopic"])  # cached features / live + augmented
def test_resume_gives_identical_results(augment: str, tmp_path: Path, cache_dir: Path) -> None:
    whole = fit(small_config(tmp_path / "whole", cache_dir, augment=augment), progress=False)
    assert whole.feature_cache["used"] == (augment == "none")
    interrupted = small_config(tmp_path / "parts", cache_dir, augment=augment)
    first = fit(interrupted, progress=False, stop_after_epoch=1)
    assert len(first.history) == 1
    resumed = fit(interrupted, progress=False, resume=True)
    strip = [{k: v for k, v in row.items() if k != "seconds"} for row in resumed.history]
    expected = [{k: v for k, v in row.items() if k != "seconds"} for row in whole.history]
    assert len(strip) == 3 and strip == expected  # exact floats, every epoch
    for (name, a), b in zip(
        whole.model.state_dict().items(), resumed.model.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name
    if augment == "endoscopic":  # another seed (augmentation draws, init) really changes the run
        other = fit(small_config(tmp_path / "other", cache_dir, augment=augment, seed=1), False)
        assert other.history[-1]["train_loss"] != whole.history[-1]["train_loss"]


def test_resume_refuses_a_changed_config(reference, tmp_path: Path, cache_dir: Path) -> None:
    config, result = reference
    changed = reference_config(result.out_dir, cache_dir, lr=5e-3)
    with pytest.raises(ValueError, match=r"cannot resume .* lr: 0\.01 -> 0\.005"):
        fit(changed, progress=False, resume=True)


def test_load_segnet_and_predict_labels(reference) -> None:
    config, result = reference
    model, spec = load_segnet(result.last_checkpoint)
    meta = read_checkpoint(result.last_checkpoint)
    assert meta["epoch"] == EPOCHS and spec.weights.source == "random-init"
    assert not model.training
    for (name, a), b in zip(
        result.model.state_dict().items(), model.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name
    # The validation clip, at its native 128 x 160, segmented at the training size.
    dataset = open_dataset("synthetic", overrides=DATA)
    _, val_idx = split_indices(list(dataset.images()), True, 0.2, 0)
    val_clip = dataset.clips()[val_idx[0] // 3]
    labels = predict_labels(model, val_clip, batch_size=2, size=spec.input_size)
    assert len(labels) == len(val_clip)
    assert labels[0].shape == (128, 160) and labels[0].dtype == np.uint8
    gt = np.stack([val_clip.mask(i) for i in range(len(val_clip))])
    dice = dice_iou(confusion_counts(torch.from_numpy(np.stack(labels)), torch.from_numpy(gt), 3))
    assert dice["dice"] > best_constant_dice(gt, 3) + 0.3
    # A list of frames gives the same labels as the clip.
    assert spec.input_size == meta["config"]["size"] == 224
    assert np.array_equal(predict_labels(model, [val_clip.frame(2)], size=224)[0], labels[2])


def _fit_counting_backbone_passes(config: TrainConfig) -> tuple[TrainResult, int]:
    """``fit(config)`` and the number of backbone forwards in it (calls of its RGB stem conv)."""
    passes = 0

    def count(module: torch.nn.Module, args: tuple, output: object) -> None:
        nonlocal passes
        passes += isinstance(module, torch.nn.Conv2d) and module.in_channels == 3

    handle = torch.nn.modules.module.register_module_forward_hook(count)
    try:
        return fit(config, progress=False), passes
    finally:
        handle.remove()


def test_augmented_training_computes_features_live_and_validation_features_once(
    tmp_path: Path,
    cache_dir: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = small_config(tmp_path / "once", cache_dir, augment="basic")
    with caplog.at_level(logging.INFO, logger="endobench.training"):
        once, passes_once = _fit_counting_backbone_passes(config)
    assert not once.feature_cache["used"] and "misses" not in once.feature_cache
    assert "'basic' changes the backbone input" in once.feature_cache["reason"]
    assert "feature cache not used" in caplog.text
    monkeypatch.setattr(runner, "VALIDATION_FEATURE_BYTES", 0)  # no budget: every epoch
    every, passes_every = _fit_counting_backbone_passes(
        config.model_copy(update={"out_dir": str(tmp_path / "every")})
    )
    # 3 epochs of 1 training batch (4 augmented images) and 1 validation batch (held-out clip)
    assert (passes_once, passes_every) == (3 + 1, 3 + 3)
    strip = [
        [{k: v for k, v in row.items() if k != "seconds"} for row in r.history]
        for r in (once, every)
    ]
    assert strip[0] == strip[1]  # exact floats: losses, Dice, IoU and lr of every epoch
    assert len({row["val_loss"] for row in strip[0]}) == 3  # the head changed between epochs


def test_config_validation_messages() -> None:
    with pytest.raises(ValueError, match="choose the backbone weights"):
        TrainConfig()
    with pytest.raises(ValueError, match="either weights .* or pretrained"):
        TrainConfig(pretrained=True, weights="w.pth")
    with pytest.raises(ValueError, match=r"unknown augmentation preset 'heavy'.*'endoscopic'"):
        TrainConfig(pretrained=False, augment="heavy")
    with pytest.raises(ValueError, match=r"unknown loss name\(s\) \['focal'\]"):
        TrainConfig(pretrained=False, loss={"focal": 1.0})
    with pytest.raises(ValueError, match="epochs"):
        TrainConfig(pretrained=False, epochs=0)


def test_config_validates_names_from_the_registries(monkeypatch: pytest.MonkeyPatch) -> None:
    """A preset or loss registered later (e.g. by a plugin) is valid in a TrainConfig."""
    for registry in (AUGMENTATIONS, LOSSES):  # registered for this test only
        registry.names()  # the built-in names first
        monkeypatch.setattr(registry, "_entries", dict(registry._entries))
    AUGMENTATIONS.register("flip_only", lambda size: [A.HorizontalFlip(p=1.0)])
    LOSSES.register("mean_logit", lambda logits, target, ignore_index=255: logits.mean())
    config = TrainConfig(pretrained=False, augment="flip_only", loss={"mean_logit": 1.0})
    assert config.augment == "flip_only" and is_geometric("flip_only")
    image = np.arange(12, dtype=np.uint8).reshape(2, 2, 3)
    flipped = build_augmentation("flip_only")(image=image)["image"]
    assert np.array_equal(flipped, image[:, ::-1])
    assert float(build_loss(config.loss)(torch.ones(1, 2, 2, 2), torch.zeros(1, 2, 2))) == 1.0


def test_lr_schedule_hand_computed() -> None:
    assert [lr_factor(s, 10, 4) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert lr_factor(4, 10, 4) == pytest.approx(1.0)
    assert lr_factor(9, 10, 4) == pytest.approx(0.0, abs=1e-12)
    assert lr_factor(9, 10, 4, min_ratio=0.1) == pytest.approx(0.1)
    # Midpoint of the cosine part (steps 4..9 -> progress 0.5 at step 6.5): halfway.
    assert lr_factor(6, 10, 4) == pytest.approx(0.5 * (1 + np.cos(np.pi * 2 / 5)))


def test_dice_iou_from_counts_hand_computed() -> None:
    target = torch.tensor([[0, 1, 1, 2], [2, 2, 255, 0]])
    pred = torch.tensor([[0, 1, 2, 2], [2, 0, 1, 1]])
    counts = confusion_counts(pred, target, 3)
    # class 1: TP 1, FP 1 (the pixel at [1,3]; [1,2] is ignored), FN 1; class 2: TP 2, FP 1, FN 1
    assert counts.tolist() == [[1, 1, 1], [1, 1, 1], [2, 1, 1]]
    scores = dice_iou(counts)
    assert scores["dice"] == pytest.approx((2 / 4 + 4 / 6) / 2)
    assert scores["iou"] == pytest.approx((1 / 3 + 2 / 4) / 2)


def test_split_keeps_clips_together() -> None:
    samples = list(open_dataset("synthetic", overrides={**DATA, "num_clips": 5}).images())
    train, val = split_indices(samples, True, 0.4, seed=0)
    clips = lambda idx: {samples[i].meta["clip"] for i in idx}  # noqa: E731
    assert len(clips(val)) == 2 and len(clips(train)) == 3 and not clips(val) & clips(train)
    assert sorted(train + val) == list(range(15))
    assert split_indices(samples, True, 0.4, seed=0) == (train, val)

"""Loading trained segmenters: old-format checkpoints, training options that come and go, and
an inference side that never imports training code."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from endobench.models import (
    SegNet,
    SegNetSpec,
    build_backbone,
    build_head,
    load_segnet,
    predict_labels,
)
from endobench.models.load import CheckpointError
from endobench.models.weights import state_sha256

TINY = {"depth": 2, "embed_dim": 48, "num_heads": 2}
# What endobench.train.load_checkpoint + predict (main at b52c73c, before the split) returned for
# the checkpoint write_old_checkpoint writes, on old_format_frames(): label bytes' SHA-256 and
# per-class pixel counts, at the training size (28) and at the frames' own size.
OLD_LABELS_AT_28 = (
    "37f136a181218e30f77c786b4e1a278e84d091069284800f20716063fa29bb15",
    [2930, 3198, 112],
)
OLD_LABELS_NATIVE = (
    "709d68104246352fa856fa43ea5ab1b1ea2773ac8358f77d3b4c6cd7dae0ac76",
    [2368, 3860, 12],
)


def old_seed(*parts: object) -> int:
    """How train.py derived its seeds (``derive_seed``), written out: SHA-256 of ``a|b``."""
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def old_config(**extra: Any) -> dict[str, Any]:
    """``TrainConfig().model_dump(mode="json")`` as main wrote it, for a tiny fusion model."""
    config = {
        "dataset": "synthetic", "dataset_overrides": {"num_clips": 2}, "datasets": None,
        "train_split": None, "val_split": None, "val_fraction": 0.2, "max_images": None,
        "size": 28, "backbone": "dinov2_vits14", "pretrained": False, "weights": None,
        "out_indices": None, "unfreeze_last": 1, "backbone_kwargs": TINY, "head": "fusion",
        "head_kwargs": {"width": 16}, "num_classes": None, "augment": "none", "epochs": 1,
        "batch_size": 2, "lr": 0.001, "backbone_lr_mult": 0.1, "weight_decay": 0.0001,
        "warmup_epochs": 1.0, "min_lr_ratio": 0.0, "grad_clip": 1.0,
        "loss": {"dice": 1.0, "ce": 1.0}, "seed": 7, "use_feature_cache": True,
        "cache_dir": None, "out_dir": "results/train", "device": "auto", "num_workers": 0,
    }  # fmt: skip
    config.update(extra)
    return config


def write_old_checkpoint(path: Path, **config_changes: Any) -> dict[str, Any]:
    """The dict layout train.py / checkpoint.py saved (format endobench.train.checkpoint/1).

    The model is built as train.build_model did (torch seeded from the run seed, backbone, then
    head); "trained" tensors are its head and last block (unfreeze_last=1) moved by seeded noise.
    """
    config = old_config(**config_changes)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(old_seed(config["seed"], "init"))
        backbone = build_backbone(
            "dinov2_vits14", pretrained=False, unfreeze_last=1, model_kwargs=TINY
        )
        head = build_head("fusion", backbone.embed_dims, 3, width=16)
    model = SegNet(backbone, head)
    backbone_sha256 = state_sha256(backbone)
    noise = torch.Generator().manual_seed(11)
    params = {name for name, _ in model.named_parameters()}
    trainable = {f"backbone.{n}" for n, p in backbone.named_parameters() if p.requires_grad}
    state = {}
    for key, value in model.state_dict().items():
        if key.startswith("head.") or key in trainable:
            moved = (
                value + 0.5 * torch.randn(value.shape, generator=noise) if key in params else value
            )
            state[key] = moved.detach().clone()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    payload = {
        "format": "endobench.train.checkpoint/1",
        "config": config,
        "classes": {1: "polyp", 2: "instrument"},
        "num_classes": 3,
        "weights": {
            "name": "vit_small_patch14_dinov2.lvd142m",
            "source": "random-init",
            "sha256": "random-init",
            "path": None,
            "model_kwargs": TINY,
        },
        "backbone_sha256": backbone_sha256,
        "model": model.describe(),
        "epoch": 1,
        "history": [{"epoch": 1, "train_loss": 1.0, "val_loss": 1.0, "val_dice": 0.5}],
        "state": state,
        "optimizer": optimizer.state_dict(),
        "best": {"epoch": 1, "val_dice": 0.5},
    }
    torch.save(payload, path)
    return payload


def old_format_frames() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=(3, 40, 52, 3), dtype=np.uint8)


def digest(labels: list[np.ndarray]) -> tuple[str, list[int]]:
    stacked = np.stack(labels)
    return hashlib.sha256(stacked.tobytes()).hexdigest(), np.bincount(
        stacked.ravel(), minlength=3
    ).tolist()


@pytest.fixture(scope="module")
def old_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    path = tmp_path_factory.mktemp("old") / "best.pt"
    return path, write_old_checkpoint(path)


def test_old_format_checkpoint_predicts_exactly_as_before(old_checkpoint) -> None:
    path, payload = old_checkpoint
    model, spec = load_segnet(path)
    assert not model.training and spec.input_size == 28 and spec.unfreeze_last == 1
    assert spec.classes == {1: "polyp", 2: "instrument"} and spec.num_classes == 3
    assert spec.weights is not None and spec.weights.to_dict() == payload["weights"]
    assert spec.backbone_sha256 == payload["backbone_sha256"]
    for key, value in payload["state"].items():
        assert torch.equal(model.state_dict()[key], value), key
    at_28 = predict_labels(model, old_format_frames(), batch_size=2, size=spec.input_size)
    assert at_28[0].shape == (40, 52) and at_28[0].dtype == np.uint8
    assert digest(at_28) == OLD_LABELS_AT_28
    assert digest(predict_labels(model, old_format_frames())) == OLD_LABELS_NATIVE


def test_training_options_added_or_renamed_do_not_matter(tmp_path: Path) -> None:
    config = old_config(a_training_option_added_later=3, schedule={"kind": "cosine"})
    del config["warmup_epochs"], config["loss"]  # renamed since
    path = tmp_path / "changed.pt"
    payload = write_old_checkpoint(path)
    payload["config"] = config
    torch.save(payload, path)
    model, _ = load_segnet(path)
    assert digest(predict_labels(model, old_format_frames(), size=28)) == OLD_LABELS_AT_28


def test_broken_specs_name_the_file_and_field(old_checkpoint, tmp_path: Path) -> None:
    _, payload = old_checkpoint
    legacy = tmp_path / "legacy.pt"
    torch.save(
        {**payload, "config": {k: v for k, v in payload["config"].items() if k != "head"}}, legacy
    )
    with pytest.raises(CheckpointError, match=r"legacy.pt: stored training config lacks .*'head'"):
        load_segnet(legacy)
    spec = SegNetSpec(backbone="dinov2_vits14", head="linear", num_classes=2, init_seed=0)
    bad = tmp_path / "bad_spec.pt"
    dumped = {**spec.model_dump(mode="json"), "num_classes": 1}
    torch.save({"format": "endobench.train.checkpoint/2", "spec": dumped, "state": {}}, bad)
    with pytest.raises(CheckpointError, match=r"bad_spec.pt: model spec: field 'num_classes'"):
        load_segnet(bad)


INFERENCE_ONLY = """
import json, sys
import numpy as np
import endobench.ablate, endobench.data, endobench.evaluation, endobench.metrics, endobench.viz
import endobench.commands.evaluate, endobench.commands.track, endobench.propagation.track_clips
from endobench.commands.track import _load_segmenter
from endobench.models import load_segnet, predict_labels
model, spec = load_segnet(sys.argv[1])
labels = predict_labels(model, np.zeros((1, 20, 24, 3), np.uint8), size=spec.input_size)
_, info = _load_segmenter(sys.argv[1], "cpu")
loaded = [m for m in sys.modules if m.startswith("endobench.training")
          or m.split(".")[0] in ("albumentations", "papermill", "dask", "seaborn")]
print(json.dumps({"loaded": loaded, "shape": list(labels[0].shape), "classes": info["classes"]}))
"""


def test_tracking_and_evaluation_never_import_training(old_checkpoint) -> None:
    path, _ = old_checkpoint
    done = subprocess.run(
        [sys.executable, "-c", INFERENCE_ONLY, str(path)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    report = json.loads(done.stdout.splitlines()[-1])
    assert report == {"loaded": [], "shape": [20, 24], "classes": {"1": "polyp", "2": "instrument"}}
